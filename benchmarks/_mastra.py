"""Mastra as a peer: ``@mastra/core`` (pinned) in a Node child process, one block a request.

``benchmarks/mastra/`` holds ``package.json`` and ``package-lock.json`` (``@mastra/core``
0.10.15 and zod) and ``bench.mjs``. On first use the two package files are copied to a
scratch folder keyed by the lock file's hash (under the system's temporary directory) and
``npm ci`` installs them there; later runs reuse it. The child reads one JSON request a line
and runs one block of the same shape as the Python systems (``run.stream()`` of every run,
every chunk counted, every result checked), so each Mastra block is timed here like every
other system's, in the same repeats; only the language differs. The IPC round trip (one line
each way per block) is part of its time, well under 1 ms against blocks of ~0.5 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ._shapes import BenchmarkError, Unit

HERE = Path(__file__).parent / "mastra"
MASTRA = "mastra"


DIR_ENV = "STEPSTREAM_BENCH_MASTRA_DIR"
"""A folder whose ``node_modules`` already holds the pinned ``@mastra/core`` (the tests point
it at ``tests/server/mastra_client``, installed by the set-up, so that they need no network)."""
VERSION = "0.10.15"


def install() -> Path:
    """The scratch folder with ``node_modules`` installed by ``npm ci`` (made once)."""
    given = os.environ.get(DIR_ENV)
    if given:
        found = json.loads((Path(given) / "node_modules/@mastra/core/package.json").read_text())
        if found["version"] != VERSION:
            raise BenchmarkError(f"{DIR_ENV} holds @mastra/core {found['version']}, not {VERSION}")
        return Path(given)
    lock = (HERE / "package-lock.json").read_bytes()
    scratch = Path(tempfile.gettempdir()) / f"stepstream-bench-mastra-{_digest(lock)}"
    if (scratch / "node_modules" / "@mastra" / "core" / "package.json").exists():
        return scratch
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise BenchmarkError("Mastra needs Node.js and npm on PATH")
    scratch.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(HERE / name, scratch / name)
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", "--silent"],
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise BenchmarkError(f"npm ci of @mastra/core failed: {done.stderr.strip()[-500:]}")
    return scratch


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


class MastraChild:
    """The Node child process; :meth:`block` makes a unit that asks it for one block."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._error: str | None = None

    def _start(self) -> subprocess.Popen[str]:
        if self._error is not None:
            raise BenchmarkError(self._error)
        if self._proc is None:
            try:
                scratch = install()
            except BenchmarkError as exc:
                self._error = str(exc)
                raise
            self._proc = subprocess.Popen(
                ["node", str(HERE / "bench.mjs")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={"MASTRA_CORE_DIR": str(scratch), "PATH": os.environ.get("PATH", "")},
            )
            self._read()  # {"ready": true} once @mastra/core is imported
        return self._proc

    def _read(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise BenchmarkError(f"the Mastra child exited (status {self._proc.poll()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise BenchmarkError(f"Mastra: {answer['error'][:500]}")
        return answer

    def block(self, expected_chunks: int, **request: Any) -> Unit:
        """A unit that runs one block of ``request`` in the child and checks its chunks."""
        line = json.dumps(request) + "\n"

        async def unit() -> None:
            proc = self._start()
            assert proc.stdin is not None
            proc.stdin.write(line)
            proc.stdin.flush()
            chunks = self._read()["chunks"]
            if chunks != expected_chunks:
                raise BenchmarkError(f"Mastra streamed {chunks} chunks, not {expected_chunks}")

        return unit

    def close(self) -> None:
        """Stop the child (end of its input, then a wait)."""
        if self._proc is not None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


CHILD = MastraChild()
"""The suite's one Mastra child (started on first use, closed by the suite at its end)."""
