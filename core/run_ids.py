"""Run ids that are safe to use as names: in file paths, URLs and log lines.

A run id chosen by a client (``create-run?runId=``) may end up as a file name (the ``jsonl``
exporter writes ``<directory>/<run_id>.jsonl``). :data:`RUN_ID_PATTERN` is the rule the HTTP
server enforces on every client-supplied id and the ``jsonl`` exporter on every id it turns into
a file name: 1 to 128 letters, digits, ``_``, ``.`` or ``-``, not starting with ``.`` or ``-``,
so never ``..``, never a path, never an absolute path, never something read as an option.
Uuids (the ids stepstream makes) always match.
"""

from __future__ import annotations

import re

__all__ = ["RUN_ID_PATTERN", "is_safe_run_id"]

RUN_ID_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
"""The whole run id must match this (``re.fullmatch``)."""

_RUN_ID = re.compile(RUN_ID_PATTERN)


def is_safe_run_id(run_id: str) -> bool:
    """Whether ``run_id`` matches :data:`RUN_ID_PATTERN`."""
    return _RUN_ID.fullmatch(run_id) is not None
