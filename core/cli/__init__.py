"""The ``stepstream`` command line: run workflows and watch them live, inspect stored runs.

::

    stepstream run MODULE:WORKFLOW [--input JSON|@file] [--runtime-context JSON] [--json]
                   [--db PATH] [-p PLUGIN]...
    stepstream resume MODULE:WORKFLOW RUN_ID --db PATH [--step ID] [--data JSON] [--json]
    stepstream runs --db PATH [--status S] [--workflow W]
    stepstream show RUN_ID --db PATH [--json]
    stepstream serve MODULE[:WORKFLOW[,WORKFLOW...]]... [--host H] [--port N] [--db PATH]
                     [--token T] [--cors-origin ORIGIN]... [--body-limit BYTES]
    stepstream plugins

``MODULE`` is a dotted module path (the current directory is searched too) or the path of a
``.py`` file; ``WORKFLOW`` the name of a committed :class:`~stepstream.Workflow` attribute
(``run`` and ``resume`` may leave it out when the module holds exactly one). JSON arguments
take ``@path`` to read a file (``@-``: standard input).

On a terminal, ``run`` and ``resume`` show rich's live view (running steps with spinners and
timers, the agent's answer as it streams; each finished step stays in the scrollback); piped,
they print plain lines as events arrive; ``--json`` prints one wire event per line.

Exit status: 0 when the run succeeded or suspended (a suspended run prints how to resume it),
1 when it failed or was canceled, 2 for a usage error (bad JSON, unknown module, attribute,
run or plugin; not a workflow), printed as one line on stderr; 130 when interrupted.

``serve`` takes its bearer token from ``--token`` or, better, from ``$STEPSTREAM_TOKEN``: an
argument is visible to every user of the machine in ``ps``, the environment is not.

rich renders the output: ``pip install 'stepstream[cli]'``; ``serve`` also needs
``stepstream[server]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from stepstream.errors import StepstreamError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    args = _parser().parse_args(argv)
    try:
        import rich  # noqa: F401
    except ImportError:
        _error("the command line needs rich: pip install 'stepstream[cli]'")
        return 2
    from . import _commands, _stored
    from ._target import UsageError

    # The view shows every event; the `logger` plugin's warnings would repeat them on stderr.
    logging.getLogger("stepstream.events").addHandler(logging.NullHandler())
    commands = {
        "run": _commands.run,
        "resume": _commands.resume,
        "runs": _stored.runs,
        "show": _stored.show,
    }
    try:
        if args.command == "serve":
            return _commands.serve(args)
        if args.command == "plugins":
            return _commands.plugins(args)
        return asyncio.run(commands[args.command](args))
    except UsageError as exc:
        _error(str(exc))
        return _commands.EXIT_USAGE
    except StepstreamError as exc:
        _error(f"{type(exc).__name__}: {exc}")
        return _commands.EXIT_FAILED
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


def _error(message: str) -> None:
    print(f"stepstream: error: {message}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stepstream", description="Run stepstream workflows and watch them live."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a workflow and show it live")
    run.add_argument("target", metavar="MODULE:WORKFLOW")
    run.add_argument("--input", metavar="JSON|@FILE", help="the workflow's input data")
    run.add_argument("--runtime-context", metavar="JSON|@FILE", help="a JSON object")
    _run_options(run, "keep the run in this SQLite file, so that it can be resumed")

    resume = sub.add_parser("resume", help="resume a stored, suspended run and show it live")
    resume.add_argument("target", metavar="MODULE:WORKFLOW")
    resume.add_argument("run_id", metavar="RUN_ID")
    resume.add_argument("--step", help="the suspended step (default: the only one)")
    resume.add_argument("--data", metavar="JSON|@FILE", help="the step's resume data")
    _run_options(resume, "the SQLite file the run is stored in", required=True)

    runs = sub.add_parser("runs", help="list stored runs")
    runs.add_argument("--db", metavar="PATH", required=True, help="a SQLite file of runs")
    runs.add_argument("--status", help="only runs with this status (e.g. suspended)")
    runs.add_argument("--workflow", metavar="ID", help="only runs of this workflow id")

    show = sub.add_parser("show", help="show a stored run: its final state and its events")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--db", metavar="PATH", required=True, help="a SQLite file of runs")
    show.add_argument("--json", action="store_true", help="print one JSON document")

    serve = sub.add_parser("serve", help="serve workflows over HTTP (Mastra's API)")
    serve.add_argument("targets", nargs="+", metavar="MODULE[:WORKFLOW[,WORKFLOW...]]")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4111)
    serve.add_argument("--db", metavar="PATH", help="keep runs in this SQLite file")
    serve.add_argument(
        "--token",
        default=os.environ.get("STEPSTREAM_TOKEN"),
        help="the bearer token clients must send (default: $STEPSTREAM_TOKEN, which unlike an"
        " argument does not show in ps)",
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let browser pages of ORIGIN call the API ('*' for any; repeatable; default none)",
    )
    serve.add_argument(
        "--body-limit",
        type=int,
        default=4_718_592,
        metavar="BYTES",
        help="refuse request bodies larger than this with 413 (default 4.5 MiB, as Mastra's)",
    )
    _plugin_option(serve)

    sub.add_parser("plugins", help="list the registered plugins and where each came from")
    return parser


def _run_options(parser: argparse.ArgumentParser, db_help: str, required: bool = False) -> None:
    parser.add_argument("--json", action="store_true", help="print one wire event per line")
    parser.add_argument("--db", metavar="PATH", required=required, help=db_help)
    _plugin_option(parser)


def _plugin_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p",
        dest="plugins",
        action="append",
        default=[],
        metavar="PLUGIN",
        help="enable an optional built-in plugin by name (repeatable)",
    )
