"""Token usage and its cost: what a model answer spent, summed per step, nested workflow and run.

:class:`Usage` is one model response's token counts, or a sum of them. Providers report
usage in their own words (OpenAI's ``prompt_tokens`` / ``completion_tokens`` with
``*_details``, or ``input_tokens`` / ``output_tokens``); :meth:`Usage.from_provider` reads
either. A :class:`PriceTable` (user-supplied: stepstream ships no prices, which would go stale)
turns usage into cost; a :class:`Budget` bounds a run's tokens or cost.

Usage is stored as plain JSON (:meth:`Usage.to_json`, snake_case keys) on each step's record
(``StepRecord.usage``) and, summed over the whole run, in ``RunState.meta["usage"]``.

The price table's format (a JSON file or a mapping), prices per million tokens in one
currency of your choice::

    {"gpt-4o-mini": {"input": 0.15, "output": 0.60, "cached_input": 0.075}}

Cost of one response = (input - cached input) x ``input`` + cached input x ``cached_input``
(``input`` when not given) + output x ``output``, each divided by a million. Reasoning tokens
are part of the output tokens (as OpenAI reports them), so they are priced as output.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["Budget", "Price", "PriceTable", "Usage"]


def _count(value: Any) -> int:
    """A token count from a provider's JSON (anything else counts as 0)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass(frozen=True)
class Usage:
    """Token counts of one model response, or of several summed.

    :ivar input_tokens: Prompt tokens, cached ones included.
    :ivar output_tokens: Completion tokens, reasoning ones included.
    :ivar total_tokens: As the provider reported it (input + output when it did not).
    :ivar cached_input_tokens: Input tokens read from the provider's prompt cache.
    :ivar reasoning_tokens: Output tokens spent on hidden reasoning.
    :ivar requests: How many model responses are summed here.
    :ivar cost: What the tokens cost by the run's price table, ``None`` when unpriced.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    requests: int = 0
    cost: float | None = None

    @classmethod
    def from_provider(cls, data: Mapping[str, Any]) -> Usage:
        """One response's usage from the provider's ``usage`` object (OpenAI's chat
        completions or Responses naming)."""
        prompt = _count(data.get("prompt_tokens", data.get("input_tokens")))
        completion = _count(data.get("completion_tokens", data.get("output_tokens")))
        details_in = data.get("prompt_tokens_details") or data.get("input_tokens_details") or {}
        details_out = (
            data.get("completion_tokens_details") or data.get("output_tokens_details") or {}
        )
        total = _count(data.get("total_tokens")) or prompt + completion
        return cls(
            input_tokens=prompt,
            output_tokens=completion,
            total_tokens=total,
            cached_input_tokens=_count(details_in.get("cached_tokens")),
            reasoning_tokens=_count(details_out.get("reasoning_tokens")),
            requests=1,
        )

    def __add__(self, other: Usage) -> Usage:
        costs = [c for c in (self.cost, other.cost) if c is not None]
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            requests=self.requests + other.requests,
            cost=sum(costs) if costs else None,
        )

    def summary(self) -> str:
        """One line for people: ``57 tokens (50 in, 7 out; 10 cached, 1 reasoning) in 2
        responses, cost 0.000123`` (the parts that are zero or unknown are left out)."""
        parts = [f"{self.input_tokens} in", f"{self.output_tokens} out"]
        counted = ((self.cached_input_tokens, "cached"), (self.reasoning_tokens, "reasoning"))
        extra = [f"{n} {name}" for n, name in counted if n]
        detail = ", ".join(parts) + ("; " + ", ".join(extra) if extra else "")
        responses = f"{self.requests} response{'s' if self.requests != 1 else ''}"
        line = f"{self.total_tokens} tokens ({detail}) in {responses}"
        return line + (f", cost {self.cost:.6g}" if self.cost is not None else "")

    def to_json(self) -> dict[str, Any]:
        """The usage as JSON data (``cost`` only when priced)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.cost is None:
            del data["cost"]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Usage:
        """Read usage saved with :meth:`to_json` (``None`` is no usage)."""
        if not data:
            return cls()
        cost = data.get("cost")
        return cls(
            **{f.name: _count(data.get(f.name)) for f in fields(cls) if f.name != "cost"},
            cost=float(cost) if isinstance(cost, int | float) else None,
        )


@dataclass(frozen=True)
class Price:
    """Prices per million tokens of one model (any one currency, used throughout a table).

    :param input: Per million input tokens.
    :param output: Per million output tokens (reasoning tokens included).
    :param cached_input: Per million input tokens read from the prompt cache; ``None`` prices
        them as ``input``.
    """

    input: float
    output: float
    cached_input: float | None = None

    def __post_init__(self) -> None:
        for name in ("input", "output", "cached_input"):
            value = getattr(self, name)
            ok = value is None and name == "cached_input"
            if not ok and (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(f"price {name!r} must be a finite number >= 0, got {value!r}")

    def cost(self, usage: Usage) -> float:
        """What ``usage`` costs at these prices."""
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        cached_price = self.input if self.cached_input is None else self.cached_input
        return (
            (usage.input_tokens - cached) * self.input
            + cached * cached_price
            + usage.output_tokens * self.output
        ) / 1_000_000


@dataclass(frozen=True)
class PriceTable:
    """Prices by model name (exact match; the response's model name is tried first, then the
    requested one, since providers answer ``gpt-4o-mini`` with ``gpt-4o-mini-2024-07-18``).

    :param prices: :class:`Price` objects, or mappings with the keys ``input``, ``output``
        and optionally ``cached_input``, by model name.
    """

    prices: dict[str, Price] = field(default_factory=dict)

    def __init__(self, prices: Mapping[str, Price | Mapping[str, Any]] | None = None) -> None:
        table: dict[str, Price] = {}
        for model, price in (prices or {}).items():
            if isinstance(price, Price):
                table[model] = price
                continue
            if not isinstance(price, Mapping):
                raise ValueError(f"the price of {model!r} must be a mapping, got {price!r}")
            unknown = set(price) - {"input", "output", "cached_input"}
            if unknown or not {"input", "output"} <= set(price):
                raise ValueError(
                    f"the price of {model!r} needs 'input' and 'output' (and may have "
                    f"'cached_input'), got keys {sorted(price)}"
                )
            table[model] = Price(**price)
        object.__setattr__(self, "prices", table)

    @classmethod
    def from_file(cls, path: str | Path) -> PriceTable:
        """Read a table from a JSON file in the documented format.

        :raises ValueError: when the file is not such JSON (the message names the file).
        """
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read the price table {str(path)!r}: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"the price table {str(path)!r} must be a JSON object by model")
        try:
            return cls(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the price table {str(path)!r}: {exc}") from exc

    def price(self, *models: str | None) -> Price | None:
        """The price of the first of ``models`` the table knows, or ``None``."""
        for model in models:
            if model is not None and model in self.prices:
                return self.prices[model]
        return None


@dataclass(frozen=True)
class Budget:
    """What a run may spend at most; the run fails when a model response goes beyond it.

    :param max_tokens: Total tokens (input + output) over the whole run.
    :param max_cost: Cost over the whole run, in the price table's currency (needs one).
    """

    max_tokens: int | None = None
    max_cost: float | None = None

    def __post_init__(self) -> None:
        if self.max_tokens is not None and (
            not isinstance(self.max_tokens, int) or self.max_tokens < 0
        ):
            raise ValueError(f"max_tokens must be an int >= 0, got {self.max_tokens!r}")
        if self.max_cost is not None and (
            not isinstance(self.max_cost, int | float)
            or not math.isfinite(self.max_cost)
            or self.max_cost < 0
        ):
            raise ValueError(f"max_cost must be a finite number >= 0, got {self.max_cost!r}")

    def exceeded(self, total: Usage) -> str | None:
        """Why ``total`` is beyond the budget, or ``None`` when within it."""
        if self.max_tokens is not None and total.total_tokens > self.max_tokens:
            return f"{total.total_tokens} tokens used, max_tokens is {self.max_tokens}"
        if self.max_cost is not None and total.cost is not None and total.cost > self.max_cost:
            return f"cost {total.cost:.6g} reached, max_cost is {self.max_cost:g}"
        return None
