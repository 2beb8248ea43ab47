"""Server-Sent Events bytes to the JSON data they carry (no I/O): the agent's token path.

The model's stream is read as raw bytes from the SDK's streaming response; each event's
``data`` is parsed with ``jiter`` (the JSON parser the ``openai`` SDK itself depends on), so
a chunk costs one parse into plain dicts instead of a pydantic model per chunk.
"""

from __future__ import annotations

from typing import Any

import jiter

__all__ = ["DONE", "SSEData"]

DONE = object()
"""What :meth:`SSEData.feed` returns for the ``[DONE]`` sentinel of chat completions."""


class SSEData:
    """Splits a byte stream into events and returns each event's parsed ``data``.

    Lines other than ``data:`` (``event:``, ``id:``, ``retry:``, comments) carry nothing a
    chat-completions stream needs and are skipped; an event's several ``data:`` lines are
    joined with newlines, as the SSE specification says.
    """

    __slots__ = ("_data", "_rest")

    def __init__(self) -> None:
        self._rest = b""
        self._data: list[bytes] = []

    def feed(self, piece: bytes) -> list[Any]:
        """Take the next bytes; return the data of the events they complete, in order."""
        lines = (self._rest + piece).split(b"\n")
        self._rest = lines.pop()
        out: list[Any] = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data:
                    out.append(self._parse())
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
        return out

    def close(self) -> list[Any]:
        """The stream ended: return the data of an event left without its blank line."""
        if self._rest:
            tail, self._rest = self._rest, b""
            return [*self.feed(tail + b"\n"), *self.close()]
        return [self._parse()] if self._data else []

    def _parse(self) -> Any:
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        self._data = []
        if data.startswith(b"[DONE]"):
            return DONE
        return jiter.from_json(data, cache_mode="keys")
