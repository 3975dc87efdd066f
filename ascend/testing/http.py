"""A threading HTTP server for test services (the Kubernetes emulator, the fake ARM) that knows
its open connections, so that stopping it closes keep-alive and streaming clients too and leaves
no thread behind."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ConnectionServer(ThreadingHTTPServer):
    """One thread per connection; :meth:`close_all` shuts every connection and joins them.

    Subclasses that replace the socket (a TLS wrap) override :meth:`serve_connection` and
    :meth:`track` the object they serve on.
    """

    daemon_threads = True
    allow_reuse_address = True
    thread_name = "test-http"

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.stopping = False
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._conn_threads: set[threading.Thread] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve, args=(request, client_address), name=self.thread_name, daemon=True
        )
        with self._lock:
            self._connections.add(request)
            self._conn_threads.add(thread)
        thread.start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.serve_connection(request, client_address)
        finally:
            self.untrack(request)
            with self._lock:
                self._conn_threads.discard(threading.current_thread())

    def serve_connection(self, request: Any, client_address: Any) -> None:
        """Serve one connection until the client or the server ends it."""
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up mid-stream are normal

    def track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def close_all(self) -> None:
        """Stop serving: shut every open connection and wait for the threads serving them."""
        self.stopping = True
        with self._lock:
            connections = list(self._connections)
            threads = list(self._conn_threads)
        for connection in connections:
            try:
                socket.socket.shutdown(connection, socket.SHUT_RDWR)
            except (OSError, ValueError):
                pass
        for thread in threads:
            thread.join(5)
