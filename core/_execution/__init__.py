"""The engine: one :class:`Execution` (a start or a resume) of a run over a committed workflow.

Its parts, each in its own module: ``execution`` walks the graph and runs each step's
lifecycle; ``decision`` decides, without I/O, what to do with a step it reaches (run, replay
from a stored record, resume, recover, leave suspended); ``calling`` calls a step's function
on its executor with its timeout and retries; ``waiting`` holds the steps waiting in place for
an event; ``ending`` ends a run (``after_workflow_run``, ``finish``, the stored end), for an
execution and for ``Run.cancel()`` alike.
"""

from __future__ import annotations

from .ending import end_run
from .execution import CANCELED, Execution

__all__ = ["CANCELED", "Execution", "end_run"]
