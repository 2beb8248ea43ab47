"""Time travel: fork a new run from a stored run, starting again at one of its steps.

The fork is a new durable run whose records are the source's up to the chosen step (copied,
shown as stored, never executed again), whose chosen step reads as interrupted mid-step (with
its stored input, or an edited one), and which then continues as a recovered run does
(:mod:`stepstream.recovery`): the chosen step and everything after it run normally. The
source run is left as it is.

What is copied: the records of the top-level steps before the chosen step's node, and, when
that node is a ``parallel`` or ``branch``, its other steps that succeeded (only the chosen one
runs again; a branch's conditions are checked again). A nested workflow before it is copied
whole. The stored run must still match the workflow: every stored step must still be in it,
every step before the chosen one must have succeeded in the stored run, and none of the steps
stored before it may now come after it; otherwise :class:`~stepstream.errors.TimeTravelError`
says which step differs. A step inside a nested workflow is named by its id path: the nested
workflow's step runs again from its stored input, with its own records copied (and checked) the
same way up to the inner step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ._scope import ResumeRequest
from .context import RuntimeContext
from .errors import TimeTravelError
from .events import StartEvent
from .graph import BranchNode, MapStep, Node, ParallelNode, WorkflowGraph, as_workflow, node_steps
from .result import RunState, StepRecord, now_ms
from .steps import Step, to_jsonable

if TYPE_CHECKING:
    from ._persist import Persistence
    from .plugin_manager import PluginManager
    from .run import Run
    from .storage import Storage
    from .workflow import Workflow

__all__ = ["fork_state", "time_travel"]

_UNSET: Any = object()


async def time_travel(
    workflow: Workflow,
    run_id: str,
    *,
    step: str | Step[Any, Any] | Sequence[str | Step[Any, Any]],
    input_data: Any = _UNSET,
    replay_models: bool = False,
    new_run_id: str | None = None,
    storage: Storage | None = None,
    plugin_manager: PluginManager | None = None,
    plugins: Iterable[object] = (),
) -> Run:
    """Fork the stored run ``run_id`` of ``workflow`` at ``step`` and start the fork.

    Returns the new run, already executing here: ``await run.wait()`` gives its result, and
    ``run.stream(after_seq=-1)`` all its events from its ``start`` (which has no
    ``step-start`` for the copied steps: they are in its state, as stored). The fork's
    metadata names its source (``{"forkedFrom": {"runId", "stepId"}}``).

    :param step: The step to start at, which ran in the stored run: a top-level step of the
        workflow (its id or the step), or the id path of a step inside a nested workflow
        (``["inner", "fetch"]``: the nested workflow runs again from that step).
    :param input_data: The chosen step's input, instead of its stored one; validated against
        the step's input schema.
    :param replay_models: Replay the stored run's agent answers instead of calling the model
        (see :mod:`stepstream.agents.recorded`); an agent step whose prompt changed fails.
    :param new_run_id: The fork's run id (a new UUID by default).
    :param storage: Where the stored run is, and the fork goes (default: the workflow's).
    :raises RunStateError: if there is no storage, the run is unknown or of another workflow.
    :raises TimeTravelError: if the step never ran in the stored run, is not a step of the
        workflow, is a ``map`` step given an input, or the workflow no longer matches the run
        (at any level of the path).
    :raises InputValidationError: if ``input_data`` does not match the step's input schema.
    """
    # Loaded as load_run() loads it (its checks and errors), to read, never to execute.
    stored = await workflow.load_run(run_id, storage=storage, plugin_manager=plugin_manager)
    store = stored.storage
    assert store is not None  # load_run() needs one
    named = [step] if isinstance(step, str | Step) else list(step)
    path = [s if isinstance(s, str) else s.id for s in named]
    if not path:
        raise TimeTravelError("time_travel() needs a step", run_id=run_id, step_id="")
    step_id = ".".join(path)
    forked = fork_state(workflow, stored._state, path, input_data, run_id)
    forked.meta = {"forkedFrom": {"runId": run_id, "stepId": step_id}}
    recording = None
    if replay_models:
        # Agents are a layer above the engine: imported only when asked for.
        from stepstream.agents.recorded import RecordedModel

        recording = RecordedModel.from_events(e.wire for e in await store.read_events(run_id))
    # A new Run object, not stored pending (as create_run() would) nor kept live until its
    # claim, which creates it with the forked state, succeeds: a new_run_id that has started
    # is refused (a pending one of this workflow is started by the fork, as start() would).
    run = workflow._new_run(new_run_id, plugin_manager, plugins, store)
    context = RuntimeContext(stored._runtime_context.to_dict())
    run._state, run._runtime_context, run._started = forked, context, True
    persist = run._dispatcher.persist
    assert persist is not None  # the run has a storage
    await persist.claim(create=(forked.input, context.to_dict()))
    workflow._keep(run)
    _store_copies(persist, (), forked)
    persist.set_meta(forked.meta)
    await run._dispatcher.emit(StartEvent)
    with recording.replaying() if recording is not None else contextlib.nullcontext():
        run._launch(ResumeRequest(path=None, data=None))  # the task keeps the recording
    return run


def fork_state(
    workflow: Workflow, source: RunState, path: Sequence[str], input_data: Any, run_id: str
) -> RunState:
    """The state a fork of ``source`` at the step ``path`` starts from (pure: checks and
    copies). A path into a nested workflow forks at each level: the nested workflow's step
    runs again (from its stored input), its own state copied up to the inner step.

    :raises TimeTravelError: see :func:`time_travel`.
    """
    return _fork(workflow, source, tuple(path), 0, input_data, run_id)


def _fork(
    workflow: WorkflowGraph,
    source: RunState,
    path: tuple[str, ...],
    depth: int,
    input_data: Any,
    run_id: str,
) -> RunState:
    label = ".".join(path)

    def refused(message: str) -> TimeTravelError:
        return TimeTravelError(message, run_id=run_id, step_id=label)

    def mismatch(why: str) -> TimeTravelError:
        return refused(
            f"run {run_id} cannot be forked at step {label!r}: the workflow "
            f"{workflow.id!r} no longer matches the stored run ({why})"
        )

    step_id, inner = path[depth], depth + 1 < len(path)
    nodes = workflow.nodes
    where = {s.id: i for i, node in enumerate(nodes) for s in node_steps(node)}
    chosen_at = where.get(step_id)
    if chosen_at is None:
        level = "step" if depth else "top-level step"
        raise refused(
            f"workflow {workflow.id!r} has no {level} {step_id!r} (time travel starts at "
            f"one of {sorted(where)}, or a path into a nested workflow)"
        )
    chosen = next(s for s in node_steps(nodes[chosen_at]) if s.id == step_id)
    nested = as_workflow(chosen)
    if inner and nested is None:
        raise refused(f"step {step_id!r} of workflow {workflow.id!r} is not a nested workflow")
    stored = source.steps.get(step_id)
    if stored is None or (inner and step_id not in source.nested):
        raise refused(
            f"step {label!r} never ran in run {run_id}, so there is nothing to start it from"
        )
    order = list(source.steps)
    for sid in order:
        if sid not in where:
            raise mismatch(f"the run has a step {sid!r} that the workflow no longer has")
    for sid in order[: order.index(step_id)]:
        if where[sid] > chosen_at:
            raise mismatch(f"step {sid!r} ran before {step_id!r} but now comes after it")
    for node in nodes[:chosen_at]:
        _check_ran(node, source, mismatch)
    copied = [
        sid
        for sid in order
        if where[sid] < chosen_at
        or (where[sid] == chosen_at and sid != step_id and source.steps[sid].status == "success")
    ]
    fork = RunState(input=source.input)
    for sid in copied:
        fork.steps[sid] = source.steps[sid]
        if sid in source.nested:
            fork.nested[sid] = source.nested[sid]
    if nested is not None and inner:  # the nested workflow runs again, from its inner step
        fork.steps[step_id] = StepRecord(payload=stored.payload, started_at=now_ms())
        fork.nested[step_id] = _fork(
            nested, source.nested[step_id], path, depth + 1, input_data, run_id
        )
        return fork
    fork.steps[step_id] = StepRecord(
        payload=_input(chosen, stored.payload, input_data, run_id), started_at=now_ms()
    )
    return fork


def _check_ran(node: Node, source: RunState, mismatch: Any) -> None:
    """A node before the chosen step must have succeeded in the stored run (a branch: the
    steps it took), or the workflow changed there."""
    for s in node_steps(node):
        record = source.steps.get(s.id)
        if isinstance(node, BranchNode) and record is None:
            continue  # not taken
        if record is None:
            raise mismatch(f"step {s.id!r}, which comes before it, never ran in the run")
        if record.status != "success":
            kind = "parallel step" if isinstance(node, ParallelNode) else "step"
            raise mismatch(f"{kind} {s.id!r} before it ended {record.status!r} in the run")


def _input(step: Step[Any, Any], stored: Any, input_data: Any, run_id: str) -> Any:
    """The chosen step's input: its stored one, or ``input_data`` checked against its schema."""
    if input_data is _UNSET:
        return stored
    if isinstance(step, MapStep):
        raise TimeTravelError(
            f"map step {step.id!r} takes no input of its own (it reads the steps before it); "
            "fork at the step before it with the input to change",
            run_id=run_id,
            step_id=step.id,
        )
    step.parse_input(input_data)  # raises InputValidationError, naming the step
    return to_jsonable(input_data)


def _store_copies(persist: Persistence, path: tuple[str, ...], state: RunState) -> None:
    """Write the fork's copied records (nested workflows' too) with its first checkpoint."""
    for sid, record in state.steps.items():
        if record.status == "success":
            persist.put((*path, sid), record)
        nested = state.nested.get(sid)
        if nested is not None:
            persist.restart_nested((*path, sid), nested.input)
            _store_copies(persist, (*path, sid), nested)
