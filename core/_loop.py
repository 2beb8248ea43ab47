"""One event loop per thread for the sync twins (``start_sync``, the sync client...).

A sync twin runs its async original on the calling thread's own loop, created on first use
and kept for the thread's life, so what a run leaves bound to a loop (a storage's writer and
connection pool, an agent's HTTP client, a lease renewer) lives on between calls instead of
dying with a loop per call. The loop is closed, its async generators and pending tasks
finished, when the thread ends (and at interpreter exit for the main thread).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

__all__ = ["run_sync", "sync_twin", "thread_runner", "twin_of"]

P = ParamSpec("P")
T = TypeVar("T")

_local = threading.local()


class _Holder:
    """Owns a thread's runner; thread-local storage drops it when the thread ends."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()

    def close(self) -> None:
        self.runner.close()

    def __del__(self) -> None:
        self.close()


def thread_runner() -> asyncio.Runner:
    """The calling thread's :class:`asyncio.Runner`, created on first use."""
    holder: _Holder | None = getattr(_local, "holder", None)
    if holder is None:
        holder = _Holder()
        _local.holder = holder
        if threading.current_thread() is threading.main_thread():
            atexit.register(holder.close)
    return holder.runner


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on this thread's loop and return its result.

    :raises RuntimeError: when called from inside a running event loop (await the async
        original there); ``coro`` is closed unawaited.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return thread_runner().run(coro)
    coro.close()
    raise RuntimeError(
        "a sync twin (..._sync, stepstream.client.Client) was called inside a running event "
        "loop: await the async method instead"
    )


def sync_twin(original: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """Make the sync twin of an async function or method: same parameters, same docs
    (prefixed with where it runs), run by :func:`run_sync` on the thread's loop."""

    @functools.wraps(original)
    def twin(*args: P.args, **kwargs: P.kwargs) -> T:
        return run_sync(original(*args, **kwargs))

    twin.__name__ = f"{original.__name__}_sync"
    twin.__qualname__ = f"{original.__qualname__}_sync"
    twin.__doc__ = (
        f"The sync twin of :meth:`{original.__name__}`, run on this thread's event loop (for "
        "scripts and notebooks; not inside a running loop).\n\n" + (original.__doc__ or "")
    )
    return twin


def twin_of(
    original: Callable[Concatenate[Any, P], Coroutine[Any, Any, T]], *, via: str = "twin"
) -> Callable[Concatenate[Any, P], T]:
    """Make a blocking method that calls ``original`` on the object's async twin (its
    attribute ``via``), with the original's parameters, on this thread's loop: the sync client
    is declared as ``details = twin_of(AsyncWorkflow.details)``, one line per method."""
    name = original.__name__

    @functools.wraps(original)
    def method(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> T:
        result: T = run_sync(getattr(getattr(self, via), name)(*args, **kwargs))
        return result

    method.__doc__ = f"The blocking twin of :meth:`{original.__qualname__}`.\n\n" + (
        original.__doc__ or ""
    )
    return method
