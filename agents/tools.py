"""Tools: typed Python functions an agent offers to its model."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from typing import Any, overload

from pydantic import BaseModel, ConfigDict, TypeAdapter, create_model
from pydantic import ValidationError as PydanticValidationError

from stepstream.errors import InputValidationError, WorkflowDefinitionError

__all__ = ["Tool", "result_text", "tool"]


class Tool:
    """A function the model may call, with its arguments described by a pydantic model.

    :param fn: A sync or async function. Its parameters become the tool's arguments (typed
        parameters, or a single pydantic model parameter); its return value is sent back to
        the model as JSON.
    :param name: The name the model sees (default: the function's name).
    :param description: What the tool does, for the model (default: the docstring).
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.description = description or inspect.getdoc(fn) or ""
        self.args_model, self._single_model = _arguments_model(fn, self.name)
        self._result = TypeAdapter(Any)

    def schema(self) -> dict[str, Any]:
        """The chat-completions ``tools`` entry for this tool."""
        parameters = self.args_model.model_json_schema()
        parameters.pop("title", None)
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": parameters,
            },
        }

    def parse_arguments(self, arguments: str) -> BaseModel:
        """Validate the model's JSON arguments.

        :raises InputValidationError: when they are not valid JSON for the arguments model.
        """
        try:
            return self.args_model.model_validate_json(arguments or "{}")
        except PydanticValidationError as exc:
            raise InputValidationError(
                f"tool {self.name!r} got invalid arguments {arguments!r}: "
                + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()),
                step_id=self.name,
            ) from exc

    async def call(self, args: BaseModel) -> Any:
        """Run the tool with validated arguments; return its result in JSON form."""
        if self._single_model is not None:
            call_args: dict[str, Any] = {self._single_model: args}
        else:
            call_args = {name: getattr(args, name) for name in type(args).model_fields}
        if inspect.iscoroutinefunction(self.fn):
            result = await self.fn(**call_args)
        else:
            result = await asyncio.to_thread(self.fn, **call_args)
        return self._result.dump_python(result, mode="json")

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r})"


def _arguments_model(fn: Callable[..., Any], name: str) -> tuple[type[BaseModel], str | None]:
    try:
        hints = inspect.get_annotations(fn, eval_str=True)
    except Exception as exc:
        raise WorkflowDefinitionError(
            f"tool {name!r}: cannot resolve its annotations: {exc}"
        ) from exc
    params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    if len(params) == 1:
        only = hints.get(params[0].name)
        if isinstance(only, type) and issubclass(only, BaseModel):
            return only, params[0].name
    fields: dict[str, Any] = {}
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise WorkflowDefinitionError(f"tool {name!r}: *args/**kwargs cannot be described")
        annotation = hints.get(p.name, Any)
        default = ... if p.default is p.empty else p.default
        fields[p.name] = (annotation, default)
    model = create_model(
        f"{name}_arguments",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )
    return model, None


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a :class:`Tool` from a function: ``@tool`` or ``@tool(name=..., description=...)``."""
    if fn is not None:
        return Tool(fn, name=name, description=description)
    return lambda f: Tool(f, name=name, description=description)


def result_text(result: Any) -> str:
    """A tool result as the ``content`` of a ``tool`` message."""
    return result if isinstance(result, str) else json.dumps(result)


def _json_or_text(text: str) -> Any:
    # A tool call's arguments as the model sent them: JSON, or its text when it is not JSON.
    try:
        return json.loads(text) if text else {}
    except json.JSONDecodeError:
        return text
