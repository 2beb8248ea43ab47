"""How a run is shown while it runs: three renderers over one :class:`~._view.RunView`.

- :class:`LiveRenderer` (a terminal): rich's ``Live`` region holds the running steps with a
  spinner, their elapsed time and the agent's answer as it streams (its tail, so the region
  always fits the screen); each step that ends is printed above the region for good, with
  its full text, so the scrollback is the run's complete log.
- :class:`PlainRenderer` (a pipe or a file): one line per step start and end, agent text
  written token by token, every write flushed, so a reader sees the run as it happens.
- :class:`JsonRenderer` (``--json``): one wire event per line, and nothing else on stdout.

Each is a context manager; ``show(event)`` per event, ``note(text)`` for messages to the
person (run id, how to resume), ``finish(result, seconds)`` for the summary.
"""

from __future__ import annotations

import json
import sys
import threading
from types import TracebackType
from typing import Protocol, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.padding import Padding
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from stepstream.events import Event
from stepstream.result import WorkflowResult, now_ms

from ._view import RunView, StepView, duration, step_line, summary, tokens

__all__ = [
    "STATUS_STYLES",
    "JsonRenderer",
    "LiveRenderer",
    "PlainRenderer",
    "Renderer",
    "make_console",
]

STATUS_STYLES = {
    "running": "cyan",
    "success": "green",
    "failed": "red",
    "canceled": "yellow",
    "suspended": "yellow",
    "interrupted": "magenta",
}
"""The colour of each run and step status."""

_GUTTER = "  │ "


def make_console() -> Console:
    """A console on stdout; piped, lines are as long as their content (no wrapping at 80)."""
    return Console() if sys.stdout.isatty() else Console(width=240)


class Renderer(Protocol):
    """What the run and resume commands drive."""

    def __enter__(self) -> Renderer: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def show(self, event: Event) -> None:
        """Take one event of the run."""

    def note(self, text: str) -> None:
        """Tell the person something (not part of the run's events)."""

    def finish(self, result: WorkflowResult, seconds: float) -> None:
        """Close the view with the run's outcome."""


class JsonRenderer:
    """``--json``: each event's wire JSON on its own line of stdout; notes go to stderr."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __enter__(self) -> JsonRenderer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def show(self, event: Event) -> None:
        """Print the event's wire JSON and flush, so a pipe sees it at once."""
        self.out.write(json.dumps(event.to_wire(), ensure_ascii=False) + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        """Notes stay out of the event stream: they go to stderr."""
        print(text, file=sys.stderr, flush=True)

    def finish(self, result: WorkflowResult, seconds: float) -> None:
        """The events said it all; the exit status says how it ended."""


class PlainRenderer:
    """Plain incremental lines for a pipe: starts, ends, agent text token by token."""

    def __init__(self, out: TextIO, title: str) -> None:
        self.out = out
        self.title = title
        self.view = RunView()
        self._in_text = False

    def __enter__(self) -> PlainRenderer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._end_text()

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _end_text(self) -> None:
        if self._in_text:
            self._in_text = False
            self._write("\n")

    def show(self, event: Event) -> None:
        """Write what ``event`` changed, flushed at once."""
        step = self.view.handle(event)
        if event.type == "tool-call-delta" and step is not None:
            pad = "  " * step.depth + _GUTTER
            if not self._in_text:
                self._in_text = True
                self._write(pad)
            self._write(event.args_text_delta.replace("\n", "\n" + pad))
            return
        self._end_text()
        pad = "  " * (step.depth if step is not None else 0)
        if event.type == "start":
            self._write(f"▶ {self.title} · run {event.run_id}\n")
        elif event.type == "step-start" and step is not None:
            resumed = " (resumed)" if event.resumed_at is not None else ""
            self._write(f"{pad}● {step.name}{resumed} …\n")
        elif event.type == "step-waiting" and step is not None:
            self._write(f"{pad}● {step.name} (waiting) …\n")
        elif event.type == "tool-call-streaming-start":
            self._write(f"{pad}  {event.name} is answering:\n")
        elif event.type == "step-usage":
            pass  # the tokens are on the step's closing line
        elif step is not None and event.type in ("step-output", "tool-call", "tool-result"):
            self._write(f"{pad}  {step.notes[-1]}\n")
        elif step is not None and event.type != "tool-call-delta":
            self._write(pad + step_line(step) + "\n")
        elif event.type in ("error", "plugin-error"):
            self._write(f"! {self.view.problems[-1]}\n")

    def note(self, text: str) -> None:
        """Write ``text`` on its own line."""
        self._end_text()
        self._write(text + "\n")

    def finish(self, result: WorkflowResult, seconds: float) -> None:
        """Write the summary: status and duration, then the result or error."""
        self._end_text()
        lines = summary(result, seconds)
        self._write(f"■ {lines[0]}\n" + "".join(line + "\n" for line in lines[1:]))


class LiveRenderer:
    """rich's live view for a terminal (see the module docstring)."""

    def __init__(self, console: Console, title: str) -> None:
        self.console = console
        self.title = title
        self.view = RunView()
        # The live region is drawn by rich's refresh thread while events arrive on the loop's.
        self._lock = threading.Lock()
        self._spinners: dict[int, Spinner] = {}
        self._spinner = Spinner("dots", style="cyan")
        self._began = now_ms()
        self._live = Live(
            self,
            console=console,
            refresh_per_second=12.5,
            transient=True,
        )

    def __enter__(self) -> LiveRenderer:
        self._began = now_ms()
        self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._live.stop()

    def show(self, event: Event) -> None:
        """Update the view; print a step for good when it ends."""
        with self._lock:
            step = self.view.handle(event)
        # Printed outside the lock: rich's refresh thread holds its own lock while it draws us.
        if event.type == "start":
            self.console.print(
                Text.assemble(("▶ ", "bold"), (self.title, "bold"), f" · run {event.run_id}")
            )
        elif step is not None and event.type in ("step-result", "step-suspended"):
            self.console.print(_done(step))
        elif event.type in ("error", "plugin-error"):
            self.console.print(Text(f"! {self.view.problems[-1]}", style="yellow"))

    def note(self, text: str) -> None:
        """Print ``text`` above the live region."""
        self.console.print(Text(text))

    def finish(self, result: WorkflowResult, seconds: float) -> None:
        """Stop the live region and print the summary, coloured by status."""
        self._live.stop()
        lines = summary(result, seconds)
        style = STATUS_STYLES.get(result.status, "bold")
        self.console.print(Text(f"■ {lines[0]}", style=f"bold {style}"))
        for line in lines[1:]:
            self.console.print(Text(line, style="red" if line.startswith("error:") else ""))

    def __rich__(self) -> RenderableType:
        with self._lock:
            running = list(self.view.open.values())
            done = len(self.view.steps) - len(running)
            now = now_ms()
            # The footer keeps the region one line high at least, even with no step running.
            footer = Table.grid(padding=(0, 1))
            footer.add_row(
                self._spinner,
                Text(self.title, style="bold"),
                Text(f"{duration(now - self._began)} · {done} done, {len(running)} running"),
            )
            rows: list[RenderableType] = []
            room = max(3, self.console.height - 2 * len(running) - 3)
            for step in running:
                pad = "  " * step.depth
                spinner = self._spinners.setdefault(id(step), Spinner("dots", style="cyan"))
                line = Table.grid(padding=(0, 1))
                line.add_row(
                    spinner,
                    Text(step.name, style="bold"),
                    Text(duration(step.elapsed_ms(now)) + tokens(step.usage), style="dim"),
                )
                rows.append(Padding(line, (0, 0, 0, len(pad))))
                rows.extend(Text(f"{pad}  {note}", style="dim") for note in step.notes[-3:])
                if step.text:
                    width = max(10, self.console.width - len(pad) - len(_GUTTER))
                    wrapped = Text(step.text).wrap(self.console, width)
                    for part in list(wrapped)[-room:]:
                        rows.append(Text.assemble(pad + _GUTTER, part))
            return Group(*rows, footer)


def _done(step: StepView) -> RenderableType:
    """A step that ended, for the scrollback: its line, notes and whole text."""
    pad = "  " * step.depth
    style = STATUS_STYLES.get(step.status, "")
    parts: list[RenderableType] = [Text(pad + step_line(step), style=style)]
    parts.extend(Text(f"{pad}  {note}", style="dim") for note in step.notes)
    if step.text:
        for line in step.text.splitlines():
            parts.append(Text(pad + _GUTTER + line))
    return Group(*parts)
