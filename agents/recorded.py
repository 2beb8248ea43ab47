"""Recorded models: replay a stored run's agent answers instead of calling the model.

A durable run's event log holds everything an agent step streamed: its prompt (the
``tool-call-streaming-start`` event's ``args``), each text delta, the tools its model called
and their results, the usage of each response and how the step ended. A
:class:`RecordedModel` rebuilds those answers, and while it is in use (``with
model.replaying():``, or ``time_travel(..., replay_models=True)``) every agent step of the runs
started inside takes its answer from it, in the recorded order, and no request reaches the
model: a run can be debugged offline, and gives the same stream each time. A recorded tool
result is replayed too (the tool is not called again).

An agent step whose prompt has no recorded answer (left) fails with
:class:`~stepstream.errors.ReplayError`: replay never guesses. Answers are matched by the
agent's name and the prompt, so two agent steps of one name streaming at the same time while
their model called tools cannot be told apart; such answers are left out. The recording is
found through a context variable, so it reaches the steps run in this process; a step sent to
another process (a Ray executor) calls its model.
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stepstream.adapter import Finish, TextDelta, ToolCallRequest
from stepstream.errors import ModelError, ReplayError

from .answers import AgentEvent, ToolResult

if TYPE_CHECKING:
    from stepstream.storage import Storage

__all__ = ["RecordedAnswer", "RecordedModel", "current_recording"]

_current: ContextVar[RecordedModel | None] = ContextVar("stepstream_recording", default=None)


def current_recording() -> RecordedModel | None:
    """The recorded model in use here (see :meth:`RecordedModel.replaying`), if any."""
    return _current.get()


@dataclass(frozen=True)
class RecordedAnswer:
    """One agent step's recorded answer.

    :ivar agent: The agent's name (its step id in the stream).
    :ivar prompt: The prompt it answered.
    :ivar events: What ``Agent.stream()`` yielded, in order (text deltas, tool calls and
        results, one :class:`~stepstream.adapter.Finish` per response).
    :ivar error: How the step failed, when it did (``"<Type>: <message>"``).
    :ivar error_body: The error object the model sent, when it sent one.
    """

    agent: str
    prompt: str
    events: tuple[AgentEvent, ...]
    error: str | None = None
    error_body: Any = None


class RecordedModel:
    """Recorded agent answers, replayed in their order for each agent and prompt."""

    def __init__(self, answers: Iterable[RecordedAnswer]) -> None:
        self.answers = tuple(answers)
        self._left: dict[tuple[str, str], deque[RecordedAnswer]] = {}
        for answer in self.answers:
            self._left.setdefault((answer.agent, answer.prompt), deque()).append(answer)

    @classmethod
    def from_events(cls, events: Iterable[Mapping[str, Any]]) -> RecordedModel:
        """The answers in a run's events, given in their wire form (``StoredEvent.wire`` or
        ``Event.to_wire()``), in seq order."""
        return cls(_answers(events))

    @classmethod
    async def from_run(cls, storage: Storage, run_id: str) -> RecordedModel:
        """The answers of the stored run ``run_id`` (every execution of it)."""
        return cls.from_events(e.wire for e in await storage.read_events(run_id))

    @contextlib.contextmanager
    def replaying(self) -> Iterator[RecordedModel]:
        """Replay these answers to the agent steps of runs started (or resumed) inside the
        block: their tasks keep the recording after the block ends."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)

    def stream(self, agent: str, prompt: str) -> AsyncGenerator[AgentEvent, None]:
        """Replay the next recorded answer of ``agent`` to ``prompt``, as ``Agent.stream()``
        yields it.

        :raises ReplayError: (when iterated) if no recorded answer is left for them.
        :raises ModelError: at the end of the replay, if the recorded step failed.
        """
        return self._replay(agent, prompt)

    async def _replay(self, agent: str, prompt: str) -> AsyncGenerator[AgentEvent, None]:
        left = self._left.get((agent, prompt))
        if not left:
            raise ReplayError(
                f"the recorded run holds no answer of agent {agent!r} to this prompt "
                f"({_short(prompt)}); replay makes no model call, so a step whose prompt "
                "changed (edited input) needs the model"
            )
        answer = left.popleft()
        for event in answer.events:
            yield event
        if answer.error is not None:
            raise ModelError(f"replayed: {answer.error}", body=answer.error_body)


@dataclass
class _Open:
    prompt: str
    events: list[AgentEvent] = field(default_factory=list)
    error_body: Any = None
    ambiguous: bool = False


def _answers(events: Iterable[Mapping[str, Any]]) -> Iterator[RecordedAnswer]:
    # Agent steps may stream side by side (parallel); their deltas name the agent, while
    # tool calls and errors do not: those go to the one agent streaming, if only one is.
    open_: dict[str, _Open] = {}
    for wire in events:
        kind, payload = wire.get("type"), wire.get("payload") or {}
        if kind == "tool-call-streaming-start":
            args = wire.get("args")
            prompt = args.get("prompt") if isinstance(args, Mapping) else None
            if isinstance(prompt, str):
                open_[str(wire.get("toolName"))] = _Open(prompt)
        elif kind == "tool-call-delta" and str(wire.get("toolName")) in open_:
            open_[str(wire["toolName"])].events.append(TextDelta(str(wire["argsTextDelta"])))
        elif kind in ("tool-call", "tool-result", "error") and open_:
            if len(open_) > 1:
                for answer in open_.values():
                    answer.ambiguous = True
                continue
            answer = next(iter(open_.values()))
            if kind == "error":
                answer.error_body = wire.get("error")
            else:
                answer.events.append(_tool_event(kind, wire))
        elif kind == "step-usage" and (name := _agent_of(payload.get("id"), open_)):
            open_[name].events.append(_finish(payload))
        elif kind in ("step-result", "step-suspended") and (
            name := _agent_of(payload.get("id"), open_)
        ):
            done = open_.pop(name)
            if not done.ambiguous:
                failed = payload.get("status") == "failed"
                yield RecordedAnswer(
                    agent=name,
                    prompt=done.prompt,
                    events=tuple(done.events),
                    error=str(payload.get("error")) if failed else None,
                    error_body=done.error_body,
                )


def _agent_of(step_id: Any, open_: Mapping[str, _Open]) -> str | None:
    """The agent streaming as ``step_id`` (a nested step's id has its workflows in front)."""
    if not isinstance(step_id, str):
        return None
    return next((n for n in open_ if step_id == n or step_id.endswith("." + n)), None)


def _tool_event(kind: Any, wire: Mapping[str, Any]) -> AgentEvent:
    call_id, name, args = str(wire.get("toolCallId")), str(wire.get("toolName")), wire.get("args")
    if kind == "tool-result":
        return ToolResult(id=call_id, name=name, args=args, result=wire.get("result"))
    # The stream shows the arguments parsed; the agent hands them on as the model's JSON text.
    arguments = args if isinstance(args, str) else json.dumps(args)
    return ToolCallRequest(id=call_id, name=name, arguments=arguments)


def _finish(payload: Mapping[str, Any]) -> Finish:
    # The usage in the provider's (OpenAI's) naming, as Usage.from_provider reads it back.
    usage = {
        "prompt_tokens": payload.get("inputTokens", 0),
        "completion_tokens": payload.get("outputTokens", 0),
        "total_tokens": payload.get("totalTokens", 0),
        "prompt_tokens_details": {"cached_tokens": payload.get("cachedInputTokens", 0)},
        "completion_tokens_details": {"reasoning_tokens": payload.get("reasoningTokens", 0)},
    }
    return Finish(
        reason=payload.get("finishReason"), usage=usage, model=payload.get("responseModel")
    )


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
