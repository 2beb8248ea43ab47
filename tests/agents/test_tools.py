"""Tools: argument models from signatures, JSON schemas for the model, calls."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from stepstream.agents import Tool, tool
from stepstream.errors import InputValidationError, WorkflowDefinitionError


@tool
def get_weather(city: str, days: int = 1) -> dict[str, object]:
    """Forecast for a city."""
    return {"city": city, "days": days}


class Query(BaseModel):
    text: str


@tool(name="search", description="Search the docs.")
async def search_docs(query: Query) -> list[str]:
    return [query.text.upper()]


def test_schema_from_typed_parameters() -> None:
    schema = get_weather.schema()
    assert schema["type"] == "function"
    fn = schema["function"]
    assert (fn["name"], fn["description"]) == ("get_weather", "Forecast for a city.")
    assert fn["parameters"]["required"] == ["city"]
    assert fn["parameters"]["properties"]["days"]["type"] == "integer"
    assert fn["parameters"]["additionalProperties"] is False


def test_schema_from_a_single_model_parameter() -> None:
    fn = search_docs.schema()["function"]
    assert (fn["name"], fn["description"]) == ("search", "Search the docs.")
    assert fn["parameters"]["properties"] == {"text": {"title": "Text", "type": "string"}}


@pytest.mark.asyncio
async def test_calls_validate_arguments_and_return_json() -> None:
    assert await get_weather.call(get_weather.parse_arguments('{"city":"Oslo"}')) == {
        "city": "Oslo",
        "days": 1,
    }
    assert await search_docs.call(search_docs.parse_arguments('{"text":"hi"}')) == ["HI"]
    with pytest.raises(InputValidationError, match="tool 'get_weather' got invalid arguments"):
        get_weather.parse_arguments('{"days": 2}')
    with pytest.raises(InputValidationError):
        get_weather.parse_arguments("not json")


def test_variadic_functions_cannot_be_tools() -> None:
    def loose(*args: int) -> None:
        pass

    with pytest.raises(WorkflowDefinitionError, match=r"\*args"):
        Tool(loose)
