"""One run's event hub: every consumer of the run's events is a subscriber of it.

The run's dispatcher hands each event to :meth:`Hub.publish` once; the hub keeps a window of
the run's latest events in memory and wakes its subscribers. A :class:`Subscription` reads
from a sequence number on: the events it needs and the window no longer holds come from the
stored log (a durable run), page by page, so every subscriber sees every event once, in order,
with no gap. What a durable run's subscriber is shown is committed first (the same gate as
``Run.wait_stored``): nobody is shown an event a crash would take back.

The rule for a subscriber that falls behind (it never slows the run):

- the run's *primary* stream (the first ``Run.stream()``) reads its live events from the
  bounded channel that ``open_event_stream`` gave it, and a full channel pauses the run: that
  is the documented backpressure of ``Run.stream()``, and only it applies backpressure. A
  durable run's primary stream that goes on through a suspension leaves its channel there
  and reads on as any other subscriber (the window, the stored log), since the process that
  executes the run next may be another one: past a suspension it no longer pauses the run;
- any other subscriber of a durable run that falls out of the window reads on from storage,
  a page of :data:`PAGE` events at a time, then rejoins the window: it is never dropped;
- any other subscriber of an in-memory run that falls more than its ``buffer`` events behind
  the run (or out of the window) ends, with ``end_reason == "lagged"``: nothing else holds
  the events it missed.

A durable run's subscriber follows the stored log (:meth:`Storage.follow
<stepstream.storage.Storage.follow>`) from its position while the run is not executing here
(created and not started, or suspended: ``Hub.idle``): whatever executes the run next, this
process or another one on the same storage, its events reach the subscriber (up to the
suspension with ``close_on_suspend``), with no gap and no duplicate, and once this process
executes the run again its hub takes over.

A subscription ends (``end_reason``) when it delivered ``finish`` (``"finished"``), when the
run suspended and it was opened with ``close_on_suspend`` (``"suspended"``), when its consumer
left (``"closed"``), when it lagged (``"lagged"``), when the process stopped executing the run
(``"interrupted"``) or when the execution died (``"error"``, the error in ``error``).

Watchers (``Run.watch()``) are *listeners*: called synchronously by :meth:`Hub.publish` for
each event, as Mastra calls watch callbacks; an awaitable a listener returns is awaited by the
run before it goes on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias

from .events import Event, event_from_wire
from .status import is_final

if TYPE_CHECKING:
    from ._persist import Persistence
    from .channel import EventChannel
    from .result import WorkflowResult
    from .storage import Storage, StoredEvent

__all__ = ["PAGE", "WINDOW", "EndReason", "Hub", "Listener", "Subscription"]

EndReason: TypeAlias = Literal["finished", "suspended", "closed", "lagged", "interrupted", "error"]
"""Why a subscription ended (see the module docstring)."""

WINDOW = 8192
"""How many of a run's latest events its hub keeps in memory for its subscribers."""

PAGE = 100
"""How many stored events a subscriber reads from storage at a time."""


class Listener(Protocol):
    """A synchronous observer of one run's events (a watcher)."""

    def on_event(self, event: Event) -> Awaitable[None] | None:
        """Called with each event as it is published; an awaitable is awaited by the run."""
        ...

    def on_settled(self, result: WorkflowResult) -> None:
        """Called when an execution of the run ends or suspends, with its result."""
        ...


class Hub:
    """The event hub of one run (see the module docstring)."""

    def __init__(
        self,
        run_id: str,
        storage: Storage | None = None,
        persist: Persistence | None = None,
        *,
        window: int = WINDOW,
        on_error: Callable[[str, str, Exception], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self.storage = storage
        self.persist = persist
        self.head = -1
        """The seq of the latest event published (or stored, for a loaded run)."""
        self.finished = False
        self.suspended = False
        self.idle = True
        """Whether no execution of the run is under way here (not started, suspended, ended):
        a durable run may then be executed by another process, which the log shows."""
        self.error: BaseException | None = None
        self.interrupted = False
        self.primary: Subscription | None = None
        self.subscribers = 0
        """How many subscriptions have not ended."""
        # A list while it holds fewer than ``window`` events, a bounded deque from then on (the
        # oldest go as new ones come): an empty deque costs ~760 bytes, a run's few events in a
        # list a tenth of that, which counts at 10,000 concurrent runs.
        self._events: list[Event] | deque[Event] = []
        self._window = window
        self._changed: asyncio.Future[None] | None = None
        self._listeners: list[Listener] = []
        self._on_error = on_error

    @property
    def window(self) -> int:
        """How many of the latest events the hub keeps in memory."""
        return self._window

    @window.setter
    def window(self, size: int) -> None:
        self._window = size
        events = self._events
        self._events = deque(events, maxlen=size) if len(events) >= size else list(events)

    # -- the producer's side -------------------------------------------------------------------

    def publish(self, event: Event) -> list[Awaitable[None]]:
        """Keep ``event`` and wake the subscribers; return the awaitables of listeners.

        Never waits: a subscriber that is behind reads on by itself (see the module
        docstring), so none of them slows the run. It runs for every event of every run, so
        what nobody waits for costs nothing (no waiter: no wake-up; no listener: no list).
        """
        events = self._events
        if type(events) is list and len(events) >= self._window:
            events = self._events = deque(events, maxlen=self._window)
        events.append(event)
        self.head = event.seq
        self.suspended = False
        if event.type == "finish":
            self.finished = True
            self._release()
        if self._changed is not None:
            self._wake()
        if not self._listeners:
            return []
        waiters: list[Awaitable[None]] = []
        for listener in list(self._listeners):
            try:
                answer = listener.on_event(event)
            except Exception as exc:
                self._report(listener, "on_event", exc)
                continue
            if answer is not None:
                waiters.append(_isolated(answer, self, listener))
        return waiters

    def settle(self, result: WorkflowResult) -> None:
        """An execution ended or suspended with ``result``."""
        self.idle = True
        if result.status == "suspended":
            self.suspended = True
            primary = self.primary
            # A durable run's primary stream that goes on through the suspension leaves its
            # channel too: whoever executes the run next (maybe another process) is read from
            # the window and the stored log, as any subscriber's is.
            leaves = primary is not None and (primary.close_on_suspend or self.storage is not None)
            if leaves and primary is not None and primary.channel is not None:
                primary.channel.end()
        for listener in list(self._listeners):
            try:
                listener.on_settled(result)
            except Exception as exc:
                self._report(listener, "on_settled", exc)
        self._wake()

    def fail(self, error: BaseException, *, interrupted: bool = False) -> None:
        """The execution died with ``error`` (or this process stopped executing the run,
        ``interrupted``): subscribers that are caught up end, with that reason."""
        if self.error is None:  # the first reason is the one subscribers get
            self.error = error
            self.interrupted = interrupted
        if self.primary is not None and self.primary.channel is not None:
            self.primary.channel.end()
        self._wake()

    def restored(self, last_seq: int, status: str) -> None:
        """Take up a run loaded from storage: its log ends at ``last_seq``."""
        self.head = last_seq
        self.suspended = status == "suspended"
        self.finished = is_final(status)

    def resumed(self) -> None:
        """A new execution starts: an earlier one's suspension or failure no longer ends
        subscribers."""
        self.error = None
        self.interrupted = False
        self.suspended = False
        self.idle = False

    def _release(self) -> None:
        # Nothing more comes and the log holds it all: an ended durable run kept in memory (a
        # server keeps it a while) holds no window once its subscribers are done with it; a
        # later subscriber reads the log.
        if self.finished and self.storage is not None and self.subscribers == 0:
            self._events.clear()

    def _wake(self) -> None:
        changed, self._changed = self._changed, None
        # A run driven by sync twins moves between event loops: a closed one's waiter is gone.
        if changed is not None and not changed.done() and not changed.get_loop().is_closed():
            changed.set_result(None)

    def changed(self) -> asyncio.Future[None]:
        """A future done at the hub's next change (one for every subscriber waiting)."""
        loop = asyncio.get_running_loop()
        if self._changed is None or self._changed.get_loop() is not loop:
            self._changed = loop.create_future()
        return self._changed

    # -- listeners -----------------------------------------------------------------------------

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for each later event; returns the function that stops it."""
        self._listeners.append(listener)

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop

    def _report(self, listener: object, hook: str, exc: Exception) -> None:
        name = type(listener).__module__ + "." + type(listener).__qualname__
        if self._on_error is None:
            raise exc
        self._on_error(name, hook, exc)

    # -- the consumers' side -------------------------------------------------------------------

    def subscribe(
        self,
        after_seq: int | None = None,
        *,
        buffer: int = WINDOW,
        close_on_suspend: bool = False,
        channel: EventChannel | None = None,
    ) -> Subscription:
        """A new subscriber reading the events after ``after_seq`` (None: from the start).

        ``channel`` makes it the run's primary stream: its live events come from that channel
        (whose bound pauses the run) rather than from the window.

        :raises ValueError: if ``buffer`` is below 1 or ``after_seq`` below -1.
        """
        if buffer < 1:
            raise ValueError(f"buffer must be at least 1, got {buffer}")
        if after_seq is not None and after_seq < -1:
            raise ValueError(f"after_seq must be -1 or more, got {after_seq}")
        subscription = Subscription(
            self, -1 if after_seq is None else after_seq, buffer, close_on_suspend, channel
        )
        if channel is not None:
            self.primary = subscription
        return subscription

    def held(self, after: int) -> Event | None:
        """The event after ``after`` if the window holds it."""
        events = self._events
        if not events:
            return None
        index = after + 1 - events[0].seq
        if 0 <= index < len(events):
            return events[index]
        return None

    def oldest(self) -> int:
        """The seq of the oldest event in the window (``head + 1`` when it is empty)."""
        return self._events[0].seq if self._events else self.head + 1

    async def stored_after(self, after: int) -> list[Event]:
        """Up to :data:`PAGE` events after ``after`` that the window no longer holds: from the
        stored log, else from those recorded but not stored yet."""
        found: list[Event] = []
        if self.storage is not None:
            page = await self.storage.read_events(self.run_id, after, limit=PAGE)
            found = [event_from_wire(e.wire, run_id=self.run_id, seq=e.seq) for e in page]
        if not found and self.persist is not None:
            found = [e for e in self.persist.unstored() if e.seq > after][:PAGE]
        return found


async def _isolated(answer: Awaitable[None], hub: Hub, listener: object) -> None:
    # A watcher's own work fails alone: reported as a plugin error, the run goes on.
    try:
        await answer
    except Exception as exc:
        hub._report(listener, "on_event", exc)


class Subscription:
    """One subscriber of a run's hub: an async iterator of :class:`Event` and an async context
    manager; ``aclose()`` leaves (the run is not affected); ``end_reason`` says why it ended."""

    def __init__(
        self,
        hub: Hub,
        after: int,
        buffer: int,
        close_on_suspend: bool,
        channel: EventChannel | None,
    ) -> None:
        self.hub = hub
        self.last = after
        """The seq of the last event delivered (``after_seq`` before the first)."""
        self.buffer = buffer
        self.close_on_suspend = close_on_suspend
        self.channel = channel
        self.end_reason: EndReason | None = None
        self.error: BaseException | None = None
        # The primary reads what was published before it subscribed from the window or the log,
        # and what comes later from its channel.
        self._live_after = hub.head
        hub.subscribers += 1
        # A batch (a page read from storage) being handed over, last event first so that each
        # is popped off the end: a list costs a tenth of an empty deque, per subscriber.
        self._pending: list[Event] = []
        self._pending_stored = False  # whether it came from the followed log (see `_follow`)
        # A channel may hand over what it holds without an await (the built-in one does).
        self._take: Callable[[], Event | None] | None = getattr(channel, "receive_nowait", None)
        self._live = channel is not None
        """Whether live events come from the channel (a primary stream, until a durable
        run's suspension ends its channel)."""
        # While the run is suspended here: the stored log followed from `last`, its pending read
        # and whether the batch just taken came from it (stored already: no commit to wait for).
        self._log: AsyncIterator[StoredEvent] | None = None
        self._reading: asyncio.Future[StoredEvent] | None = None
        self._from_log = False

    @property
    def ended(self) -> bool:
        """Whether the subscription has ended (see ``end_reason``)."""
        return self.end_reason is not None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        # A plain method rather than an async generator: most events are already waiting
        # (in the channel or the window) when asked for, and are handed over with no await.
        pending = self._pending
        while self.end_reason is None:
            stored = False
            if pending:
                event, stored = pending.pop(), self._pending_stored
            else:
                ready = self._ready()
                if ready is None:
                    pending.extend(reversed(await self._batch()))
                    self._pending_stored, self._from_log = self._from_log, False
                    continue
                event = ready
            if event.seq <= self.last:  # read from the log or the window already
                continue
            persist = self.hub.persist
            if not stored and persist is not None and event.seq > persist.committed_seq:
                await persist.committed(event.seq)
                if persist.abandoned and event.seq > persist.committed_seq:
                    self._end("interrupted")  # never stored: the process stopped the run
                    break
            self.last = event.seq
            if event.type == "finish":
                self._end("finished")
                if self._log is not None:  # read from the log: its follower goes too
                    await self._unfollow()
            return event
        raise StopAsyncIteration

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Leave: nothing more is kept for this subscriber; the run goes on."""
        if self.end_reason is None:
            self._end("closed")
            self.hub._wake()  # a read waiting in another task ends now, not at the next event
        self._pending.clear()
        await self._unfollow()

    def _end(self, reason: EndReason) -> None:
        if self.end_reason is None:
            self.end_reason = reason
            if reason in ("error", "interrupted"):
                self.error = self.hub.error
            self.hub.subscribers -= 1
            self.hub._release()
        if self.channel is not None:
            if reason == "closed":
                self.channel.close()
            if self.hub.primary is self:
                self.hub.primary = None

    def _ready(self) -> Event | None:
        """The next event if it is at hand (the channel's buffer, the window), else None."""
        hub, last = self.hub, self.last
        if self._live and last >= self._live_after:
            return self._take() if self._take is not None else None
        if self._log is not None:  # following the log: the slow path decides when to stop
            return None
        if last < hub.head:
            event = hub.held(last)
            kept = self.channel is not None or hub.storage is not None
            if event is not None and (kept or hub.head - last <= self.buffer):
                return event
        return None

    async def _batch(self) -> list[Event]:
        """The next events to deliver, in order; empty after waiting for the hub or ending
        (the caller loops)."""
        hub, last = self.hub, self.last
        if self._live and self.channel is not None and last >= self._live_after:
            try:
                return [await self.channel.receive()]
            except StopAsyncIteration:
                # The channel ended with the run's finish, its suspension or its failure.
                reason = self._settled_reason()
                if reason is None and hub.suspended and hub.storage is not None:
                    self._live = False  # on through the suspension: the window, then the log
                    return []
                self._end(reason or "finished")
                return []
        if self._log is not None and not hub.idle:
            await self._unfollow()  # executed here again: the hub has what comes next
        if last < hub.head:
            event = hub.held(last)
            if event is not None:
                if self.channel is None and hub.storage is None and hub.head - last > self.buffer:
                    self._end("lagged")
                    return []
                return [event]
            if hub.storage is None and last + 1 < hub.oldest():
                self._end("lagged")  # in memory only: the events it missed are gone
                return []
            page = await hub.stored_after(last)
            if page:
                return page
        reason = self._settled_reason()
        if reason is not None:
            self._end(reason)
            return []
        if hub.idle and hub.storage is not None and not hub.finished:
            # Not executing here (created but not started, or suspended): another process
            # may execute it, and its log shows what it does.
            return await self._follow(hub.storage)
        # asyncio.wait: a subscriber canceled while waiting must not cancel the shared future.
        await asyncio.wait([hub.changed()])
        return []

    async def _follow(self, storage: Storage) -> list[Event]:
        """The next stored event of a run not executing here, whoever executes it (see the
        module docstring); empty when the hub changed first (the caller loops)."""
        if self._log is None:
            # A run that has published nothing may not be stored yet (about to start here):
            # its log is awaited rather than taken for an unknown run's, which ends at once.
            self._log = storage.follow(
                self.hub.run_id,
                self.last,
                through_suspension=not self.close_on_suspend,
                await_creation=self.hub.head < 0,
            )
        if self._reading is None:
            self._reading = asyncio.ensure_future(anext(self._log))
        reading = self._reading
        waits: list[asyncio.Future[Any]] = [reading, self.hub.changed()]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if not reading.done():
            return []  # the read goes on: the next batch takes it, or `_unfollow` drops it
        self._reading = None
        if reading.cancelled():  # dropped by `_unfollow`: the subscriber left meanwhile
            return []
        try:
            stored = reading.result()
        except StopAsyncIteration:  # the log read to the run's end (or to its suspension)
            self._end("suspended" if self.close_on_suspend else "finished")
            await self._unfollow()
            return []
        self._from_log = True
        return [event_from_wire(stored.wire, run_id=self.hub.run_id, seq=stored.seq)]

    async def _unfollow(self) -> None:
        reading, log = self._reading, self._log
        self._reading = self._log = None
        if reading is not None:
            reading.cancel()
            await asyncio.wait([reading])  # a read left behind fails alone (a dropped storage)
            if not reading.cancelled():
                reading.exception()
        if log is not None:
            await log.aclose()  # type: ignore[attr-defined]

    def _settled_reason(self) -> EndReason | None:
        hub = self.hub
        if hub.error is not None:
            return "interrupted" if hub.interrupted else "error"
        if hub.finished and self.last >= hub.head:
            return "finished"
        if self.close_on_suspend and hub.suspended and self.last >= hub.head:
            return "suspended"
        return None
