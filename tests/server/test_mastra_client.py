"""The real ``@mastra/client-js`` 0.10.14 (pinned in ``mastra_client/package.json``) against
our server: it must receive exactly the chunks that ``Run.stream()`` yields in-process.

Needs node and npm; ``npm ci`` runs once when ``mastra_client/node_modules`` is missing. Without
them the tests skip, unless ``CI`` is set (then they fail).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stepstream import RuntimeContext, StepContext, Workflow, get_plugin_manager, step
from stepstream.server import create_app, serve_in_thread

from ..conformance import workflows as cases

CLIENT_DIR = Path(__file__).parent / "mastra_client"
RUN_ID = "11111111-1111-4111-8111-111111111111"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are needed to run @mastra/client-js")
    assert node is not None and npm is not None
    if not (CLIENT_DIR / "node_modules" / "@mastra" / "client-js").is_dir():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=CLIENT_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            _unavailable(f"npm ci failed in {CLIENT_DIR}:\n{done.stderr[-2000:]}")
    return node


def run_client(node: str, base_url: str, tmp_path: Path, **env: Any) -> tuple[list[Any], Any]:
    """Run client-check.mjs; return the stream's chunks (one JSON line each) and its report."""
    report = tmp_path / "report.json"
    settings = {
        "MASTRA_BASE_URL": base_url,
        "MASTRA_RUN_ID": RUN_ID,
        "MASTRA_REPORT": str(report),
        **{
            f"MASTRA_{k.upper()}": v if isinstance(v, str) else json.dumps(v)
            for k, v in env.items()
        },
    }
    done = subprocess.run(
        [node, "client-check.mjs"],
        cwd=CLIENT_DIR,
        env={**os.environ, **settings},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    chunks = [json.loads(line) for line in done.stdout.splitlines() if line]
    return chunks, json.loads(report.read_text())


def in_process(
    wf: Workflow, input_data: Any, resume: dict[str, Any] | None = None
) -> tuple[list[Any], Any]:
    """The wire form of ``Run.stream()`` for the same run id, and of ``resume()``'s result."""

    async def go() -> tuple[list[Any], Any]:
        pm = get_plugin_manager(load_entrypoints=False)
        run = await wf.create_run(RUN_ID, plugin_manager=pm)
        chunks: list[Any] = []
        resuming = None
        async for event in run.stream(input_data, RuntimeContext({})):
            chunks.append(event.to_wire())
            if resume and event.type == "step-suspended" and resuming is None:
                resuming = asyncio.ensure_future(run.resume(resume["step"], resume["resumeData"]))
        result = (await resuming).to_wire() if resuming else None
        return chunks, result

    return asyncio.run(go())


def times_normalised(value: Any, key: str = "") -> Any:
    """Times as ``<time>``; and an integral float as an int, as JavaScript reads it: our server
    writes pydantic floats as ``42.0``, which the client parses to the number ``42``."""
    if isinstance(value, dict):
        return {k: times_normalised(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [times_normalised(v) for v in value]
    if key.endswith("At") and isinstance(value, int):
        return "<time>"
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def wire(values: list[Any]) -> list[str]:
    """Each object as JSON text: comparing these compares key order too."""
    return [json.dumps(times_normalised(v)) for v in values]


def test_client_stream_equals_run_stream(node: str, server_url: str, tmp_path: Path) -> None:
    chunks, report = run_client(
        node, server_url, tmp_path, workflow_id="seqWf", input={"value": 21}, watch="1"
    )
    expected, _ = in_process(cases.a_sequence(), {"value": 21})
    assert report["runId"] == RUN_ID
    assert len(chunks) == 8
    assert wire(chunks) == wire(expected)
    assert [c["type"] for c in chunks] == [
        "start",
        *["step-start", "step-result", "step-finish"] * 2,
        "finish",
    ]

    # watch(), opened before the stream: each record parsed from its JSON-string form
    watched = report["watch"]
    assert watched and all(
        list(r) == ["type", "payload", "eventTimestamp", "runId"]
        and r["type"] == "watch"
        and r["runId"] == RUN_ID
        for r in watched
    )
    steps = [r["payload"]["currentStep"]["id"] for r in watched if "currentStep" in r["payload"]]
    assert steps[0] == "double" and steps[-1] == "describe"
    final = watched[-1]["payload"]
    assert "currentStep" not in final
    assert final["workflowState"]["status"] == "success"
    assert final["workflowState"]["result"] == {"text": "doubled=42"}


def test_client_resume_async_continues_the_open_stream(
    node: str, server_url: str, tmp_path: Path
) -> None:
    resume = {"step": "approve", "resumeData": {"approved": True, "approver": "alice"}}
    chunks, report = run_client(
        node,
        server_url,
        tmp_path,
        workflow_id="approvalWf",
        input={"item": "invoice-42"},
        resume=resume,
    )
    expected, result = in_process(cases.i_suspend_resume(), {"item": "invoice-42"}, resume)
    assert wire(chunks) == wire(expected)
    assert [c["type"] for c in chunks].count("step-suspended") == 1
    assert chunks[-1]["type"] == "finish"
    assert wire([report["resumeAsync"]]) == wire([result])
    assert report["resumeAsync"]["status"] == "success"


CHATTY = 10_000
BURST = 20


@step(id="chatter")
async def chatter(ctx: StepContext[Any]) -> Any:
    for i in range(CHATTY):
        await ctx.write({"i": i, "note": "a few words of a step's progress"})
        if i % BURST == BURST - 1:
            await asyncio.sleep(0.002)  # the step's own pace: bursts of records
    return {"said": CHATTY}


def test_client_gets_every_record_of_a_chatty_run(node: str, tmp_path: Path) -> None:
    # Bursts of records, each sent as one write: the client splits them on 0x1E within a read.
    # (A client more than 64 KiB behind loses records whatever the server does: its reads are
    # 64 KiB and it drops a record cut between two reads; see server/_following.py.)
    pm = get_plugin_manager(load_entrypoints=False)
    app = create_app({"chattyWf": Workflow(id="chatty").then(chatter).commit()}, plugin_manager=pm)
    with serve_in_thread(app) as url:
        chunks, _ = run_client(node, url, tmp_path, workflow_id="chattyWf", input={})
    outputs = [c["payload"]["output"]["i"] for c in chunks if c["type"] == "step-output"]
    assert outputs == list(range(CHATTY))
    assert len(chunks) == CHATTY + 5 and chunks[-1]["type"] == "finish"
