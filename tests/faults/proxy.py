"""A TCP proxy for the fault tests: forwards each new connection to the first of its upstreams
that accepts it (failover, as a load balancer would), and can cut everything off: `drop()`
closes every open connection and, until `restore()`, closes each new one at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Sequence
from urllib.parse import urlsplit


class Proxy:
    def __init__(self, upstreams: Sequence[str]) -> None:
        self.targets = []
        for url in upstreams:
            parts = urlsplit(url)
            self.targets.append((parts.hostname or "127.0.0.1", parts.port or 80))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.dropping = False
        self.dropped = 0  # connections closed by drop() or refused while dropping
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="fault-proxy", daemon=True).start()

    def drop(self) -> None:
        with self._lock:
            self.dropping = True
            sockets, self._open = self._open, []
            self.dropped += len(sockets) // 2
        for s in sockets:
            _close(s)

    def restore(self) -> None:
        with self._lock:
            self.dropping = False

    def close(self) -> None:
        self.listener.close()
        self.drop()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = None if self.dropping else self._connect()
            with self._lock:
                if upstream is None or self.dropping:
                    self.dropped += 1
                    for s in (client, upstream):
                        if s is not None:
                            _close(s)
                    continue
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def _connect(self) -> socket.socket | None:
        for target in self.targets:
            with contextlib.suppress(OSError):
                upstream = socket.create_connection(target, timeout=2)
                upstream.settimeout(None)
                return upstream
        return None


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        src.settimeout(None)
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    for s in (src, dst):
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()
