"""The commands that read stored runs: ``runs`` (a table of them) and ``show`` (one run)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from rich.table import Column, Table
from rich.text import Text

from stepstream.result import RunState, StepRecord
from stepstream.storage import StoredEvent
from stepstream.usage import Usage

from ._commands import EXIT_OK, existing_storage
from ._render import STATUS_STYLES, make_console
from ._target import UsageError
from ._view import brief, duration

__all__ = ["event_rows", "runs", "show", "step_rows"]


async def runs(args: argparse.Namespace) -> int:
    """``stepstream runs``: the stored runs, most recently updated first."""
    storage = existing_storage(args.db)
    try:
        found = await storage.list_runs(workflow_id=args.workflow, status=args.status)
    finally:
        await storage.close()
    console = make_console()
    if not found:
        console.print("no runs")
        return EXIT_OK
    table = Table(
        Column("run id", no_wrap=True, min_width=36),
        "workflow",
        "status",
        Column("updated", no_wrap=True),
    )
    for summary in found:
        table.add_row(
            summary.run_id,
            summary.workflow_id,
            Text(summary.status, style=STATUS_STYLES.get(summary.status, "")),
            _when(summary.updated_at),
        )
    console.print(table)
    if len(found) == 100:  # list_runs' default limit
        console.print("(the 100 most recently updated; filter with --status or --workflow)")
    return EXIT_OK


async def show(args: argparse.Namespace) -> int:
    """``stepstream show``: a stored run's final state (its snapshot) and its events."""
    storage = existing_storage(args.db)
    try:
        snapshot = await storage.load_run(args.run_id)
        events = await storage.read_events(args.run_id) if snapshot is not None else []
    finally:
        await storage.close()
    if snapshot is None:
        raise UsageError(f"run {args.run_id} is not in {args.db}")
    if args.json:
        document = {"snapshot": dataclasses.asdict(snapshot), "events": [e.wire for e in events]}
        print(json.dumps(document, indent=2, ensure_ascii=False))
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
    if snapshot.status == "success":
        console.print(Text("result: " + json.dumps(snapshot.result, indent=2, ensure_ascii=False)))
    elif snapshot.error:
        console.print(Text(f"error: {snapshot.error}", style="red"))
    for path in snapshot.suspended:
        console.print(Text(f"suspended at {'.'.join(path)}", style="yellow"))
    state = RunState.from_json(snapshot.state)
    if state.meta.get("usage"):
        console.print(Text(f"usage: {Usage.from_json(state.meta['usage']).summary()}"))
    steps = Table(
        "step", "status", "took", "tokens", "output / error", title="steps", title_justify="left"
    )
    for step_id, record in step_rows(state):
        began = record.resumed_at or record.started_at
        took = "" if record.ended_at is None else duration(record.ended_at - began)
        detail = record.error if record.error else brief(record.output)
        if record.status == "suspended":
            detail = f"suspended: {brief(record.suspend_payload)}"
        status = Text(record.status, style=STATUS_STYLES.get(record.status, ""))
        spent = _tokens(record.usage)
        steps.add_row(step_id, status, took, spent, detail)
    console.print(steps)
    table = Table("seq", "event", "detail", title="events", title_justify="left")
    for seqs, kind, detail in event_rows(events):
        table.add_row(seqs, kind, Text(detail))
    console.print(table)
    return EXIT_OK


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
