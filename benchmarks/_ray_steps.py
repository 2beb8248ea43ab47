"""What the Ray workload sends to workers: module-level functions, so that cloudpickle sends
them by reference and workers import this module (``PYTHONPATH`` is the repository root)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from stepstream import StepContext


async def identity(ctx: StepContext[Any]) -> Any:
    """A trivial step: its input is its output."""
    return ctx.input_data


async def write_many(ctx: StepContext[Any]) -> dict[str, int]:
    """``ctx.write({"i": i})`` for ``i`` in ``range(input["n"])``, then return the count."""
    n = ctx.input_data["n"]
    for i in range(n):
        await ctx.write({"i": i})
    return {"n": n}


def bare_identity(x: Any) -> Any:
    """The bare Ray task of the floor: one call, its argument returned."""
    return x


def bare_items(n: int) -> Iterator[dict[str, int]]:
    """The bare Ray generator task of the floor: ``{"i": i}`` yielded one object at a time."""
    for i in range(n):
        yield {"i": i}
