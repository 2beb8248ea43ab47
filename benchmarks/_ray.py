"""The ``ray`` workload: stepstream's Ray executor, against local steps and bare Ray.

A local Ray cluster (``ray.init(num_cpus=2)``, no dashboard, a short temp dir, workers
importing this repository through ``PYTHONPATH``) is started once and shut down with
``ray.shutdown()`` at the end; its start-up and the workers' first start (in the warm-up)
are not timed. Two measurements:

``ray`` ``ms/step``   one run of a sequence of ``K`` trivial steps through ``run.stream()``:
                      ``stepstream+ray`` (every step ``executor="ray"``, run by
                      ``RayExecutor``), ``stepstream`` (the same steps, local), and the floor
                      ``ray``: ``K`` bare Ray task calls in a row (``await f.remote(x)``).
``ray`` ``events/s``  one remote step doing ``await ctx.write({"i": i})`` ``N`` times, read
                      by the driver's ``run.stream()`` consumer, which checks that the ``N``
                      ``step-output`` events arrive in order (``i`` = 0 .. N-1); the floor
                      ``ray``: a bare Ray generator task (``num_returns="streaming"``)
                      yielding ``{"i": i}`` one object at a time, read and checked the same
                      way.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray

from stepstream import PluginManager, Step, Workflow, get_plugin_manager
from stepstream.plugins.ray_executor import RayExecutor

from . import _ray_steps
from ._shapes import INPUT, Unit, expect
from ._stepstream import events_per_run, streamed_run
from ._suite import Workload

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def ray_cluster() -> Iterator[None]:
    """A local 2-CPU Ray cluster for the block; ``ray.shutdown()`` (never ``ray stop``)."""
    temp = tempfile.mkdtemp(prefix="ss-bench-ray-", dir="/tmp")
    saved = os.environ.get("RAY_USAGE_STATS_ENABLED")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    try:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            _temp_dir=temp,
            runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
        )
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        if saved is None:
            os.environ.pop("RAY_USAGE_STATS_ENABLED", None)
        else:
            os.environ["RAY_USAGE_STATS_ENABLED"] = saved


def ray_manager() -> PluginManager:
    """The suite's plugin manager plus the Ray executor."""
    return get_plugin_manager(load_entrypoints=False, plugins=[("ray", RayExecutor())])


def sequence(k: int, executor: str | None) -> Workflow:
    """``k`` trivial steps (``_ray_steps.identity``) in sequence, on ``executor``."""
    wf = Workflow(id=f"ray-seq-{executor or 'local'}")
    for i in range(k):
        wf.then(Step(id=f"r{i}", execute=_ray_steps.identity, executor=executor))
    return wf.commit()


def step_workload(k: int, pm: PluginManager, runs: int = 1) -> Workload:
    """``ms/step`` of a ``k``-step sequence: remote, local, and bare Ray calls."""
    remote, local = sequence(k, "ray"), sequence(k, None)
    local_pm = get_plugin_manager(load_entrypoints=False)
    expected = events_per_run(k)
    bare = ray.remote(_ray_steps.bare_identity).options(max_retries=0)

    async def on_ray() -> None:
        for _ in range(runs):
            await streamed_run(remote, pm, expected)

    async def on_loop() -> None:
        for _ in range(runs):
            await streamed_run(local, local_pm, expected)

    async def bare_calls() -> None:
        for _ in range(runs):
            x: Any = INPUT
            for _ in range(k):
                x = await bare.remote(x)
            expect(x == INPUT, f"bare ray: got {x!r}")

    blocks: dict[str, Unit] = {"stepstream+ray": on_ray, "stepstream": on_loop, "ray": bare_calls}
    return Workload(
        "ray", "ms/step", runs * k, blocks, floor="ray", scale=1e6, apart=("stepstream",)
    )


def relay_workload(n: int, pm: PluginManager, runs: int = 1) -> Workload:
    """``events/s`` of ``n`` events written by one remote step (``runs`` runs per block),
    checked in order."""
    wf = Workflow(id="ray-relay").then(
        Step(id="writer", execute=_ray_steps.write_many, executor="ray")
    )
    wf = wf.commit()
    items: Any = ray.remote(_ray_steps.bare_items).options(num_returns="streaming", max_retries=0)
    order = list(range(n))

    async def on_ray() -> None:
        for _ in range(runs):
            run = await wf.create_run(plugin_manager=pm)
            stream = run.stream(input_data={"n": n})
            seen = [ev.output["i"] async for ev in stream if ev.type == "step-output"]
            result = await stream.get_workflow_state()
            expect(result.status == "success", f"stepstream+ray: run ended {result.status}")
            expect(seen == order, f"stepstream+ray: {len(seen)}/{n} events, or out of order")

    async def bare() -> None:
        for _ in range(runs):
            seen = [(await ref)["i"] async for ref in items.remote(n)]
            expect(seen == order, f"bare ray: {len(seen)}/{n} items, or out of order")

    blocks: dict[str, Unit] = {"stepstream+ray": on_ray, "ray": bare}
    return Workload("ray", "events/s", runs * n, blocks, floor="ray", rate=True)
