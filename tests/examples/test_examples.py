"""Every example runs as a user would run it, and prints what it promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_quickstart_prints_the_stream() -> None:
    done = _run(str(EXAMPLES / "quickstart.py"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("[start] run ")
    assert lines[-2].startswith("[finish] run ")
    assert lines[-1] == "status: success; result: {'text': 'tea: 36.00 due'}"
    assert "  shipping says {'note': 'shipping is free over 20'}" in lines


def test_quickstart_json_is_one_wire_event_per_line() -> None:
    done = _run(str(EXAMPLES / "quickstart.py"), "--json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[0]["type"] == "start" and events[-1]["type"] == "finish"
    assert [e["type"] for e in events].count("step-finish") == 5


def test_readme_tour_runs() -> None:
    readme = (EXAMPLES.parent / "README.md").read_text()
    tour = readme.split("```python\n", 1)[1].split("```", 1)[0]
    done = _run("-c", tour)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "success {'text': 'Picnic in London'}"
    assert "'type': 'step-start'" in done.stdout


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "WEATHER_"))}
    env.pop("GEOCODING_API_URL", None)
    return env


def _weather(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run examples/weather.py as a user would (offline unless ``env`` says otherwise)."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "weather.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env if env is not None else _offline_env(),
        check=False,
    )


def test_weather_example_runs_offline_and_streams_the_plan() -> None:
    done = _weather("--city", "Oslo")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "weather: local Open-Meteo-style source at http://127.0.0.1:" in out
    assert "model: local deterministic model at http://127.0.0.1:" in out
    assert out.index("▶ run ") < out.index("✓ fetch-weather success")
    assert out.index("✓ fetch-weather success") < out.index("│ Activity plan for Oslo")
    assert out.index("│ Activity plan for Oslo") < out.index("✓ Weather Agent success")
    assert "■ finish" in out and out.rstrip().endswith("status: success")


def test_weather_example_json_deltas_add_up_to_the_answer() -> None:
    done = _weather("--json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    types = [e["type"] for e in events]
    assert types[0] == "start" and types[-1] == "finish"
    assert types.count("tool-call-streaming-start") == 1
    deltas = [e["argsTextDelta"] for e in events if e["type"] == "tool-call-delta"]
    assert len(deltas) > 20  # word by word, not one blob
    answer = next(
        e for e in events if e["type"] == "step-result" and e["payload"]["id"] == "Weather Agent"
    )
    assert "".join(deltas) == answer["payload"]["output"]["text"]
    assert answer["payload"]["output"]["text"].startswith("Activity plan for London")
    # The usage, as docs/observability.md says: one step-usage event per model response.
    [usage] = [e["payload"] for e in events if e["type"] == "step-usage"]
    assert usage["id"] == "Weather Agent" and usage["model"] == "local-planner"
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"] > 0
    assert types[types.index("step-usage") + 1] == "step-result"  # right after the last delta


def test_weather_example_uses_the_configured_model_when_a_key_is_set() -> None:
    from stepstream.testing import FULL_TEXT, ModelServer, mastra_mock_responder

    with ModelServer(mastra_mock_responder) as server:
        env = {
            **_offline_env(),
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_MODEL": "mock-gpt",
        }
        done = _weather("--city", "Paris", env=env)
        assert done.returncode == 0, done.stderr
        assert f"model: mock-gpt at {server.base_url}" in done.stdout
        assert "local deterministic model" not in done.stdout
        assert FULL_TEXT.replace("\n", "") in done.stdout.replace("\n  │ ", "")
        [request] = server.requests
        assert request["model"] == "mock-gpt"
        assert "weather forecast for Paris" in request["messages"][-1]["content"]


def test_weather_example_with_metrics_and_the_jsonl_exporter(tmp_path: Path) -> None:
    done = _weather("--json", "-p", "metrics", "--events-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    streamed = [json.loads(line) for line in done.stdout.splitlines()]
    [file] = list(tmp_path.glob("*.jsonl"))
    assert file.stem == streamed[0]["payload"]["runId"]
    written = [json.loads(line) for line in file.read_text().splitlines()]
    assert written == streamed  # exactly the events the stream yielded, in order


def test_weather_example_prints_metrics_at_the_end() -> None:
    done = _weather("-p", "metrics")
    assert done.returncode == 0, done.stderr
    tail = done.stdout[done.stdout.index("■ finish") :]
    assert 'stepstream_runs_total{status="success",workflow="weather-workflow"} 1.0' in tail
    steps = [line for line in tail.splitlines() if line.startswith("stepstream_steps_total{")]
    assert len(steps) == 3 and all('status="success"' in line for line in steps)
    tokens = {
        line.split('type="')[1].split('"')[0]: float(line.split()[-1])
        for line in tail.splitlines()
        if line.startswith("stepstream_tokens_total{")
        and 'model="local-planner",step="Weather Agent",type=' in line
        and 'workflow="weather-workflow"' in line
    }
    assert tokens["input"] > 0 and tokens["output"] > 20  # the planner's usage
    total = int(tokens["input"] + tokens["output"])
    assert tail.rstrip().splitlines()[-2].startswith(f"usage: {total} tokens (")
