"""What the engine does with a step it reaches: a pure function of the step's stored record
and the execution's resumption, tested on its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["replay", "stay-suspended", "resume", "recover", "run"]
"""``replay``: the step completed in an earlier execution, its stored output is used again and
it does not run; ``stay-suspended``: it is suspended and this execution does not resume it;
``resume``: it (or a step inside it, for a nested workflow) is resumed on its record;
``recover``: it was running when its process stopped, and runs again on its record (a sleep
keeps its start); ``run``: it runs afresh."""


@dataclass(frozen=True)
class StepDecision:
    """What to do with one step, and with what."""

    action: Action
    resume_data: bool = False
    """Whether the step gets the resumption's data (``ctx.resume_data``): it is resumed, or it
    is a later iteration of a loop the resumption went through."""
    resumes_target: bool = False
    """The step is the resumed step itself, not a nested workflow around it: from then on no
    other suspended step of this execution is resumed."""


def decide_step(
    path: tuple[str, ...],
    status: str | None,
    *,
    completed_before: bool,
    resuming: bool,
    target: tuple[str, ...] | None,
    resumed: bool,
    carried: tuple[str, ...] | None,
) -> StepDecision:
    """Decide what to do with the step at ``path`` (its id path from the top workflow).

    :param status: The status of the step's stored record in its workflow's state, ``None``
        if it has none.
    :param completed_before: Whether that record is one this execution found completed when it
        began (and has not replayed yet).
    :param resuming: Whether this execution resumes or recovers the run (not its start).
    :param target: The path of the step being resumed; ``None`` when recovering (an
        interrupted run, whose completed steps are replayed and the others run again).
    :param resumed: Whether this execution has already resumed its target.
    :param carried: The resumed step's path while a loop hands the resumption on to its
        later iterations.
    """
    if resuming and status is not None and completed_before:
        return StepDecision("replay")
    if status == "suspended" and resuming:
        if target is None or resumed or target[: len(path)] != path:
            return StepDecision("stay-suspended")
        return StepDecision("resume", resume_data=True, resumes_target=target == path)
    if status == "running" and resuming and target is None:
        return StepDecision("recover")
    return StepDecision("run", resume_data=carried == path)
