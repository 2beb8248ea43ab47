"""Every example runs as a user would run it, and prints what it promises."""

from __future__ import annotations

import json
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
