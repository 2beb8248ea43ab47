"""Token usage in the command line: per agent step and for the run, live and stored."""

from __future__ import annotations

import json
from pathlib import Path

from stepstream import WorkflowResult
from stepstream.cli._view import RunView, step_line, summary
from stepstream.events import StepResultEvent, StepStartEvent, StepUsageEvent
from stepstream.testing import ModelServer

from .child import child_env, cli


def test_the_live_view_shows_tokens_per_agent_step_and_the_runs_total(
    model_server: ModelServer, tmp_path: Path
) -> None:
    # The local model reports 10 prompt and 10 completion tokens for its answer.
    env = child_env(OPENAI_BASE_URL=model_server.base_url, OPENAI_API_KEY="local")
    db = str(tmp_path / "runs.db")
    args = ["run", "tests.cli.agent_workflow", "--input", '{"topic": "rain"}', "--db", db]
    done = cli(*args, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    [writer] = [line for line in lines if line.startswith("✓ Writer success in ")]
    assert writer.endswith(" · 20 tokens")
    [mapping] = [line for line in lines if line.startswith("✓ map #")]
    assert "tokens" not in mapping  # no model there
    assert lines[-1] == "usage: 20 tokens (10 in, 10 out) in 1 response"
    run_id = lines[0].removeprefix("run id: ").split()[0]

    shown = cli("show", run_id, "--db", db)
    assert shown.returncode == 0, shown.stderr
    assert "usage: 20 tokens (10 in, 10 out) in 1 response" in shown.stdout
    [row] = [line for line in shown.stdout.splitlines() if line.startswith("Writer\t")]
    cells = row.split("\t")  # piped: plain tab-separated columns
    assert (cells[0], cells[1], cells[3]) == ("Writer", "success", "20")  # the tokens column
    assert "step-usage" in shown.stdout and "Writer local-model: 20 tokens (10 in, 10 out)" in (
        shown.stdout
    )
    stored = json.loads(cli("show", run_id, "--db", db, "--json").stdout)
    assert stored["snapshot"]["state"]["meta"]["usage"]["total_tokens"] == 20
    assert stored["snapshot"]["state"]["steps"]["Writer"]["usage"]["output_tokens"] == 10


def test_the_view_sums_step_usage_events_per_step_and_for_the_run() -> None:
    view = RunView()
    view.handle(StepStartEvent(run_id="r", seq=1, step_id="Agent", input_data={}, started_at=0))
    for seq, (tokens_in, tokens_out, cost) in enumerate([(20, 5, 0.25), (30, 2, 0.5)], start=2):
        spent = view.handle(
            StepUsageEvent(
                run_id="r",
                seq=seq,
                step_id="Agent",
                model="m",
                provider="openai",
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                total_tokens=tokens_in + tokens_out,
                cost=cost,
                started_at=0,
                ended_at=1,
            )
        )
        assert spent is not None and spent.step_id == "Agent"
    view.handle(
        StepResultEvent(run_id="r", seq=4, step_id="Agent", status="success", ended_at=1500)
    )
    [step] = view.steps
    assert step_line(step) == "✓ Agent success in 1.50 s · 57 tokens, cost 0.75"
    assert view.usage is not None and view.usage.requests == 2
    result = WorkflowResult(
        run_id="r", status="success", input={}, steps={}, usage=view.usage.to_json()
    )
    assert summary(result, 1.5)[-1] == ("usage: 57 tokens (50 in, 7 out) in 2 responses, cost 0.75")
