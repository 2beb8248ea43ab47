"""An agent workflow for the command-line tests: its model is wherever ``OPENAI_BASE_URL``
points (the tests' local model server), with ``OPENAI_API_KEY`` as its key."""

from __future__ import annotations

from pydantic import BaseModel

from stepstream import StepContext, Workflow, step
from stepstream.agents import Agent


class Topic(BaseModel):
    topic: str


def prompt(ctx: StepContext[Topic]) -> dict[str, str]:
    return {"prompt": f"What to do about {ctx.input_data.topic}?"}


writer = Agent("Writer", "Suggest activities.", "local-model")

agent_flow = (
    Workflow(id="agent-flow", input_schema=Topic).map(prompt).then(step.from_agent(writer)).commit()
)
