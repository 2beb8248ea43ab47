"""What a model stream adapter produces: provider-neutral agent chunks, and its protocol.

An adapter is a pure state machine (no I/O): the agent feeds it each chunk its provider's
client yields, then calls ``finish()``; both return agent chunks in order. Agents turn those
into stream events (``tool-call-delta`` for text, ``tool-call``/``tool-result`` for tools).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "AgentChunk",
    "Finish",
    "StreamAdapter",
    "TextDelta",
    "ToolCallDelta",
    "ToolCallRequest",
]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the model's answer text, exactly as received."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call's JSON arguments as it streams (``index`` orders the calls)."""

    index: int
    id: str
    name: str
    arguments_delta: str


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """A complete tool call: the model asks to run ``name`` with JSON ``arguments``."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Finish:
    """The response ended with ``reason`` (``stop``, ``tool_calls``, ``length``...).

    ``usage`` is the provider's usage object as sent (empty when it sent none); ``model`` the
    model the provider says answered, when it says.
    """

    reason: str | None
    usage: dict[str, Any] = field(default_factory=dict)
    model: str | None = None


AgentChunk = TextDelta | ToolCallDelta | ToolCallRequest | Finish


@runtime_checkable
class StreamAdapter(Protocol):
    """Turns one model response's provider chunks into :data:`AgentChunk` values."""

    def feed(self, chunk: Any) -> list[AgentChunk]:
        """Take one provider chunk; return the agent chunks it completes, in order."""
        ...

    def finish(self) -> list[AgentChunk]:
        """The provider's stream ended: return what is left (tool calls, then ``Finish``)."""
        ...
