"""The request bodies of the API as pydantic models, and the OpenAPI document built from them.

A body is first read as strict JSON (``_wire.parse_json``: 400 when it is not), then validated
by its model: a body of the wrong shape is a 422 naming each wrong field (never echoing the
values). Unknown fields are ignored, as Mastra's server does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from starlette.requests import Request

from ..context import RuntimeContext
from ._wire import Problem, parse_json


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


M = TypeVar("M", bound=_Body)


class _Running(_Body):
    runtime_context: dict[str, Any] | None = Field(
        None, alias="runtimeContext", description="Values the steps read from their context."
    )

    def context(self) -> RuntimeContext | None:
        """The runtime context to run with, if one was sent."""
        values = self.runtime_context
        return None if values is None else RuntimeContext(values)


class StartBody(_Running):
    """The body of ``start``, ``start-async`` and ``stream``."""

    input_data: Any = Field(None, alias="inputData", description="The workflow's input.")


class ResumeBody(_Running):
    """The body of ``resume`` and ``resume-async``."""

    step: str | list[str] | None = Field(
        None, description="The suspended step's id, or the id path of a nested one (required)."
    )
    resume_data: Any = Field(None, alias="resumeData", description="What the step resumes with.")


class SendEventBody(_Body):
    """The body of ``send-event``."""

    event: str = Field(min_length=1, description="The event a step waits for.")
    data: Any = Field(None, description="What the waiting step resumes with.")


class TimeTravelBody(_Body):
    """The body of ``time-travel``."""

    step: str | list[str] = Field(
        description="The step the new run starts at: a top-level step's id, or the id path of "
        "a step inside a nested workflow."
    )
    input_data: Any = Field(
        None,
        alias="inputData",
        description="The step's input instead of its stored one (left out: the stored one).",
    )
    replay_models: bool = Field(
        False,
        alias="replayModels",
        description="Replay the stored run's agent answers instead of calling the model.",
    )


async def read_body(request: Request, model: type[M]) -> M:
    """The request's body as ``model``: 400 for bad JSON or a non-object, 422 for a bad shape."""
    raw = await request.body()
    data: Any = {} if not raw.strip() else parse_json(raw)
    if not isinstance(data, dict):
        raise Problem(400, "the JSON body must be an object")
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        wrong = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)[:10]
        )
        raise Problem(422, f"invalid request body: {wrong}") from None


@dataclass(frozen=True)
class Endpoint:
    """One operation of the API, as the OpenAPI document describes it."""

    method: str
    path: str
    summary: str
    body: type[_Body] | None = None
    query: tuple[str, ...] = ()
    stream: str | None = None  # the media type of a streamed response


def openapi(endpoints: list[Endpoint], *, title: str, version: str) -> dict[str, Any]:
    """An OpenAPI 3.1 document of ``endpoints`` (bodies' schemas from their models)."""
    error = {
        "description": "A client error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "string"}},
            "required": ["error"],
        }
    }
    paths: dict[str, dict[str, Any]] = {}
    for end in endpoints:
        media = end.stream or "application/json"
        operation: dict[str, Any] = {
            "summary": end.summary,
            "operationId": f"{end.method}_{end.path}".replace("/", "_")
            .replace("{", "")
            .replace("}", ""),
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in _path_params(end.path)
            ]
            + [{"name": name, "in": "query", "schema": {"type": "string"}} for name in end.query],
            "responses": {
                "200": {"description": "OK", "content": {media: {}}},
                **{code: error for code in ("400", "401", "404", "409", "413", "422")},
            },
        }
        if end.body is not None:
            name = end.body.__name__
            schemas[name] = end.body.model_json_schema(by_alias=True)
            operation["requestBody"] = {
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}
                }
            }
        paths.setdefault(end.path, {})[end.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]
