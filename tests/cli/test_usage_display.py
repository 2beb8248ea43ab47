"""Token usage in the command line: per agent step and for the run, live and stored."""

from __future__ import annotations

import json
from pathlib import Path

from stepstream.agents.local_model import ModelServer

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
    [mapping] = [line for line in lines if line.startswith("✓ mapping_")]
    assert "tokens" not in mapping  # no model there
    assert lines[-1] == "usage: 20 tokens (10 in, 10 out) in 1 response"
    run_id = lines[0].removeprefix("run id: ").split()[0]

    shown = cli("show", run_id, "--db", db)
    assert shown.returncode == 0, shown.stderr
    assert "usage: 20 tokens (10 in, 10 out) in 1 response" in shown.stdout
    [row] = [line for line in shown.stdout.splitlines() if line.startswith("│ Writer ")]
    cells = [cell.strip() for cell in row.split("│")]
    assert (cells[1], cells[2], cells[4]) == ("Writer", "success", "20")  # the tokens column
    assert "step-usage" in shown.stdout and "Writer local-model: 20 tokens (10 in, 10 out)" in (
        shown.stdout
    )
    stored = json.loads(cli("show", run_id, "--db", db, "--json").stdout)
    assert stored["snapshot"]["state"]["meta"]["usage"]["total_tokens"] == 20
    assert stored["snapshot"]["state"]["steps"]["Writer"]["usage"]["output_tokens"] == 10
