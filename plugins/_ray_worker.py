"""The Ray worker's half of :class:`~stepstream.plugins.ray_executor.RayExecutor`.

:func:`run_step` is the body of the Ray generator task. It runs one attempt of a step's
function in an event loop of its own and yields, in order, lists of messages for the driver,
each a kind and its payload pickled on its own (so that one payload that does not pickle
fails only the call that sent it, and nothing sent before it is lost):

* ``("emit", (EventClass, fields))``: the step called ``ctx.emit(...)``;
* ``("write", data)``: the step called ``ctx.write(data)``;
* then exactly one of ``("return", output)``, ``("suspend", payload)`` or
  ``("raise", exception)``, always last.

The step runs in an event loop on a thread of its own; the task's thread relays. Messages
wait in a bounded outbox; the driver's reading paces the step twice over (Ray's generator
backpressure stops the relay at ``yield``, and a full outbox stops ``ctx.emit``). Consecutive
messages go in one list, which is what makes thousands of events per second.
``ray.cancel()`` raises ``KeyboardInterrupt`` in the relay: the step's coroutine is then
canceled (its ``finally`` blocks run: an agent closes its HTTP stream) before the task ends.
"""

from __future__ import annotations

import asyncio
import threading
import traceback
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from ray import cloudpickle

from stepstream.context import RuntimeContext, StepContext, Suspend
from stepstream.errors import StepExecutionError, StepSerializationError, describe_error
from stepstream.executor import run_locally

if TYPE_CHECKING:
    from stepstream.plugin_manager import PluginManager
    from stepstream.steps import Step

Message = tuple[str, bytes]
E = TypeVar("E", bound=StepExecutionError)

TICK = 0.05
"""Seconds between checks for a cancel while the relay waits for the step."""

CANCEL_GRACE = 5.0
"""Seconds a canceled step gets to finish its cleanup before the task ends anyway."""

_ENDS = frozenset({"return", "suspend", "raise"})


@dataclass
class Job:
    """Everything a step needs on the worker; pickled by the driver in one piece."""

    step: Step[Any, Any]
    input_data: Any
    runtime_context: dict[str, Any]
    run_id: str
    workflow_id: str
    step_id: str
    resume_data: Any
    suspend_payload: Any
    results: dict[str, bytes | Unsent]
    """Earlier steps' outputs, each pickled on its own (loaded when the step asks for it)."""
    init_data: Any
    plugins: tuple[Any, ...] = ()
    outbox_size: int = 64
    batch_size: int = 16

    def error(self, cls: type[E], text: str) -> E:
        """An error of this job's step: ``cls("step '<id>' <text>")``."""
        return failure(cls, self.step, self.run_id, self.step_id, text)


def failure(cls: type[E], step: Step[Any, Any], run_id: str, step_id: str, text: str) -> E:
    """``cls("step '<id>' <text>")`` carrying the run and step ids: every error the Ray
    executor makes, on the worker and on the driver, reads the same way."""
    return cls(f"step {step.id!r} {text}", run_id=run_id, step_id=step_id)


@dataclass(frozen=True)
class Unsent:
    """An earlier step's output that could not be pickled: an error only if it is asked for."""

    reason: str


@dataclass
class _Services:
    """The worker's :class:`~stepstream.context.StepServices`: what the driver captured, and
    an outbox for the step's events."""

    job: Job
    outbox: asyncio.Queue[Message]

    def lookup(self, ref: Any) -> Any:
        key = ref if isinstance(ref, str) else ref.id
        packed = self.job.results.get(key)
        if isinstance(packed, Unsent):
            raise self.job.error(
                StepSerializationError,
                f"ran on Ray and asked for the result of {key!r}, which could not be sent to "
                f"the worker: {packed.reason}",
            )
        return None if packed is None else cloudpickle.loads(packed)

    def results(self) -> dict[str, Any]:
        return {key: self.lookup(key) for key in self.job.results}

    def init_data(self) -> Any:
        return self.job.init_data

    async def write(self, step_id: str, data: Any) -> None:
        await self.outbox.put(("write", self.pack(data, "ctx.write() data")))

    def is_canceled(self) -> bool:
        return False  # a canceled run cancels this task instead

    async def emit(self, cls: type[Any], fields: dict[str, Any]) -> Any:
        await self.outbox.put(("emit", self.pack((cls, fields), f"{cls.__name__} event")))
        return None

    def pack(self, value: Any, what: str) -> bytes:
        """``value`` pickled; if it does not pickle, the step's call that sent it fails."""
        try:
            return dumps(value)
        except Exception as exc:
            raise self.job.error(
                StepSerializationError,
                f"ran on Ray, but its {what} cannot be sent back ({describe_error(exc)})",
            ) from exc

    @cached_property
    def plugin_manager(self) -> PluginManager:
        from stepstream.plugin_manager import get_plugin_manager

        return get_plugin_manager(plugins=list(self.job.plugins), load_entrypoints=False)


def run_step(blob: bytes) -> Iterator[list[Message]]:
    """The Ray task: run the pickled :class:`Job`'s step, yielding batches of messages.

    The step runs in an event loop on a thread of its own, so that the ``KeyboardInterrupt``
    by which ``ray.cancel()`` stops a task lands here, in the relay, never inside the step's
    code: the step is then canceled as ``asyncio.run`` cancels what is left on exit.
    """
    job: Job = cloudpickle.loads(blob)
    outbox: asyncio.Queue[Message] = asyncio.Queue(maxsize=job.outbox_size)
    stopping = threading.Event()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=_serve, args=(loop,), name="stepstream-step", daemon=True)
    thread.start()
    try:
        body = _attempt(job, _context(job, outbox), outbox, stopping)
        asyncio.run_coroutine_threadsafe(body, loop)
        while True:
            get = _next_batch(outbox, job.batch_size)
            batch = _result(asyncio.run_coroutine_threadsafe(get, loop))
            yield batch
            if batch[-1][0] in _ENDS:
                return
    finally:
        stopping.set()  # what is canceled from now on is canceled by us, not by the step
        loop.call_soon_threadsafe(loop.stop)  # the step's loop cancels what is left
        thread.join(CANCEL_GRACE)


def _context(job: Job, outbox: asyncio.Queue[Message]) -> StepContext[Any]:
    return StepContext(
        input_data=job.input_data,
        runtime_context=RuntimeContext(job.runtime_context),
        run_id=job.run_id,
        workflow_id=job.workflow_id,
        step_id=job.step_id,
        services=_Services(job, outbox),
        resume_data=job.resume_data,
        suspend_payload=job.suspend_payload,
    )


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    """The step's thread: run its loop until told to stop, then cancel and finish what is
    left (a canceled step's ``finally`` blocks: an agent closes its HTTP stream)."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _result(future: Future[list[Message]]) -> list[Message]:
    # Waits in short slices: ray.cancel() raises KeyboardInterrupt in this (main) thread only
    # when it runs Python code, and a wait without a timeout would never return to it.
    while True:
        try:
            return future.result(timeout=TICK)
        except TimeoutError:
            continue
        except BaseException:
            future.cancel()
            raise


async def _attempt(
    job: Job, ctx: StepContext[Any], outbox: asyncio.Queue[Message], stopping: threading.Event
) -> None:
    try:
        end: tuple[str, Any] = ("return", await run_locally(job.step, ctx))
    except Suspend as signal:
        end = ("suspend", signal.payload)
    except asyncio.CancelledError:
        if stopping.is_set():
            raise  # the relay is gone: nobody waits for an end
        end = ("raise", _unexpected(job, "CancelledError (it was not canceled by its run)"))
    except Exception as exc:
        exc.add_note(f"Traceback on the Ray worker:\n{''.join(traceback.format_exception(exc))}")
        end = ("raise", exc)
    except BaseException as exc:  # SystemExit, KeyboardInterrupt...: never out of the loop
        end = ("raise", _unexpected(job, describe_error(exc)))
    await outbox.put(_sendable(end, job))


def _unexpected(job: Job, what: str) -> StepExecutionError:
    return job.error(StepExecutionError, f"raised {what} on the Ray worker")


def _sendable(end: tuple[str, Any], job: Job) -> Message:
    """``end`` pickled, once it is known to load again; else an error that says why not."""
    kind, value = end
    try:
        data = dumps(value)
        cloudpickle.loads(data)  # e.g. an exception whose constructor takes keywords only
        return kind, data
    except Exception as exc:
        what = {"raise": "its error", "suspend": "its suspend payload"}.get(kind, "its output")
        detail = f" ({describe_error(value)})" if kind == "raise" else ""
        error = job.error(
            StepSerializationError,
            f"ran on Ray, but {what} cannot be sent back{detail}: {describe_error(exc)}",
        )
        return "raise", dumps(error)


async def _next_batch(outbox: asyncio.Queue[Message], most: int) -> list[Message]:
    batch = [await outbox.get()]
    while len(batch) < most and not outbox.empty() and batch[-1][0] not in _ENDS:
        batch.append(outbox.get_nowait())
    return batch


def dumps(value: Any) -> bytes:
    """Pickle ``value`` as Ray does (cloudpickle: functions and classes by value if needed)."""
    return bytes(cloudpickle.dumps(value))  # type: ignore[no-untyped-call]
