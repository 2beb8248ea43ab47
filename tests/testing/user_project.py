"""A user's project as the kit's tests run it: one test file in a directory of its own, run
by pytest in a child process, so that the kit arrives only through its ``pytest11`` entry
point (no conftest, no import of our tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_user_tests(directory: Path, source: str, ini: str = "") -> subprocess.CompletedProcess[str]:
    """Write ``source`` as ``test_user.py`` in ``directory`` (and ``ini`` as the ``[pytest]``
    section of its ``pytest.ini``), and run pytest there."""
    (directory / "test_user.py").write_text(source)
    (directory / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--strict-markers"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
