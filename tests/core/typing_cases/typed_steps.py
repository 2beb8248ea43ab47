"""Checked by mypy in tests/core/test_typing.py: steps are typed from their functions."""

from __future__ import annotations

from typing import Any, assert_type

from pydantic import BaseModel

from stepstream import Step, StepContext, Workflow, WorkflowResult, step
from stepstream.client import Client
from stepstream.events import StepOutputEvent


class City(BaseModel):
    name: str


class Forecast(BaseModel):
    celsius: float


@step
async def fetch(ctx: StepContext[City]) -> Forecast:
    return Forecast(celsius=20.0)


@step(id="plan", retries=1)
def plan(ctx: StepContext[Forecast]) -> str:
    forecast = ctx.get_step_result(fetch)
    assert_type(forecast, Forecast | None)
    assert_type(ctx.get_step_result("fetch"), Any)
    return "a walk"


async def emits(ctx: StepContext[Any]) -> None:
    event = await ctx.emit(StepOutputEvent, step_id="x", output=1)
    assert_type(event, StepOutputEvent)


assert_type(fetch, Step[City, Forecast])
assert_type(plan, Step[Forecast, str])


async def check(workflow: Workflow) -> None:
    result = await (await workflow.create_run()).start(input_data={"name": "Paris"})
    assert_type(result.output_of(fetch), Forecast | None)
    assert_type(result.output_of(plan), str | None)


def sync_client(client: Client) -> None:
    # The blocking client's methods are made from the async ones and keep their types.
    workflow = client.workflow("weather")
    assert_type(workflow.details(), dict[str, Any])
    assert_type(workflow.create_run("r1"), str)
    assert_type(workflow.start_async({"city": "Paris"}, run_id="r1"), WorkflowResult)
