"""The core's daemonless builder pushes to ACR with the Azure plugin's credentials: an Azure AD
token exchanged for an ACR refresh token, then a push-scoped access token.

The fake ACR below speaks ACR's token endpoints and checks every registry request's token and
scope; requests it allows go on to the real local registry (.ci/services.sh), so the bytes
pushed are real and read back.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from ascend.images.build import LOCK_ANNOTATION, build_env_image, open_base
from ascend.images.lock import IndexOptions, resolve
from ascend.images.progress import Progress
from ascend.images.spec import ImageSpec
from ascend_azure.registry import ACR_REFRESH_USER, AzureContainerRegistry

from .. import services
from ..httpserve import serving
from ..image_helpers import push_python_base
from ..test_registry import basic_auth, write_docker_config
from .test_registry_acr import FakeCredential

pytestmark = pytest.mark.service("registry")


@dataclass
class FrontedAcr:
    upstream: str
    port: int = 0
    refresh_token: str = "acr-refresh"
    scopes_granted: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def acr(self) -> FrontedAcr:
        return self.server.acr  # type: ignore[attr-defined,no-any-return]

    def _reply(self, status: int, body: dict[str, Any] | None = None, **headers: str) -> None:
        data = json.dumps(body or {}).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _route(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        body = self._body()
        if parsed.path == "/oauth2/exchange":
            self._reply(200, {"refresh_token": self.acr.refresh_token})
        elif parsed.path == "/oauth2/token":
            if self.headers.get("Authorization") != basic_auth(
                ACR_REFRESH_USER, self.acr.refresh_token
            ):
                self._reply(401)
                return
            scope = dict(urllib.parse.parse_qsl(parsed.query)).get("scope", "")
            self.acr.scopes_granted.append(scope)
            self._reply(200, {"access_token": "token:" + scope})
        elif parsed.path.startswith("/v2/"):
            self._registry(parsed.path, body)
        else:
            self._reply(404)

    def _registry(self, path: str, body: bytes) -> None:
        repository = path.removeprefix("/v2/").split("/blobs/")[0].split("/manifests/")[0]
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer token:")
        needed = "pull" if self.command in ("GET", "HEAD") else "pull,push"
        if token != f"repository:{repository}:{needed}" and not (
            needed == "pull" and token == f"repository:{repository}:pull,push"
        ):
            self.acr.refused.append((self.command, path))
            realm = f"http://{self.acr.host}/oauth2/token"
            self._reply(
                401,
                WWW_Authenticate=f'Bearer realm="{realm}",service="{self.acr.host}",'
                f'scope="repository:{repository}:{needed}"',
            )
            return
        host, _, port = self.acr.upstream.partition(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization")
        }
        connection.request(self.command, self.path, body=body or None, headers=headers)
        response = connection.getresponse()
        data = response.read()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value.replace(self.acr.upstream, self.acr.host))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        connection.close()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _route

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def acr() -> Iterator[FrontedAcr]:
    state = FrontedAcr(services.require("registry"))
    with serving(_Handler, acr=state) as port:
        state.port = port
        yield state


def test_the_core_builder_pushes_to_acr_with_a_push_scoped_token(
    acr: FrontedAcr, wheelhouse: IndexOptions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(write_docker_config(tmp_path / "docker", {})))
    base = push_python_base(acr.upstream, repository=f"test/python-{uuid.uuid4().hex[:8]}")
    registry = AzureContainerRegistry(acr.host, FakeCredential(), timeout=10)
    base_here = base.replace(acr.upstream, acr.host)
    opened = open_base(base_here, registry)
    lock = resolve(["ascend-demo-tiny==2.0"], "3.11", wheelhouse)
    spec = ImageSpec(
        base_image=base_here,
        base_digest=opened.digest,
        python_version=opened.python_version,
        lock=lock,
        ascend_version="0.1.0",
        cloudpickle_version="3.1.1",
        repository=f"team/env-{uuid.uuid4().hex[:8]}",
    )
    image = build_env_image(spec, registry, index=wheelhouse, timeout=120, progress=Progress(False))
    assert image == f"{acr.host}/{spec.repository}:{spec.tag}"
    assert f"repository:{spec.repository}:pull,push" in acr.scopes_granted
    assert {"HEAD", "POST"} <= {method for method, _ in acr.refused}  # pull first, then push
    manifest = registry.manifest(spec.repository, spec.tag).json()
    assert manifest["annotations"][LOCK_ANNOTATION] == lock.text
