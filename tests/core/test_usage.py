"""The usage data model: reading providers' usage, sums, prices, budgets, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stepstream import Budget, Price, PriceTable, Usage, Workflow, WorkflowDefinitionError
from stepstream.result import RunState, StepRecord


def test_usage_reads_chat_completions_and_responses_naming() -> None:
    chat = Usage.from_provider(
        {
            "prompt_tokens": 100,
            "completion_tokens": 40,
            "total_tokens": 140,
            "prompt_tokens_details": {"cached_tokens": 60},
            "completion_tokens_details": {"reasoning_tokens": 25},
        }
    )
    assert chat == Usage(100, 40, 140, cached_input_tokens=60, reasoning_tokens=25, requests=1)
    responses = Usage.from_provider(
        {"input_tokens": 7, "output_tokens": 3, "input_tokens_details": {"cached_tokens": 2}}
    )
    assert (responses.total_tokens, responses.cached_input_tokens) == (10, 2)
    # Junk counts are 0, not an error (and never negative).
    junk = Usage.from_provider({"prompt_tokens": "1", "completion_tokens": -4, "total_tokens": 1.5})
    assert (junk.input_tokens, junk.output_tokens, junk.total_tokens) == (0, 0, 0)


def test_usage_sums_and_round_trips_as_json() -> None:
    a = Usage(10, 5, 15, requests=1, cost=0.25)
    b = Usage(1, 1, 2, cached_input_tokens=1, requests=1)
    total = a + b
    assert total == Usage(11, 6, 17, cached_input_tokens=1, requests=2, cost=0.25)
    assert (b + b).cost is None
    assert Usage.from_json(total.to_json()) == total
    assert "cost" not in b.to_json()
    assert Usage.from_json(None) == Usage()
    json.dumps(total.to_json())


def test_price_cost_counts_cached_input_at_its_own_price() -> None:
    price = Price(input=2.0, output=8.0, cached_input=0.5)
    usage = Usage(input_tokens=1_000_000, output_tokens=500_000, cached_input_tokens=400_000)
    assert price.cost(usage) == pytest.approx(600_000 * 2e-6 + 400_000 * 0.5e-6 + 4.0)
    assert Price(1.0, 1.0).cost(usage) == pytest.approx(1.5)  # cached priced as input


def test_price_table_matches_response_model_then_requested() -> None:
    table = PriceTable({"gpt-x": {"input": 1, "output": 2}, "gpt-x-0613": Price(3, 4)})
    assert table.price("gpt-x-0613", "gpt-x") == Price(3, 4)
    assert table.price("gpt-x-9999", "gpt-x") == Price(1, 2)
    assert table.price(None, "other") is None


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        ({"m": {"input": 1}}, "needs 'input' and 'output'"),
        ({"m": {"input": 1, "output": 2, "extra": 3}}, "needs 'input' and 'output'"),
        ({"m": {"input": -1, "output": 2}}, "price 'input' must be a finite number >= 0"),
        ({"m": {"input": float("nan"), "output": 2}}, "finite number"),
        ({"m": {"input": "1", "output": 2}}, "finite number"),
        ({"m": 3}, "must be a mapping"),
    ],
)
def test_bad_price_tables_are_clear_errors(prices: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PriceTable(prices)  # type: ignore[arg-type]


def test_price_table_files(tmp_path: Path) -> None:
    good = tmp_path / "prices.json"
    good.write_text(json.dumps({"m": {"input": 0.15, "output": 0.6, "cached_input": 0.075}}))
    assert PriceTable.from_file(good).price("m") == Price(0.15, 0.6, 0.075)
    for content, message in [
        ("{nope", "cannot read the price table"),
        ("[1, 2]", "must be a JSON object by model"),
        ('{"m": {"input": 1}}', "needs 'input' and 'output'"),
    ]:
        bad = tmp_path / "bad.json"
        bad.write_text(content)
        with pytest.raises(ValueError, match=message) as caught:
            PriceTable.from_file(bad)
        assert str(bad) in str(caught.value)
    with pytest.raises(ValueError, match="cannot read the price table"):
        PriceTable.from_file(tmp_path / "missing.json")


def test_budgets() -> None:
    assert Budget(max_tokens=10).exceeded(Usage(total_tokens=10)) is None
    assert Budget(max_tokens=10).exceeded(Usage(total_tokens=11)) == (
        "11 tokens used, max_tokens is 10"
    )
    assert Budget(max_cost=1.0).exceeded(Usage(cost=1.5)) == "cost 1.5 reached, max_cost is 1"
    for bad in ({"max_tokens": -1}, {"max_tokens": 1.5}, {"max_cost": float("inf")}):
        with pytest.raises(ValueError, match="must be"):
            Budget(**bad)  # type: ignore[arg-type]
    with pytest.raises(WorkflowDefinitionError, match="max_cost needs prices="):
        Workflow(id="w", budget=Budget(max_cost=1.0))


def test_run_state_keeps_usage_and_meta_through_json() -> None:
    state = RunState(input={"a": 1}, meta={"usage": Usage(1, 2, 3).to_json(), "x": [1]})
    state.steps["s"] = StepRecord(payload=None, started_at=1, usage=Usage(1, 2, 3).to_json())
    state.nested["n"] = RunState(meta={"inner": True})
    again = RunState.from_json(json.loads(json.dumps(state.to_json())))
    assert again == state
    assert RunState.from_json({"input": None}).meta == {}  # states stored before meta existed


def test_summary_line() -> None:
    usage = Usage(50, 7, 57, cached_input_tokens=10, reasoning_tokens=1, requests=2, cost=1.5e-4)
    assert usage.summary() == (
        "57 tokens (50 in, 7 out; 10 cached, 1 reasoning) in 2 responses, cost 0.00015"
    )
    assert Usage(1, 1, 2, requests=1).summary() == "2 tokens (1 in, 1 out) in 1 response"
