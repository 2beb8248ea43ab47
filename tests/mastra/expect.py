"""What Mastra's tests compare with: ``expect.any(Number)`` and the ``steps`` map's wire form.

The tests in this folder are ported from Mastra's own workflow tests,
``packages/core/src/workflows/workflow.test.ts`` in ``mastra-ai/mastra`` at commit
``7c180d5506d0e01a378dcdb96da4f6ff86eeee02`` (``@mastra/core`` 0.10.15): one module per
``describe`` block, each test named after Mastra's ``it(...)`` and citing its line.
"""

from __future__ import annotations

from typing import Any

from stepstream import WorkflowResult

SOURCE = "workflow.test.ts@7c180d5"


class AnyNumber:
    """Equal to any int or float, as ``expect.any(Number)``."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int | float) and not isinstance(other, bool)

    def __repr__(self) -> str:
        return "AnyNumber()"


NUMBER: Any = AnyNumber()


def steps(result: WorkflowResult) -> dict[str, Any]:
    """The result's ``steps`` map as Mastra's ``result.steps`` has it (with ``input``).

    Keys whose value is ``None`` are left out of each record, as vitest's ``toEqual`` ignores
    properties that are ``undefined`` (a step returning nothing, ``suspend()`` without a
    payload).
    """
    wire: dict[str, Any] = result.to_wire()["steps"]
    return {
        key: {k: v for k, v in record.items() if v is not None} if key != "input" else record
        for key, record in wire.items()
    }


def ok(payload: Any, output: Any, **more: Any) -> dict[str, Any]:
    """A successful step's record, times left free."""
    record = {
        "status": "success",
        "output": output,
        "payload": payload,
        "startedAt": NUMBER,
        "endedAt": NUMBER,
        **more,
    }
    return {k: v for k, v in record.items() if v is not None}
