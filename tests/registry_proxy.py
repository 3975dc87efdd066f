"""A counting reverse proxy in front of the real test registry: tests read how many requests a
decision cost (``one request for an existing image``) from what crossed the wire."""

from __future__ import annotations

import contextlib
import http.client
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from .httpserve import serving


@dataclass
class Seen:
    requests: list[tuple[str, str]] = field(default_factory=list)

    def count(self, method: str | None = None, contains: str = "") -> int:
        return sum(1 for m, p in self.requests if (method is None or m == method) and contains in p)

    def clear(self) -> None:
        self.requests.clear()


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        upstream: str = self.server.upstream  # type: ignore[attr-defined]
        seen: Seen = self.server.seen  # type: ignore[attr-defined]
        seen.requests.append((self.command, self.path))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        host, _, port = upstream.partition(":")
        connection = http.client.HTTPConnection(host, int(port or 80), timeout=30)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() in ("connection", "transfer-encoding", "content-length"):
                    continue
                if name.lower() == "location":
                    value = value.replace(
                        f"//{upstream}", f"//127.0.0.1:{self.server.server_address[1]}"
                    )
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            connection.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def counting_proxy(upstream: str) -> Iterator[tuple[str, Seen]]:
    """``(127.0.0.1:PORT, seen)``: a registry address that forwards to ``upstream``."""
    seen = Seen()
    with serving(_Forward, upstream=upstream, seen=seen) as port:
        yield f"127.0.0.1:{port}", seen
