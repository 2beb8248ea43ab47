"""The command line as the tests run it: a child process, its output read as it comes."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = "tests.cli.sample_workflows"
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-B]|\r")


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI child: no entry-point plugins, no real model, UTF-8 output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(STEPSTREAM_DISABLE_PLUGIN_AUTOLOAD="1", PYTHONIOENCODING="utf-8")
    env.update(extra)
    return env


def cli_command(*args: str) -> list[str]:
    """The real entry point: ``python -m stepstream.cli ARGS``."""
    return [sys.executable, "-m", "stepstream.cli", *args]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI to its end from the repository root; its output is captured (a pipe)."""
    return subprocess.run(
        cli_command(*args),
        cwd=ROOT,
        env=env or child_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


class LiveOutput:
    """A child's output, read by a thread so that a test can wait for text with a timeout.

    ``read`` returns the next chunk of output, ``""`` at the end (a pipe's ``readline`` or a
    pty's ``os.read``).
    """

    def __init__(self, read: Callable[[], str]) -> None:
        self._chunks: queue.Queue[str] = queue.Queue()
        self.text = ""
        self.ended = False
        threading.Thread(target=self._pump, args=(read,), daemon=True).start()

    def _pump(self, read: Callable[[], str]) -> None:
        while True:
            try:
                chunk = read()
            except OSError:  # a pty's master reads EIO once the child has gone
                chunk = ""
            self._chunks.put(chunk)
            if not chunk:
                return

    @property
    def plain(self) -> str:
        """The output so far without terminal control sequences."""
        return _ANSI.sub("", self.text)

    def wait_for(self, needle: str, timeout: float = 15) -> str:
        """Block until ``needle`` is in the output (an AssertionError at the end or timeout)."""
        while needle not in self.plain:
            if self.ended:
                raise AssertionError(f"output ended without {needle!r}:\n{self.plain}")
            try:
                chunk = self._chunks.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {needle!r} in {timeout} s:\n{self.plain}") from None
            self.ended = chunk == ""
            self.text += chunk
        return self.plain

    def wait_end(self, timeout: float = 15) -> str:
        """Block until the output ends; return all of it, plain."""
        while not self.ended:
            chunk = self._chunks.get(timeout=timeout)
            self.ended = chunk == ""
            self.text += chunk
        return self.plain
