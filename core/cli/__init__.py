"""The ``stepstream`` command line: run workflows and watch them live, inspect stored runs.

::

    stepstream run MODULE:WORKFLOW [--input JSON|@file] [--runtime-context JSON] [--json]
                   [--db DB] [-p PLUGIN]...
    stepstream resume MODULE:WORKFLOW RUN_ID [--db DB] [--step ID] [--data JSON] [--json]
    stepstream runs --db DB [--status S] [--workflow W] [--json]
    stepstream runs prune --db DB --older-than AGE [--status S]
    stepstream show RUN_ID --db DB [--json]
    stepstream serve MODULE[:WORKFLOW[,WORKFLOW...]]... [--host H] [--port N] [--db DB]
                     [--token T] [--cors-origin ORIGIN]... [--body-limit BYTES]
                     [--instances N] [--lease SECONDS] [--max-runs N]
    stepstream plugins
    stepstream --version

``DB`` is a SQLite file or a PostgreSQL DSN (``postgresql://user@host/db``, which needs
``stepstream[postgres]``); ``resume`` without ``--db`` uses the workflow's own storage.

``MODULE`` is a dotted module path (the current directory is searched too) or the path of a
``.py`` file; ``WORKFLOW`` the name of a committed :class:`~stepstream.Workflow` attribute
(``run`` and ``resume`` may leave it out when the module holds exactly one). JSON arguments
take ``@path`` to read a file (``@-``: standard input).

On a terminal, ``run`` and ``resume`` show rich's live view (running steps with spinners and
timers, the agent's answer as it streams; each finished step stays in the scrollback); piped,
they print plain lines as events arrive; ``--json`` prints one wire event per line. ``runs``
and ``show`` draw tables on a terminal and print plain tab-separated lines when piped. A
reader that stops early (``| head``) ends the command quietly, with status 141.

Exit status: 0 when the run succeeded or suspended (a suspended run prints how to resume it),
1 when it failed or was canceled, 2 for a usage error (bad JSON, unknown module, attribute,
run or plugin; not a workflow; a ``--db`` that is not a database or cannot be reached),
printed as one line on stderr; 130 when interrupted; 141 when the output's reader went away.

``serve --instances N`` starts N server processes on one listening socket (the kernel spreads
connections among them) and one ``--db``, which must then be PostgreSQL: any instance serves
any run, following runs that another executes through the database and passing cancel,
resume and send-event on to the run's owner; when an instance dies, the others take its runs
over once their leases (``--lease``, 30 s by default) expire. With ``--max-runs N`` an
instance executes at most N runs at once: a ``start`` or ``start-async`` past that is queued in
the database and started by an instance with room (claimed with ``SKIP LOCKED``). N separate
``serve`` processes on the same database (behind a load balancer) work the same way.

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

from stepstream import __version__
from stepstream.errors import StepstreamError

__all__ = ["EXIT_CLOSED_PIPE", "closed_pipe", "main"]


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
            if args.instances != 1:
                return _commands.serve_instances(args, list(sys.argv[1:] if argv is None else argv))
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
    except BrokenPipeError:
        return closed_pipe()
    except Exception as exc:
        problem = _commands.storage_problem(exc)
        if problem is None:
            raise
        _error(problem)
        return _commands.EXIT_USAGE


EXIT_CLOSED_PIPE = 141
"""128 + SIGPIPE, what a shell reports for a command whose reader went away."""


def closed_pipe() -> int:
    """Leave quietly after stdout's reader went away (``| head``); return the exit status.

    stdout is pointed at ``/dev/null``, so that the interpreter's last flush at exit cannot
    raise ``BrokenPipeError`` again (Python's documented recipe, in the signal module).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_CLOSED_PIPE


def _error(message: str) -> None:
    print(f"stepstream: error: {message}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stepstream", description="Run stepstream workflows and watch them live."
    )
    parser.add_argument("--version", action="version", version=f"stepstream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a workflow and show it live")
    run.add_argument("target", metavar="MODULE:WORKFLOW")
    run.add_argument("--input", metavar="JSON|@FILE", help="the workflow's input data")
    run.add_argument("--runtime-context", metavar="JSON|@FILE", help="a JSON object")
    _run_options(run, "keep the run in this SQLite file or PostgreSQL DSN, to resume it later")

    resume = sub.add_parser("resume", help="resume a stored, suspended run and show it live")
    resume.add_argument("target", metavar="MODULE:WORKFLOW")
    resume.add_argument("run_id", metavar="RUN_ID")
    resume.add_argument("--step", help="the suspended step (default: the only one)")
    resume.add_argument("--data", metavar="JSON|@FILE", help="the step's resume data")
    _run_options(resume, "where the run is stored (default: the workflow's own storage)")

    runs = sub.add_parser("runs", help="list stored runs (or prune old ones: runs prune)")
    runs.add_argument(
        "action", nargs="?", choices=["list", "prune"], default="list",
        help="prune: delete runs not updated for --older-than (finished ones, or --status)",
    )  # fmt: skip
    runs.add_argument("--db", metavar="DB", required=True, help=_DB_HELP)
    runs.add_argument(
        "--older-than", metavar="AGE", help="for prune: e.g. 30d, 12h, 15m or seconds"
    )
    runs.add_argument("--status", help="only runs with this status (e.g. suspended)")
    runs.add_argument("--workflow", metavar="ID", help="only runs of this workflow id")
    runs.add_argument("--json", action="store_true", help="print one JSON object per run")

    show = sub.add_parser("show", help="show a stored run: its final state and its events")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--db", metavar="DB", required=True, help=_DB_HELP)
    show.add_argument("--json", action="store_true", help="print one JSON document")

    serve = sub.add_parser("serve", help="serve workflows over HTTP (Mastra's API)")
    serve.add_argument("targets", nargs="+", metavar="MODULE[:WORKFLOW[,WORKFLOW...]]")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4111)
    serve.add_argument("--db", metavar="DB", help="keep runs in this SQLite file or DSN")
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
    serve.add_argument(
        "--instances",
        type=int,
        default=1,
        metavar="N",
        help="serve from N processes on one port and one PostgreSQL --db (default 1)",
    )
    serve.add_argument(
        "--lease",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a run's claim holds without renewal: a dead instance's runs are taken"
        " over after this (default 30)",
    )
    serve.add_argument(
        "--max-runs",
        type=int,
        default=0,
        metavar="N",
        help="execute at most N runs at once; with PostgreSQL, queue further starts for"
        " instances with room (default 0: no limit)",
    )
    serve.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)  # an instance's socket
    _plugin_option(serve)

    sub.add_parser("plugins", help="list the registered plugins and where each came from")
    return parser


_DB_HELP = "the runs' SQLite file or PostgreSQL DSN (postgresql://...)"


def _run_options(parser: argparse.ArgumentParser, db_help: str) -> None:
    parser.add_argument("--json", action="store_true", help="print one wire event per line")
    parser.add_argument("--db", metavar="DB", help=db_help)
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
