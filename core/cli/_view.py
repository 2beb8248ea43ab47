"""What the live view knows about a run, built from its events one at a time (no I/O).

:class:`RunView` is a pure state machine: ``handle(event)`` updates the steps (status,
timing, streamed agent text, written data) and returns the step the event was about, so both
renderers (rich's live region for terminals, plain lines for pipes) draw from the same state,
and it can be tested without a terminal. The text helpers below format what both print.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from stepstream.events import Event
from stepstream.result import WorkflowResult, now_ms
from stepstream.usage import Usage

__all__ = [
    "MARKS",
    "RunView",
    "StepLabels",
    "StepView",
    "brief",
    "duration",
    "step_line",
    "summary",
    "tokens",
]

MARKS = {"running": "●", "success": "✓", "failed": "✗", "canceled": "⊘", "suspended": "⏸"}
"""The mark in front of a step line, by status."""


_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_GENERATED = re.compile(rf"(?P<kind>mapping|sleep)_{_UUID}")
_KINDS = {"mapping": "map", "sleep": "sleep"}


class StepLabels:
    """Names steps for people: the generated id of a ``.map()`` step (``mapping_<uuid>``)
    becomes ``map #N``, N being its position among the steps of its workflow seen so far
    (1 = the first), and a ``.sleep()`` step's ``sleep #N``; other ids stay as they are.
    Nested ids keep their prefix (``inner.map #2``)."""

    def __init__(self) -> None:
        self._positions: dict[str, int] = {}
        self._seen: dict[str, set[str]] = {}

    def label(self, step_id: str) -> str:
        """Return the label of ``step_id``, numbering it if it is seen for the first time."""
        prefix, _, own = step_id.rpartition(".")
        if step_id not in self._positions:
            seen = self._seen.setdefault(prefix, set())
            seen.add(own)
            self._positions[step_id] = len(seen)
        generated = _GENERATED.fullmatch(own)
        if generated is None:
            return step_id
        name = f"{_KINDS[generated['kind']]} #{self._positions[step_id]}"
        return f"{prefix}.{name}" if prefix else name

    def text(self, text: str) -> str:
        """Return ``text`` with each generated id in it replaced by its label."""
        return _GENERATED.sub(lambda m: self._label_of_own(m.group(0)), text)

    def _label_of_own(self, own: str) -> str:
        # The events' details name a step by its own id; the first numbered match wins.
        step_id = next((k for k in self._positions if k.rpartition(".")[2] == own), own)
        return self.label(step_id).rpartition(".")[2]


@dataclass
class StepView:
    """One execution of a step as the view shows it (a loop's steps get one per iteration)."""

    step_id: str
    started_at: int
    """When this execution started (a resumed step: when it was resumed), ms since the epoch."""
    status: str = "running"
    ended_at: int | None = None
    error: str | None = None
    agent: str | None = None
    """The agent's name, for an agent step once it starts answering."""
    text: str = ""
    """The agent's answer so far (its ``tool-call-delta`` events concatenated)."""
    notes: list[str] = field(default_factory=list)
    """One line per ``step-output``, tool call and tool result, in order."""
    suspend_payload: Any = None
    label: str = ""
    """The step as people read it (``map #2`` for a map step); the id when empty."""
    usage: Usage | None = None
    """The model usage of this execution so far (its ``step-usage`` events summed)."""

    @property
    def name(self) -> str:
        """Return the label, or the id when there is none."""
        return self.label or self.step_id

    @property
    def depth(self) -> int:
        """How deeply nested the step is (nested workflows' step ids are ``outer.inner``)."""
        return self.step_id.count(".")

    def elapsed_ms(self, now: int | None = None) -> int:
        """Milliseconds from the start to the end, or to ``now`` while running."""
        end = self.ended_at if self.ended_at is not None else (now or now_ms())
        return max(0, end - self.started_at)


class RunView:
    """The run so far: its steps in start order, the open ones by id, model and plugin errors."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.steps: list[StepView] = []
        self.open: dict[str, StepView] = {}
        self.problems: list[str] = []
        """Model errors and plugin errors, as lines."""
        self.finished = False
        self.labels = StepLabels()
        self.usage: Usage | None = None
        """The run's model usage so far, as its ``step-usage`` events say."""

    def handle(self, event: Event) -> StepView | None:
        """Take ``event`` into the view; return the step it is about, if any."""
        self.run_id = event.run_id
        if event.type in ("step-start", "step-waiting"):  # a sleep opens with step-waiting
            resumed = event.resumed_at if event.type == "step-start" else None
            step = StepView(event.step_id, resumed or event.started_at)
            step.label = self.labels.label(event.step_id)
            self.steps.append(step)
            self.open[event.step_id] = step
            return step
        if event.type == "step-result":
            step = self._step(event.step_id)
            step.status, step.ended_at, step.error = event.status, event.ended_at, event.error
            self.open.pop(event.step_id, None)
            return step
        if event.type == "step-suspended":
            step = self._step(event.step_id)
            step.status, step.ended_at = "suspended", event.suspended_at
            step.suspend_payload = event.suspend_payload
            self.open.pop(event.step_id, None)
            return step
        if event.type == "step-output":
            step = self._step(event.step_id)
            step.notes.append(f"wrote {brief(event.output)}")
            return step
        if event.type == "step-usage":
            spent = Usage(
                event.input_tokens,
                event.output_tokens,
                event.total_tokens,
                event.cached_input_tokens,
                event.reasoning_tokens,
                requests=1,
                cost=event.cost,
            )
            step = self._step(event.step_id)
            step.usage = spent if step.usage is None else step.usage + spent
            self.usage = spent if self.usage is None else self.usage + spent
            return step
        if event.type == "finish":
            self.finished = True
        elif event.type == "plugin-error":
            self.problems.append(f"plugin {event.plugin!r} raised in {event.hook}: {event.error}")
        elif event.type == "error":
            self.problems.append(f"model error: {brief(event.error)}")
        return self._agent_event(event)

    def _agent_event(self, event: Event) -> StepView | None:
        # Agent events carry the agent's name, which is its step's id (Mastra's createStep).
        if event.type == "tool-call-streaming-start":
            step = self._step(event.name)
            step.agent = event.name
        elif event.type == "tool-call-delta":
            step = self._step(event.name)
            step.text += event.args_text_delta
        elif event.type == "tool-call":
            step = self._agent_step()
            step.notes.append(f"calls {event.tool_name}({brief(event.args)})")
        elif event.type == "tool-result":
            step = self._agent_step()
            step.notes.append(f"{event.tool_name} returned {brief(event.result)}")
        else:
            return None
        return step

    def _step(self, step_id: str) -> StepView:
        found = self.open.get(step_id)
        if found is None:
            # A suffix match finds a nested agent step ("outer.Agent") by the agent's name.
            found = next((s for k, s in self.open.items() if k.endswith("." + step_id)), None)
        if found is None:  # an event of a step the view never saw start (a replay's tail)
            found = StepView(step_id, now_ms(), label=self.labels.label(step_id))
            self.steps.append(found)
            self.open[step_id] = found
        return found

    def _agent_step(self) -> StepView:
        agents = [s for s in self.open.values() if s.agent is not None]
        return agents[-1] if agents else self._step("agent")


def duration(ms: int) -> str:
    """``12 ms`` under a second, ``1.25 s`` under a minute, ``2 min 5 s`` beyond."""
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    return f"{ms // 60_000} min {ms % 60_000 // 1000} s"


def brief(value: Any, limit: int = 120) -> str:
    """``value`` as compact JSON (or ``repr``), cut to ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tokens(usage: Usage | None) -> str:
    """`` · 57 tokens`` (with the cost when priced), or nothing without usage."""
    if usage is None:
        return ""
    cost = f", cost {usage.cost:.6g}" if usage.cost is not None else ""
    return f" · {usage.total_tokens} tokens{cost}"


def step_line(step: StepView, now: int | None = None) -> str:
    """The step's one-line state: ``✓ fetch-weather success in 12 ms``, and for a step that
    used a model `` · 57 tokens``."""
    mark = MARKS.get(step.status, "?")
    took = duration(step.elapsed_ms(now)) + tokens(step.usage)
    if step.status == "running":
        return f"{mark} {step.name} … {took}"
    if step.status == "suspended":
        return f"{mark} {step.name} suspended after {took}: {brief(step.suspend_payload)}"
    line = f"{mark} {step.name} {step.status} in {took}"
    return f"{line}: {step.error}" if step.error else line


def summary(result: WorkflowResult, seconds: float) -> list[str]:
    """The lines closing a run's view: status and duration, then the result or the error."""
    lines = [f"{result.status} in {duration(round(seconds * 1000))} · run {result.run_id}"]
    if result.status == "success":
        lines.append("result: " + json.dumps(result.result, indent=2, ensure_ascii=False))
    elif result.status == "suspended":
        for path in result.suspended:
            lines.append(f"suspended at {'.'.join(path)}")
    elif result.error:
        lines.append(f"error: {result.error}")
    if result.usage:
        lines.append(f"usage: {Usage.from_json(result.usage).summary()}")
    return lines
