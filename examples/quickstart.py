"""A small workflow streamed live: sequence, parallel fan-out, a map and a branch.

Run: ``python examples/quickstart.py`` (add ``--json`` for one wire event per line).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from pydantic import BaseModel

from stepstream import StepContext, Workflow, step


class Order(BaseModel):
    item: str
    quantity: int


class Priced(BaseModel):
    item: str
    total: float


@step(id="price")
async def price(ctx: StepContext[Order]) -> Priced:
    return Priced(item=ctx.input_data.item, total=ctx.input_data.quantity * 2.5)


@step(id="tax")
async def tax(ctx: StepContext[Priced]) -> dict[str, float]:
    return {"tax": round(ctx.input_data.total * 0.2, 2)}


@step(id="shipping")
async def shipping(ctx: StepContext[Priced]) -> dict[str, float]:
    await ctx.write({"note": "shipping is free over 20"})
    return {"shipping": 0.0 if ctx.input_data.total > 20 else 4.0}


@step(id="summary")
async def summary(ctx: StepContext[dict[str, Any]]) -> dict[str, str]:
    return {"text": f"{ctx.input_data['item']}: {ctx.input_data['due']:.2f} due"}


checkout = (
    Workflow(id="checkout", input_schema=Order)
    .then(price)
    .parallel([tax, shipping])
    .map(
        lambda ctx: {
            "item": ctx.get_step_result(price).item,
            "due": ctx.get_step_result(price).total
            + ctx.input_data["tax"]["tax"]
            + ctx.input_data["shipping"]["shipping"],
        }
    )
    .then(summary)
    .commit()
)


async def main(as_json: bool) -> int:
    run = await checkout.create_run()
    stream = run.stream(input_data={"item": "tea", "quantity": 12})
    async for event in stream:
        if as_json:
            print(json.dumps(event.to_wire()), flush=True)
        elif event.type in ("start", "finish"):
            print(f"[{event.type}] run {event.run_id}", flush=True)
        elif event.type == "step-result":
            shown = event.output if event.status == "success" else event.error
            print(f"  {event.step_id}: {event.status} -> {shown}", flush=True)
        elif event.type == "step-start":
            print(f"  {event.step_id}: started with {event.input_data}", flush=True)
        elif event.type == "step-output":
            print(f"  {event.step_id} says {event.output}", flush=True)
    result = await stream.get_workflow_state()
    if not as_json:
        print(f"status: {result.status}; result: {result.result}")
    return 0 if result.status == "success" else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main("--json" in sys.argv[1:])))
