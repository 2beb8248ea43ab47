"""What ``GET /api/workflows[/{id}]`` returns: Mastra's ``WorkflowInfo`` for a workflow."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from ..graph import BranchNode, ForeachNode, LoopNode, Node, ParallelNode, StepNode
from ..steps import Step
from ..workflow import Workflow

__all__ = ["workflow_info"]


def _schema(model: type[BaseModel] | None) -> str | None:
    # Mastra sends each schema as a superjson string: {"json": <JSON Schema>}.
    return None if model is None else json.dumps({"json": model.model_json_schema()})


def _step_info(step: Step[Any, Any], *, nested_flag: bool) -> dict[str, Any]:
    info: dict[str, Any] = {"id": step.id}
    if step.description:
        info["description"] = step.description
    for key, model in (
        ("inputSchema", step.input_schema),
        ("outputSchema", step.output_schema),
        ("resumeSchema", step.resume_schema),
        ("suspendSchema", step.suspend_schema),
    ):
        text = _schema(model)
        if text is not None:
            info[key] = text
    if nested_flag:
        info["isWorkflow"] = step.is_workflow
    return info


def _node_steps(node: Node) -> list[Step[Any, Any]]:
    if isinstance(node, ParallelNode):
        return list(node.steps)
    if isinstance(node, BranchNode):
        return [s for _, s in node.branches]
    return [node.step]


def _graph(node: Node) -> dict[str, Any]:
    def entry(step: Step[Any, Any]) -> dict[str, Any]:
        return {"type": "step", "step": {"id": step.id}}

    if isinstance(node, StepNode):
        return entry(node.step)
    if isinstance(node, ParallelNode):
        return {"type": "parallel", "steps": [entry(s) for s in node.steps]}
    if isinstance(node, BranchNode):
        return {
            "type": "conditional",
            "steps": [entry(s) for _, s in node.branches],
            "serializedConditions": [
                {"id": f"{s.id}-condition", "fn": getattr(c, "__name__", repr(c))}
                for c, s in node.branches
            ],
        }
    if isinstance(node, LoopNode):
        return {
            "type": "loop",
            "step": {"id": node.step.id},
            "serializedCondition": {"id": f"{node.step.id}-condition", "fn": "condition"},
            "loopType": "dountil" if node.until else "dowhile",
        }
    assert isinstance(node, ForeachNode)
    return {
        "type": "foreach",
        "step": {"id": node.step.id},
        "opts": {"concurrency": node.concurrency},
    }


def _all_steps(workflow: Workflow, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for node in workflow.nodes:
        for step in _node_steps(node):
            out[prefix + step.id] = _step_info(step, nested_flag=True)
            if isinstance(step, Workflow):
                out.update(_all_steps(step, f"{prefix}{step.id}."))
    return out


def workflow_info(workflow: Workflow, *, for_list: bool = False) -> dict[str, Any]:
    """Mastra's ``WorkflowInfo``; the list endpoint puts ``name``/``description`` first."""
    steps = {
        s.id: _step_info(s, nested_flag=False) for node in workflow.nodes for s in _node_steps(node)
    }
    head: dict[str, Any] = {"name": workflow.id}
    if workflow.description:
        head["description"] = workflow.description
    body: dict[str, Any] = {
        "steps": steps,
        "allSteps": _all_steps(workflow),
    }
    tail: dict[str, Any] = {"stepGraph": [_graph(n) for n in workflow.nodes]}
    for key, model in (
        ("inputSchema", workflow.input_schema),
        ("outputSchema", workflow.output_schema),
    ):
        text = _schema(model)
        if text is not None:
            tail[key] = text
    return {**head, **body, **tail} if for_list else {**body, **head, **tail}
