"""A threading HTTP server for test services (the Kubernetes emulator, the fake ARM) that knows
its open connections, so that stopping it closes keep-alive and streaming clients too and leaves
no thread behind."""

from __future__ import annotations

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ConnectionServer(ThreadingHTTPServer):
    """One thread per connection; :meth:`close_all` shuts every connection and joins them.

    With an ``ssl_context`` every connection is TLS; the handshake runs in the connection's
    thread, so a slow client never blocks the accept loop.
    """

    daemon_threads = True
    allow_reuse_address = True
    thread_name = "test-http"

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(address, handler)
        self.ssl_context = ssl_context
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
        if self.ssl_context is not None:
            self._serve_tls(request, client_address, self.ssl_context)
            return
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def _serve_tls(self, request: Any, client_address: Any, context: ssl.SSLContext) -> None:
        # wrap_socket detaches the plain socket: track the TLS one instead.
        connection: socket.socket = request
        try:
            # Headers and body go out in two writes: without NODELAY, Nagle's algorithm and the
            # client's delayed ACK add 40 ms to every answer.
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
            connection = tls
            self.track(tls)
            if self.stopping:
                return
            tls.settimeout(30)
            tls.do_handshake()
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        except (OSError, ValueError, AttributeError):
            pass  # a client that hangs up (or the server stopping) is normal
        finally:
            self.untrack(connection)
            try:
                connection.close()
            except OSError:
                pass

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
