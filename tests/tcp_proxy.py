"""A TCP proxy that can stop forwarding, as a network partition between a client and the API server would.

While blocked nothing is forwarded in either direction. The connections open when the block
begins are cut off for good, the way a partition leaves half-open connections behind: their
bytes are read and dropped, and they are never closed from our side, so a client without a
timeout waits on them forever. Connections opened while blocked are accepted and held, unread,
until the block ends, and then forwarded like any other.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class _Link:
    client: socket.socket
    upstream: socket.socket | None = None
    cut: bool = False
    closed: threading.Event = field(default_factory=threading.Event)


class BlockableProxy:
    """Forwards 127.0.0.1:`port` to `target` until `block()`, and again after `resume()`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._stopped = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def block(self) -> None:
        """Stops forwarding; every connection open now is cut off for good."""
        with self._lock:
            self._open.clear()
            for link in self._links:
                link.cut = True

    def resume(self) -> None:
        """Forwards again: connections opened while blocked go through, those cut off stay so."""
        self._open.set()

    def close(self) -> None:
        self._stopped = True
        self._open.set()
        self._listener.close()
        with self._lock:
            for link in self._links:
                for end in (link.client, link.upstream):
                    if end is not None:
                        end.close()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            link = _Link(connection)
            with self._lock:
                self._links.append(link)
            threading.Thread(target=self._connect, args=(link,), daemon=True).start()

    def _connect(self, link: _Link) -> None:
        self._open.wait()  # accepted while blocked: held until the block ends
        try:
            link.upstream = socket.create_connection(self._target)
        except OSError:
            link.client.close()
            return
        threading.Thread(target=self._pump, args=(link, link.client, link.upstream), daemon=True).start()
        threading.Thread(target=self._pump, args=(link, link.upstream, link.client), daemon=True).start()

    def _pump(self, link: _Link, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._open.wait()
                if not link.cut:
                    sink.sendall(data)
        except OSError:
            pass
        if not link.cut:  # a cut-off connection is never closed by us: its other end must time out by itself
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
