"""The commands that read stored runs: ``runs`` (a table of them) and ``show`` (one run).

On a terminal both draw rich tables; piped, they print plain lines with tab-separated
columns (a header line first), easy to ``cut``, ``grep`` or ``awk``; ``--json`` prints JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from rich.table import Column, Table
from rich.text import Text

from stepstream.result import RunState, StepRecord
from stepstream.storage import FINAL_STATUSES, StoredEvent
from stepstream.usage import Usage

from ._commands import EXIT_OK, existing_storage, shown_db
from ._render import STATUS_STYLES, make_console
from ._target import UsageError
from ._view import StepLabels, brief, duration

__all__ = ["age_seconds", "event_rows", "prune", "runs", "show", "step_rows"]


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def age_seconds(text: str) -> float:
    """``30d``, ``12h``, ``15m``, ``90s`` or plain seconds, as seconds."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    try:
        value = float(number)
    except ValueError:
        raise UsageError(
            f"--older-than: expected e.g. 30d, 12h, 15m or seconds, not {text!r}"
        ) from None
    if value < 0:
        raise UsageError("--older-than must not be negative")
    return value * _UNITS[unit]


async def prune(args: argparse.Namespace) -> int:
    """``stepstream runs prune``: delete old runs (finished ones unless ``--status``)."""
    if args.older_than is None:
        raise UsageError("runs prune needs --older-than (e.g. 30d)")
    older_than = age_seconds(args.older_than)
    storage = existing_storage(args.db)
    try:
        statuses = [args.status] if args.status else list(FINAL_STATUSES)
        deleted = await storage.prune(older_than=older_than, statuses=statuses)
    finally:
        await storage.close()
    print(f"deleted {deleted} run{'s' * (deleted != 1)} ({', '.join(statuses)}) "
          f"not updated for {args.older_than}")  # fmt: skip
    return EXIT_OK


async def runs(args: argparse.Namespace) -> int:
    """``stepstream runs``: the stored runs, most recently updated first."""
    if args.action == "prune":
        return await prune(args)
    storage = existing_storage(args.db)
    try:
        found = await storage.list_runs(workflow_id=args.workflow, status=args.status)
    finally:
        await storage.close()
    if args.json:
        for summary in found:
            print(json.dumps(dataclasses.asdict(summary), ensure_ascii=False), flush=True)
        return EXIT_OK
    header = ("run id", "workflow", "status", "updated")
    rows = [(r.run_id, r.workflow_id, r.status, _when(r.updated_at)) for r in found]
    more = "(the 100 most recently updated; filter with --status or --workflow)"
    if not sys.stdout.isatty():
        if found:
            _plain(header, rows)
        else:
            print("no runs")
        if len(found) == 100:  # list_runs' default limit
            print(more, file=sys.stderr)
        return EXIT_OK
    console = make_console()
    if not found:
        console.print("no runs")
        return EXIT_OK
    table = Table(
        Column(header[0], no_wrap=True, min_width=36),
        header[1],
        header[2],
        Column(header[3], no_wrap=True),
    )
    for run_id, workflow, status, updated in rows:
        table.add_row(run_id, workflow, Text(status, style=STATUS_STYLES.get(status, "")), updated)
    console.print(table)
    if len(found) == 100:
        console.print(more)
    return EXIT_OK


def _plain(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a header line and one line per row, columns separated by tabs."""
    for row in [header, *rows]:
        # A tab or a newline inside a value would break the columns.
        print("\t".join(" ".join(value.split()) for value in row))


async def show(args: argparse.Namespace) -> int:
    """``stepstream show``: a stored run's final state (its snapshot) and its events."""
    storage = existing_storage(args.db)
    try:
        snapshot = await storage.load_run(args.run_id)
        events = await storage.read_events(args.run_id) if snapshot is not None else []
    finally:
        await storage.close()
    if snapshot is None:
        raise UsageError(f"run {args.run_id} is not in {shown_db(args.db)}")
    if args.json:
        document = {"snapshot": dataclasses.asdict(snapshot), "events": [e.wire for e in events]}
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return EXIT_OK
    labels = StepLabels()
    step_table = []
    state = RunState.from_json(snapshot.state)
    usage = state.meta.get("usage")
    used = f"usage: {Usage.from_json(usage).summary()}" if usage else None
    for step_id, record in step_rows(state):
        began = record.resumed_at or record.started_at
        took = "" if record.ended_at is None else duration(record.ended_at - began)
        detail = record.error if record.error else brief(record.output)
        if record.status == "suspended":
            detail = f"suspended: {brief(record.suspend_payload)}"
        step_table.append(
            (labels.label(step_id), record.status, took, _tokens(record.usage), detail)
        )
    event_table = [(seqs, kind, labels.text(detail)) for seqs, kind, detail in event_rows(events)]
    if not sys.stdout.isatty():
        print(f"run {snapshot.run_id} · workflow {snapshot.workflow_id} · {snapshot.status}"
              f" · updated {_when(snapshot.updated_at)}")  # fmt: skip
        for line in _outcome(snapshot.status, snapshot.result, snapshot.error):
            print(line)
        for path in snapshot.suspended:
            print(f"suspended at {'.'.join(path)}")
        if used:
            print(used)
        print("\nsteps")
        _plain(("step", "status", "took", "tokens", "output / error"), step_table)
        print("\nevents")
        _plain(("seq", "event", "detail"), event_table)
        return EXIT_OK
    console = make_console()
    style = STATUS_STYLES.get(snapshot.status, "")
    console.print(
        Text.assemble(
            ("run ", "bold"),
            (snapshot.run_id, "bold"),
            f" · workflow {snapshot.workflow_id} · ",
            (snapshot.status, f"bold {style}"),
            f" · updated {_when(snapshot.updated_at)}",
        )
    )
    for line in _outcome(snapshot.status, snapshot.result, snapshot.error):
        console.print(Text(line, style="red" if line.startswith("error: ") else ""))
    for path in snapshot.suspended:
        console.print(Text(f"suspended at {'.'.join(path)}", style="yellow"))
    if used:
        console.print(Text(used))
    steps = Table(
        "step", "status", "took", "tokens", "output / error", title="steps", title_justify="left"
    )
    for name, status, took, spent, detail in step_table:
        steps.add_row(name, Text(status, style=STATUS_STYLES.get(status, "")), took, spent, detail)
    console.print(steps)
    table = Table("seq", "event", "detail", title="events", title_justify="left")
    for seqs, kind, detail in event_table:
        table.add_row(seqs, kind, Text(detail))
    console.print(table)
    return EXIT_OK


def _outcome(status: str, result: Any, error: str | None) -> list[str]:
    if status == "success":
        return ["result: " + json.dumps(result, indent=2, ensure_ascii=False)]
    return [f"error: {error}"] if error else []


def step_rows(state: RunState, prefix: str = "") -> Iterator[tuple[str, StepRecord]]:
    """Every step record of ``state``, nested workflows' steps after their own (``a.b``)."""
    for step_id, record in state.steps.items():
        yield prefix + step_id, record
        nested = state.nested.get(step_id)
        if nested is not None:
            yield from step_rows(nested, f"{prefix}{step_id}.")


def event_rows(events: list[StoredEvent]) -> list[tuple[str, str, str]]:
    """``(seq, type, detail)`` per event; a run of ``tool-call-delta`` is one row (its text)."""
    rows: list[tuple[str, str, str]] = []
    deltas: list[StoredEvent] = []

    def flush() -> None:
        if deltas:
            text = "".join(str(e.wire.get("argsTextDelta", "")) for e in deltas)
            seqs = f"{deltas[0].seq}-{deltas[-1].seq}" if len(deltas) > 1 else str(deltas[0].seq)
            rows.append((seqs, f"tool-call-delta x{len(deltas)}", brief(text, 200)))
            deltas.clear()

    for event in events:
        if event.type == "tool-call-delta":
            deltas.append(event)
            continue
        flush()
        rows.append((str(event.seq), event.type, _detail(event.type, event.wire)))
    flush()
    return rows


def _detail(kind: str, wire: dict[str, Any]) -> str:
    payload = wire.get("payload")
    body: dict[str, Any] = payload if isinstance(payload, dict) else wire
    step = str(body.get("id", ""))
    if kind == "step-start":
        return step + (" (resumed)" if "resumedAt" in body else "")
    if kind == "step-waiting":
        return step + " (waiting)"
    if kind == "step-result":
        outcome = (
            body.get("error") if body.get("status") != "success" else brief(body.get("output"))
        )
        return f"{step} {body.get('status')}: {outcome}"
    if kind == "step-suspended":
        return f"{step}: {brief(body.get('suspendPayload'))}"
    if kind == "step-output":
        return f"{step}: {brief(body.get('output'))}"
    if kind == "tool-call-streaming-start":
        return str(body.get("name", ""))
    if kind == "tool-call":
        return f"{body.get('toolName')}({brief(body.get('args'))})"
    if kind == "tool-result":
        return f"{body.get('toolName')} → {brief(body.get('result'))}"
    if kind == "plugin-error":
        return f"{body.get('plugin')} in {body.get('hook')}: {body.get('error')}"
    if kind == "step-usage":
        cost = f", cost {body['cost']:.6g}" if isinstance(body.get("cost"), int | float) else ""
        return (
            f"{step} {body.get('model')}: {body.get('totalTokens')} tokens "
            f"({body.get('inputTokens')} in, {body.get('outputTokens')} out){cost}"
        )
    if kind == "error":
        return brief(body.get("error"))
    return step


def _tokens(usage: dict[str, Any] | None) -> str:
    if not usage:
        return ""
    spent = Usage.from_json(usage)
    cost = f" ({spent.cost:.6g})" if spent.cost is not None else ""
    return f"{spent.total_tokens}{cost}"


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).isoformat(sep=" ", timespec="seconds")
