"""A tiny OCI image pusher for the emulator's pull tests, over urllib.

Independent of Ascend's own registry client on purpose: these tests judge the emulator's
kubelet, so the images it pulls must not be made by the code other tests exercise. Also a
forwarding proxy that corrupts chosen blobs (a real registry checks digests on upload, so it
never serves a bad blob by itself) or demands a bearer token (the local registry only does
basic auth).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import http.client
import io
import json
import tarfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from .httpserve import serving

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Pushed:
    reference: str  # registry/repository:tag
    manifest_digest: str
    config_digest: str
    layer_digest: str
    size: int  # manifest + config + layer bytes


def _request(
    url: str,
    method: str,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    credentials: tuple[str, str] | None = None,
) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if credentials:
        pair = f"{credentials[0]}:{credentials[1]}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
        return response.status, dict(response.headers.items())


def push_blob(
    registry: str, repository: str, data: bytes, credentials: tuple[str, str] | None = None
) -> str:
    """Monolithic upload: POST for a session, PUT the bytes with their digest."""
    digest = digest_of(data)
    base = f"http://{registry}"
    _, headers = _request(f"{base}/v2/{repository}/blobs/uploads/", "POST", b"", {}, credentials)
    location = headers["Location"]
    if location.startswith("/"):
        location = base + location
    separator = "&" if "?" in location else "?"
    _request(
        f"{location}{separator}digest={digest}",
        "PUT",
        data,
        {"Content-Type": "application/octet-stream"},
        credentials,
    )
    return digest


def layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """(tar.gz bytes, diff id) holding ``files`` (their parent directories first)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories = sorted(
            {"/".join(n.split("/")[:i]) for n in files for i in range(1, n.count("/") + 1)}
        )
        for name in directories:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content))
    plain = raw.getvalue()
    return gzip.compress(plain, mtime=0), digest_of(plain)


def push_image(
    registry: str,
    repository: str,
    tag: str,
    files: dict[str, bytes],
    env: dict[str, str],
    *,
    entrypoint: list[str] | None = None,
    cmd: list[str] | None = None,
    working_dir: str | None = None,
    credentials: tuple[str, str] | None = None,
) -> Pushed:
    """One layer of ``files``, a config with ``env`` (and Entrypoint/Cmd/WorkingDir), an OCI
    manifest tagged ``tag``."""
    layer_bytes, diff_id = layer(files)
    layer_digest = push_blob(registry, repository, layer_bytes, credentials)
    settings: dict[str, object] = {"Env": [f"{k}={v}" for k, v in env.items()]}
    if entrypoint is not None:
        settings["Entrypoint"] = entrypoint
    if cmd is not None:
        settings["Cmd"] = cmd
    if working_dir is not None:
        settings["WorkingDir"] = working_dir
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": settings,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    config_digest = push_blob(registry, repository, config, credentials)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [
                {"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": len(layer_bytes)}
            ],
        }
    ).encode()
    _request(
        f"http://{registry}/v2/{repository}/manifests/{tag}",
        "PUT",
        manifest,
        {"Content-Type": OCI_MANIFEST},
        credentials,
    )
    return Pushed(
        f"{registry}/{repository}:{tag}",
        digest_of(manifest),
        config_digest,
        layer_digest,
        len(manifest) + len(config) + len(layer_bytes),
    )


class _Forward(BaseHTTPRequestHandler):
    """GETs to ``upstream``; flips a byte of blobs in ``corrupt``; with ``token``, demands it
    as a bearer token, handed out at ``/token`` for basic ``credentials`` (a token registry)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server: Any = self.server
        if server.token and self.path.startswith("/token"):
            pair = f"{server.credentials[0]}:{server.credentials[1]}".encode()
            if self.headers.get("Authorization") == "Basic " + base64.b64encode(pair).decode():
                server.issued["tokens"] += 1
                return self._reply(200, [], json.dumps({"token": server.token}).encode())
            return self._reply(401, [], b"{}")
        if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
            realm = f"http://127.0.0.1:{server.server_address[1]}/token"
            challenge = f'Bearer realm="{realm}",service="test",scope="repository:x:pull"'
            return self._reply(401, [("WWW-Authenticate", challenge)], b"{}")
        skip = ("host", "connection", "authorization")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        host, _, port = server.upstream.partition(":")
        connection = http.client.HTTPConnection(host, int(port or 80), timeout=30)
        try:
            connection.request("GET", self.path, headers=headers)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        if any(self.path.endswith(f"/blobs/{digest}") for digest in server.corrupt) and body:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        keep = [
            (name, value)
            for name, value in response.getheaders()
            if name.lower() not in ("connection", "transfer-encoding", "content-length")
        ]
        self._reply(response.status, keep, body)

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def corrupting_proxy(upstream: str, corrupt: set[str]) -> Iterator[str]:
    """``127.0.0.1:PORT``: ``upstream`` for GETs, with one byte flipped in blobs ``corrupt``."""
    with serving(_Forward, upstream=upstream, corrupt=corrupt, token="") as port:
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def token_proxy(
    upstream: str, credentials: tuple[str, str]
) -> Iterator[tuple[str, dict[str, int]]]:
    """``(127.0.0.1:PORT, issued)``: ``upstream`` behind bearer-token auth; the token comes
    from the proxy's ``/token`` for basic ``credentials``; ``issued["tokens"]`` counts them."""
    issued = {"tokens": 0}
    with serving(
        _Forward,
        upstream=upstream,
        corrupt=set(),
        token="t0ken",
        credentials=credentials,
        issued=issued,
    ) as port:
        yield f"127.0.0.1:{port}", issued
