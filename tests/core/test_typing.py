"""The public surface is typed: mypy (strict) checks typed uses of steps and results."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api
from pydantic import BaseModel

from stepstream import StepContext, Workflow, step

CASES = Path(__file__).parent / "typing_cases"


def test_steps_results_and_emit_are_typed_from_the_functions() -> None:
    out, err, status = api.run(["--strict", "--no-incremental", str(CASES / "typed_steps.py")])
    assert status == 0, out + err


def test_a_wrong_expectation_of_a_steps_type_is_caught() -> None:
    # The check above could pass on Any everywhere; this one proves mypy sees the real type.
    bad = CASES.parent / "_wrong_type_case.py"
    bad.write_text(
        "from typing import assert_type\n"
        "from stepstream import StepContext, step\n"
        "@step\n"
        "def one(ctx: StepContext[int]) -> str:\n"
        "    return 'x'\n"
        "assert_type(one.id, str)\n"
        "def later(ctx: StepContext[int]) -> None:\n"
        "    assert_type(ctx.get_step_result(one), int | None)\n"
    )
    try:
        out, _err, status = api.run(["--strict", "--no-incremental", str(bad)])
    finally:
        bad.unlink()
    assert status == 1
    assert 'Expression is of type "str | None", not "int | None"' in out


class Forecast(BaseModel):
    celsius: float


@pytest.mark.asyncio
async def test_output_of_gives_the_steps_output_in_its_schema() -> None:
    @step
    async def fetch(ctx: StepContext[dict[str, str]]) -> Forecast:
        return Forecast(celsius=21.5)

    @step
    async def never(ctx: StepContext[Forecast]) -> str:
        ctx.bail("early")

    @step
    async def after(ctx: StepContext[str]) -> str:
        return "unreached"

    wf = Workflow(id="typed").then(fetch).then(never).then(after).commit()
    result = await (await wf.create_run()).start(input_data={"city": "Paris"})
    assert result.output_of(fetch) == Forecast(celsius=21.5)
    assert result.steps["fetch"].output == {"celsius": 21.5}
    assert result.output_of(never) == "early"
    assert result.output_of(after) is None
