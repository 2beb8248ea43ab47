"""The ``ray`` plugin: steps run as Ray tasks while the run's stream stays whole.

Register it (``get_plugin_manager(plugins=["ray"])``, or an instance for options) and mark
steps with ``step(executor="ray")``, or pass ``all_steps=True`` to send every step with a
function to Ray. Everything else about a run stays in the calling process: events, hooks,
validation, retries, timeouts, state and storage. Only one attempt of the step's function
runs on the worker, as a Ray generator task; the events it produces (``ctx.write()``,
``ctx.emit()``: custom events, an agent's token deltas) come back in order and go through
the same hook calls as a local step's. Install with ``pip install 'stepstream[ray]'``.

What the remote step sees: its input, resume data and suspend payload; the run's
``runtime_context`` as it was at dispatch (changes made on the worker stay there);
``get_step_result()`` / ``get_init_data()`` as they were at dispatch (each earlier output is
pickled on its own: one that does not pickle, a client meant for local steps, fails only a
remote step that asks for it); ``ctx.emit()`` returns ``None``; ``ctx.plugin_manager`` is a
manager made on the worker from ``remote_plugins`` (the built-in defaults, e.g. the
``openai-adapter``, plus those given).

The step, its input and the run context are pickled (cloudpickle) at dispatch; one that does
not pickle fails the step with :class:`~stepstream.errors.StepSerializationError` naming the
culprit by its path (``the runtime context (['cfg'].handle: a _thread.lock)``), before
anything is sent. Each ``ctx.write()`` payload is pickled when it is written: one that does
not pickle fails that call in the step, and what was written before it still arrives. An
output, error or payload that cannot come back (or cannot be loaded here) fails the step the
same way, and the task is canceled. A step that raises ``CancelledError`` or another
``BaseException`` itself fails with a :class:`~stepstream.errors.StepExecutionError` saying
so. Canceling the run (or a step's timeout) cancels the Ray task: the step's coroutine is
canceled on the worker within about 50 ms and its cleanup runs (a sync step's thread cannot be
stopped and runs on, as in a local run). Ray's own task retries are off (``max_retries=0``): a
step's ``retries`` are the engine's, as for local steps. A step's ``timeout`` counts from
dispatch, so it includes the time the task waits for a free CPU on the cluster.

Call ``ray.init(...)`` before the first step is sent: otherwise Ray starts a local cluster on
its own at that point, which holds up the run's event loop for a few seconds. Ray Client
(``ray://``) cannot stream generator tasks and is not supported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import ray
from ray import cloudpickle
from ray.exceptions import RayError, RayTaskError, WorkerCrashedError

from stepstream.errors import StepExecutionError, StepSerializationError, describe_error
from stepstream.hookspecs import hookimpl

from ._ray_worker import E, Job, Unsent, dumps, failure, run_step
from ._unpicklable import describe, pickles

if TYPE_CHECKING:
    from stepstream.context import StepContext
    from stepstream.steps import Step

__all__ = ["RayExecutor"]

IN_FLIGHT = 1
"""Batches a step may have in Ray's generator before it pauses; each holds at most
``buffer // IN_FLIGHT`` messages, so at most twice ``buffer`` messages wait on the worker.
Few large batches relay fastest: Ray's cost is per object (measured: 1 in flight 65k
events/s, 2 in flight 47k, 4 in flight 30k, 8 in flight 17k)."""


class RayExecutor:
    """A :class:`~stepstream.executor.StepExecutor` running steps as Ray generator tasks.

    :param all_steps: Send every step with a function to Ray (``map`` steps and steps marked
        ``executor="local"`` excepted), not only the steps marked ``executor="ray"``.
    :param options: Ray task options for every step (``num_cpus``, ``resources``,
        ``runtime_env``, ``scheduling_strategy``...), as for ``.options()``.
    :param remote_plugins: Plugins (picklable objects, names of built-ins, or
        ``(name, plugin)`` pairs) for the worker's plugin manager, which serves decision hooks
        such as ``make_stream_adapter`` to remote agent steps.
    :param buffer: How many of a step's messages may wait on the worker for the driver before
        the step is paused (backpressure): ``buffer`` in the step's outbox, and as many again
        in batches in Ray's generator (at least one message per batch).
    """

    name = "ray"

    def __init__(
        self,
        *,
        all_steps: bool = False,
        options: Mapping[str, Any] | None = None,
        remote_plugins: Iterable[Any] = (),
        buffer: int = 64,
    ) -> None:
        if buffer < 1:
            raise ValueError("buffer must be at least 1")
        self.all_steps = all_steps
        self.options = dict(options or {})
        self.remote_plugins = tuple(remote_plugins)
        self.buffer = buffer
        self._task: Any = None

    @hookimpl
    def make_step_executor(self, step: Step[Any, Any]) -> RayExecutor | None:
        """Answer for steps marked ``executor="ray"``, or for every step with ``all_steps``."""
        from stepstream.graph import MapStep

        if step.executor == self.name:
            return self
        if self.all_steps and step.executor is None and not isinstance(step, MapStep):
            return self
        return None

    async def execute(self, step: Step[Any, Any], ctx: StepContext[Any]) -> Any:
        """Run one attempt of ``step`` as a Ray task, relaying its events to ``ctx``."""
        blob = self._pack(step, ctx)
        stream = self._remote().remote(blob)
        ended = False  # whether the task is known to be over (else it is canceled on leaving)
        try:
            async for ref in stream:
                for kind, data in await ref:
                    payload = _load(step, ctx, kind, data)
                    if kind == "emit":
                        await ctx.emit(payload[0], **payload[1])
                    elif kind == "write":
                        await ctx.write(payload)
                    else:
                        ended = True
                        if kind == "return":
                            return payload
                        if kind == "suspend":
                            ctx.suspend(payload)
                        raise payload
        except RayTaskError as exc:  # the task broke outside the step (not the step raising)
            ended = True
            if isinstance(exc.cause, ImportError):  # the worker cannot unpickle the job
                raise _failure(
                    StepSerializationError,
                    step,
                    ctx,
                    f"cannot be loaded on the Ray worker: {describe_error(exc.cause)}. Make its "
                    "module importable there (Ray's runtime_env: 'working_dir', 'py_modules' "
                    "or PYTHONPATH)",
                ) from exc
            raise _failure(
                StepExecutionError, step, ctx, f"failed on Ray: {describe_error(exc.cause or exc)}"
            ) from exc
        except RayError as exc:  # e.g. the worker died, or Ray failed here: stop it there
            ended = isinstance(exc, WorkerCrashedError)
            raise _failure(
                StepExecutionError, step, ctx, f"failed on Ray: {_first_line(exc)}"
            ) from exc
        finally:
            if not ended:  # canceled, timed out or failed here: stop the work there
                ray.cancel(stream)
        raise _failure(StepExecutionError, step, ctx, "ended on Ray without a result")

    def _remote(self) -> Any:
        if self._task is None:
            self._task = ray.remote(run_step).options(
                num_returns="streaming",
                max_retries=0,
                _generator_backpressure_num_objects=IN_FLIGHT,
                **self.options,
            )
        return self._task

    def _pack(self, step: Step[Any, Any], ctx: StepContext[Any]) -> bytes:
        job = Job(
            step=step,
            input_data=ctx.input_data,
            runtime_context=ctx.runtime_context.to_dict(),
            run_id=ctx.run_id,
            workflow_id=ctx.workflow_id,
            step_id=ctx.step_id,
            resume_data=ctx.resume_data,
            suspend_payload=ctx.suspend_payload,
            results=_each_pickled(ctx.get_step_results()),
            init_data=ctx.get_init_data(),
            plugins=self.remote_plugins,
            outbox_size=self.buffer,
            batch_size=max(1, self.buffer // IN_FLIGHT),
        )
        try:
            return dumps(job)
        except Exception as exc:
            raise _failure(
                StepSerializationError,
                step,
                ctx,
                f"cannot run on Ray: {_culprit(job)} does not pickle ({describe_error(exc)}). "
                "Define step functions at module level and keep clients, locks and "
                "connections out of them, their inputs and the run context (create them "
                "inside the step)",
            ) from exc


def _load(step: Step[Any, Any], ctx: StepContext[Any], kind: str, data: bytes) -> Any:
    """One message's payload, unpickled here; one that does not load fails the step."""
    try:
        return cloudpickle.loads(data)
    except Exception as exc:
        what = {"emit": "an event it emitted", "write": "its ctx.write() data"}.get(
            kind, f"its {kind} message"
        )
        raise _failure(
            StepSerializationError,
            step,
            ctx,
            f"ran on Ray, but {what} cannot be loaded here: {describe_error(exc)}",
        ) from exc


def _failure(cls: type[E], step: Step[Any, Any], ctx: StepContext[Any], text: str) -> E:
    return failure(cls, step, ctx.run_id, ctx.step_id, text)


def _each_pickled(results: Mapping[str, Any]) -> dict[str, bytes | Unsent]:
    """Earlier steps' outputs, each pickled on its own: one that does not pickle fails only a
    step that asks for it."""
    packed: dict[str, bytes | Unsent] = {}
    for key, value in results.items():
        try:
            packed[key] = dumps(value)
        except Exception as exc:
            packed[key] = Unsent(f"{describe(value)} does not pickle ({describe_error(exc)})")
    return packed


def _first_line(exc: BaseException) -> str:
    """``describe_error(exc)`` without the remote traceback Ray puts after the first line."""
    return describe_error(exc).strip().splitlines()[0]


def _culprit(job: Job) -> str:
    """Which part of ``job`` does not pickle, said as a user would name it."""
    parts = {
        "its function": job.step,
        "its input": job.input_data,
        "the runtime context": job.runtime_context,
        "its resume data": job.resume_data,
        "the workflow's input": job.init_data,
        "the remote plugins": job.plugins,
    }
    for what, value in parts.items():
        if not pickles(value):
            return f"{what} ({describe(value)})"
    return "the step"
