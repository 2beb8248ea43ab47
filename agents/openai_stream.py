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

    Chunks are the JSON of ``chat.completion.chunk`` as decoded dicts (what the agent feeds
    it, parsed from the raw stream); the SDK's ``ChatCompletionChunk`` models (or any
    pydantic model of that shape) are taken too, through their ``model_dump()``. Only the
    first choice is read, since agents ask for one.
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
        if not isinstance(chunk, dict):
            chunk = _as_dict(chunk)
        out: list[AgentChunk] = []
        model = chunk.get("model")
        if model and isinstance(model, str):
            self._model = model
        usage = chunk.get("usage")
        if usage is not None:
            self._usage = _without_none(usage) if isinstance(usage, dict) else _as_dict(usage)
        choices = chunk.get("choices")
        if not choices:
            return out
        choice = choices[0]
        delta = choice.get("delta")
        if delta is not None:
            content = delta.get("content")
            if content:
                self._text.append(content)
                out.append(TextDelta(content))
            for tc in delta.get("tool_calls") or ():
                out.extend(self._tool_call_piece(tc))
        reason = choice.get("finish_reason")
        if reason is not None:
            self._reason = reason
        return out

    def _tool_call_piece(self, tc: dict[str, Any]) -> list[AgentChunk]:
        index = tc.get("index") or 0
        call = self._calls.setdefault(index, _PendingCall())
        if tc.get("id"):
            call.id = tc["id"]
        function = tc.get("function")
        piece = ""
        if function is not None:
            if function.get("name"):
                call.name = function["name"]
            piece = function.get("arguments") or ""
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


def _without_none(value: dict[str, Any]) -> dict[str, Any]:
    # As the SDK's model_dump(exclude_none=True) gave it: fields sent as null are left out.
    return {
        k: _without_none(v) if isinstance(v, dict) else v for k, v in value.items() if v is not None
    }
