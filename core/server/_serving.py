"""Serving the app: uvicorn in the foreground or in a thread."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

from starlette.applications import Starlette

# Seconds uvicorn lets open responses (SSE followers never end by themselves) finish at
# shutdown before it closes them and runs the app's lifespan shutdown.
GRACEFUL_SHUTDOWN = 5


@contextlib.contextmanager
def serve_in_thread(app: Starlette, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` with uvicorn from a background thread; yield its base URL.

    For tests, notebooks and benchmarks: the server listens before the URL is yielded and is
    stopped on exit. ``port=0`` picks a free port.
    """
    import uvicorn

    if port == 0:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="error",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        )
    )
    thread = threading.Thread(target=server.run, name="stepstream-uvicorn", daemon=True)
    thread.start()
    while not server.started:  # uvicorn's own readiness flag, set once it listens
        if not thread.is_alive():
            raise RuntimeError(f"the HTTP server did not start on {host}:{port}")
        thread.join(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def serve(
    app: Starlette, *, host: str = "127.0.0.1", port: int = 4111, fd: int | None = None
) -> None:
    """Serve ``app`` with uvicorn until interrupted.

    :param fd: A listening socket's file descriptor to accept on instead of binding
        ``host:port`` (``stepstream serve --instances N``: every instance accepts on the one
        socket its parent bound, and the kernel spreads the connections among them).
    """
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )
    if fd is None:
        uvicorn.Server(config).run()
        return
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])
