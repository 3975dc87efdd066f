"""Requests and responses between the HTTP transport and the API (no sockets here)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ascend.testing.kube import errors

JSON = "application/json"


@dataclass
class Response:
    code: int
    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Stream:
    """A chunked response; the iterator yields b"" while idle, so the server can notice a
    client that went away."""

    chunks: Iterator[bytes]
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


def json_response(obj: Any, code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(code, json.dumps(obj, separators=(",", ":")).encode(), JSON, headers or {})


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def param(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, default)

    def json(self) -> Any:
        if not self.body:
            raise errors.bad_request("the request has no body")
        try:
            return json.loads(self.body)
        except ValueError as error:
            raise errors.bad_request(
                f"the body of the request is not valid JSON: {error}"
            ) from None

    @property
    def accept(self) -> str:
        return self.headers.get("accept", "")


def parse_request(method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Request:
    parts = urlsplit(raw_path)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return Request(method, parts.path, query, {k.lower(): v for k, v in headers.items()}, body)
