"""Workflows: a graph of steps built with ``then``/``parallel``/``branch``/... and committed."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, RootModel

from ._loop import sync_twin
from .context import StepContext
from .errors import WorkflowDefinitionError
from .graph import (
    BranchNode,
    Condition,
    EventStep,
    ForeachNode,
    LoopNode,
    MapStep,
    Node,
    ParallelNode,
    SleepStep,
    StepNode,
    describe_node,
    generated_id,
    node_steps,
    spec_step_ids,
)
from .status import is_final
from .steps import Step

if TYPE_CHECKING:
    from .plugin_manager import PluginManager
    from .run import Run
    from .storage import RunSnapshot, Storage
    from .usage import Budget, PriceTable

__all__ = ["Workflow", "clone_workflow"]

_SWEEP_FLOOR = 64
"""The fewest runs a workflow keeps before it looks for ended ones to let go."""


class Workflow(Step[Any, Any]):
    """A workflow of typed steps; once committed it can run, and is itself a step (nesting).

    :param id: The workflow's id (a nested workflow's step id).
    :param input_schema: Pydantic model the run's input data is validated against.
    :param output_schema: Pydantic model describing the result (documentation and graph checks).
    :param plugins: Plugins for every run of this workflow only (each run gets its own
        registration, so they never see other runs' events).
    :param plugin_manager: The manager whose plugins see every run; by default the workflow
        makes its own with :func:`~stepstream.get_plugin_manager` on its first run.
    :param storage: Where runs are kept (snapshots at every step boundary and the event log),
        so they can be resumed by another process; ``None`` keeps runs in memory only.
    :param prices: The price table that turns each run's token usage into cost (see
        :mod:`stepstream.usage`); ``None`` leaves usage unpriced.
    :param budget: What one run may spend at most (tokens and/or cost, over all its
        executions); a run going beyond it fails with
        :class:`~stepstream.errors.BudgetExceededError`. A nested workflow's own budget and
        prices are not used: the top-level workflow's apply to the whole run.
    """

    is_workflow = True

    def __init__(
        self,
        *,
        id: str,
        input_schema: type[BaseModel] | None = None,
        output_schema: type[BaseModel] | None = None,
        description: str | None = None,
        plugins: Iterable[object] = (),
        plugin_manager: PluginManager | None = None,
        storage: Storage | None = None,
        prices: PriceTable | None = None,
        budget: Budget | None = None,
    ) -> None:
        super().__init__(
            id=id, input_schema=input_schema, output_schema=output_schema, description=description
        )
        if budget is not None and budget.max_cost is not None and prices is None:
            raise WorkflowDefinitionError(
                f"workflow {id!r}: a budget with max_cost needs prices= (a PriceTable)",
                workflow_id=id,
            )
        self.storage = storage
        self.prices = prices
        self.budget = budget
        self.nodes: list[Node] = []
        self.plugins = tuple(plugins)
        self._plugin_manager = plugin_manager
        self.committed = False
        self._runs: dict[str, Run] = {}  # runs made here and not ended (Mastra's `#runs`)
        self._sweep_at = _SWEEP_FLOOR  # the size of `_runs` at which ended runs are let go

    # -- building -----------------------------------------------------------------------------

    def _add(self, node: Node) -> Workflow:
        if self.committed:
            raise WorkflowDefinitionError(
                f"workflow {self.id!r} is committed; build a new one to change it",
                workflow_id=self.id,
            )
        for s in node_steps(node):
            if not isinstance(s, Step):
                raise WorkflowDefinitionError(
                    f"workflow {self.id!r}: {s!r} is not a Step (use @step or Step(...))",
                    workflow_id=self.id,
                )
        self.nodes.append(node)
        return self

    def then(self, step: Step[Any, Any]) -> Workflow:
        """Run ``step`` on the previous step's output."""
        return self._add(StepNode(step))

    def parallel(self, steps: Sequence[Step[Any, Any]]) -> Workflow:
        """Run ``steps`` concurrently; the output is a plain dict ``{step_id: output}`` in
        declaration order, each output in its JSON form (models dumped), as the next step, a
        ``map()`` or a condition sees it."""
        if not steps:
            raise WorkflowDefinitionError(f"workflow {self.id!r}: parallel() needs steps")
        return self._add(ParallelNode(tuple(steps)))

    def branch(self, branches: Sequence[tuple[Condition, Step[Any, Any]]]) -> Workflow:
        """Run the steps whose condition holds; the output is a plain dict keyed by the taken
        step ids (as :meth:`parallel`'s). A condition that raises fails the run with an error
        naming its branch and step."""
        if not branches:
            raise WorkflowDefinitionError(f"workflow {self.id!r}: branch() needs branches")
        for item in branches:
            if not (isinstance(item, tuple) and len(item) == 2 and callable(item[0])):
                raise WorkflowDefinitionError(
                    f"workflow {self.id!r}: branch() takes (condition, step) pairs, got {item!r}"
                )
        return self._add(BranchNode(tuple(branches)))

    def dowhile(self, step: Step[Any, Any], condition: Condition) -> Workflow:
        """Run ``step``, then again on its own output while ``condition`` holds."""
        return self._add(LoopNode(step, condition, until=False))

    def dountil(self, step: Step[Any, Any], condition: Condition) -> Workflow:
        """Run ``step``, then again on its own output until ``condition`` holds."""
        return self._add(LoopNode(step, condition, until=True))

    def foreach(self, step: Step[Any, Any], *, concurrency: int = 1) -> Workflow:
        """Run ``step`` on each item of the (list) input; the output is the list of outputs."""
        if concurrency < 1:
            raise WorkflowDefinitionError(
                f"workflow {self.id!r}: foreach() concurrency must be >= 1, got {concurrency}"
            )
        return self._add(ForeachNode(step, concurrency))

    def map(self, mapping: Callable[[StepContext[Any]], Any] | Mapping[str, Any]) -> Workflow:
        """Reshape data between steps with a function or a mapping spec (see :class:`MapStep`)."""
        return self._add(
            StepNode(MapStep(mapping, id=generated_id("mapping", self.id, len(self.nodes))))
        )

    def sleep(self, seconds: float | Callable[[StepContext[Any]], Any]) -> Workflow:
        """Wait ``seconds`` (a visible ``sleep_<uuid>`` step passing its input through), or
        what a function of the step context (sync or async) gives, as Mastra's ``sleep(fn)``
        (Mastra counts milliseconds; stepstream counts seconds)."""
        return self._add(
            StepNode(SleepStep(seconds=seconds, id=generated_id("sleep", self.id, len(self.nodes))))
        )

    def sleep_until(self, when: datetime | Callable[[StepContext[Any]], Any]) -> Workflow:
        """Wait until ``when`` (a datetime, naive = UTC, or a sync or async function of the
        context giving one)."""
        return self._add(
            StepNode(SleepStep(until=when, id=generated_id("sleep", self.id, len(self.nodes))))
        )

    def wait_for_event(
        self, event: str, step: Step[Any, Any], *, timeout: float | None = None
    ) -> Workflow:
        """Run ``step`` once ``run.send_event(event, data)`` is called, with ``data`` as its
        ``ctx.resume_data`` (Mastra's ``waitForEvent``).

        A run kept in memory waits in place, as Mastra's does: the step streams
        ``step-waiting``, the run stays ``running`` and ``start()`` returns after the event
        (then the step's ``step-start``, ``step-result`` and ``step-finish``); past ``timeout``
        seconds (counted from the step's start) the step fails with a
        :class:`~stepstream.errors.StepTimeoutError` naming the event. A durable run (one with
        a storage) suspends at the step instead (payload ``{"event": event}``), so that it is
        stored and nothing holds it while it waits: ``send_event`` resumes it, in this
        process or in another that loaded it; there the timeout is checked when the event
        comes (a late event fails the step). An event sent before the step is reached is
        kept until it is.

        :raises WorkflowDefinitionError: if ``event`` is empty or ``timeout`` is not > 0.
        """
        return self._add(StepNode(EventStep(event, step, timeout)))

    def commit(self) -> Workflow:
        """Check the graph and freeze it; raise :class:`WorkflowDefinitionError` if invalid.

        Checks: the workflow has steps; step ids are unique among its nodes; where two
        consecutive nodes both declare schemas, every required input field of the second is
        an output field of the first with a compatible JSON type.
        """
        if not self.nodes:
            raise WorkflowDefinitionError(
                f"Execution flow of workflow is not defined: workflow {self.id!r} has no steps; "
                "add them with .then(), .branch(), etc.",
                workflow_id=self.id,
            )
        seen: dict[str, str] = {}
        for node in self.nodes:
            for s in node_steps(node):
                where = describe_node(node)
                if s.id in seen:
                    raise WorkflowDefinitionError(
                        f"workflow {self.id!r}: duplicate step id {s.id!r} "
                        f"(in {seen[s.id]} and {where})",
                        workflow_id=self.id,
                    )
                seen[s.id] = where
                if isinstance(s, Workflow) and not s.committed:
                    raise WorkflowDefinitionError(
                        f"workflow {self.id!r}: nested workflow {s.id!r} is not committed",
                        workflow_id=self.id,
                    )
        for node in self.nodes:
            for s in node_steps(node):
                if isinstance(s, MapStep) and s.spec is not None:
                    self._check_map(s, s.spec, seen)
        produced: tuple[str, type[BaseModel] | None, tuple[str, ...]] = (
            "the workflow input",
            self.input_schema,
            (),
        )
        for node in self.nodes:
            for consumer in _input_schemas(node):
                if consumer is not None:
                    problem = _mismatch(produced, consumer)
                    if problem:
                        raise WorkflowDefinitionError(
                            f"workflow {self.id!r}: {describe_node(node)} expects {problem}",
                            workflow_id=self.id,
                        )
            produced = _output_of(node)
        self.committed = True
        return self

    def _check_map(self, step: MapStep, spec: dict[str, Any], seen: dict[str, str]) -> None:
        """A map spec may only read steps of this workflow."""
        for key, ids in spec_step_ids(spec).items():
            unknown = [i for i in ids if i not in seen]
            if unknown:
                raise WorkflowDefinitionError(
                    f"workflow {self.id!r}: map step {step.id!r} reads {key!r} from step(s) "
                    f"{unknown} that are not in this workflow (its steps: {sorted(seen)})",
                    workflow_id=self.id,
                )

    def renamed(self, id: str) -> Workflow:
        """A copy of this workflow under another id, with its graph and none of its runs (see
        :func:`clone_workflow`); committed if this one is."""
        clone = copy.copy(self)
        clone.id = id
        clone.nodes = list(self.nodes)  # later additions to either stay its own
        clone._runs = {}
        clone._sweep_at = _SWEEP_FLOOR
        return clone

    # -- running ------------------------------------------------------------------------------

    @property
    def plugin_manager(self) -> PluginManager:
        """The manager used for runs that are not given one (made on first use)."""
        if self._plugin_manager is None:
            from .plugin_manager import get_plugin_manager

            self._plugin_manager = get_plugin_manager()
        return self._plugin_manager

    async def create_run(
        self,
        run_id: str | None = None,
        *,
        plugin_manager: PluginManager | None = None,
        plugins: Iterable[object] = (),
        storage: Storage | None = None,
    ) -> Run:
        """Create a run of this workflow, or take up an existing one (Mastra's
        ``createRunAsync({runId})``).

        With the ``run_id`` of a run that is live in this process (created here and not
        ended), that same :class:`Run` is returned: a watcher on it sees its events and
        ``resume()`` on it works. Otherwise, with a storage that holds ``run_id``, the stored
        run is loaded (as :meth:`load_run` does; a run created and not started yet comes back
        ``pending``, to be started). Otherwise a new run is made, and with a storage it is
        stored ``pending`` at once, as Mastra stores its snapshot: any process sharing the
        storage may then start it (of several asked at once, one does, the others get
        :class:`~stepstream.errors.RunClaimedError`). The keyword arguments only apply to a
        run made or loaded here.

        :raises RunStateError: if the storage holds ``run_id`` for another workflow.
        :raises WorkflowDefinitionError: if the workflow has no steps or is not committed.
        """
        live = self._live_run(run_id)
        if live is not None:
            return live
        store = storage or self.storage
        if run_id is not None and store is not None:
            snapshot = await store.load_run(run_id)
            if snapshot is not None:
                run = self._checked_load(run_id, snapshot, store, plugin_manager, plugins)
                return self._keep(run)
        run = self._new_run(run_id, plugin_manager, plugins, storage)
        if store is not None:
            await store.create_pending(run.run_id, self.id)
        return self._keep(run)

    create_run_sync = sync_twin(create_run)

    def _unstored_run(
        self, run_id: str | None, *, plugin_manager: PluginManager, storage: Storage | None
    ) -> Run:
        """A new run kept live here and not stored ``pending``: for a caller that starts it
        at once, whose start's claim stores it (a server's ``start-async``)."""
        return self._keep(self._new_run(run_id, plugin_manager, (), storage))

    def _new_run(
        self,
        run_id: str | None,
        plugin_manager: PluginManager | None,
        plugins: Iterable[object],
        storage: Storage | None,
    ) -> Run:
        from .run import Run

        if not self.nodes:
            raise WorkflowDefinitionError(
                f"Execution flow of workflow is not defined: workflow {self.id!r} has no steps; "
                "add them with .then(), .branch(), etc.",
                workflow_id=self.id,
            )
        if not self.committed:
            raise WorkflowDefinitionError(
                "Uncommitted step flow changes detected: workflow "
                f"{self.id!r} must be committed (call .commit()) before it runs",
                workflow_id=self.id,
            )
        return Run(
            self,
            run_id=run_id,
            plugin_manager=plugin_manager or self.plugin_manager,
            plugins=(*self.plugins, *plugins),
            storage=storage or self.storage,
        )

    def _live_run(self, run_id: str | None) -> Run | None:
        """The run ``run_id`` made here and not ended, if any (ended runs are let go).

        :raises TypeError: if ``run_id`` is not a string (the first check of every way to make
            a run: the engine builds its own events, ``start``'s ``runId`` among them, with no
            validation).
        """
        if run_id is not None and not isinstance(run_id, str):
            raise TypeError(f"run_id must be a string, got {type(run_id).__name__}: {run_id!r}")
        found = self._runs.get(run_id) if run_id is not None else None
        if found is not None and is_final(found.status):
            del self._runs[found.run_id]
            return None
        return found

    def _keep(self, run: Run) -> Run:
        runs = self._runs
        if len(runs) >= self._sweep_at:
            # Ended runs are let go in a sweep each time the map doubles: a check per run
            # made, not a pass over every live run (10,000 runs at once made that quadratic).
            for known, kept in list(runs.items()):
                if is_final(kept.status):
                    del runs[known]
            self._sweep_at = max(_SWEEP_FLOOR, 2 * len(runs))
        runs[run.run_id] = run
        return run

    async def load_run(
        self,
        run_id: str,
        *,
        storage: Storage | None = None,
        plugin_manager: PluginManager | None = None,
        plugins: Iterable[object] = (),
    ) -> Run:
        """Take up a stored run of this workflow, e.g. in a new process after a restart.

        The run comes back as it was stored: ``pending`` (created by :meth:`create_run`, not
        started: ``start()`` it), ``suspended`` (resume it with ``resume()``),
        finished, or ``interrupted`` when its process died mid-run (``resume()`` with no step
        continues after the last completed step). It is always a new :class:`Run` object,
        even when this process holds the run live (:meth:`create_run` gives that one).

        :raises RunStateError: if the storage does not know the run, or it belongs to
            another workflow.
        """
        from .errors import RunStateError

        store = storage or self.storage
        if store is None:
            raise RunStateError("load_run() needs a storage", run_id=run_id)
        snapshot = await store.load_run(run_id)
        if snapshot is None:
            raise RunStateError(f"run {run_id} is unknown", run_id=run_id)
        return self._checked_load(run_id, snapshot, store, plugin_manager, plugins)

    def _checked_load(
        self,
        run_id: str,
        snapshot: RunSnapshot,
        store: Storage,
        plugin_manager: PluginManager | None,
        plugins: Iterable[object],
    ) -> Run:
        from .errors import RunStateError

        if snapshot.workflow_id != self.id:
            raise RunStateError(
                f"run {run_id} is of workflow {snapshot.workflow_id!r}", run_id=run_id
            )
        run = self._new_run(run_id, plugin_manager, plugins, store)
        run._restore(snapshot)
        return run


def clone_workflow(workflow: Workflow, *, id: str) -> Workflow:
    """A committed copy of ``workflow`` under the id ``id`` (Mastra's
    ``cloneWorkflow(workflow, {id})``): the same steps, schemas, storage and plugins, so that
    one workflow can be nested at several places (its steps then stream as ``<id>.<step>``).

    :raises WorkflowDefinitionError: if ``workflow`` is not a workflow, ``id`` is not a
        non-empty string, or the copy does not commit (a workflow with no steps).
    """
    if not isinstance(workflow, Workflow):
        raise WorkflowDefinitionError(f"clone_workflow() takes a Workflow, got {workflow!r}")
    if not isinstance(id, str) or not id:
        raise WorkflowDefinitionError(
            f"clone_workflow({workflow.id!r}): the clone's id must be a non-empty string, "
            f"got {id!r}",
            workflow_id=workflow.id,
        )
    clone = workflow.renamed(id)
    clone.committed = False
    return clone.commit()


# -- graph checks (pure) --------------------------------------------------------------------


def _input_schemas(node: Node) -> list[type[BaseModel] | None]:
    if isinstance(node, ForeachNode):
        return []  # its step sees the items, not the list
    return [s.input_schema for s in node_steps(node)]


def _output_of(node: Node) -> tuple[str, type[BaseModel] | None, tuple[str, ...]]:
    if isinstance(node, StepNode | LoopNode):
        return (f"step {node.step.id!r}", node.step.output_schema, ())
    if isinstance(node, ParallelNode | BranchNode):
        ids = tuple(s.id for s in node_steps(node))
        return (describe_node(node), None, ids)
    return (describe_node(node), None, ())


@functools.cache
def _properties(schema: type[BaseModel]) -> tuple[dict[str, Any], frozenset[str]]:
    js = schema.model_json_schema()
    return js.get("properties", {}), frozenset(js.get("required", ()))


def _mismatch(
    produced: tuple[str, type[BaseModel] | None, tuple[str, ...]], consumer: type[BaseModel]
) -> str | None:
    where, producer, keys = produced
    if producer is None:
        if keys:  # parallel/branch output: keyed by step id
            missing = sorted(_properties(consumer)[1] - set(keys))
            if missing:
                return f"fields {missing} that {where} does not produce (it gives {list(keys)})"
        return None
    if producer is consumer or issubclass(producer, RootModel) or issubclass(consumer, RootModel):
        return None  # a schema from a plain annotation (`-> dict[str, str]`) names no fields
    out_props, _ = _properties(producer)
    in_props, required = _properties(consumer)
    missing = sorted(required - set(out_props))
    if missing:
        return (
            f"{consumer.__name__} with fields {missing} that {where} "
            f"({producer.__name__}) does not produce"
        )
    for name in sorted(set(in_props) & set(out_props)):
        want, got = in_props[name].get("type"), out_props[name].get("type")
        if want and got and want != got and not (want == "number" and got == "integer"):
            return (
                f"{consumer.__name__}.{name} of type {want!r}, but {where} "
                f"({producer.__name__}) produces {got!r}"
            )
    return None
