"""The agent step: Mastra's ``createStep(agent)``, input ``{prompt}``, output ``{text}``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from stepstream.adapter import Finish, TextDelta, ToolCallRequest
from stepstream.context import StepContext
from stepstream.errors import ModelError
from stepstream.events import (
    ErrorEvent,
    ToolCallDeltaEvent,
    ToolCallEvent,
    ToolCallStreamingStartEvent,
    ToolResultEvent,
)
from stepstream.result import now_ms
from stepstream.steps import Step
from stepstream.usage import Usage

from .answers import AgentEvent, ToolResult
from .recorded import current_recording
from .tools import _json_or_text

if TYPE_CHECKING:
    import pluggy

__all__ = ["AgentInput", "AgentOutput", "AgentStep", "StepAgent"]


class StepAgent(Protocol):
    """What an agent step needs of its agent (an :class:`~stepstream.agents.Agent`, which
    makes its steps with ``as_step()``, so is built on this module)."""

    @property
    def name(self) -> str:
        """The agent's name: the step's id."""
        ...

    @property
    def id(self) -> str:
        """The ``toolCallId`` of the step's events."""
        ...

    @property
    def model(self) -> str:
        """The model name."""
        ...

    @property
    def provider(self) -> str:
        """The provider name, for ``make_stream_adapter``."""
        ...

    def stream(
        self, prompt: str, *, plugin_manager: pluggy.PluginManager | None = None
    ) -> AsyncGenerator[AgentEvent, None]:
        """Stream the answer to ``prompt``."""
        ...


class AgentInput(BaseModel):
    """An agent step's input."""

    prompt: str


class AgentOutput(BaseModel):
    """An agent step's output: the whole answer text."""

    text: str


class AgentStep(Step[AgentInput, AgentOutput]):
    """Runs an :class:`Agent` on ``{prompt}`` and streams its answer as events.

    Events, in order: one ``tool-call-streaming-start``; for each tool the model calls, a
    ``tool-call`` and a ``tool-result``; one ``tool-call-delta`` per text chunk (the deltas
    concatenated are the output text); after each model response's last delta and tool
    calls, one ``step-usage`` with what it spent (reported through
    ``StepContext.report_usage``, so it is priced, summed on the step's record and the run,
    and held against the run's budget). An error object the model sent (mid-stream, or as an
    HTTP error body after the retries) is forwarded as an ``error`` event, as Mastra forwards
    it, with credentials redacted; then the step fails. The deltas already sent stay in the
    stream.
    """

    def __init__(self, agent: StepAgent, *, executor: str | None = None) -> None:
        super().__init__(
            id=agent.name,
            input_schema=AgentInput,
            output_schema=AgentOutput,
            description=f"Agent {agent.name!r} ({agent.model})",
            executor=executor,
        )
        self.agent = agent

    async def run(self, ctx: StepContext[Any]) -> AgentOutput:
        agent = self.agent
        args = {"prompt": ctx.input_data.prompt}
        common = {
            "tool_call_id": agent.id,
            "tool_name": agent.name,
            "name": agent.name,
            "args": args,
        }
        await ctx.emit(ToolCallStreamingStartEvent, **common)
        text: list[str] = []
        recording = current_recording()  # replaying a stored run: the model is not called
        answer = (
            recording.stream(agent.name, args["prompt"])
            if recording is not None
            else agent.stream(args["prompt"], plugin_manager=ctx.plugin_manager)
        )
        asked = now_ms()  # when the current response was requested
        try:
            async with contextlib.aclosing(answer):  # close the HTTP stream at once on cancel
                async for event in answer:
                    if isinstance(event, Finish):
                        await ctx.report_usage(
                            Usage.from_provider(event.usage),
                            model=agent.model,
                            provider=agent.provider,
                            started_at=asked,
                            response_model=event.model,
                            finish_reason=event.reason,
                        )
                    elif isinstance(event, TextDelta):
                        text.append(event.text)
                        await ctx.emit(ToolCallDeltaEvent, **common, args_text_delta=event.text)
                    elif isinstance(event, ToolCallRequest):
                        await ctx.emit(
                            ToolCallEvent,
                            tool_call_id=event.id,
                            tool_name=event.name,
                            args=_json_or_text(event.arguments),
                        )
                    elif isinstance(event, ToolResult):
                        await ctx.emit(
                            ToolResultEvent,
                            tool_call_id=event.id,
                            tool_name=event.name,
                            args=event.args,
                            result=event.result,
                        )
                        asked = now_ms()  # the next response is asked for once tools are done
        except ModelError as exc:
            if exc.body is not None:
                await ctx.emit(ErrorEvent, error=exc.body)
            raise
        return AgentOutput(text="".join(text))
