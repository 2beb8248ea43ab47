"""Every status a run or a step can have, spelled once.

The engine, the stored runs, the server and the CLI all name statuses through these types and
sets, so a new status is added here and type-checked everywhere it matters.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "CLAIMABLE",
    "FINAL",
    "RUN_STATUSES",
    "RunStatus",
    "StepEndStatus",
    "StepOutcome",
    "StepStatus",
    "is_final",
]

RunStatus = Literal[
    "pending", "running", "success", "failed", "suspended", "canceled", "interrupted"
]
"""A run's status: ``pending`` (created, not started), ``running``, the three final ones,
``suspended`` (a step waits for ``resume()``) and ``interrupted`` (a stored run whose owner
went away: recovery continues it)."""

StepStatus = Literal["running", "success", "failed", "suspended", "canceled"]
"""A step record's status (Mastra's step records; a sleeping step is ``running``)."""

StepEndStatus = Literal["success", "failed", "canceled"]
"""How a step ended, as its ``step-result`` says."""

StepOutcome = Literal["success", "failed", "suspended", "canceled"]
"""How a step's body came out (the engine's view): a step's statuses less ``running``."""

RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)

FINAL: tuple[RunStatus, ...] = ("success", "failed", "canceled")
"""Statuses of runs that will never execute again."""

CLAIMABLE: tuple[RunStatus, ...] = ("suspended", "interrupted")
"""Statuses of stored runs that an execution may claim (resume, recovery, cancel)."""


def is_final(status: str) -> bool:
    """Whether a run with this status has ended for good (success, failed or canceled)."""
    return status in FINAL
