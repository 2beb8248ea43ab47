"""Agents on OpenAI-compatible models: streaming answers, typed tools, one retry layer.

``step.from_agent(agent)`` makes an agent a workflow step whose answer streams as
``tool-call-streaming-start`` / ``tool-call-delta`` events (Mastra's ``createStep(agent)``).
A :class:`RecordedModel` replays a stored run's agent answers without calling the model.
"""

from __future__ import annotations

from .agent import Agent, AgentEvent, AgentResult, ToolResult
from .openai_stream import OpenAIStreamAdapter
from .recorded import RecordedAnswer, RecordedModel
from .retry import RetryPolicy
from .step import AgentInput, AgentOutput, AgentStep
from .tools import Tool, tool

__all__ = [
    "Agent",
    "AgentEvent",
    "AgentInput",
    "AgentOutput",
    "AgentResult",
    "AgentStep",
    "OpenAIStreamAdapter",
    "RecordedAnswer",
    "RecordedModel",
    "RetryPolicy",
    "Tool",
    "ToolResult",
    "tool",
]
