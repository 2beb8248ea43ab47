"""A guard that stops tests from calling a real model.

The ``openai`` SDK sends every request through an httpx transport (``httpx`` for openai 2,
its fork ``httpx2`` for openai 3) and marks it with its ``X-Stainless-Lang`` header. While
:func:`block_real_models` is active, such a request to a host that is not this machine raises
:class:`~stepstream.errors.RealModelCallError` before anything leaves the process, and is
recorded, so that the test can fail even when the code under test catches the error (an agent
step that fails, a retry loop). Requests to 127.0.0.1 (the ``model_server`` fixture) and any
request not made by the SDK pass untouched.
"""

from __future__ import annotations

import importlib
import ipaddress
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from ..errors import RealModelCallError

__all__ = ["ModelCallGuard", "block_real_models", "is_local_host"]


def is_local_host(host: str) -> bool:
    """Tell whether ``host`` names this machine (``localhost`` or a loopback address)."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ModelCallGuard:
    """The record of one :func:`block_real_models` block: the URLs it refused."""

    def __init__(self) -> None:
        """Start with nothing refused."""
        self.blocked: list[str] = []

    def check(self, request: Any) -> None:
        """Refuse ``request`` if the OpenAI SDK is sending it off this machine.

        :raises RealModelCallError: for such a request, after recording its URL.
        """
        if "x-stainless-lang" in request.headers and not is_local_host(request.url.host):
            url = str(request.url.copy_with(query=None))
            self.blocked.append(url)
            raise RealModelCallError(url)


@contextmanager
def block_real_models() -> Iterator[ModelCallGuard]:
    """Refuse the OpenAI SDK's requests to other machines inside the block.

    Yields the :class:`ModelCallGuard` whose ``blocked`` list names each refused URL.
    """
    guard = ModelCallGuard()
    with ExitStack() as stack:
        for name in _HTTPX_MODULES:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            # Patching the transports (not the clients) also catches clients the user built.
            stack.enter_context(_patched(module.HTTPTransport, "handle_request", guard))
            stack.enter_context(_patched(module.AsyncHTTPTransport, "handle_async_request", guard))
        yield guard


_HTTPX_MODULES = ("httpx", "httpx2")


@contextmanager
def _patched(transport: type, method: str, guard: ModelCallGuard) -> Iterator[None]:
    original = getattr(transport, method)

    def handle_request(self: Any, request: Any) -> Any:
        guard.check(request)
        return original(self, request)

    async def handle_async_request(self: Any, request: Any) -> Any:
        guard.check(request)
        return await original(self, request)

    setattr(
        transport, method, handle_request if method == "handle_request" else handle_async_request
    )
    try:
        yield
    finally:
        setattr(transport, method, original)
