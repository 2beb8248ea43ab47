"""The Studio as a person meets it: ``stepstream serve`` in a child process on 127.0.0.1,
Debian's Chromium driven headless by Playwright, and a proxy between them that a test can cut.

Chromium is started with the flags this machine needs (no sandbox as root, no background
networking: the network is closed) and a fresh user-data directory per test. Under CI a
missing Chromium or Playwright fails the tests; it never skips them.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepstream.testing import ModelServer, TextReply

from ..cli.child import ROOT, LiveOutput, child_env, cli_command

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "docs" / "images"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Studio:
    """A running ``stepstream serve``: its base URL and a client of its API."""

    url: str
    api: httpx.Client
    output: LiveOutput

    def runs(self, key: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.api.get(f"/api/workflows/{key}/runs").json()["runs"]
        return runs

    def run(self, key: str, run_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.api.get(f"/api/workflows/{key}/runs/{run_id}").json()
        return found


def serve_studio(env: dict[str, str], token: str | None = None) -> Iterator[Studio]:
    """Serve the weather example and :mod:`tests.studio.flows` until the test ends."""
    port = _free_port()
    extra = {"STEPSTREAM_TOKEN": token} if token else {}
    proc = subprocess.Popen(
        cli_command("serve", "examples/weather.py", "tests.studio.flows", "--port", str(port)),
        cwd=ROOT,
        env=child_env(**env, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    output = LiveOutput(proc.stdout.readline)
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        output.wait_for(f"on {url}")
        # The line is printed just before uvicorn binds: wait for the socket to accept.
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{url}/", timeout=5)
                break
            except httpx.ConnectError:
                assert proc.poll() is None and time.monotonic() < deadline, output.plain
                time.sleep(0.05)
        with httpx.Client(base_url=url, headers=headers, timeout=10) as api:
            yield Studio(url, api, output)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        output.wait_end()
        proc.stdout.close()


class GatedPlanner:
    """A model whose answers stream their first words, then wait for :meth:`release`.

    So a test sees tokens on screen while the model is provably still answering.
    """

    WORDS = re.findall(r"\s*\S+", "Activity plan for the city: walk, eat, read, and sleep well.")
    HEAD = 3

    def __init__(self) -> None:
        self.gate = threading.Event()

    def release(self) -> None:
        self.gate.set()

    def __call__(self, body: dict[str, Any]) -> TextReply:
        def chunks() -> Iterator[str]:
            yield from self.WORDS[: self.HEAD]
            assert self.gate.wait(30), "the test never released the model"
            yield from self.WORDS[self.HEAD :]

        return TextReply(chunks())


@pytest.fixture
def planner() -> GatedPlanner:
    return GatedPlanner()


@pytest.fixture
def model(planner: GatedPlanner) -> Iterator[ModelServer]:
    with ModelServer(planner) as server:
        yield server
    planner.release()


@pytest.fixture
def studio(model: ModelServer) -> Iterator[Studio]:
    """The Studio with the weather agent on the test's gated model."""
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": model.base_url}
    env["OPENAI_MODEL"] = "gated-planner"
    yield from serve_studio(env)


@pytest.fixture
def playwright_session() -> Iterator[Any]:
    # Per test, not per session: the sync API runs an event loop of its own in this thread,
    # which would be in the way of the asyncio tests that follow.
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as session:
        yield session


@pytest.fixture(params=["light"])
def color_scheme(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def page(playwright_session: Any, tmp_path: Path, color_scheme: str) -> Iterator[Any]:
    """A page of a fresh headless Chromium (its own user-data directory)."""
    context = playwright_session.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"),
        executable_path=CHROMIUM,
        headless=True,
        args=FLAGS,
        viewport={"width": 1280, "height": 860},
        color_scheme=color_scheme,
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert errors == [], f"the page raised: {errors}"


@pytest.fixture
def screenshot(page: Any, tmp_path: Path) -> Callable[[str], Path]:
    """Save the page as docs/images/studio-NAME.png when STEPSTREAM_SCREENSHOTS=docs (how
    the README's pictures are made), else into the test's temporary directory."""

    def take(name: str) -> Path:
        folder = SCREENSHOTS if os.environ.get("STEPSTREAM_SCREENSHOTS") == "docs" else tmp_path
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"studio-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        return path

    return take


@dataclass
class Proxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream``; :meth:`cut` drops every connection
    it carries, as a network drop would, and later connections go through again."""

    upstream: tuple[str, int]
    sent: list[bytes] = field(default_factory=list)  # what clients sent, chunk by chunk
    _sockets: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_client:
                    with self._lock:
                        self.sent.append(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> int:
        """Drop every open connection; return how many sockets were open."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        return len(sockets)

    def stop(self) -> None:
        self._listener.close()
        self.cut()
