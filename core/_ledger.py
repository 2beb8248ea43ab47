"""The run's usage ledger: prices each reported model response, sums it onto its step, the
nested workflows around it and the run, and checks the run's budget as usage arrives."""

from __future__ import annotations

from typing import Any

from .errors import BudgetExceededError
from .result import RunState
from .usage import Budget, PriceTable, Usage

_COUNTS = ("input_tokens", "output_tokens", "total_tokens", "cached_input_tokens")


class Ledger:
    """Usage of the steps running now (by stream step id) and of the whole run.

    The run's total lives in ``state.meta["usage"]``, so it is stored with the run and a
    resumed run goes on counting from it.
    """

    def __init__(
        self, run_id: str, state: RunState, prices: PriceTable | None, budget: Budget | None
    ) -> None:
        self.run_id = run_id
        self.state = state
        self.prices = prices
        self.budget = budget
        self.running: dict[str, Usage] = {}

    def price(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The fields of a ``step-usage`` event with ``cost`` from the price table (a cost
        the step gave is kept when the table has no price for the model)."""
        price = (
            self.prices.price(fields.get("response_model"), fields.get("model"))
            if self.prices is not None
            else None
        )
        if price is None:
            return fields
        return {**fields, "cost": price.cost(_usage(fields))}

    def add(self, step_ids: list[str], fields: dict[str, Any]) -> None:
        """Add one priced response to ``step_ids`` (the step, then its nested workflows)
        and to the run's total."""
        usage = _usage(fields)
        for sid in step_ids:
            self.running[sid] = self.running.get(sid, Usage()) + usage
        total = Usage.from_json(self.state.meta.get("usage")) + usage
        self.state.meta["usage"] = total.to_json()

    def check(self, step_id: str, fields: dict[str, Any]) -> None:
        """Fail the step when the run's total is beyond its budget.

        :raises BudgetExceededError: over the budget, or when ``max_cost`` is set and the
            response's model has no price (the cost could not be checked).
        """
        if self.budget is None:
            return
        if self.budget.max_cost is not None and fields.get("cost") is None:
            raise BudgetExceededError(
                f"run {self.run_id}: step {step_id!r} used model {fields.get('model')!r}, "
                "which has no price in the run's price table, so its max_cost of "
                f"{self.budget.max_cost:g} cannot be checked",
                run_id=self.run_id,
                step_id=step_id,
            )
        why = self.budget.exceeded(Usage.from_json(self.state.meta.get("usage")))
        if why is not None:
            raise BudgetExceededError(
                f"run {self.run_id} went over its budget at step {step_id!r}: {why}",
                run_id=self.run_id,
                step_id=step_id,
            )

    def take(self, step_id: str, before: dict[str, Any] | None) -> dict[str, Any] | None:
        """The usage of ``step_id``'s execution that is ending, added to ``before`` (what
        its record held already); ``None`` when it used no model."""
        usage = self.running.pop(step_id, None)
        if usage is None:
            return before
        return (Usage.from_json(before) + usage).to_json() if before else usage.to_json()


def _usage(fields: dict[str, Any]) -> Usage:
    cost = fields.get("cost")
    return Usage(
        **{name: int(fields.get(name) or 0) for name in _COUNTS},
        reasoning_tokens=int(fields.get("reasoning_tokens") or 0),
        requests=1,
        cost=float(cost) if cost is not None else None,
    )
