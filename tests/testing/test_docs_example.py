"""docs/testing.md's first example runs as a user's test file would: the kit's fixtures come
from the installed pytest plugin (the ``pytest11`` entry point), with no conftest."""

from __future__ import annotations

import re
from pathlib import Path

from .user_project import run_user_tests

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def test_the_agent_step_example_passes_in_a_project_of_its_own(tmp_path: Path) -> None:
    example = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)[0]
    assert "def test_" in example
    done = run_user_tests(tmp_path, example)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
