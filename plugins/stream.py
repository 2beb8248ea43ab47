"""The built-in ``stream`` plugin: the bounded queue behind ``Run.stream()``.

It answers ``open_event_stream`` with a :class:`BoundedChannel` for the run, and its
``on_event`` puts each event of a streamed run into that run's channel: one dict lookup per
event, whatever the number of concurrent runs. When a channel holds ``buffer_size`` events,
``on_event`` returns a waiter that the engine awaits before producing the run's next event, so
a slow consumer slows its run down instead of growing memory; nothing is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from stepstream.hookspecs import hookimpl

if TYPE_CHECKING:
    from stepstream.events import Event

__all__ = ["BoundedChannel", "StreamPlugin"]


class BoundedChannel:
    """A single-consumer buffer of one run's events with backpressure for the producer.

    ``put`` never blocks and never drops: it appends and, when the buffer is at its bound,
    returns a future that resolves once the consumer has taken an event. While concurrent
    steps of one run each finish their ``put`` before waiting, the buffer may briefly hold one
    event more per such step.
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "_ended",
        "_getter",
        "_head",
        "_on_release",
        "_putters",
        "maxsize",
    )

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("buffer_size must be at least 1")
        self.maxsize = maxsize
        # A list read from ``_head`` rather than a deque: an empty deque costs ~760 bytes and
        # there is one channel per streamed run; a consumer that keeps up leaves the list empty
        # (it is cleared when read to its end), so its slots are reused.
        self._buffer: list[Event] = []
        self._head = 0
        self._getter: asyncio.Future[None] | None = None
        self._putters: list[asyncio.Future[None]] = []  # rarely more than one: no deque
        self._ended = False
        self._closed = False
        self._on_release: Callable[[], None] | None = None

    def on_release(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once when the channel ends or is closed (the owner forgets it)."""
        self._on_release = callback

    def __len__(self) -> int:
        return len(self._buffer) - self._head

    @property
    def closed(self) -> bool:
        """True once the consumer has left."""
        return self._closed

    def put(self, event: Event) -> asyncio.Future[None] | None:
        """Append ``event``; return a future to await while the buffer is full, else ``None``."""
        if self._closed or self._ended:
            return None
        self._buffer.append(event)
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)
        if event.type == "finish":
            self.end()
            return None
        if len(self._buffer) - self._head < self.maxsize:
            return None
        waiter = asyncio.get_running_loop().create_future()
        self._putters.append(waiter)
        return waiter

    async def receive(self) -> Event:
        """Return the next event; raise ``StopAsyncIteration`` after the end."""
        while self._head == len(self._buffer):
            if self._ended or self._closed:
                raise StopAsyncIteration
            self._getter = asyncio.get_running_loop().create_future()
            try:
                await self._getter
            finally:
                self._getter = None
        event = self.receive_nowait()
        assert event is not None
        return event

    def receive_nowait(self) -> Event | None:
        """Return the next buffered event, or ``None`` if none is buffered (never waits)."""
        buffer, head = self._buffer, self._head
        if head == len(buffer):
            return None
        event = buffer[head]
        head += 1
        if head == len(buffer):
            buffer.clear()
            head = 0
        elif head > self.maxsize:  # a consumer that stays behind: drop what it has read
            del buffer[:head]
            head = 0
        self._head = head
        if self._putters and len(buffer) - head < self.maxsize:
            self._wake_putters()
        return event

    def end(self) -> None:
        """No more events will come: the consumer drains the buffer, then stops."""
        self._ended = True
        self._release()
        if self._getter is not None and not self._getter.done():
            self._getter.set_result(None)

    def close(self) -> None:
        """The consumer leaves: drop the buffer and release any waiting producer."""
        self._closed = True
        self._buffer.clear()
        self._head = 0
        self._wake_putters()
        self._release()
        if self._getter is not None and not self._getter.done():
            self._getter.set_result(None)

    def _wake_putters(self) -> None:
        while self._putters:
            waiter = self._putters.pop(0)
            if not waiter.done():
                waiter.set_result(None)

    def _release(self) -> None:
        if self._on_release is not None:
            release, self._on_release = self._on_release, None
            release()


class StreamPlugin:
    """Routes each event of a streamed run into that run's :class:`BoundedChannel`."""

    def __init__(self) -> None:
        self._channels: dict[str, BoundedChannel] = {}

    @property
    def open_channels(self) -> int:
        """How many runs are being streamed right now."""
        return len(self._channels)

    @hookimpl
    def open_event_stream(self, run_id: str, buffer_size: int) -> BoundedChannel:
        """Open (replacing any previous one) the channel for ``run_id``."""
        previous = self._channels.pop(run_id, None)
        if previous is not None:
            previous.close()
        channel = BoundedChannel(buffer_size)
        # A partial, smaller than a closure over its two cells, per streamed run.
        channel.on_release(partial(self._forget, run_id, channel))
        self._channels[run_id] = channel
        return channel

    @hookimpl
    def on_event(self, event: Event) -> asyncio.Future[None] | None:
        """Put ``event`` into its run's channel, if that run is being streamed."""
        channel = self._channels.get(event.run_id)
        if channel is None:
            return None
        return channel.put(event)

    def _forget(self, run_id: str, channel: BoundedChannel) -> None:
        if self._channels.get(run_id) is channel:
            del self._channels[run_id]
