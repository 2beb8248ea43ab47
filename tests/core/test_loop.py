"""The sync twins' loop: one per thread, reused, closed with the thread."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest

from stepstream._loop import run_sync, sync_twin, thread_runner


async def _loop_of() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_calls_on_one_thread_share_one_loop_and_threads_have_their_own() -> None:
    first = run_sync(_loop_of())
    assert run_sync(_loop_of()) is first
    seen: list[asyncio.AbstractEventLoop] = []
    worker = threading.Thread(target=lambda: seen.append(run_sync(_loop_of())))
    worker.start()
    worker.join()
    assert seen and seen[0] is not first


def test_a_threads_loop_is_closed_when_the_thread_ends() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    def work() -> None:
        loops.append(run_sync(_loop_of()))

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    del worker
    gc.collect()
    assert loops[0].is_closed()


def test_what_a_call_leaves_on_the_loop_is_still_there_for_the_next() -> None:
    # A task started by one call (a storage writer, a lease renewer) runs on in the next.
    async def spawn() -> asyncio.Task[int]:
        gate = asyncio.Event()

        async def later() -> int:
            await gate.wait()
            return 7

        task = asyncio.get_running_loop().create_task(later())
        task.gate = gate  # type: ignore[attr-defined]
        return task

    task = run_sync(spawn())

    async def finish() -> int:
        task.gate.set()  # type: ignore[attr-defined]
        return await task

    assert run_sync(finish()) == 7


def test_inside_a_running_loop_it_refuses_clearly() -> None:
    async def inside() -> None:
        coro = _loop_of()
        with pytest.raises(RuntimeError, match="await the async method instead"):
            run_sync(coro)

    asyncio.run(inside())


class _Thing:
    async def add(self, a: int, b: int = 1) -> int:
        """Add two numbers."""
        return a + b

    add_sync = sync_twin(add)


def test_a_sync_twin_has_the_originals_parameters_and_docs() -> None:
    import inspect

    assert _Thing().add_sync(2, b=3) == 5
    assert inspect.signature(_Thing.add_sync) == inspect.signature(_Thing.add)
    assert _Thing.add_sync.__name__ == "add_sync"
    assert "Add two numbers." in (_Thing.add_sync.__doc__ or "")
    assert thread_runner() is thread_runner()
