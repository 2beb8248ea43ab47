"""The protocol of the channel between the ``stream`` plugin and a ``Run.stream()`` consumer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .events import Event

__all__ = ["EventChannel"]


@runtime_checkable
class EventChannel(Protocol):
    """One run's events on their way to one consumer, as returned by ``open_event_stream``.

    The channel receives events through the ``on_event`` hook of the plugin that opened it; it
    ends by itself after the run's ``finish`` event. A channel may also offer
    ``receive_nowait() -> Event | None`` (the next buffered event, ``None`` when none is
    buffered, never waiting): the hub then takes buffered events without an ``await``.
    """

    async def receive(self) -> Event:
        """Return the next event, waiting for it; raise ``StopAsyncIteration`` at the end."""
        ...

    def end(self) -> None:
        """Mark the end: the consumer gets what is buffered, then ``StopAsyncIteration``."""
        ...

    def close(self) -> None:
        """The consumer leaves: drop what is buffered, keep nothing more, release the run."""
        ...
