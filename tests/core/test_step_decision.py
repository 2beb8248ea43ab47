"""The engine's step decision, a pure function: run, replay from a stored record, resume,
recover or leave suspended, for every case the engine meets."""

from __future__ import annotations

from typing import Any

import pytest

from stepstream._execution.decision import StepDecision, decide_step

STEP = ("outer", "inner")


def _decide(status: str | None, **given: Any) -> StepDecision:
    options: dict[str, Any] = {
        "completed_before": False,
        "resuming": True,
        "target": STEP,
        "resumed": False,
        "carried": None,
    }
    options.update(given)
    return decide_step(STEP, status, **options)


@pytest.mark.parametrize(
    ("status", "given", "expected"),
    [
        # A start: every step runs afresh, whatever the state holds.
        (None, {"resuming": False, "target": None}, StepDecision("run")),
        ("success", {"resuming": False, "target": None}, StepDecision("run")),
        # A step completed in an earlier execution is replayed from its record, on a resume
        # and on a recovery alike.
        ("success", {"completed_before": True}, StepDecision("replay")),
        ("success", {"completed_before": True, "target": None}, StepDecision("replay")),
        # ... but not once replayed (a loop's later iteration runs it again).
        ("success", {}, StepDecision("run")),
        # The suspended step named by the resumption is resumed, and is the target.
        (
            "suspended",
            {},
            StepDecision("resume", resume_data=True, resumes_target=True),
        ),
        # A suspended nested workflow around the target is resumed, and is not the target.
        (
            "suspended",
            {"target": ("outer", "inner", "deeper")},
            StepDecision("resume", resume_data=True),
        ),
        # Other suspended steps stay suspended: another target, a workflow the target is not
        # in, any once the target was resumed in this execution, all of them on a recovery.
        ("suspended", {"target": ("other",)}, StepDecision("stay-suspended")),
        ("suspended", {"target": ("outer",)}, StepDecision("stay-suspended")),
        ("suspended", {"resumed": True}, StepDecision("stay-suspended")),
        ("suspended", {"target": None}, StepDecision("stay-suspended")),
        # A step running when its process stopped goes on from its record on recovery only.
        ("running", {"target": None}, StepDecision("recover")),
        ("running", {}, StepDecision("run")),
        # A later iteration of a loop the resumption went through gets its data.
        ("success", {"carried": STEP}, StepDecision("run", resume_data=True)),
        (None, {"carried": STEP}, StepDecision("run", resume_data=True)),
        (None, {"carried": ("outer", "other")}, StepDecision("run")),
    ],
)
def test_the_step_decision(
    status: str | None, given: dict[str, Any], expected: StepDecision
) -> None:
    assert _decide(status, **given) == expected


def test_a_failed_or_canceled_record_runs_again_on_a_resume() -> None:
    for status in ("failed", "canceled"):
        assert _decide(status) == StepDecision("run")
        assert _decide(status, target=None) == StepDecision("run")
