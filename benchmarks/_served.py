"""The ``server`` workloads' HTTP server, in a process of its own: ``python
benchmarks/_served.py PORT MODEL_URL WRITES CHATTY`` (``_server`` starts it).

Serves ``writesWf`` (one step, ``WRITES`` x ``ctx.write({"i": i})``), ``chattyWf`` (``CHATTY``
writes of 200 bytes: the run that 1,000 followers watch) and ``agentWf`` (one agent step
answered by the model server at ``MODEL_URL``) with uvicorn on 127.0.0.1:PORT. It uses only
``create_app(workflows, plugin_manager=...)``, so that it serves an older stepstream tree too
(the "today" column: ``PYTHONPATH`` pointing at it).
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

from stepstream import Step, StepContext, Workflow, get_plugin_manager, step
from stepstream.agents import Agent
from stepstream.server import create_app
from stepstream.testing import MODEL


def writer(n: int, pad: str) -> Workflow:
    """One step writing ``{"i": i}`` (with ``pad``, when given) for ``i`` in ``range(n)``."""

    async def write(ctx: StepContext[Any]) -> Any:
        for i in range(n):
            await ctx.write({"i": i, "pad": pad} if pad else {"i": i})
        return {"written": n}

    return Workflow(id=f"writes-{len(pad)}").then(Step(id="writer", execute=write)).commit()


def main() -> None:
    port, model_url, writes, chatty = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    agent = Agent("Relay", "x", MODEL, base_url=model_url, api_key="x")
    workflows = {
        "writesWf": writer(writes, ""),
        "chattyWf": writer(chatty, "x" * 200),
        "agentWf": Workflow(id="agent").then(step.from_agent(agent)).commit(),
    }
    app = create_app(workflows, plugin_manager=get_plugin_manager(load_entrypoints=False))
    uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning")


if __name__ == "__main__":
    main()
