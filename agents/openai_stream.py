"""The state machine from ``openai`` chat-completions chunks to agent chunks (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stepstream.adapter import AgentChunk, Finish, TextDelta, ToolCallDelta, ToolCallRequest
from stepstream.errors import ModelError

__all__ = ["OpenAIStreamAdapter"]


@dataclass
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


class OpenAIStreamAdapter:
    """Assembles one streamed chat completion: text deltas pass through at once; tool-call
    argument pieces are reported as they come and assembled into complete calls at the end.

    Chunks are read by attribute (the SDK's ``ChatCompletionChunk``), so any object of that
    shape works; only the first choice is read, since agents ask for one.
    """

    def __init__(self) -> None:
        self._calls: dict[int, _PendingCall] = {}
        self._reason: str | None = None
        self._usage: dict[str, Any] = {}
        self._model: str | None = None
        self._text: list[str] = []

    @property
    def text(self) -> str:
        """The answer text so far."""
        return "".join(self._text)

    def feed(self, chunk: Any) -> list[AgentChunk]:
        """Take one chunk; return the text and tool-call argument deltas it carries."""
        out: list[AgentChunk] = []
        model = getattr(chunk, "model", None)
        if model and isinstance(model, str):
            self._model = model
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self._usage = _as_dict(usage)
        choices = getattr(chunk, "choices", None) or []
        if not choices:
            return out
        choice = choices[0]
        delta = getattr(choice, "delta", None)
        if delta is not None:
            content = getattr(delta, "content", None)
            if content:
                self._text.append(content)
                out.append(TextDelta(content))
            for tc in getattr(delta, "tool_calls", None) or []:
                out.extend(self._tool_call_piece(tc))
        reason = getattr(choice, "finish_reason", None)
        if reason is not None:
            self._reason = reason
        return out

    def _tool_call_piece(self, tc: Any) -> list[AgentChunk]:
        index = getattr(tc, "index", None) or 0
        call = self._calls.setdefault(index, _PendingCall())
        if getattr(tc, "id", None):
            call.id = tc.id
        function = getattr(tc, "function", None)
        piece = ""
        if function is not None:
            if getattr(function, "name", None):
                call.name = function.name
            piece = getattr(function, "arguments", None) or ""
            call.arguments += piece
        if not piece:
            return []
        return [ToolCallDelta(index=index, id=call.id, name=call.name, arguments_delta=piece)]

    def finish(self) -> list[AgentChunk]:
        """Return the assembled tool calls (by index), then :class:`Finish`.

        :raises ModelError: if a tool call arrived without an id or a function name.
        """
        out: list[AgentChunk] = []
        for index in sorted(self._calls):
            call = self._calls[index]
            if not call.id or not call.name:
                raise ModelError(
                    f"the model sent an incomplete tool call at index {index} "
                    f"(id={call.id!r}, name={call.name!r})"
                )
            out.append(ToolCallRequest(id=call.id, name=call.name, arguments=call.arguments))
        out.append(Finish(reason=self._reason, usage=self._usage, model=self._model))
        return out


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    dump = getattr(value, "model_dump", None)
    return dict(dump(exclude_none=True)) if callable(dump) else {}
