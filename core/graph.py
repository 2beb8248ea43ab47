"""The nodes a workflow's graph is made of, and the ``map`` step (pure data, no execution)."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from pydantic import BaseModel

from .context import StepContext
from .errors import (
    StepExecutionError,
    StepTimeoutError,
    WorkflowDefinitionError,
    describe_error,
)
from .steps import Step, to_jsonable

if TYPE_CHECKING:
    from .usage import Budget, PriceTable

__all__ = [
    "BranchNode",
    "Condition",
    "EventStep",
    "ForeachNode",
    "LoopNode",
    "MapStep",
    "Node",
    "ParallelNode",
    "SleepStep",
    "StepNode",
    "WorkflowGraph",
    "as_workflow",
    "describe_node",
    "generated_id",
    "node_steps",
    "spec_step_ids",
]

Condition = Callable[[StepContext[Any]], bool | Awaitable[bool]]
"""A branch or loop condition: takes a :class:`StepContext`, may be sync or async."""


@dataclass(frozen=True)
class StepNode:
    """Run one step (a nested workflow is a step too)."""

    step: Step[Any, Any]


@dataclass(frozen=True)
class ParallelNode:
    """Run steps concurrently on the same input; output is a dict keyed by step id."""

    steps: tuple[Step[Any, Any], ...]


@dataclass(frozen=True)
class BranchNode:
    """Run the steps whose condition holds, concurrently; output keyed by the taken ids."""

    branches: tuple[tuple[Condition, Step[Any, Any]], ...]


@dataclass(frozen=True)
class LoopNode:
    """Run ``step`` repeatedly: ``dowhile`` while the condition holds, ``dountil`` until it does."""

    step: Step[Any, Any]
    condition: Condition
    until: bool


@dataclass(frozen=True)
class ForeachNode:
    """Run ``step`` on every item of a list input, ``concurrency`` at a time; one step triple."""

    step: Step[Any, Any]
    concurrency: int


Node = StepNode | ParallelNode | BranchNode | LoopNode | ForeachNode


def generated_id(kind: str, workflow_id: str, position: int) -> str:
    """The id of a step the builder makes (``.map()``, ``.sleep()``): ``<kind>_<uuid>``,
    Mastra's shape, but a UUID derived from the workflow's id and the step's position in its
    graph instead of a random one, so that a stored run names the same steps as the workflow
    imported again in another process (time travel, recovery, the Studio's graph)."""
    return f"{kind}_{uuid.uuid5(uuid.NAMESPACE_URL, f'stepstream:{workflow_id}/{position}/{kind}')}"


class MapStep(Step[Any, Any]):
    """The visible step ``.map()`` adds (id ``mapping_<uuid>``, as in Mastra; ``.map()``
    gives it a :func:`generated_id`, a map step made on its own a random one).

    Its function receives the :class:`StepContext` whose ``input_data`` is the previous step's
    output; a mapping spec is a dict of output keys to sources:
    ``{"step": step, "path": "a.b"}`` (or ``{"step": [a, b], ...}``: the first of those steps
    that ran), ``{"init_data": workflow, "path": "a"}``, ``{"fn": function of the context}``,
    ``{"runtime_context": "key"}`` or ``{"value": constant}``. A path of ``"."`` (or ``""``)
    means the whole value.
    """

    def __init__(
        self,
        mapping: Callable[[StepContext[Any]], Any] | Mapping[str, Any],
        *,
        id: str | None = None,
    ) -> None:
        self.spec: dict[str, Any] | None = None
        """The mapping spec, when given as one (checked against the workflow at commit())."""
        if callable(mapping):
            fn = mapping
        elif isinstance(mapping, Mapping):
            self.spec = dict(mapping)
            fn = _spec_function(self.spec)
        else:
            raise WorkflowDefinitionError(f"map() takes a function or a dict, got {mapping!r}")
        step_id = id or f"mapping_{uuid.uuid4()}"

        async def execute(ctx: StepContext[Any]) -> Any:
            try:
                value = fn(ctx)
                return await value if inspect.isawaitable(value) else value
            except Exception as exc:  # said with the map step's id: it has no name of its own
                raise StepExecutionError(
                    f"map step {step_id!r} raised {describe_error(exc)}",
                    run_id=ctx.run_id,
                    step_id=step_id,
                ) from exc

        super().__init__(id=step_id, execute=execute)
        # Map functions are expected to be cheap: they run on the event loop even when sync.
        self.is_async = True


class SleepStep(Step[Any, Any]):
    """The visible step ``.sleep()`` / ``.sleep_until()`` add (id ``sleep_<uuid>``: a
    :func:`generated_id` from the builder, a random one for a sleep step made on its own).

    It passes its input through. The wake-up time counts from the step's start as stored, so
    a run recovered after a crash sleeps only what was left.
    """

    def __init__(
        self,
        *,
        seconds: float | Callable[[StepContext[Any]], Any] | None = None,
        until: datetime | Callable[[StepContext[Any]], Any] | None = None,
        id: str | None = None,
    ) -> None:
        if (seconds is None) == (until is None):
            raise WorkflowDefinitionError("sleep needs either seconds or a time to sleep until")
        if isinstance(seconds, int | float) and seconds < 0:
            raise WorkflowDefinitionError(f"sleep() needs a duration >= 0, got {seconds}")
        super().__init__(id=id or f"sleep_{uuid.uuid4()}", execute=lambda ctx: ctx.input_data)
        self.seconds = seconds
        self.until = until

    async def wake_at(self, ctx: StepContext[Any], started_at_ms: int) -> float:
        """The epoch time (seconds) to wake up at; a function (sync or async) of the step's
        context gives the duration or the time, as in Mastra's ``sleep(fn)``.

        :raises StepExecutionError: if the function gives something else.
        """
        if self.seconds is not None:
            seconds = await _called(self.seconds, ctx)
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
                raise StepExecutionError(
                    f"sleep step {self.id!r}: its function must give a duration in seconds "
                    f">= 0, got {seconds!r}",
                    run_id=ctx.run_id,
                    step_id=self.id,
                )
            return started_at_ms / 1000 + seconds
        target = await _called(self.until, ctx)
        if not isinstance(target, datetime):
            raise StepExecutionError(
                f"sleep_until step {self.id!r}: its function must give a datetime, got {target!r}",
                run_id=ctx.run_id,
                step_id=self.id,
            )
        if target.tzinfo is None:
            target = target.replace(tzinfo=UTC)
        return target.timestamp()


async def _called(value: Any, ctx: StepContext[Any]) -> Any:
    """``value``, or what it gives (awaited) when it is a function of the context."""
    if not callable(value):
        return value
    answer = value(ctx)
    return await answer if inspect.isawaitable(answer) else answer


class EventStep(Step[Any, Any]):
    """The step ``.wait_for_event(name, step)`` adds: it waits for ``run.send_event(name,
    data)``, then runs ``step`` with ``ctx.resume_data`` = ``data``.

    How it waits depends on the run (the engine decides): a run in memory waits in place, as
    Mastra's does (``step-waiting``, the run stays ``running``, ``timeout`` seconds at most);
    a durable run suspends at the step (payload ``{"event": name}``), so that it can be stored
    and continued by whichever process gets the event.
    """

    def __init__(self, event: str, step: Step[Any, Any], timeout: float | None = None) -> None:
        if not isinstance(event, str) or not event:
            raise WorkflowDefinitionError(
                f"wait_for_event() needs an event name (a non-empty string), got {event!r}"
            )
        if timeout is not None and (
            not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0
        ):
            raise WorkflowDefinitionError(
                f"wait_for_event({event!r}): timeout must be a number of seconds > 0, "
                f"got {timeout!r}"
            )
        super().__init__(
            id=step.id,
            input_schema=step.input_schema,
            output_schema=step.output_schema,
            resume_schema=step.resume_schema,
            description=step.description,
        )
        self.event = event
        self.inner = step
        self.wait_timeout = timeout
        """Seconds the step waits for its event, counted from its start; ``None``: for ever."""
        self.is_async = step.is_async

    def late(self, started_at_ms: int, now_ms: int) -> bool:
        """Whether the event comes after the step's timeout (counted from its start)."""
        return self.wait_timeout is not None and now_ms - started_at_ms > self.wait_timeout * 1000

    def timed_out(self, run_id: str, step_id: str) -> StepTimeoutError:
        """The error of a wait that outlasted its timeout (Mastra's text, then ours)."""
        assert self.wait_timeout is not None
        return StepTimeoutError(
            f"Timeout waiting for event: step {self.id!r} waited longer than its timeout of "
            f"{self.wait_timeout:g}s for event {self.event!r}",
            run_id=run_id,
            step_id=step_id,
        )

    async def run(self, ctx: StepContext[Any]) -> Any:
        if ctx.resume_data is None:
            ctx.suspend({"event": self.event})
        return await self.inner.run(ctx)

    def call_sync(self, ctx: StepContext[Any]) -> Any:
        if ctx.resume_data is None:
            ctx.suspend({"event": self.event})
        return self.inner.call_sync(ctx)


_SOURCES = ("step", "init_data", "runtime_context", "value", "fn")


def _spec_function(spec: dict[str, Any]) -> Callable[[StepContext[Any]], Awaitable[dict[str, Any]]]:
    for key, source in spec.items():
        if not isinstance(source, Mapping) or not (set(_SOURCES) & set(source)):
            raise WorkflowDefinitionError(
                f"map() source for {key!r} must be a dict with one of 'step', 'init_data', "
                f"'runtime_context', 'value' or 'fn', got {source!r}"
            )
        if "fn" in source and not callable(source["fn"]):
            raise WorkflowDefinitionError(
                f"map() source for {key!r}: 'fn' must be a function of the step context, "
                f"got {source['fn']!r}"
            )

    async def resolve(ctx: StepContext[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, source in spec.items():
            if "value" in source:
                out[key] = source["value"]
            elif "fn" in source:  # Mastra's `{schema, fn}`: computed from the context
                value = source["fn"](ctx)
                out[key] = to_jsonable(await value if inspect.isawaitable(value) else value)
            elif "runtime_context" in source:
                out[key] = ctx.runtime_context.get(source["runtime_context"])
            elif "step" in source:
                value = to_jsonable(_first_result(ctx, source["step"]))
                # A step that did not run gives nothing (Mastra's `undefined`), not an error.
                out[key] = None if value is None else _at_path(value, source.get("path", "."), key)
            else:
                value = to_jsonable(ctx.get_init_data())
                out[key] = _at_path(value, source.get("path", "."), key)
        return out

    return resolve


def spec_step_ids(spec: Mapping[str, Any]) -> dict[str, list[str]]:
    """The step ids each key of a mapping spec reads from (``{"step": ...}`` sources)."""
    found: dict[str, list[str]] = {}
    for key, source in spec.items():
        if "step" in source:
            named = source["step"] if isinstance(source["step"], list | tuple) else [source["step"]]
            found[key] = [s.id if isinstance(s, Step) else str(s) for s in named]
    return found


def _first_result(ctx: StepContext[Any], steps: Any) -> Any:
    """The output of ``steps`` (one step, or the first of a list that ran, as in Mastra)."""
    if not isinstance(steps, list | tuple):
        return ctx.get_step_result(steps)
    for candidate in steps:
        found = ctx.get_step_result(candidate)
        if found is not None:
            return found
    return None


def _at_path(value: Any, path: str, key: str) -> Any:
    if path in ("", "."):
        return value
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyError(f"map(): path {path!r} for {key!r} not found")
    return value


def node_steps(node: Node) -> tuple[Step[Any, Any], ...]:
    """The steps a node runs directly."""
    if isinstance(node, ParallelNode):
        return node.steps
    if isinstance(node, BranchNode):
        return tuple(s for _, s in node.branches)
    return (node.step,)


def describe_node(node: Node) -> str:
    """A short human description of a node for error messages."""
    ids = ", ".join(repr(s.id) for s in node_steps(node))
    kind = type(node).__name__.removesuffix("Node").lower()
    return f"{kind}({ids})"


class WorkflowGraph(Protocol):
    """What the engine needs of a committed workflow (a :class:`~stepstream.Workflow`, which
    is built on this module): its id, its nodes, its input schema, what a run may spend."""

    @property
    def id(self) -> str:
        """The workflow's id (a nested workflow's step id)."""
        ...

    @property
    def nodes(self) -> Sequence[Node]:
        """The graph, node by node in order."""
        ...

    @property
    def input_schema(self) -> type[BaseModel] | None:
        """The model the workflow's input is validated against."""
        ...

    @property
    def prices(self) -> PriceTable | None:
        """The price table of the run's usage (a top-level workflow's applies)."""
        ...

    @property
    def budget(self) -> Budget | None:
        """What one run may spend at most (a top-level workflow's applies)."""
        ...

    def parse_input(self, data: Any) -> Any:
        """Validate the JSON-form input into the input schema.

        :raises InputValidationError: if it does not match.
        """
        ...


def as_workflow(step: Step[Any, Any]) -> WorkflowGraph | None:
    """``step`` as a nested workflow, or ``None`` if it is a plain step."""
    # Told by the class flag: every step whose flag is set is a Workflow.
    return cast("WorkflowGraph", step) if step.is_workflow else None
