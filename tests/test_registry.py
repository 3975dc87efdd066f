"""OCIRegistry against the real local registries (.ci/services.sh) and a fake Bearer registry.

Images are pushed by raw HTTP (OCI distribution API, stdlib only) into repositories with a
unique name per run, so reruns never collide. Every test runs with a private, empty docker
config so the developer's own credentials never leak in.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import socket
import stat
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ascend.errors import AscendError, RegistryError
from ascend.registry import MANIFEST_ACCEPT, ContainerRegistry, OCIRegistry, docker_credentials

from .httpserve import serving

USER = "ascend"
PASSWORD = "s3cret"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
# The OCI distribution spec's tag grammar.
OCI_TAG = r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"


# -- helpers ------------------------------------------------------------------------------------


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def unique_repository(prefix: str = "ascend-test") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}/tiny"


def closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http(
    method: str,
    url: str,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return int(response.status), dict(response.headers.items())
    except urllib.error.HTTPError as error:
        return int(error.code), dict(error.headers.items())


def _tiny_layer() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        payload = b"hello from ascend tests\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(payload)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(payload))
    return gzip.compress(raw.getvalue(), mtime=0)


def push_oci_image(
    registry: str,
    repository: str,
    tag: str,
    auth: tuple[str, str] | None = None,
) -> str:
    """Push a tiny OCI image (one config blob, one layer) by raw HTTP; returns the manifest digest.

    ``registry`` is ``host:port`` (plain HTTP) or a URL.
    """
    base = registry if "://" in registry else f"http://{registry}"
    headers = {"Authorization": basic_auth(*auth)} if auth else {}

    def upload(blob: bytes) -> dict[str, object]:
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        status, answer = _http("POST", f"{base}/v2/{repository}/blobs/uploads/", headers=headers)
        assert status == 202, f"starting a blob upload answered HTTP {status}"
        location = urllib.parse.urljoin(base + "/", answer["Location"])
        separator = "&" if urllib.parse.urlsplit(location).query else "?"
        put_url = f"{location}{separator}digest={urllib.parse.quote(digest)}"
        status, _ = _http(
            "PUT",
            put_url,
            data=blob,
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
        assert status == 201, f"finishing a blob upload answered HTTP {status}"
        return {"digest": digest, "size": len(blob)}

    layer = _tiny_layer()
    diff_id = "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "config": {},
        },
        sort_keys=True,
    ).encode()
    config_desc = {"mediaType": "application/vnd.oci.image.config.v1+json", **upload(config)}
    layer_desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **upload(layer)}
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_desc,
            "layers": [layer_desc],
        }
    ).encode()
    status, answer = _http(
        "PUT",
        f"{base}/v2/{repository}/manifests/{tag}",
        data=manifest,
        headers={**headers, "Content-Type": OCI_MANIFEST},
    )
    assert status == 201, f"pushing the manifest answered HTTP {status}"
    return answer.get("Docker-Content-Digest", "")


def write_docker_config(directory: Path, config: dict[str, object]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def install_fake_helper(bin_dir: Path, name: str, user: str, secret: str) -> Path:
    """An executable ``docker-credential-<name>`` that answers ``get`` like real helpers do."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(
        "#!/bin/sh\n"
        "read -r server\n"
        'if [ "$1" = "get" ]; then\n'
        f'  printf \'{{"ServerURL":"%s","Username":"{user}","Secret":"{secret}"}}\\n\' "$server"\n'
        "  exit 0\n"
        "fi\n"
        "exit 1\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def empty_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private docker config with no credentials (an existing config.json stops docker.auth
    from falling back to ~/.docker/config.json)."""
    directory = write_docker_config(tmp_path / "docker-empty", {})
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    return directory


@pytest.fixture
def pushed(open_registry: str) -> tuple[str, str]:
    """``(repository, tag)`` of an OCI image pushed to the open registry."""
    repository = unique_repository()
    push_oci_image(open_registry, repository, "v1")
    return repository, "v1"


@pytest.fixture
def pushed_auth(auth_registry: str, auth_credentials: tuple[str, str]) -> tuple[str, str]:
    """``(repository, tag)`` of an OCI image pushed to the htpasswd registry."""
    repository = unique_repository()
    push_oci_image(auth_registry, repository, "v1", auth=auth_credentials)
    return repository, "v1"


# -- the open registry --------------------------------------------------------------------------


class TestOpenRegistry:
    def test_pushed_oci_image_exists(self, open_registry: str, pushed: tuple[str, str]) -> None:
        repository, tag = pushed
        # The premise: without an OCI Accept header this registry hides the image (404) ...
        status, _ = _http("HEAD", f"http://{open_registry}/v2/{repository}/manifests/{tag}")
        assert status == 404
        # ... so True here proves image_exists sends the Accept header.
        assert OCIRegistry(open_registry).image_exists(repository, tag) is True

    def test_missing_tag(self, open_registry: str, pushed: tuple[str, str]) -> None:
        repository, _ = pushed
        assert OCIRegistry(open_registry).image_exists(repository, "v2") is False

    def test_missing_repository(self, open_registry: str) -> None:
        registry = OCIRegistry(open_registry)
        assert registry.image_exists(unique_repository("never-pushed"), "v1") is False

    def test_http_scheme_prefix_is_accepted(
        self, open_registry: str, pushed: tuple[str, str]
    ) -> None:
        registry = OCIRegistry(f"http://{open_registry}/")
        assert registry.registry_url() == open_registry
        assert registry.image_exists(*pushed) is True

    def test_one_registry_answers_several_questions(
        self, open_registry: str, pushed: tuple[str, str]
    ) -> None:
        repository, tag = pushed
        registry = OCIRegistry(open_registry)
        answers = [registry.image_exists(repository, t) for t in (tag, "nope", tag)]
        assert answers == [True, False, True]

    def test_credentials_are_not_needed_by_an_open_registry(
        self, open_registry: str, pushed: tuple[str, str]
    ) -> None:
        registry = OCIRegistry(open_registry, credentials=("nobody", "wrong"))
        assert registry.image_exists(*pushed) is True

    def test_image_ref_names_a_pullable_image(
        self, open_registry: str, pushed: tuple[str, str]
    ) -> None:
        repository, tag = pushed
        ref = OCIRegistry(open_registry).image_ref(repository, tag)
        assert ref == f"{open_registry}/{repository}:{tag}"


# -- the htpasswd registry (Basic challenge) ----------------------------------------------------


class TestBasicAuthRegistry:
    def test_explicit_credentials(
        self,
        auth_registry: str,
        auth_credentials: tuple[str, str],
        pushed_auth: tuple[str, str],
    ) -> None:
        repository, tag = pushed_auth
        registry = OCIRegistry(auth_registry, credentials=auth_credentials)
        assert registry.image_exists(repository, tag) is True
        assert registry.image_exists(repository, "missing") is False
        assert registry.image_exists(unique_repository("never-pushed"), tag) is False

    def test_credentials_from_docker_config_auths(
        self,
        auth_registry: str,
        auth_credentials: tuple[str, str],
        pushed_auth: tuple[str, str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        user, password = auth_credentials
        encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
        config = write_docker_config(
            tmp_path / "docker", {"auths": {auth_registry: {"auth": encoded}}}
        )
        monkeypatch.setenv("DOCKER_CONFIG", str(config))

        assert docker_credentials(auth_registry) == (user, password)
        registry = OCIRegistry(auth_registry)
        assert registry.image_exists(*pushed_auth) is True
        assert registry.image_exists(pushed_auth[0], "missing") is False

    def test_no_credentials_anywhere(
        self, auth_registry: str, pushed_auth: tuple[str, str]
    ) -> None:
        with pytest.raises(RegistryError) as caught:
            OCIRegistry(auth_registry).image_exists(*pushed_auth)
        assert auth_registry in caught.value.message
        assert caught.value.fix is not None
        assert f"docker login {auth_registry}" in caught.value.fix
        assert "docker login" in str(caught.value)

    def test_credentials_for_another_registry_do_not_count(
        self,
        auth_registry: str,
        pushed_auth: tuple[str, str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        config = write_docker_config(
            tmp_path / "docker", {"auths": {"elsewhere.example.com": {"auth": encoded}}}
        )
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        with pytest.raises(RegistryError, match="needs credentials"):
            OCIRegistry(auth_registry).image_exists(*pushed_auth)

    def test_wrong_password_explicit(
        self, auth_registry: str, pushed_auth: tuple[str, str]
    ) -> None:
        registry = OCIRegistry(auth_registry, credentials=(USER, "not-the-password"))
        with pytest.raises(RegistryError, match="refused the credentials") as caught:
            registry.image_exists(*pushed_auth)
        assert auth_registry in caught.value.message
        assert caught.value.fix is not None and "docker login" in caught.value.fix

    def test_wrong_password_from_docker_config(
        self,
        auth_registry: str,
        pushed_auth: tuple[str, str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        encoded = base64.b64encode(f"{USER}:nope".encode()).decode()
        config = write_docker_config(
            tmp_path / "docker", {"auths": {auth_registry: {"auth": encoded}}}
        )
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        with pytest.raises(RegistryError, match="refused the credentials"):
            OCIRegistry(auth_registry).image_exists(*pushed_auth)

    def test_credential_helper(
        self,
        auth_registry: str,
        auth_credentials: tuple[str, str],
        pushed_auth: tuple[str, str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        user, password = auth_credentials
        install_fake_helper(tmp_path / "bin", "ascendfake", user, password)
        monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
        config = write_docker_config(
            tmp_path / "docker", {"credHelpers": {auth_registry: "ascendfake"}}
        )
        monkeypatch.setenv("DOCKER_CONFIG", str(config))

        # Helpers answer with capitalised keys (Username/Secret); both spellings are accepted.
        assert docker_credentials(auth_registry) == (user, password)
        registry = OCIRegistry(auth_registry)
        assert registry.image_exists(*pushed_auth) is True
        assert registry.image_exists(pushed_auth[0], "missing") is False

    def test_creds_store(
        self,
        auth_registry: str,
        auth_credentials: tuple[str, str],
        pushed_auth: tuple[str, str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        user, password = auth_credentials
        install_fake_helper(tmp_path / "bin", "ascendstore", user, password)
        monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
        config = write_docker_config(tmp_path / "docker", {"credsStore": "ascendstore"})
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        assert OCIRegistry(auth_registry).image_exists(*pushed_auth) is True

    @pytest.mark.filterwarnings("ignore:docker-credential-ascendmissing")
    def test_credential_helper_not_installed(
        self,
        auth_registry: str,
        pushed_auth: tuple[str, str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        config = write_docker_config(
            tmp_path / "docker", {"credHelpers": {auth_registry: "ascendmissing"}}
        )
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        with pytest.raises(RegistryError) as caught:
            OCIRegistry(auth_registry).image_exists(*pushed_auth)
        assert "docker-credential-ascendmissing" in str(caught.value)
        assert auth_registry in caught.value.message
        assert caught.value.fix is not None and "credential helper" in caught.value.fix


# -- docker_credentials without any service -----------------------------------------------------


class TestDockerCredentials:
    def test_auths_entry(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        encoded = base64.b64encode(b"someone:pa:ss").decode()
        config = write_docker_config(
            tmp_path / "docker", {"auths": {"registry.example.com:5443": {"auth": encoded}}}
        )
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        assert docker_credentials("registry.example.com:5443") == ("someone", "pa:ss")

    def test_unknown_registry_is_none(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        encoded = base64.b64encode(b"someone:secret").decode()
        config = write_docker_config(
            tmp_path / "docker", {"auths": {"registry.example.com": {"auth": encoded}}}
        )
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        assert docker_credentials("other.example.com") is None

    def test_empty_config_is_none(self) -> None:
        assert docker_credentials("registry.example.com") is None

    def test_credential_helper_keys_are_normalized(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        install_fake_helper(tmp_path / "bin", "ascendfake", "helper-user", "helper-secret")
        monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
        config = write_docker_config(
            tmp_path / "docker", {"credHelpers": {"registry.example.com": "ascendfake"}}
        )
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        assert docker_credentials("registry.example.com") == ("helper-user", "helper-secret")

    @pytest.mark.filterwarnings("ignore:docker-credential-ascendmissing")
    def test_missing_helper(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        config = write_docker_config(
            tmp_path / "docker", {"credHelpers": {"registry.example.com": "ascendmissing"}}
        )
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        with pytest.raises(RegistryError) as caught:
            docker_credentials("registry.example.com")
        assert "registry.example.com" in caught.value.message
        assert "docker-credential-ascendmissing" in caught.value.message
        assert isinstance(caught.value, AscendError)


# -- unreachable registries ---------------------------------------------------------------------


class TestUnreachable:
    def test_closed_port(self) -> None:
        port = closed_port()
        registry = OCIRegistry(f"127.0.0.1:{port}", timeout=2)
        start = time.monotonic()
        with pytest.raises(RegistryError, match="unreachable") as caught:
            registry.image_exists("ascend/tiny", "v1")
        assert time.monotonic() - start < 5
        assert f"127.0.0.1:{port}" in caught.value.message
        assert caught.value.fix is not None and "registry_url" in caught.value.fix

    def test_silent_server_times_out(self) -> None:
        """A server that accepts the connection and never answers: the timeout, not a hang."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            port = listener.getsockname()[1]
            registry = OCIRegistry(f"127.0.0.1:{port}", timeout=1)
            start = time.monotonic()
            with pytest.raises(RegistryError, match="unreachable"):
                registry.image_exists("ascend/tiny", "v1")
            elapsed = time.monotonic() - start
        assert 0.5 < elapsed < 5


# -- addresses, schemes, references, names ------------------------------------------------------


class TestAddresses:
    def test_registry_url_without_scheme(self) -> None:
        assert OCIRegistry("127.0.0.1:5000").registry_url() == "127.0.0.1:5000"

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("http://127.0.0.1:5000", "127.0.0.1:5000"),
            ("https://myacr.azurecr.io/", "myacr.azurecr.io"),
            ("  ghcr.io  ", "ghcr.io"),
            ("localhost:5000/", "localhost:5000"),
        ],
    )
    def test_registry_url_drops_scheme_and_slash(self, url: str, expected: str) -> None:
        assert OCIRegistry(url).registry_url() == expected

    @pytest.mark.parametrize("url", ["", "   ", "/"])
    def test_empty_url(self, url: str) -> None:
        with pytest.raises(RegistryError, match="empty") as caught:
            OCIRegistry(url)
        assert caught.value.fix is not None and "registry_url" in caught.value.fix

    @pytest.mark.parametrize(
        ("url", "scheme"),
        [
            ("127.0.0.1:5000", "http"),
            ("localhost:5000", "http"),
            ("localhost", "http"),
            ("myacr.azurecr.io", "https"),
            ("registry.example.com:5000", "https"),
            ("https://127.0.0.1:5000", "https"),
            ("http://registry.example.com", "http"),
        ],
    )
    def test_scheme_rules(self, url: str, scheme: str) -> None:
        """Loopback hosts default to HTTP, others to HTTPS; an explicit scheme wins (the repr
        shows the base URL; test_scheme_is_used_on_the_wire checks one case on the wire)."""
        host = url.split("://", 1)[-1]
        assert f"{scheme}://{host}" in repr(OCIRegistry(url))

    def test_scheme_is_used_on_the_wire(self) -> None:
        port = closed_port()
        with pytest.raises(RegistryError, match=rf"http://127\.0\.0\.1:{port} is unreachable"):
            OCIRegistry(f"127.0.0.1:{port}", timeout=2).image_exists("a", "b")

    def test_ipv6_loopback_uses_http(self) -> None:
        """A plain-HTTP registry on [::1] answers image_exists (loopback defaults to HTTP)."""
        if not socket.has_ipv6:
            pytest.skip("no IPv6")
        try:
            server = _IPv6Server(("::1", 0), _NotFoundHandler)
        except OSError as error:
            pytest.skip(f"IPv6 loopback unavailable: {error}")
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            port = server.server_address[1]
            registry = OCIRegistry(f"[::1]:{port}", timeout=2)
            assert registry.image_exists("ascend/tiny", "v1") is False
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)

    def test_uppercase_localhost_uses_http(self) -> None:
        assert "http://LOCALHOST:5000" in repr(OCIRegistry("LOCALHOST:5000"))

    def test_image_ref(self) -> None:
        assert OCIRegistry("127.0.0.1:5000").image_ref("ascend/runtime", "py3.11-0123") == (
            "127.0.0.1:5000/ascend/runtime:py3.11-0123"
        )
        assert OCIRegistry("https://myacr.azurecr.io/").image_ref("app", "v1") == (
            "myacr.azurecr.io/app:v1"
        )

    def test_is_a_container_registry(self) -> None:
        assert isinstance(OCIRegistry("127.0.0.1:5000"), ContainerRegistry)


class TestNames:
    """Invalid names are refused before any request: the registry address is unreachable, so
    reaching the network would raise 'unreachable' instead."""

    @pytest.fixture
    def nowhere(self) -> OCIRegistry:
        return OCIRegistry(f"127.0.0.1:{closed_port()}", timeout=2)

    @pytest.mark.parametrize(
        "repository",
        [
            "",
            "Ascend/tiny",
            "ascend/Tiny",
            "ascend tiny",
            "/ascend",
            "ascend/",
            "ascend//tiny",
            "-ascend",
            "ascend-",
            "ascend..tiny",
            "ascend/../etc",
            "ascend?x=1",
            "ascend:tag",
            "ascend@sha256",
        ],
    )
    def test_invalid_repository(self, nowhere: OCIRegistry, repository: str) -> None:
        with pytest.raises(RegistryError, match="repository name") as caught:
            nowhere.image_exists(repository, "v1")
        assert repr(repository) in caught.value.message
        assert "unreachable" not in str(caught.value)

    @pytest.mark.parametrize(
        "tag",
        ["", ".v1", "-v1", "v1:latest", "v/1", "v 1", "v1?x", "ü", "a" * 129],
    )
    def test_invalid_tag(self, nowhere: OCIRegistry, tag: str) -> None:
        with pytest.raises(RegistryError, match="tag") as caught:
            nowhere.image_exists("ascend/tiny", tag)
        assert repr(tag) in caught.value.message
        assert "unreachable" not in str(caught.value)

    @pytest.mark.parametrize(
        ("repository", "tag"),
        [
            ("a", "v1"),
            ("ascend/tiny", "latest"),
            ("a.b_c__d---e/f0", "_"),
            ("ascend-runtime", "py3.11-0123456789abcdef"),
            ("ascend", "A" * 128),
        ],
    )
    def test_valid_names_reach_the_network(
        self, nowhere: OCIRegistry, repository: str, tag: str
    ) -> None:
        with pytest.raises(RegistryError, match="unreachable"):
            nowhere.image_exists(repository, tag)

    def test_tag_with_trailing_newline(self, nowhere: OCIRegistry) -> None:
        with pytest.raises(RegistryError, match="tag 'v1\\\\n' is invalid"):
            nowhere.image_exists("ascend/tiny", "v1\n")

    def test_repository_with_trailing_newline(self, nowhere: OCIRegistry) -> None:
        with pytest.raises(RegistryError, match="repository name 'ascend/tiny\\\\n' is invalid"):
            nowhere.image_exists("ascend/tiny\n", "v1")


# -- a fake Bearer-token registry (no such registry exists locally) -----------------------------


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class _NotFoundHandler(BaseHTTPRequestHandler):
    """Answers 404 to everything (a registry where nothing exists)."""

    def do_HEAD(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class FakeBearerState:
    port: int = 0
    tags: set[str] = field(default_factory=lambda: {"v1"})
    token_mode: str = "token"  # token | access_token | deny | none | bad-token
    token_requests: list[dict[str, object]] = field(default_factory=list)
    manifest_requests: list[dict[str, object]] = field(default_factory=list)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"


class _BearerHandler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    @property
    def state(self) -> FakeBearerState:
        return self.server.state  # type: ignore[attr-defined,no-any-return]

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        auth = self.headers.get("Authorization")
        self.state.manifest_requests.append(
            {"path": self.path, "auth": auth, "accept": self.headers.get("Accept")}
        )
        if auth != "Bearer good-token":
            challenge = (
                f'Bearer realm="{self.state.realm}",service="fake",scope="repository:x:pull"'
            )
            self._reply(401, headers={"WWW-Authenticate": challenge})
            return
        prefix = "/v2/x/manifests/"
        found = self.path.startswith(prefix) and self.path[len(prefix) :] in self.state.tags
        self._reply(200 if found else 404)

    def do_GET(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path != "/token":
            self._reply(404)
            return
        self.state.token_requests.append(
            {
                "query": dict(urllib.parse.parse_qsl(parsed.query)),
                "auth": self.headers.get("Authorization"),
            }
        )
        mode = self.state.token_mode
        if mode == "deny":
            self._reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
            return
        body: dict[str, str] = {
            "token": {"token": "good-token"},
            "access_token": {"access_token": "good-token"},
            "bad-token": {"token": "bad-token"},
            "none": {},
        }[mode]
        self._reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def bearer() -> Iterator[FakeBearerState]:
    state = FakeBearerState()
    with serving(_BearerHandler, state=state) as port:
        state.port = port
        yield state


class TestBearerChallenge:
    def address(self, state: FakeBearerState) -> str:
        return f"127.0.0.1:{state.port}"

    def test_token_flow_with_explicit_credentials(self, bearer: FakeBearerState) -> None:
        registry = OCIRegistry(self.address(bearer), credentials=("alice", "pw"), timeout=5)
        assert registry.image_exists("x", "v1") is True
        assert registry.image_exists("x", "v2") is False

        first = bearer.token_requests[0]
        assert first["auth"] == basic_auth("alice", "pw")
        assert first["query"] == {"service": "fake", "scope": "repository:x:pull"}
        authorised = [r for r in bearer.manifest_requests if r["auth"] == "Bearer good-token"]
        assert {r["path"] for r in authorised} == {"/v2/x/manifests/v1", "/v2/x/manifests/v2"}
        assert all(r["accept"] == MANIFEST_ACCEPT for r in bearer.manifest_requests)

    def test_token_is_reused(self, bearer: FakeBearerState) -> None:
        registry = OCIRegistry(self.address(bearer), credentials=("alice", "pw"), timeout=5)
        assert [registry.image_exists("x", t) for t in ("v1", "v2", "v1")] == [True, False, True]
        assert len(bearer.token_requests) == 1

    def test_anonymous_token_without_credentials(self, bearer: FakeBearerState) -> None:
        registry = OCIRegistry(self.address(bearer), timeout=5)
        assert registry.image_exists("x", "v1") is True
        assert bearer.token_requests[0]["auth"] is None

    def test_token_flow_with_docker_config_credentials(
        self, bearer: FakeBearerState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        address = self.address(bearer)
        encoded = base64.b64encode(b"bob:hunter2").decode()
        config = write_docker_config(tmp_path / "docker", {"auths": {address: {"auth": encoded}}})
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        assert OCIRegistry(address, timeout=5).image_exists("x", "v1") is True
        assert bearer.token_requests[0]["auth"] == basic_auth("bob", "hunter2")

    def test_access_token_field(self, bearer: FakeBearerState) -> None:
        bearer.token_mode = "access_token"
        assert OCIRegistry(self.address(bearer), timeout=5).image_exists("x", "v1") is True

    def test_token_endpoint_refuses(self, bearer: FakeBearerState) -> None:
        bearer.token_mode = "deny"
        registry = OCIRegistry(self.address(bearer), credentials=("alice", "bad"), timeout=5)
        with pytest.raises(RegistryError, match="refused access") as caught:
            registry.image_exists("x", "v1")
        assert bearer.realm in caught.value.message
        assert "401" in caught.value.message
        assert caught.value.fix is not None and "docker login" in caught.value.fix

    def test_token_endpoint_returns_no_token(self, bearer: FakeBearerState) -> None:
        bearer.token_mode = "none"
        with pytest.raises(RegistryError, match="no token"):
            OCIRegistry(self.address(bearer), timeout=5).image_exists("x", "v1")

    def test_token_not_accepted_by_the_registry(self, bearer: FakeBearerState) -> None:
        bearer.token_mode = "bad-token"
        with pytest.raises(RegistryError, match="refused the credentials"):
            OCIRegistry(self.address(bearer), timeout=5).image_exists("x", "v1")
