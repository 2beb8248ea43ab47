"""What a step sees: :class:`RuntimeContext` (per-run values) and :class:`StepContext`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Generic, NoReturn, Protocol, TypeVar, overload

from .events import STEP_EMITTABLE, StepUsageEvent
from .result import now_ms

if TYPE_CHECKING:
    # pluggy's manager and StepLike, not stepstream's PluginManager and Step: the hook specs
    # behind that manager and the steps themselves are built on this module.
    from pluggy import PluginManager

    from .step_like import StepLike
    from .usage import Usage

__all__ = ["Bail", "RuntimeContext", "StepContext", "StepServices", "Suspend"]

InputT = TypeVar("InputT")
OutputT = TypeVar("OutputT")
EventT = TypeVar("EventT")


class RuntimeContext(MutableMapping[str, Any]):
    """Values the caller hands to every step of a run (Mastra's ``RuntimeContext``).

    A :class:`~collections.abc.MutableMapping` of strings to values, so everything a ``dict``
    reader expects works (``ctx["k"]``, ``in``, ``items()``, ``update()``, ``pop()``,
    ``dict(ctx)``), plus Mastra's method names (``get``, ``set``, ``has``, ``delete``).
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values: dict[str, Any] = dict(values or {})

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value for ``key``, or ``default``."""
        return self._values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        """Set ``key`` to ``value``."""
        self._values[key] = value

    def has(self, key: str) -> bool:
        """Whether ``key`` is set."""
        return key in self._values

    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it was set."""
        return self._values.pop(key, _MISSING) is not _MISSING

    def to_dict(self) -> dict[str, Any]:
        """A copy of the values."""
        return dict(self._values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._values[key] = value

    def __delitem__(self, key: str) -> None:
        del self._values[key]

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"RuntimeContext({self._values!r})"


_MISSING = object()
STEP_EMITTABLE_NAMES = (
    "tool-call-streaming-start, tool-call-delta, tool-call, tool-result, error, step-output, "
    "step-usage"
)


class Suspend(BaseException):
    """Raised by :meth:`StepContext.suspend` to stop the step; the engine catches it.

    It derives from ``BaseException`` so that a step's ``except Exception`` does not swallow it.
    """

    def __init__(self, payload: Any) -> None:
        super().__init__("step suspended")
        self.payload = payload


class Bail(BaseException):
    """Raised by :meth:`StepContext.bail` to end the run early with a result (Mastra's
    ``bail``); a ``BaseException`` for the same reason as :class:`Suspend`."""

    def __init__(self, payload: Any) -> None:
        super().__init__("step bailed")
        self.payload = payload


class StepServices(Protocol):
    """What the engine provides behind a :class:`StepContext` (one object per workflow scope)."""

    def lookup(self, step: str | StepLike[Any]) -> Any:
        """The output of an earlier step of the same workflow, or ``None``."""
        ...

    def init_data(self) -> Any:
        """The workflow's input."""
        ...

    def results(self) -> dict[str, Any]:
        """The outputs of the steps of the same workflow that have succeeded so far."""
        ...

    async def write(self, step_id: str, data: Any) -> None:
        """Emit ``data`` as a ``step-output`` event of ``step_id``."""
        ...

    def is_canceled(self) -> bool:
        """Whether the run has been canceled."""
        ...

    async def emit(self, cls: type[Any], fields: dict[str, Any]) -> Any:
        """Emit an event of ``cls`` with ``fields`` in the run's stream."""
        ...

    @property
    def plugin_manager(self) -> PluginManager:
        """The run's plugin manager."""
        ...


class StepContext(Generic[InputT]):
    """The argument of every step function, condition and ``map`` function.

    :ivar input_data: The step's input, an instance of its input schema when it has one.
    :ivar runtime_context: The run's :class:`RuntimeContext`.
    :ivar run_id: The run's id.
    :ivar workflow_id: The id of the workflow the step belongs to.
    :ivar step_id: The step's id as it appears in the stream.
    :ivar resume_data: The data given to ``run.resume()`` when this step is being resumed.
    :ivar run_count: How many times this step ran before in this execution (Mastra's
        ``runCount``): 0 the first time, 1 on a loop's second iteration, and so on.
    """

    __slots__ = (
        "_services",
        "input_data",
        "resume_data",
        "run_count",
        "run_id",
        "runtime_context",
        "step_id",
        "suspend_payload",
        "workflow_id",
    )

    def __init__(
        self,
        *,
        input_data: InputT,
        runtime_context: RuntimeContext,
        run_id: str,
        workflow_id: str,
        step_id: str,
        services: StepServices,
        resume_data: Any = None,
        suspend_payload: Any = None,
        run_count: int = 0,
    ) -> None:
        self.input_data = input_data
        self.run_count = run_count
        self.runtime_context = runtime_context
        self.run_id = run_id
        self.workflow_id = workflow_id
        self.step_id = step_id
        self.resume_data = resume_data
        self.suspend_payload = suspend_payload
        self._services = services

    @overload
    def get_step_result(self, step: StepLike[OutputT]) -> OutputT | None: ...

    @overload
    def get_step_result(self, step: str) -> Any: ...

    def get_step_result(self, step: str | StepLike[Any]) -> Any:
        """Return the output of an earlier step (by object or id) of the same workflow.

        The output is an instance of that step's output schema when it has one; ``None`` if
        the step has not run.
        """
        return self._services.lookup(step)

    def get_step_results(self) -> dict[str, Any]:
        """Return the outputs of every step of the same workflow that has succeeded so far,
        by step id, each as :meth:`get_step_result` returns it."""
        return self._services.results()

    def get_init_data(self) -> Any:
        """Return the workflow's input (an instance of its input schema when it has one)."""
        return self._services.init_data()

    def suspend(self, payload: Any = None) -> NoReturn:
        """Suspend the run at this step with ``payload``; the step stops here.

        Both ``ctx.suspend(p)`` and ``await ctx.suspend(p)`` work. The step runs again from the
        start when the run is resumed, with ``ctx.resume_data`` set.
        """
        raise Suspend(payload)

    def bail(self, result: Any = None) -> NoReturn:
        """End the run here, successfully, with ``result`` (Mastra's ``bail``): this step
        succeeds with ``result`` as its output, and no later step of its workflow runs.

        In a nested workflow, the nested workflow ends with ``result`` as its output and the
        parent goes on from it.
        """
        raise Bail(result)

    async def write(self, data: Any) -> None:
        """Emit ``data`` to the run's stream as a ``step-output`` event (waits on backpressure)."""
        await self._services.write(self.step_id, data)

    async def emit(self, cls: type[EventT], **fields: Any) -> EventT:
        """Emit one of the events a step may produce itself, stamped with the run id and the
        next sequence number: ``tool-call-streaming-start``, ``tool-call-delta``,
        ``tool-call``, ``tool-result``, ``error``, ``step-output`` or ``step-usage`` (see
        :meth:`report_usage`). Agent steps use it; it waits on backpressure like every event.

        :raises ValueError: for lifecycle events (``start``, ``step-*``, ``finish``...), which
            only the engine emits.
        """
        if cls not in STEP_EMITTABLE:
            raise ValueError(f"a step cannot emit {cls.__name__}; only {STEP_EMITTABLE_NAMES}")
        event: EventT = await self._services.emit(cls, fields)
        return event

    async def report_usage(
        self,
        usage: Usage,
        *,
        model: str,
        provider: str,
        started_at: int,
        response_model: str | None = None,
        finish_reason: str | None = None,
    ) -> None:
        """Report the token usage of one model response this step received.

        The engine prices it with the workflow's price table, adds it to this step's record
        (``StepRecord.usage``), to the nested workflows around it and to the run's total
        (``WorkflowResult.usage``), emits a ``step-usage`` event and then checks the run's
        budget. Agent steps call it after each response; any step that calls a model itself
        may too.

        :param usage: The response's token counts (its ``cost`` is kept when the price table
            has no price for the model).
        :param model: The model asked for.
        :param provider: Who serves it (``"openai"`` for any OpenAI-compatible endpoint).
        :param started_at: When the request was sent, ms since the epoch.
        :param response_model: The model the provider says answered, when it says.
        :param finish_reason: Why the response ended (``stop``, ``tool_calls``...).
        :raises BudgetExceededError: when the run is now beyond its budget (the step should
            let it propagate: it fails the step and the run).
        """
        await self.emit(
            StepUsageEvent,
            step_id=self.step_id,
            model=model,
            response_model=response_model,
            provider=provider,
            finish_reason=finish_reason,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost=usage.cost,
            started_at=started_at,
            ended_at=now_ms(),
        )

    @property
    def plugin_manager(self) -> PluginManager:
        """The run's plugin manager (decision hooks such as ``make_stream_adapter``)."""
        return self._services.plugin_manager

    @property
    def is_canceled(self) -> bool:
        """Whether the run has been canceled; long steps may check it to stop early."""
        return self._services.is_canceled()
