"""Proxies that can make a service go away mid-test without touching the shared service itself.

* `EngineProxy`: a Unix-socket proxy in front of the Docker engine's socket. Stopping it makes the
  engine unreachable for a runner that talks through it, exactly as a ``dockerd`` restart would,
  without disturbing the shared engine (other test sessions use it).
* `TcpProxy`: a loopback TCP proxy (e.g. in front of the tests' PostgreSQL) that can go away and
  come back on the same port.

Both share `_Relay`: `stop` drops every open connection and stops listening (``shutdown`` first:
``close`` alone neither wakes the thread blocked in ``accept`` nor stops the kernel accepting).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

DOCKER_SOCKET = "/var/run/docker.sock"


class _Relay:
    def __init__(self) -> None:
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def _listen(self) -> socket.socket:
        raise NotImplementedError

    def _upstream(self) -> socket.socket:
        raise NotImplementedError

    def start(self) -> None:
        listener = self._listen()
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = self._upstream()
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        """Stop listening and drop every open connection (the service 'goes away')."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
            self._conns.clear()


class EngineProxy(_Relay):
    def __init__(self, path: Path, target: str = DOCKER_SOCKET) -> None:
        super().__init__()
        self.path = path
        self.target = target

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def _listen(self) -> socket.socket:
        self.path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        return listener

    def _upstream(self) -> socket.socket:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(self.target)
        return upstream

    def stop(self) -> None:
        super().stop()
        self.path.unlink(missing_ok=True)


class TcpProxy(_Relay):
    """Listens on `port` (0: a free one, kept across restarts) and relays to `target_port`."""

    def __init__(self, target_port: int, port: int = 0) -> None:
        super().__init__()
        self.target_port = target_port
        self.port = port

    def _listen(self) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        self.port = listener.getsockname()[1]
        return listener

    def _upstream(self) -> socket.socket:
        upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        upstream.settimeout(None)  # the connect is bounded; an idle relayed connection is not dropped
        return upstream
