"""What an agent's answer is made of: the events ``Agent.stream()`` yields and the
:class:`AgentResult` of ``Agent.generate()``.

Plain data, below the agent itself, its step and its recorded replays, which all speak it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stepstream.adapter import AgentChunk, ToolCallRequest
from stepstream.usage import Usage

__all__ = ["AgentEvent", "AgentResult", "ToolResult"]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool the model called has returned (or failed: ``result`` is ``{"error": ...}``)."""

    id: str
    name: str
    args: Any
    result: Any


AgentEvent = AgentChunk | ToolResult
"""What ``Agent.stream()`` yields: text deltas, tool calls and their results, finishes."""


@dataclass(frozen=True)
class AgentResult:
    """The outcome of ``Agent.generate()``; ``usage`` sums every response of the tool loop."""

    text: str
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
