"""The HTTP transport: a threading HTTP/1.1 server (keep-alive, chunked streams) that counts
requests and can close every open connection when it stops, leaving no thread behind."""

from __future__ import annotations

import select
import socket
import ssl
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

from ascend.testing.http import ConnectionServer
from ascend.testing.kube.counter import RequestCounter
from ascend.testing.kube.messages import Request, Response, Stream, parse_request


class Handles(Protocol):
    """What answers requests: the emulator's API, or a process kubelet's log endpoint."""

    def handle(self, request: Request) -> Response | Stream: ...


class ApiServer(ConnectionServer):
    thread_name = "kube-api-conn"
    # the listen backlog: socketserver's default of 5 drops (or resets) the connections of
    # many clients that arrive at once, as a test with 100 concurrent callers does
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        counter: RequestCounter,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(address, ApiHandler, ssl_context)
        self.api: Handles | None = None
        self.counter = counter


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ApiServer
    server_version = "ascend-kube-emulator"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _client_gone(self) -> bool:
        if self.server.stopping:
            return True
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = parse_request(method, self.path, dict(self.headers.items()), body)
        if not request.path.startswith("/debug/"):
            self.server.counter.count(method, request.path)
        assert self.server.api is not None
        result = self.server.api.handle(request)
        if isinstance(result, Response):
            self.send_response(result.code)
            self.send_header("Content-Type", result.content_type)
            self.send_header("Content-Length", str(len(result.body)))
            for name, value in result.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(result.body)
            return
        self._stream(result)

    def _stream(self, stream: Stream) -> None:
        self.send_response(200)
        self.send_header("Content-Type", stream.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        for name, value in stream.headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            for chunk in stream.chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                if self._client_gone():
                    self.close_connection = True
                    return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True
        finally:
            close = getattr(stream.chunks, "close", None)
            if close is not None:
                close()
