"""A real uvicorn server on 127.0.0.1 serving test workflows, in a background thread."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import uvicorn

from stepstream import PluginManager, Workflow, get_plugin_manager
from stepstream.server import create_app

from ..conformance import workflows as cases


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_in_thread(
    workflows: dict[str, Workflow] | None = None,
    *,
    token: str | None = None,
    plugin_manager: PluginManager | None = None,
) -> Iterator[str]:
    """Serve ``workflows`` (the conformance ones by default) with uvicorn on 127.0.0.1."""
    app = create_app(
        workflows
        or {
            "seqWf": cases.a_sequence(),
            "approvalWf": cases.i_suspend_resume(),
            "localeWf": cases.j_runtime_context(),
            "failWf": cases.e_step_throws(),
        },
        token=token,
        plugin_manager=plugin_manager or get_plugin_manager(load_entrypoints=False),
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:  # uvicorn's own readiness flag, set once it listens
        if not thread.is_alive():
            raise RuntimeError("the test server did not start")
        thread.join(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def server_url() -> Iterator[str]:
    yield from serve_in_thread()


@pytest.fixture
def secured_url() -> Iterator[str]:
    yield from serve_in_thread(token="s3cret")
