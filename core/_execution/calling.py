"""Calling a step's function: on the executor chosen for it, with its timeout and retries."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import tenacity

from .._dispatch import Dispatcher
from ..context import StepContext
from ..errors import StepExecutionError, StepTimeoutError
from ..executor import LocalExecutor, StepExecutor, run_locally
from ..plugin_manager import OPTIONAL_PLUGINS
from ..result import StepRecord
from ..steps import Step


class StepCaller:
    """Calls steps' functions for one execution, keeping the executor chosen for each step."""

    def __init__(self, run_id: str, dispatcher: Dispatcher) -> None:
        self.run_id = run_id
        self.d = dispatcher
        self.executors: dict[Step[Any, Any], StepExecutor] = {}
        """The executor chosen for each step that asked ``make_step_executor``."""

    async def call(self, step: Step[Any, Any], ctx: StepContext[Any], record: StepRecord) -> Any:
        """Call the step's function, with its timeout and retries (counted in ``record``)."""
        record.attempts = 0
        if not step.retries and step.timeout is None:
            record.attempts = 1
            return await self._invoke(step, ctx)
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(step.retries + 1),
            wait=tenacity.wait_exponential(multiplier=step.retry_delay, max=30)
            if step.retry_delay
            else tenacity.wait_none(),
            retry=tenacity.retry_if_exception_type(Exception),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                record.attempts += 1
                return await self._attempt(step, ctx)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _attempt(self, step: Step[Any, Any], ctx: StepContext[Any]) -> Any:
        call = self._invoke(step, ctx)
        if step.timeout is None:
            return await call
        try:
            return await asyncio.wait_for(call, step.timeout)
        except TimeoutError:
            raise StepTimeoutError(
                f"step {step.id!r} took longer than its timeout of {step.timeout:g}s",
                run_id=self.run_id,
                step_id=ctx.step_id,
            ) from None

    def _invoke(self, step: Step[Any, Any], ctx: StepContext[Any]) -> Awaitable[Any]:
        """One call of the step's function, on the executor chosen for it."""
        if step.executor is None and not self.d.decides("make_step_executor"):
            return run_locally(step, ctx)  # the default, without asking anyone
        executor = self.executors.get(step)
        if executor is None:
            executor = self.executors[step] = self._choose_executor(step, ctx)
        return executor.execute(step, ctx)

    def _choose_executor(self, step: Step[Any, Any], ctx: StepContext[Any]) -> StepExecutor:
        if step.executor == LocalExecutor.name:  # pinned to this process: nobody is asked
            return LocalExecutor()
        chosen = self.d.decide("make_step_executor", step=step, workflow_id=ctx.workflow_id)
        if step.executor is None:  # any answer will do, or none
            return chosen or LocalExecutor()
        if chosen is not None and chosen.name == step.executor:
            return chosen  # type: ignore[no-any-return]
        got = "none" if chosen is None else f"{chosen.name!r}"
        # An optional built-in plugin named like the executor provides it (``ray``).
        provider = OPTIONAL_PLUGINS.get(step.executor, "").replace(":", ".")
        hint = provider and f"; register {provider} (the {step.executor!r} plugin)"
        raise StepExecutionError(
            f"step {step.id!r} asks for the {step.executor!r} executor, but the run's plugins "
            f"provide {got}{hint}",
            run_id=self.run_id,
            step_id=ctx.step_id,
        )
