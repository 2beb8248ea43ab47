"""The agent step: Mastra's ``createStep(agent)``, input ``{prompt}``, output ``{text}``."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from stepstream.adapter import TextDelta, ToolCallRequest
from stepstream.context import StepContext
from stepstream.errors import ModelError
from stepstream.events import (
    ErrorEvent,
    ToolCallDeltaEvent,
    ToolCallEvent,
    ToolCallStreamingStartEvent,
    ToolResultEvent,
)
from stepstream.steps import Step

from .agent import ToolResult, _json_or_text

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["AgentInput", "AgentOutput", "AgentStep"]


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
    concatenated are the output text). An error object the model sent (mid-stream, or as an
    HTTP error body after the retries) is forwarded unchanged as an ``error`` event, as Mastra
    forwards it; then the step fails. The deltas already sent stay in the stream.
    """

    def __init__(self, agent: Agent, *, executor: str | None = None) -> None:
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
        answer = agent.stream(args["prompt"], plugin_manager=ctx.plugin_manager)
        try:
            async with contextlib.aclosing(answer):  # close the HTTP stream at once on cancel
                async for event in answer:
                    if isinstance(event, TextDelta):
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
        except ModelError as exc:
            if exc.body is not None:
                await ctx.emit(ErrorEvent, error=exc.body)
            raise
        return AgentOutput(text="".join(text))
