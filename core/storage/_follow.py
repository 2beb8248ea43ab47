"""Following a run's stored log: its events so far, then each new one as it is committed.

A follower reads the log in pages from its position, and when it has read everything stored it
waits for a wake-up: the storage's own commits wake the followers of their runs at once (in
this process), and a backend that hears of other processes' commits (PostgreSQL's
``LISTEN/NOTIFY``) wakes them too. A wake-up carries a *hint*, the run's stored status and
last seq as that commit left them, so a follower knows whether to read without asking. The
stored log is the source of truth, never the hint: a follower that hears nothing for
``recheck`` seconds (a lost notification, a dropped listening connection) reads the run's head
again, and so does each one woken by a reconnect. A follower ends once it has yielded every
event up to the run's last and the run is final or (unless asked to follow it through its
suspensions) suspended.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from . import FINAL_STATUSES, StoredEvent

__all__ = ["ENDING_STATUSES", "PAGE", "Followers", "follow_log"]

PAGE = 500
"""How many stored events a follower reads at a time."""

ENDING_STATUSES = (*FINAL_STATUSES, "suspended")
"""The statuses at which a follower, once it has read the whole log, ends."""

Hint = tuple[str, int]  # (stored status, last seq) as a commit left the run


class _Follower:
    """One waiting follower's wake-up: an event and the newest hint it was given."""

    __slots__ = ("hint", "stale", "woken")

    def __init__(self) -> None:
        self.woken = asyncio.Event()
        self.hint: Hint | None = None
        self.stale = False

    def take(self) -> tuple[Hint | None, bool]:
        """The hint and staleness gathered since the last call (then forgotten)."""
        hint, stale = self.hint, self.stale
        self.hint, self.stale = None, False
        self.woken.clear()
        return hint, stale


class Followers:
    """The followers of each run in this storage instance, woken by commits and notifications."""

    def __init__(self) -> None:
        self._by_run: dict[str, set[_Follower]] = {}

    def __bool__(self) -> bool:
        return bool(self._by_run)

    def add(self, run_id: str) -> _Follower:
        follower = _Follower()
        self._by_run.setdefault(run_id, set()).add(follower)
        return follower

    def remove(self, run_id: str, follower: _Follower) -> None:
        found = self._by_run.get(run_id)
        if found is not None:
            found.discard(follower)
            if not found:
                del self._by_run[run_id]

    def wake(self, run_id: str, status: str, last_seq: int) -> None:
        """A commit left ``run_id`` at ``status`` with ``last_seq``: wake its followers."""
        for follower in self._by_run.get(run_id, ()):
            if follower.hint is None or follower.hint[1] <= last_seq:
                follower.hint = (status, last_seq)
            follower.woken.set()

    def wake_all(self) -> None:
        """Something may have been missed (a reconnect): every follower reads the head again."""
        for followers in self._by_run.values():
            for follower in followers:
                follower.stale = True
                follower.woken.set()


async def follow_log(
    followers: Followers,
    run_id: str,
    after_seq: int,
    *,
    read: Callable[[str, int, int], Awaitable[list[StoredEvent]]],
    head: Callable[[str], Awaitable[Hint | None]],
    recheck: float,
    listening: Callable[[], Awaitable[None]] | None = None,
    through_suspension: bool = False,
    await_creation: bool = False,
) -> AsyncIterator[StoredEvent]:
    """The events of ``run_id`` after ``after_seq`` (see the module docstring).

    :param read: ``read(run_id, after_seq, limit)``, a page of the stored log.
    :param head: The run's stored ``(status, last_seq)`` (``None``: unknown, which ends it).
    :param recheck: Seconds without a wake-up after which the head is read again.
    :param listening: Called before the first wait (a backend starts its listener there).
    :param through_suspension: Go on waiting at a suspension (until the run is final).
    :param await_creation: Wait for an unknown run to be created (a queued start) instead of
        ending at once.
    """
    ending = FINAL_STATUSES if through_suspension else ENDING_STATUSES
    follower = followers.add(run_id)
    last = after_seq
    known: Hint | None = None
    try:
        while True:
            hint, stale = follower.take()
            if stale:
                known = None
            if hint is not None and (known is None or hint[1] >= known[1]):
                known = hint
            if known is None:
                known = await head(run_id)
                if known is None and not await_creation:
                    return
            if known is None:  # not created yet: wait as for a running run with no events
                status, stored = "running", last
            else:
                status, stored = known
            if stored > last:
                page = await read(run_id, last, PAGE)
                for event in page:
                    last = event.seq
                    yield event
                if not page:  # the head runs ahead of the log: the run was pruned meanwhile
                    return
                continue
            if status in ending:
                return
            if listening is not None:
                await listening()
                listening, known = None, None
                continue  # what was committed before the listener listened: read it first
            try:
                await asyncio.wait_for(follower.woken.wait(), recheck)
            except TimeoutError:
                known = None
    finally:
        followers.remove(run_id, follower)
