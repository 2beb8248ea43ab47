"""Every hook stepstream calls, each documented as its contract.

Plugins implement hooks with functions (or methods) named like the specs below and marked with
:data:`stepstream.hookimpl`. An implementation may take any subset of a spec's arguments, so
specs can grow without breaking plugins. Plugins are registered by name; see
:func:`stepstream.get_plugin_manager`.

There are two kinds of hooks:

* **Observer hooks** (``on_*``, ``before_*``, ``after_*``) are called synchronously on the event
  loop and must not block: hand I/O to a thread or task of your own. Each implementation is
  isolated: if it raises, the error is logged (logger ``stepstream.plugins``), counted, passed
  to :func:`on_plugin_error` and recorded in the run's result and stream as a ``plugin-error``
  event; the run and the other plugins go on. In strict mode (``get_plugin_manager(strict=True)``)
  the error is re-raised as :class:`~stepstream.errors.PluginHookError` instead, which fails
  the caller: meant for tests.
* **Decision hooks** (``open_event_stream``, ``make_stream_adapter``, ``make_step_executor``)
  return a value the engine acts on; they are ``firstresult`` and their errors propagate to
  the caller, never isolated. Every decision of a run takes one route: the run's own manager
  (the plugins given to ``Workflow(plugins=...)`` and ``create_run(plugins=...)``) is asked
  first, then the engine's manager (see
  :func:`~stepstream.plugin_manager.run_plugin_manager`); the first answer that is not
  ``None`` wins. So a plugin of one run can choose that run's event stream
  (``Run.stream()``), its agents' stream adapters (``ctx.plugin_manager``, which is that
  route) and its steps' executors.
"""

from __future__ import annotations

from collections.abc import Awaitable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .adapter import StreamAdapter
    from .channel import EventChannel
    from .events import Event
    from .executor import StepExecutor
    from .result import WorkflowResult
    from .steps import Step

__all__ = [
    "PROJECT_NAME",
    "after_step_run",
    "after_workflow_run",
    "before_step_run",
    "before_workflow_run",
    "hookimpl",
    "hookspec",
    "make_step_executor",
    "make_stream_adapter",
    "on_event",
    "on_plugin_error",
    "on_step_error",
    "open_event_stream",
    "wrap_step_run",
]

PROJECT_NAME = "stepstream"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --------------------------------------------------------------------------------------------
# Stream events
# --------------------------------------------------------------------------------------------


@hookspec
def on_event(event: Event) -> Awaitable[None] | None:
    """Receive one stream event; called once for every event of every run, in stream order.

    The engine calls this hook before the event is visible to any ``Run.stream()`` consumer
    (the built-in ``stream`` plugin is itself an implementation), so every plugin sees exactly
    the sequence a stream yields.

    :param event: The event, a frozen model of the :data:`stepstream.events.Event` union; it
        carries ``run_id`` and ``seq``.
    :return: ``None``, or an awaitable to ask the engine to wait for it before producing the
        run's next event (backpressure: the ``stream`` plugin returns one when its buffer is
        full). Never block inside the call itself.

    Observer hook: a raise is isolated (see the module docstring).
    """


# --------------------------------------------------------------------------------------------
# Run and step lifecycle
# --------------------------------------------------------------------------------------------


@hookspec
def before_workflow_run(
    run_id: str, workflow_id: str, input_data: Any, meta: dict[str, Any]
) -> None:
    """Called when a run starts or resumes, before its first event of that execution.

    :param run_id: The run's id.
    :param workflow_id: The top-level workflow's id.
    :param input_data: The workflow's input as given to ``start()``/``stream()`` (JSON form).
    :param meta: The run's ``RunState.meta``: run-level data stored with the run (at its
        next checkpoint) and given back when it resumes, in this or another process. A
        plugin may keep JSON-able data there under a key of its own (the ``otel`` plugin
        keeps the run's trace context under ``"otel"``, so a resumed run continues its
        trace); ``"usage"`` is the engine's.

    Observer hook: a raise is isolated.
    """


@hookspec
def after_workflow_run(run_id: str, workflow_id: str, result: WorkflowResult) -> None:
    """Called when an execution of a run ends (success, failed, suspended or canceled).

    It is called before the run's ``finish`` event (and, for a suspended run, when the
    execution pauses), so exporters can flush what they hold for the run.

    :param run_id: The run's id.
    :param workflow_id: The top-level workflow's id.
    :param result: The run's :class:`~stepstream.result.WorkflowResult` at that point.

    Observer hook: a raise is isolated.
    """


@hookspec
def before_step_run(run_id: str, step_id: str, input_data: Any) -> None:
    """Called just before a step executes, right after its ``step-start`` event.

    :param run_id: The run's id.
    :param step_id: The step's id as it appears in the stream (nested steps are prefixed
        ``<workflow-id>.``).
    :param input_data: The step's input (JSON form).

    Observer hook: a raise is isolated.
    """


@hookspec
def after_step_run(run_id: str, step_id: str, status: str, output: Any) -> None:
    """Called when a step has ended, before its ``step-result`` (or ``step-suspended``) event.

    :param run_id: The run's id.
    :param step_id: The step's id as it appears in the stream.
    :param status: ``"success"``, ``"failed"``, ``"suspended"`` or ``"canceled"``.
    :param output: The step's output on success (JSON form), else ``None``.

    Observer hook: a raise is isolated.
    """


@hookspec
def on_step_error(run_id: str, step_id: str, error: BaseException) -> None:
    """Called when a step fails, with the exception, before its failed ``step-result``.

    :param run_id: The run's id.
    :param step_id: The step's id as it appears in the stream.
    :param error: What the step raised (or the validation error of its input or output).

    Observer hook: a raise is isolated.
    """


@hookspec
def wrap_step_run(
    run_id: str, step_id: str, input_data: Any
) -> AbstractContextManager[None] | None:
    """Return a context manager to wrap one step's execution (spans, timing), or ``None``.

    Every returned context manager is entered just before the step's function runs and exited
    when it has returned, raised, suspended or been canceled, on the event loop, in the step's
    task (so context variables set on enter are visible to the step). Managers are entered in
    hook-call order and exited in reverse.

    :param run_id: The run's id.
    :param step_id: The step's id as it appears in the stream.
    :param input_data: The step's input (JSON form).
    :return: A synchronous context manager, or ``None``.

    Observer hook: a raise while creating, entering or exiting is isolated.
    """


# --------------------------------------------------------------------------------------------
# Plugin errors
# --------------------------------------------------------------------------------------------


@hookspec
def on_plugin_error(plugin_name: str, hook_name: str, error: BaseException) -> None:
    """Called when an observer hook implementation raised (non-strict mode).

    :param plugin_name: The name the failing plugin is registered under.
    :param hook_name: The hook it was running.
    :param error: What it raised.

    A raise in this hook is only logged, never reported again.
    """


# --------------------------------------------------------------------------------------------
# Decision hooks
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def open_event_stream(run_id: str, buffer_size: int) -> EventChannel | None:
    """Open the channel that ``Run.stream()`` reads a run's events from.

    The built-in ``stream`` plugin implements it; if that plugin is blocked and no other
    implementation answers, ``Run.stream()`` raises :class:`~stepstream.errors.StreamError`.

    :param run_id: The run to stream.
    :param buffer_size: How many events the channel may hold before the run waits for its
        consumer (backpressure); at least 1.
    :return: An :class:`~stepstream.channel.EventChannel` that receives every later event of
        the run through :func:`on_event`, or ``None`` to let another plugin answer. It is the
        run's *primary* stream, the one consumer whose pace may pause the run; every other
        consumer is a subscriber of the run's hub (:mod:`stepstream.hub`) and never does.

    Decision hook (firstresult): errors propagate to the caller of ``Run.stream()``.
    """


@hookspec(firstresult=True)
def make_stream_adapter(provider: str, model: str) -> StreamAdapter | None:
    """Make the state machine that turns one model response's chunks into agent chunks.

    An agent calls it once per model request (each turn of a tool loop) and feeds the
    adapter every chunk the provider's client yields, then calls its ``finish()``. The
    built-in ``openai-adapter`` plugin answers for ``provider="openai"``: each chunk is one
    ``chat.completion.chunk`` as decoded JSON (a ``dict``; the agent reads the SDK's raw
    stream and parses it with ``jiter``); a third-party package can answer for another provider, or
    register an adapter of its own for ``openai`` to change how chunks become events.

    :param provider: The provider the agent talks to (``"openai"`` for any
        OpenAI-compatible endpoint).
    :param model: The model name the agent asked for.
    :return: A :class:`~stepstream.adapter.StreamAdapter`, or ``None`` to let another
        plugin answer.

    Decision hook (firstresult): errors propagate to the agent step, which fails.
    """


@hookspec(firstresult=True)
def make_step_executor(step: Step[Any, Any], workflow_id: str) -> StepExecutor | None:
    """Choose where ``step``'s function runs.

    The engine asks once per step and run, before the step's first attempt, for every step
    that runs a function (not for nested workflows, whose own steps are asked, nor for
    ``sleep`` and ``wait_for_event`` nodes, nor for steps pinned with ``executor="local"``,
    which always run in this process). With no answer the step runs in this process
    (:class:`~stepstream.executor.LocalExecutor`). A step that names an executor
    (``step(executor="ray")``) and gets none, or gets one of another name, fails with a
    :class:`~stepstream.errors.StepExecutionError` that says which plugin to register. The
    built-in ``ray`` plugin (:class:`~stepstream.plugins.ray_executor.RayExecutor`) answers
    for steps that ask for ``"ray"``, or for every step when told so.

    :param step: The step about to run; ``step.executor`` is the name it asks for, if any.
    :param workflow_id: The id of the workflow the step belongs to.
    :return: A :class:`~stepstream.executor.StepExecutor`, or ``None`` to let another plugin
        answer.

    Decision hook (firstresult): errors propagate and fail the step.
    """
