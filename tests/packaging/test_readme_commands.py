"""The README's two commands: the first sets up and runs the weather example as a user would,
the second is the test command, which `.ci/run` runs exactly."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    """The README's indented command lines, in order."""
    return re.findall(r"^    (python3 -m venv .*)$", (ROOT / "README.md").read_text(), re.M)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().rstrip().splitlines()
    assert ci[-1] == readme_commands()[1]


def test_the_test_command_builds_the_docs_strictly_and_keeps_mypys_editable_mode() -> None:
    command = readme_commands()[1]
    assert "--config-settings editable_mode=strict" in command
    assert ".venv/bin/mkdocs build --strict" in command
    assert command.endswith(".venv/bin/python -m pytest")


def test_the_first_command_installs_the_cli_and_runs_the_weather_example() -> None:
    command = readme_commands()[0]
    assert '.venv/bin/pip install -q ".[cli]"' in command
    assert "editable_mode" not in command and " -e " not in command
    assert command.endswith(".venv/bin/python examples/weather.py")


def test_nothing_refers_to_a_sibling_folder_or_a_machine_path() -> None:
    tracked = [
        p
        for folder in ("core", "plugins", "agents", "tests", "examples", "benchmarks", "docs")
        for p in (ROOT / folder).rglob("*")
        if p.suffix in {".py", ".md", ".toml", ".json", ".yml"} and "node_modules" not in p.parts
    ]
    tracked += [ROOT / "README.md", ROOT / "pyproject.toml", ROOT / "mkdocs.yml", ROOT / ".ci/run"]
    # Spelled in pieces so that this test does not find itself.
    patterns = re.compile("|".join([r"\.\./" + "shared", "/" + "work/", "shared" + "/conformance"]))
    offenders = [str(p.relative_to(ROOT)) for p in tracked if patterns.search(p.read_text())]
    assert offenders == []
