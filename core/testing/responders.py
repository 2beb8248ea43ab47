"""Responders for the local model server: Mastra's conformance mock, the offline weather
demo's planner, and the benchmarks' bulk token stream."""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from typing import Any, Final

from .replies import (
    DropReply,
    ErrorMidStreamReply,
    HTTPErrorReply,
    Reply,
    Responder,
    TextReply,
    ToolCallReply,
    tokens,
    truthy,
)

__all__ = [
    "FULL_TEXT", "TEXT_CHUNKS", "bulk_responder", "mastra_mock_responder", "planner_responder",
]  # fmt: skip

TEXT_CHUNKS: Final[tuple[str, ...]] = (
    "Activities", " for", " London", ":", " 1.", " Visit", " the", " British", " Museum", ".",
)  # fmt: skip
FULL_TEXT: Final = "".join(TEXT_CHUNKS)


def bulk_responder(n: int) -> Responder:
    """Return a responder that streams `tokens(n)` as fast as the socket takes them."""
    chunks = tokens(n)
    return lambda body: TextReply(chunks)


def _last_user_text(body: Mapping[str, Any]) -> str:
    messages = body.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            parts = [p.get("text") for p in content if isinstance(p, dict)]
            return "".join(p for p in parts if isinstance(p, str))
    return ""


def mastra_mock_responder(body: dict[str, Any]) -> Reply:
    """Answer exactly like the mock model server Mastra's conformance traces were recorded with.

    The last user message picks the behaviour: "FAIL_HTTP" gives a 500; "USE_TOOL" streams
    a call to the first offered tool until a `tool` message is in the history;
    "FAIL_ABORT" and "FAIL_MIDSTREAM" break the stream after three chunks; anything else
    streams `TEXT_CHUNKS`. A request that does not stream gets `FULL_TEXT` in one body.
    """
    prompt = _last_user_text(body)
    if "FAIL_HTTP" in prompt:
        error = {"message": "mock upstream failure", "type": "server_error", "code": "mock_500"}
        return HTTPErrorReply(500, {"error": error})
    text_usage = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
    if not truthy(body.get("stream")):
        return TextReply(TEXT_CHUNKS, usage=text_usage)
    tools, messages = body.get("tools"), body.get("messages")
    answered = isinstance(messages, list) and any(
        isinstance(m, dict) and m.get("role") == "tool" for m in messages
    )
    if "USE_TOOL" in prompt and isinstance(tools, list) and tools and not answered:
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        pieces = ['{"city"', ':"Lon', 'don"}']
        return ToolCallReply(tools[0]["function"]["name"], pieces, "call_mock_1", usage=usage)
    # The mock tests for an abort first, so an abort wins when both words appear.
    if "FAIL_ABORT" in prompt:
        return DropReply(TEXT_CHUNKS[:3], delay=0.005)
    if "FAIL_MIDSTREAM" in prompt:
        error = {"message": "mock mid-stream failure", "type": "server_error"}
        return ErrorMidStreamReply(TEXT_CHUNKS[:3], {**error, "code": "mock_midstream"}, 0.005)
    return TextReply(TEXT_CHUNKS, delay=0.005, usage=text_usage)


def planner_responder(delay: float = 0.02) -> Responder:
    """Return a responder that streams an activity plan for the forecast in the prompt.

    The plan comes word by word, each chunk keeping its leading whitespace, and is the
    same for the same prompt; `delay` paces it so that a person can watch it stream.
    """

    def respond(body: dict[str, Any]) -> Reply:
        return TextReply(re.findall(r"\s*\S+", _plan(_last_user_text(body))), delay=delay)

    return respond


_OUTDOOR = (
    "Walk through the old town", "Have a picnic in the park", "Cycle along the river",
    "Browse an open-air market", "Take a boat tour", "Climb to the best viewpoint",
)  # fmt: skip
_INDOOR = (
    "Visit the art museum", "Eat at a covered food hall", "Try an indoor climbing wall",
    "Explore the science centre", "Read in a bookshop cafe", "Join a cooking class",
)  # fmt: skip


def _plan(prompt: str) -> str:
    def field(names: str, value: str) -> str | None:
        # Reading the forecast's JSON by pattern copes with it being embedded in prose.
        found = re.search(rf'"(?:{names})"\s*:\s*"?({value})', prompt, re.IGNORECASE)
        return found and found.group(1)

    number = r"-?\d+(?:\.\d+)?"
    named = re.search(r"\b(?:for|in)\s+([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*)", prompt)
    city = field("city|location|name", r'[^"]+') or (named and named.group(1)) or "your city"
    condition = field("conditions?|description", r'[^"]+') or "Mixed weather"
    high = field("max_?temp|temperature_?max|temperature", number)
    low = field("min_?temp|temperature_?min", number)
    rain = float(field("precipitation_?chance", number) or 0)
    wet = rain >= 50 or any(w in condition.lower() for w in ("rain", "shower", "storm", "snow"))
    temps = f", {low}°C to {high}°C" if low and high else f", up to {high}°C" if high else ""
    tip = "Bring water and sunscreen."
    if wet or float(high or 20) < 10:
        tip = "Dress for the weather and keep an indoor option close."
    # Hashing the prompt varies plans between cities while keeping each one stable.
    first = zlib.crc32(prompt.encode()) % 6
    day = _INDOOR if wet else _OUTDOOR
    return (
        f"Activity plan for {city}\n"
        f"Forecast: {condition}{temps}.\n\n"
        f"Morning:\n- {day[first]}.\n\n"
        f"Afternoon:\n- {day[(first + 2) % 6]}.\n\n"
        f"Evening:\n- {_INDOOR[(first + 4) % 6]}.\n\n"
        f"Tip: {tip}\n"
    )
