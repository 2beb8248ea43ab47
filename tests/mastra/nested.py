"""The steps Mastra's nested-workflow tests share (``start``, ``other``, ``final``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from stepstream import Step, StepContext


class CounterSteps:
    """Mastra's ``start`` / ``other`` / ``final`` steps, counting their calls."""

    def __init__(self, *, other_suspends: bool = False) -> None:
        self.other_suspends = other_suspends
        self.calls: Counter[str] = Counter()
        self.start = Step(id="start", execute=self._start)
        self.other = Step(id="other", execute=self._other)
        self.final = Step(id="final", execute=self._final)

    def _start(self, ctx: StepContext[Any]) -> Any:
        self.calls["start"] += 1
        return {"newValue": ((ctx.input_data or {}).get("startValue") or 0) + 1}

    def _other(self, ctx: StepContext[Any]) -> Any:
        self.calls["other"] += 1
        if self.other_suspends and ctx.resume_data is None:
            ctx.suspend()
        return {"other": 26}

    def _final(self, ctx: StepContext[Any]) -> Any:
        self.calls["final"] += 1
        start = (ctx.get_step_result(self.start) or {}).get("newValue", 0)
        other = (ctx.get_step_result(self.other) or {}).get("other", 0)
        return {"finalValue": start + other}

    def counted(self, step_id: str, value: Any) -> Step[Any, Any]:
        def execute(ctx: StepContext[Any]) -> Any:
            self.calls[step_id] += 1
            return value

        return Step(id=step_id, execute=execute)
