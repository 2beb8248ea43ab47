"""The real server on 127.0.0.1 for the client's tests, and a proxy that can cut connections."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from ..server.conftest import serve_in_thread


@pytest.fixture
def server_url() -> Iterator[str]:
    yield from serve_in_thread()


class Proxy:
    """A TCP relay to ``port`` on 127.0.0.1 whose open connections :meth:`cut` drops (as a
    network that fails would), while new connections go through."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.open: list[socket.socket] = []
        self.pumps: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self.listener.accept()
            except OSError:
                return
            far = socket.create_connection(("127.0.0.1", self.port))
            pumps = [
                threading.Thread(target=self._pump, args=pair, daemon=True)
                for pair in ((near, far), (far, near))
            ]
            with self.lock:
                self.open += [near, far]
                self.pumps += pumps
            for pump in pumps:
                pump.start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        src.close()  # each socket is read by one pump, which closes it

    def cut(self) -> None:
        """Drop every connection open now."""
        with self.lock:
            cut, self.open = self.open, []
        for s in cut:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        self.acceptor.join(5)
        self.cut()
        for pump in self.pumps:
            pump.join(5)


@pytest.fixture
def proxy(server_url: str) -> Iterator[Proxy]:
    relay = Proxy(int(server_url.rsplit(":", 1)[1]))
    yield relay
    relay.close()
