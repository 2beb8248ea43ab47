"""The commands: each takes the parsed arguments and returns the exit status.

``run`` and ``resume`` drive a renderer (``_render``) from the run's stream; ``runs`` and
``show`` read a storage (``--db``: a SQLite file or a PostgreSQL DSN); ``serve`` hands
workflows to ``stepstream.server``; ``plugins`` lists what a fresh plugin manager registers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from sqlite3 import DatabaseError

from rich.table import Table

from stepstream.context import RuntimeContext
from stepstream.errors import PluginError, RunStateError
from stepstream.graph import EventStep, WorkflowGraph, as_workflow, node_steps
from stepstream.plugin_manager import OPTIONAL_PLUGINS, PluginManager, get_plugin_manager
from stepstream.result import WorkflowResult
from stepstream.run import Run
from stepstream.status import is_final
from stepstream.storage import Storage
from stepstream.storage.sqlite import SQLiteStorage
from stepstream.workflow import Workflow

from ._render import JsonRenderer, LiveRenderer, PlainRenderer, Renderer, make_console
from ._target import UsageError, load_workflow, parse_json, workflows_of

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "existing_storage",
    "open_storage",
    "plugins",
    "resume",
    "run",
    "serve",
    "serve_instances",
    "shown_db",
    "storage_problem",
]

EXIT_OK = 0
"""The run succeeded or suspended; the command did what it was asked."""
EXIT_FAILED = 1
"""The run failed or was canceled (or stepstream itself reported an error)."""
EXIT_USAGE = 2
"""A wrong argument: bad JSON, unknown module, attribute, run or plugin."""
EXIT_INTERRUPTED = 130
"""Stopped by SIGINT or SIGTERM (a durable run is left interrupted, resumable)."""


def _plugin_manager(names: Sequence[str]) -> PluginManager:
    """A fresh plugin manager with the optional built-ins named by ``-p``."""
    try:
        return get_plugin_manager(plugins=list(names))
    except PluginError as exc:
        raise UsageError(str(exc)) from exc


def _renderer_for(args: argparse.Namespace, title: str) -> Renderer:
    """``--json`` lines, rich's live view on a terminal, plain lines otherwise."""
    if args.json:
        return JsonRenderer(sys.stdout)
    if sys.stdout.isatty():
        return LiveRenderer(make_console(), title)
    return PlainRenderer(sys.stdout, title)


def _exit_status(result: WorkflowResult) -> int:
    """0 for ``success`` and ``suspended`` (the run waits, as asked), 1 otherwise."""
    return EXIT_OK if result.status in ("success", "suspended") else EXIT_FAILED


def _resume_hint(
    args: argparse.Namespace, workflow: Workflow, result: WorkflowResult
) -> str | None:
    """How to go on with a suspended run, or ``None``."""
    if result.status != "suspended":
        return None
    if not args.db and workflow.storage is None:
        return "the run is kept in memory only: run it with --db PATH to be able to resume it"
    step = ".".join(result.suspended[0]) if result.suspended else "STEP"
    # Without --db the run is in the workflow's own storage, which resume finds by itself.
    db = f" --db {shown_db(args.db)}" if args.db else ""
    return (
        f"resume with: stepstream resume {args.target} {result.run_id} "
        f"--step {step} --data JSON{db}"
    )


def _event_waits(graph: WorkflowGraph, prefix: str = "") -> dict[str, str]:
    """The steps of ``graph`` (nested ones too, by their stream id) that wait for an event,
    and the event each waits for."""
    found: dict[str, str] = {}
    for node in graph.nodes:
        for step in node_steps(node):
            if isinstance(step, EventStep):
                found[prefix + step.id] = step.event
            nested = as_workflow(step)
            if nested is not None:
                found.update(_event_waits(nested, f"{prefix}{step.id}."))
    return found


def _nobody_can_send(target: str, step_id: str, event: str) -> str:
    # A run kept in memory waits in place, as Mastra's does, and this command is the only
    # process holding it: without this line the view would sit at the step with no hint.
    return (
        f"step {step_id!r} waits for event {event!r}: this run is kept in memory, so nothing "
        f"can send it; run it with --db PATH (it then suspends at the step, and "
        f"`stepstream resume {target} RUN_ID --step {step_id} --data JSON --db PATH` goes on), "
        "or stop it with Ctrl-C"
    )


async def run(args: argparse.Namespace) -> int:
    """``stepstream run``: start a run of a workflow and show it live."""
    input_data = parse_json(args.input, "--input") if args.input is not None else None
    context = None
    if args.runtime_context is not None:
        values = parse_json(args.runtime_context, "--runtime-context")
        if not isinstance(values, dict):
            raise UsageError("--runtime-context: expected a JSON object")
        context = RuntimeContext(values)
    _, workflow = load_workflow(args.target)
    pm = _plugin_manager(args.plugins)
    storage = open_storage(args.db) if args.db else None
    try:
        live = await workflow.create_run(plugin_manager=pm, storage=storage)
        renderer = _renderer_for(args, workflow.id)
        with renderer:
            if storage is not None:
                renderer.note(f"run id: {live.run_id} (stored in {shown_db(args.db)})")
            elif workflow.storage is not None:
                renderer.note(f"run id: {live.run_id} (stored in the workflow's storage)")
            started = time.perf_counter()
            stream = live.stream(input_data, context, close_on_suspend=True)
            in_memory = storage is None and workflow.storage is None
            waits = _event_waits(workflow) if in_memory else {}
            with _Interruption(live) as stop:
                try:
                    async for event in stream:
                        renderer.show(event)
                        if event.type == "step-waiting" and event.step_id in waits:
                            event_name = waits[event.step_id]
                            renderer.note(_nobody_can_send(args.target, event.step_id, event_name))
                except RunStateError:
                    if not stop.requested:
                        raise
                if stop.requested:
                    return await stop.report(renderer, args)
            result = await stream.get_workflow_state()
            return _close(renderer, args, workflow, result, time.perf_counter() - started)
    finally:
        if storage is not None:
            await storage.close()


async def resume(args: argparse.Namespace) -> int:
    """``stepstream resume``: resume a stored run at a suspended step and show it live."""
    data = parse_json(args.data, "--data") if args.data is not None else None
    _, workflow = load_workflow(args.target)
    if args.db:
        storage = existing_storage(args.db)
    elif workflow.storage is not None:
        storage = workflow.storage
    else:
        raise UsageError(f"--db is needed: workflow {workflow.id!r} has no storage of its own")
    where_stored = shown_db(args.db) if args.db else "the workflow's storage"
    try:
        # Checked before the plugins load (slow: the model client), so a wrong id fails fast.
        snapshot = await storage.load_run(args.run_id)
        if snapshot is None:
            raise UsageError(f"run {args.run_id} is not in {where_stored}")
        if snapshot.workflow_id != workflow.id:
            raise UsageError(
                f"run {args.run_id} is a run of {snapshot.workflow_id!r}, not of {workflow.id!r}"
            )
        if is_final(snapshot.status):
            raise UsageError(f"run {args.run_id} has ended ({snapshot.status}): nothing to resume")
        step = _step_path(snapshot.suspended, args.step)
        pm = _plugin_manager(args.plugins)
        stored = await workflow.load_run(args.run_id, storage=storage, plugin_manager=pm)
        renderer = _renderer_for(args, workflow.id)
        with renderer:
            where = f" at {'.'.join(step)}" if step else ""
            renderer.note(f"▶ resuming {workflow.id} · run {stored.run_id}{where}")
            started = time.perf_counter()
            after = stored.last_seq  # the resumed events are those after this one
            with _Interruption(stored) as stop:
                try:
                    work = await stored.resuming(step=step, resume_data=data)
                except RunStateError as exc:
                    raise UsageError(str(exc)) from exc
                async with stored.subscribe(after, close_on_suspend=True) as events:
                    async for event in events:
                        renderer.show(event)
                if stop.requested:  # the run's task was stopped, not this command
                    await asyncio.gather(work, return_exceptions=True)
                    return await stop.report(renderer, args)
                result = await work
            return _close(renderer, args, workflow, result, time.perf_counter() - started)
    finally:
        if args.db:  # the workflow's own storage is the workflow's to close
            await storage.close()


class _Interruption:
    """SIGINT or SIGTERM while a durable run executes here: the process stops and leaves the
    run stored as ``interrupted`` (resumable), not canceled; an in-memory run is canceled as
    before (Ctrl-C's usual KeyboardInterrupt)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.task: asyncio.Task[None] | None = None
        self._signals: list[int] = []

    @property
    def requested(self) -> bool:
        return self.task is not None

    def __enter__(self) -> _Interruption:
        if self.run.storage is not None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._stop)
                self._signals.append(sig)
        return self

    def __exit__(self, *exc_info: object) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)

    def _stop(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.run.abandon())

    async def report(self, renderer: Renderer, args: argparse.Namespace) -> int:
        """Wait until the run is let go, say how to go on with it; 130, as for Ctrl-C."""
        assert self.task is not None
        await self.task
        db = f" --db {shown_db(args.db)}" if getattr(args, "db", None) else ""
        renderer.note(
            f"interrupted: run {self.run.run_id} is stored as interrupted; continue it with: "
            f"stepstream resume {args.target} {self.run.run_id}{db}"
        )
        return EXIT_INTERRUPTED


def _close(
    renderer: Renderer,
    args: argparse.Namespace,
    workflow: Workflow,
    result: WorkflowResult,
    seconds: float,
) -> int:
    renderer.finish(result, seconds)
    hint = _resume_hint(args, workflow, result)
    if hint is not None:
        renderer.note(hint)
    return _exit_status(result)


def _step_path(suspended: list[list[str]], step: str | None) -> list[str] | None:
    """``--step`` as the suspended path it names: ``approve`` or ``inner.approve`` finds
    ``["inner", "approve"]``. ``None`` lets resume() pick the only suspended step (or
    continue an interrupted run)."""
    if step is None:
        return None
    for path in suspended:
        dotted = ".".join(path)
        if dotted == step or dotted.endswith("." + step):
            return list(path)
    listed = ", ".join(".".join(path) for path in suspended) or "none"
    raise UsageError(f"step {step!r} is not suspended (suspended: {listed})")


_DSN = re.compile(r"^postgres(?:ql)?://", re.IGNORECASE)


def open_storage(db: str, *, lease_seconds: float = 30.0) -> Storage:
    """The storage ``--db`` names: a PostgreSQL DSN (``postgresql://...``) or a SQLite file,
    created when missing."""
    if not _DSN.match(db):
        return SQLiteStorage(db, lease_seconds=lease_seconds)
    try:
        from stepstream.storage.postgres import PostgresStorage
    except ImportError as exc:
        raise UsageError(
            f"a PostgreSQL --db needs psycopg: pip install 'stepstream[postgres]' ({exc})"
        ) from exc
    return PostgresStorage(db, lease_seconds=lease_seconds)


def existing_storage(db: str) -> Storage:
    """The storage ``--db`` names; a SQLite file must exist (reading never creates one)."""
    if not _DSN.match(db) and not Path(db).is_file():
        raise UsageError(f"no database at {db}")
    return open_storage(db)


def storage_problem(exc: BaseException) -> str | None:
    """A one-line message when ``exc`` is the database refusing ``--db`` (not a database, no
    server there, wrong credentials), else ``None``."""
    # psycopg is looked up, not imported: if it was never loaded, it raised nothing.
    psycopg = sys.modules.get("psycopg")
    if isinstance(exc, DatabaseError) or (
        psycopg is not None and isinstance(exc, psycopg.OperationalError)
    ):
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        return f"--db: {lines[0]}"
    return None


def shown_db(db: str) -> str:
    """``db`` as it may be printed: a DSN's password is masked."""
    return re.sub(r"^(\w+://[^:/@]*):[^@]*@", r"\1:***@", db)


def serve(args: argparse.Namespace) -> int:
    """``stepstream serve``: serve workflows over HTTP until interrupted."""
    workflows: dict[str, Workflow] = {}
    for target in args.targets:
        for key, workflow in workflows_of(target).items():
            if workflows.get(key, workflow) is not workflow:
                raise UsageError(f"two workflows are named {key!r}; serve them separately")
            workflows[key] = workflow
    try:
        from stepstream.server import create_app
        from stepstream.server import serve as serve_app
    except ImportError as exc:
        raise UsageError(
            f"serve needs the server extra: pip install 'stepstream[server]' ({exc})"
        ) from exc
    pm = _plugin_manager(args.plugins)
    if args.lease <= 0:
        raise UsageError(f"--lease must be positive, not {args.lease:g}")
    storage = open_storage(args.db, lease_seconds=args.lease) if args.db else None
    app = create_app(
        workflows,
        storage=storage,
        token=args.token,
        plugin_manager=pm,
        cors_origins=args.cors_origin,
        body_limit=args.body_limit,
        max_runs=max(args.max_runs, 0),
    )
    names = ", ".join(sorted(workflows))
    if args.listen_fd is None:
        print(f"serving {names} on http://{args.host}:{args.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a server stops: no error
        serve_app(app, host=args.host, port=args.port, fd=args.listen_fd)
    return EXIT_OK


def serve_instances(args: argparse.Namespace, argv: list[str]) -> int:
    """``stepstream serve --instances N``: bind the port once, start N ``serve`` processes
    accepting on it, pass SIGTERM and SIGINT on to them, and wait for them all."""
    if args.instances < 1:
        raise UsageError(f"--instances must be at least 1, not {args.instances}")
    if not args.db or not _DSN.match(args.db):
        raise UsageError(
            "--instances needs a PostgreSQL --db (postgresql://...): the instances share "
            "runs through it"
        )
    listening = socket.create_server((args.host, args.port), reuse_port=False, backlog=2048)
    listening.set_inheritable(True)
    fd = listening.fileno()
    # The same command again (the last --instances wins), accepting on the inherited socket.
    command = [sys.executable, "-m", "stepstream.cli", *argv, "--instances", "1",
               "--listen-fd", str(fd)]  # fmt: skip
    children = [subprocess.Popen(command, pass_fds=(fd,)) for _ in range(args.instances)]
    listening.close()  # the children hold it now
    print(
        f"serving on http://{args.host}:{args.port} from {args.instances} instances "
        f"(pids {', '.join(str(c.pid) for c in children)})",
        flush=True,
    )

    def forward(signum: int, frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    failed = [c for c in codes if c not in (0, -signal.SIGTERM, -signal.SIGINT)]
    return EXIT_OK if not failed else EXIT_FAILED


def plugins(args: argparse.Namespace) -> int:
    """``stepstream plugins``: the plugins a run gets, and where each came from."""
    pm = _plugin_manager(())
    table = Table("plugin", "source", title="registered plugins", title_justify="left")
    listed = pm.list_plugins()
    for name, source in listed:
        table.add_row(name, source)
    console = make_console()
    console.print(table)
    registered = {name for name, _ in listed}
    available = [name for name in OPTIONAL_PLUGINS if name not in registered]
    if available:
        console.print(f"available by name (-p NAME): {', '.join(available)}")
    return EXIT_OK
