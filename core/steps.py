"""Steps: typed units of work, made with :func:`step` or :class:`Step`."""

from __future__ import annotations

import copy
import inspect
import sys
import typing
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar, overload

from pydantic import BaseModel, RootModel
from pydantic import ValidationError as PydanticValidationError

from .context import StepContext
from .errors import (
    InputValidationError,
    OutputValidationError,
    ValidationError,
    WorkflowDefinitionError,
)

__all__ = [
    "Step",
    "StepFunction",
    "StepMaker",
    "clone_step",
    "schema_of",
    "step",
    "to_jsonable",
    "unwrap",
]

InputT = TypeVar("InputT")
OutputT = TypeVar("OutputT")
I = TypeVar("I")  # noqa: E741 - the input type of a step made by the decorator
O = TypeVar("O")  # noqa: E741 - its output type

StepFunction = Callable[[StepContext[Any]], Awaitable[Any] | Any]
"""A step's function: takes the :class:`StepContext`, returns (or awaits to) the output."""


class Step(Generic[InputT, OutputT]):
    """A unit of work with an id, optional pydantic schemas and an ``execute`` function.

    ``execute`` may be sync or async. Async functions run on the event loop; sync ones run in
    a worker thread so that blocking I/O does not stall other runs.

    :param id: Unique within its workflow; it is the step's id in the stream and the state.
    :param execute: The step's function, taking a :class:`StepContext`.
    :param input_schema: Pydantic model the input is validated into (``ctx.input_data``).
    :param output_schema: Pydantic model the output is validated against.
    :param resume_schema: Pydantic model ``resume_data`` is validated into on resume.
    :param suspend_schema: Pydantic model the suspend payload is validated against.
    :param description: Free text for humans and tools.
    :param retries: How many times to run the function again when it raises (or times out);
        the attempts made are in the step's record (``attempts``).
    :param timeout: Seconds each attempt may take; past that it fails with
        :class:`~stepstream.errors.StepTimeoutError` (a sync function's thread cannot be
        stopped and runs on in the background).
    :param retry_delay: The first wait between attempts, doubled after each (capped at 30 s).
    :param executor: The name of the executor the step must run on (``"ray"``: a Ray task,
        see :class:`~stepstream.plugins.ray_executor.RayExecutor`; ``"local"``: always in this
        process); by default plugins choose, and steps run in this process.
    """

    is_workflow = False
    """True for :class:`~stepstream.Workflow`, which the engine runs as a nested graph."""

    def __init__(
        self,
        *,
        id: str,
        execute: StepFunction | None = None,
        input_schema: type[BaseModel] | None = None,
        output_schema: type[BaseModel] | None = None,
        resume_schema: type[BaseModel] | None = None,
        suspend_schema: type[BaseModel] | None = None,
        description: str | None = None,
        retries: int = 0,
        timeout: float | None = None,
        retry_delay: float = 0.5,
        executor: str | None = None,
    ) -> None:
        if retries < 0 or (timeout is not None and timeout <= 0) or retry_delay < 0:
            raise WorkflowDefinitionError(
                f"step {id!r}: retries and retry_delay must be >= 0 and timeout > 0"
            )
        if not isinstance(id, str) or not id:
            raise WorkflowDefinitionError(f"a step id must be a non-empty string, got {id!r}")
        for name, schema in (
            ("input_schema", input_schema),
            ("output_schema", output_schema),
            ("resume_schema", resume_schema),
            ("suspend_schema", suspend_schema),
        ):
            if schema is not None and not (
                isinstance(schema, type) and issubclass(schema, BaseModel)
            ):
                raise WorkflowDefinitionError(
                    f"step {id!r}: {name} must be a pydantic BaseModel subclass, got {schema!r}"
                )
        self.id = id
        self.description = description
        self.input_schema = input_schema
        self.output_schema = output_schema
        self.resume_schema = resume_schema
        self.suspend_schema = suspend_schema
        self.retries = retries
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.executor = executor
        self._execute = execute
        self.is_async = execute is None or inspect.iscoroutinefunction(execute)

    async def run(self, ctx: StepContext[Any]) -> Any:
        """Run the step's function with ``ctx`` (the engine calls this; override to customise)."""
        if self._execute is None:
            raise NotImplementedError(f"step {self.id!r} has no execute function")
        result = self._execute(ctx)
        if inspect.isawaitable(result):
            result = await result
        return result

    def call_sync(self, ctx: StepContext[Any]) -> Any:
        """Call a sync step's function (the engine runs this in a worker thread)."""
        if self._execute is None:
            raise NotImplementedError(f"step {self.id!r} has no execute function")
        return self._execute(ctx)

    # -- validation (pure) ------------------------------------------------------------------

    def _validate(
        self,
        schema: type[BaseModel],
        data: Any,
        error: type[ValidationError],
        what: str,
    ) -> BaseModel:
        try:
            return schema.model_validate(data)
        except PydanticValidationError as exc:
            raise error(
                f"step {self.id!r} {what} {schema.__name__}: {_summarise(exc)}",
                step_id=self.id,
                errors=_errors(exc),
            ) from exc

    def parse_input(self, data: Any) -> Any:
        """Validate JSON-form ``data`` into the input schema (unchanged without a schema)."""
        if self.input_schema is None:
            return data
        return unwrap(
            self._validate(self.input_schema, data, InputValidationError, "input does not match")
        )

    def dump_output(self, value: Any) -> Any:
        """Validate ``value`` against the output schema and return its JSON form."""
        if self.output_schema is None:
            return to_jsonable(value)
        if isinstance(value, self.output_schema):
            model = value
        else:
            model = self._validate(
                self.output_schema,
                to_jsonable(value),
                OutputValidationError,
                "returned output that does not match",
            )
        if isinstance(model, RootModel):
            # A plain annotation checks the value; what pydantic cannot dump as JSON stays
            # as it is, as for a step without a schema (a local step may pass a client on).
            return to_jsonable(model.root)
        return model.model_dump(mode="json", by_alias=True)

    def parse_output(self, data: Any) -> OutputT:
        """Turn stored JSON-form output back into an output-schema instance, when there is one."""
        # The schema was built from the step's declared output type, so what it validates is
        # an OutputT (a plain annotation's RootModel is unwrapped to its value).
        parsed: OutputT = (
            data
            if self.output_schema is None or data is None
            else unwrap(self.output_schema.model_validate(data))
        )
        return parsed

    def dump_suspend(self, payload: Any) -> Any:
        """Validate a suspend payload against the suspend schema; return its JSON form."""
        if self.suspend_schema is None or payload is None:
            return to_jsonable(payload)
        model = self._validate(
            self.suspend_schema,
            to_jsonable(payload),
            ValidationError,
            "suspend payload does not match",
        )
        return model.model_dump(mode="json", by_alias=True)

    def parse_resume(self, data: Any) -> Any:
        """Validate resume data into the resume schema (unchanged without one)."""
        if self.resume_schema is None or data is None:
            return data
        return unwrap(
            self._validate(
                self.resume_schema, data, InputValidationError, "resume data does not match"
            )
        )

    def renamed(self, id: str) -> Step[InputT, OutputT]:
        """A shallow copy of this step under another id (see :func:`clone_step`)."""
        clone = copy.copy(self)
        clone.id = id
        return clone

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r})"


def clone_step(step: Step[InputT, OutputT], *, id: str) -> Step[InputT, OutputT]:
    """A copy of ``step`` under the id ``id`` (Mastra's ``cloneStep(step, {id})``): the same
    function, schemas, retries, timeout and executor, so that one step can run at several
    places of a workflow (ids are unique within one). ``ctx.get_step_result(clone)`` reads the
    clone's output. A nested workflow is cloned as with :func:`~stepstream.clone_workflow`.

    :raises WorkflowDefinitionError: if ``step`` is not a step or ``id`` is not a non-empty
        string.
    """
    if not isinstance(step, Step):
        raise WorkflowDefinitionError(f"clone_step() takes a Step, got {step!r}")
    if not isinstance(id, str) or not id:
        raise WorkflowDefinitionError(
            f"clone_step({step.id!r}): the clone's id must be a non-empty string, got {id!r}"
        )
    return step.renamed(id)


def to_jsonable(value: Any) -> Any:
    """The JSON form of a value: pydantic models are dumped (also inside dicts, lists and
    tuples, as in ``{"result": ctx.get_init_data()}``), other values pass through."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def _errors(exc: PydanticValidationError) -> list[dict[str, object]]:
    return [dict(e) for e in exc.errors(include_url=False, include_context=False)]


def _summarise(exc: PydanticValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def unwrap(value: Any) -> Any:
    """The value itself for a schema made from a plain annotation (a ``RootModel``)."""
    return value.root if isinstance(value, RootModel) else value


def schema_of(annotation: Any, where: str) -> type[BaseModel] | None:
    """The schema an annotation stands for: a model as it is, any other type pydantic can
    validate (``int``, ``dict[str, float]``, ``list[Model]``...) as a ``RootModel`` of it;
    ``None`` for ``Any`` (nothing to check).

    :raises WorkflowDefinitionError: if pydantic cannot validate the annotation (it is never
        silently ignored).
    """
    if annotation is Any or annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    try:
        model: type[BaseModel] = RootModel[annotation]
    except Exception as exc:
        raise WorkflowDefinitionError(
            f"{where}: pydantic cannot validate the annotation {annotation!r} "
            f"({type(exc).__name__}: {exc}); annotate with a type it can validate, or Any"
        ) from exc
    return model


def _infer_schemas(
    fn: Callable[..., Any], localns: dict[str, Any] | None
) -> tuple[type[BaseModel] | None, type[BaseModel] | None]:
    """Read ``StepContext[T]`` and a ``-> T`` return annotation, when given: a model, or any
    type pydantic can validate (see :func:`schema_of`).

    ``localns`` resolves models defined in the decorating scope (string annotations under
    ``from __future__ import annotations`` only see module globals otherwise).
    """
    name = getattr(fn, "__name__", fn)
    try:
        hints = typing.get_type_hints(fn, localns=localns)
    except Exception as exc:
        raise WorkflowDefinitionError(
            f"step {name!r}: cannot resolve its annotations "
            f"({type(exc).__name__}: {exc}); pass input_schema=/output_schema= explicitly"
        ) from exc
    input_schema = output_schema = None
    if "return" in hints:
        output_schema = schema_of(hints["return"], f"step {name!r} return annotation")
    params = [h for k, h in hints.items() if k != "return"]
    if params and typing.get_origin(params[0]) is StepContext:
        args = typing.get_args(params[0])
        if args:
            input_schema = schema_of(args[0], f"step {name!r} input annotation")
    return input_schema, output_schema


class StepMaker(Protocol):
    """What ``@step(...)`` with arguments returns: it turns a function into a typed step."""

    @overload
    def __call__(self, fn: Callable[[StepContext[I]], Awaitable[O]], /) -> Step[I, O]: ...

    @overload
    def __call__(self, fn: Callable[[StepContext[I]], O], /) -> Step[I, O]: ...


class _StepDecorator:
    """The :func:`step` decorator; ``step.from_agent(agent)`` makes an agent-backed step.

    The step it makes is typed from the function: ``ctx: StepContext[In]`` and ``-> Out``
    (or an ``async`` function returning ``Out``) give a ``Step[In, Out]``, so
    ``ctx.get_step_result(that_step)`` and ``result.output_of(that_step)`` are ``Out``.
    """

    @overload
    def __call__(self, fn: Callable[[StepContext[I]], Awaitable[O]], /) -> Step[I, O]: ...

    @overload
    def __call__(self, fn: Callable[[StepContext[I]], O], /) -> Step[I, O]: ...

    @overload
    def __call__(
        self,
        fn: None = None,
        /,
        *,
        id: str | None = None,
        input_schema: type[BaseModel] | None = None,
        output_schema: type[BaseModel] | None = None,
        resume_schema: type[BaseModel] | None = None,
        suspend_schema: type[BaseModel] | None = None,
        description: str | None = None,
        retries: int = 0,
        timeout: float | None = None,
        retry_delay: float = 0.5,
        executor: str | None = None,
    ) -> StepMaker: ...

    def __call__(
        self,
        fn: StepFunction | None = None,
        /,
        *,
        id: str | None = None,
        input_schema: type[BaseModel] | None = None,
        output_schema: type[BaseModel] | None = None,
        resume_schema: type[BaseModel] | None = None,
        suspend_schema: type[BaseModel] | None = None,
        description: str | None = None,
        retries: int = 0,
        timeout: float | None = None,
        retry_delay: float = 0.5,
        executor: str | None = None,
    ) -> Step[Any, Any] | StepMaker:
        """Turn a function taking a :class:`StepContext` into a :class:`Step`.

        Use bare (``@step``) or with arguments (``@step(id="fetch-weather", ...)``). The id
        defaults to the function's name; schemas not given are read from the annotations
        ``ctx: StepContext[InputModel]`` and ``-> OutputModel``.
        """

        localns = dict(sys._getframe(1).f_locals)

        def make(func: StepFunction) -> Step[Any, Any]:
            scope = {**localns, **dict(sys._getframe(1).f_locals)}
            inferred_in, inferred_out = _infer_schemas(func, scope)
            return Step(
                id=id or func.__name__,
                execute=func,
                input_schema=input_schema or inferred_in,
                output_schema=output_schema or inferred_out,
                resume_schema=resume_schema,
                suspend_schema=suspend_schema,
                description=description or inspect.getdoc(func),
                retries=retries,
                timeout=timeout,
                retry_delay=retry_delay,
                executor=executor,
            )

        return make(fn) if fn is not None else make

    def from_agent(self, agent: Any, *, executor: str | None = None) -> Step[Any, Any]:
        """Mastra's ``createStep(agent)``: a step whose input is ``{prompt}``, output ``{text}``.

        The agent provides the step through its ``as_step()`` method; ``executor`` names
        where the step runs, as for :func:`step`.
        """
        as_step = getattr(agent, "as_step", None)
        if as_step is None:
            raise WorkflowDefinitionError(f"{agent!r} cannot be used as a step (no as_step())")
        made = as_step() if executor is None else as_step(executor=executor)
        if not isinstance(made, Step):
            raise WorkflowDefinitionError(f"{agent!r}.as_step() did not return a Step")
        return made

    def from_tool(self, tool: Any) -> Step[Any, Any]:
        """Mastra's ``createStep(tool)``: a step named like the tool whose input is the
        tool's arguments (validated against its arguments model) and whose output is the
        tool's result (see :class:`stepstream.agents.Tool`)."""
        args_model = getattr(tool, "args_model", None)
        call = getattr(tool, "call", None)
        if not (isinstance(args_model, type) and issubclass(args_model, BaseModel) and call):
            raise WorkflowDefinitionError(
                f"{tool!r} cannot be used as a step (it needs args_model and call(), as "
                "stepstream.agents.Tool has)"
            )

        async def execute(ctx: StepContext[Any]) -> Any:
            return await call(ctx.input_data)

        return Step(
            id=tool.name,
            execute=execute,
            input_schema=args_model,
            description=getattr(tool, "description", None) or None,
        )


step = _StepDecorator()
"""Decorator making a :class:`Step` from a function; see :meth:`_StepDecorator.__call__`."""
