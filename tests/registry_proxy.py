"""A reverse proxy in front of the real test registry, for two things tests need:

- counting: how many requests a decision cost (``one request for an existing image``), read
  from what crossed the wire;
- a private corner of the shared registry: with ``namespace``, every repository name is
  prefixed on the way in (and the prefix stripped from upload locations and pagination links
  on the way out), so a test may use the fixed names ``ascend-runtime`` and ``ascend-env``
  without seeing, or leaving, another test's images.
"""

from __future__ import annotations

import contextlib
import http.client
import urllib.parse
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

    def _inward(self, path: str) -> str:
        namespace: str | None = self.server.namespace  # type: ignore[attr-defined]
        if not namespace:
            return path
        parts = urllib.parse.urlsplit(path)
        route, query = parts.path, parts.query
        if route.startswith("/v2/") and route != "/v2/":
            route = f"/v2/{namespace}/{route[4:]}"
        if "from=" in query:  # a cross-repository mount names the source repository
            pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
            query = urllib.parse.urlencode(
                [(k, f"{namespace}/{v}" if k == "from" else v) for k, v in pairs]
            )
        return urllib.parse.urlunsplit(("", "", route, query, ""))

    def _outward(self, value: str) -> str:
        namespace: str | None = self.server.namespace  # type: ignore[attr-defined]
        upstream: str = self.server.upstream  # type: ignore[attr-defined]
        here = f"127.0.0.1:{self.server.server_port}"  # type: ignore[attr-defined]
        if namespace:
            value = value.replace(f"/v2/{namespace}/", "/v2/")
        return value.replace(f"//{upstream}", f"//{here}")

    def _forward(self) -> None:
        upstream: str = self.server.upstream  # type: ignore[attr-defined]
        seen: Seen = self.server.seen  # type: ignore[attr-defined]
        seen.requests.append((self.command, self.path))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        host, _, port = upstream.partition(":")
        connection = http.client.HTTPConnection(host, int(port or 80), timeout=60)
        try:
            connection.request(self.command, self._inward(self.path), body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() in ("connection", "transfer-encoding", "content-length"):
                    continue
                if name.lower() in ("location", "link"):
                    value = self._outward(value)
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
def counting_proxy(upstream: str, namespace: str | None = None) -> Iterator[tuple[str, Seen]]:
    """``(127.0.0.1:PORT, seen)``: a registry address that forwards to ``upstream``."""
    seen = Seen()
    with serving(_Forward, upstream=upstream, seen=seen, namespace=namespace) as port:
        yield f"127.0.0.1:{port}", seen
