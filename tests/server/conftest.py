"""A real uvicorn server on 127.0.0.1 serving test workflows, in a background thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stepstream import PluginManager, Workflow, get_plugin_manager
from stepstream.server import create_app
from stepstream.server import serve_in_thread as _serve_app

from ..conformance import workflows as cases


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
    with _serve_app(app) as url:
        yield url


@pytest.fixture
def server_url() -> Iterator[str]:
    yield from serve_in_thread()


@pytest.fixture
def secured_url() -> Iterator[str]:
    yield from serve_in_thread(token="s3cret")
