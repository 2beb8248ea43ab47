"""A child process for the ``otel`` recovery test: ``python -m tests.plugins.otel_child DB
MARKS RUN_ID`` runs the durability tests' crash workflow with the ``otel`` plugin on an SDK
tracer provider; its step s3 announces itself and blocks, for the parent to kill it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from stepstream import get_plugin_manager
from stepstream.plugins.otel import OpenTelemetryExporter
from stepstream.storage.sqlite import SQLiteStorage

from ..core.durable_child import crash_workflow


async def main(db: str, marks: str, run_id: str) -> None:
    plugin = OpenTelemetryExporter(TracerProvider())  # spans are made, never exported
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("otel", plugin)])
    run = await crash_workflow(Path(marks)).create_run(
        run_id, plugin_manager=pm, storage=SQLiteStorage(db, durability="sync")
    )
    await run.start({"n": 0})


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
