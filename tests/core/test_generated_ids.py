"""The ids of builder-made steps (``.map()``, ``.sleep()``) are the same in every process."""

from __future__ import annotations

import re
import subprocess
import sys

from stepstream import Workflow
from stepstream.graph import MapStep, node_steps

_BUILD = """
from stepstream import Workflow
wf = Workflow(id="ids").map(lambda ctx: {"a": 1}).sleep(0).map({"b": {"value": 2}}).commit()
print(" ".join(s.id for n in wf.nodes for s in __import__("stepstream.graph").graph.node_steps(n)))
"""


def _ids(wf: Workflow) -> list[str]:
    return [s.id for n in wf.nodes for s in node_steps(n)]


def _build(workflow_id: str = "ids") -> Workflow:
    return (
        Workflow(id=workflow_id)
        .map(lambda ctx: {"a": 1})
        .sleep(0)
        .map({"b": {"value": 2}})
        .commit()
    )


def test_a_workflow_built_in_another_process_names_its_generated_steps_the_same() -> None:
    here = _ids(_build())
    there = subprocess.run(
        [sys.executable, "-c", _BUILD], capture_output=True, text=True, check=True
    ).stdout.split()
    assert there == here
    uuid = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    assert [re.fullmatch(rf"(mapping|sleep)_{uuid}", i) is not None for i in here] == [True] * 3
    assert len(set(here)) == 3


def test_generated_ids_differ_between_workflows_and_positions() -> None:
    assert set(_ids(_build("one"))).isdisjoint(_ids(_build("two")))
    shifted = Workflow(id="ids").sleep(0).map(lambda ctx: {"a": 1}).commit()
    assert _ids(shifted)[1] != _ids(_build())[0]


def test_a_map_step_made_on_its_own_gets_a_fresh_id() -> None:
    assert MapStep(lambda ctx: 1).id != MapStep(lambda ctx: 1).id
