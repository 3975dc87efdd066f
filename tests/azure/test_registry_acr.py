"""AzureContainerRegistry against the real local registries and a fake ACR token exchange.

The local registries (.ci/services.sh) prove the core behaviour survives the subclass; the fake
ACR (a stdlib HTTP server in this file) speaks ACR's /oauth2/exchange and /oauth2/token so the
Azure AD path runs end to end over real HTTP. Every test gets a private, empty docker config.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from ascend.errors import RegistryError
from ascend.registry import MANIFEST_ACCEPT, OCIRegistry
from ascend_azure.registry import ACR_REFRESH_USER, ACR_SCOPE, AzureContainerRegistry, login_server

from ..httpserve import serving
from ..test_registry import basic_auth, push_oci_image, unique_repository, write_docker_config

USER = "ascend"
PASSWORD = "s3cret"
TENANT = "11111111-2222-3333-4444-555555555555"


class FakeCredential:
    """A TokenCredential that hands out a fixed token and records what it was asked for."""

    def __init__(self, token: str = "aad-token", error: Exception | None = None) -> None:
        self.token = token
        self.error = error
        self.calls: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls.append((scopes, kwargs))
        if self.error is not None:
            raise self.error
        return AccessToken(self.token, int(time.time()) + 3600)


def docker_config_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: str, user: str, password: str
) -> None:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    config = write_docker_config(tmp_path / "docker", {"auths": {registry: {"auth": encoded}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(config))


@pytest.fixture(autouse=True)
def empty_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No credentials unless a test writes some (an existing config.json stops docker.auth from
    reading ~/.docker/config.json)."""
    directory = write_docker_config(tmp_path / "docker-empty", {})
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    return directory


# -- login_server -------------------------------------------------------------------------------


class TestLoginServer:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("myacr", "myacr.azurecr.io"),
            ("MyACR01", "myacr01.azurecr.io"),
            ("  myacr  ", "myacr.azurecr.io"),
            ("a" * 50, "a" * 50 + ".azurecr.io"),
            ("myacr.azurecr.io", "myacr.azurecr.io"),
            ("MyACR.AzureCR.io", "myacr.azurecr.io"),
            ("myacr.azurecr.cn", "myacr.azurecr.cn"),
            ("registry.example.com:5443", "registry.example.com:5443"),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
            ("localhost:5000", "localhost:5000"),
            ("[::1]:5000", "[::1]:5000"),
        ],
    )
    def test_valid(self, value: str, expected: str) -> None:
        assert login_server(value) == expected

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "   ",
            "acr1",
            "a" * 51,
            "my-acr",
            "my_acr",
            "my acr",
            "https://myacr.azurecr.io",
            "myacr.azurecr.io/path",
            "myacr..azurecr.io",
            "-myacr.azurecr.io",
            "myacr.azurecr.io:port",
            "myacr.azurecr.io:123456",
        ],
    )
    def test_invalid(self, value: str) -> None:
        with pytest.raises(RegistryError) as caught:
            login_server(value)
        assert repr(value) in caught.value.message
        assert caught.value.fix is not None and "myacr" in caught.value.fix


class TestConstruction:
    def test_name_becomes_https_login_server(self) -> None:
        registry = AzureContainerRegistry("MyACR")
        assert registry.registry_url() == "myacr.azurecr.io"
        assert "https://myacr.azurecr.io" in repr(registry)
        assert registry.image_ref("ascend/runtime", "v1") == "myacr.azurecr.io/ascend/runtime:v1"

    def test_explicit_scheme_is_kept(self) -> None:
        registry = AzureContainerRegistry("http://127.0.0.1:5000/")
        assert registry.registry_url() == "127.0.0.1:5000"
        assert "http://127.0.0.1:5000" in repr(registry)
        assert isinstance(registry, OCIRegistry)

    def test_invalid_name_is_refused_at_construction(self) -> None:
        with pytest.raises(RegistryError, match="'my-acr'"):
            AzureContainerRegistry("my-acr")

    def test_importing_the_module_imports_no_azure_sdk(self) -> None:
        code = (
            "import sys, ascend_azure.registry; "
            "print(sorted(m for m in sys.modules if m == 'azure' or m.startswith('azure.')))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip() == "[]"


# -- the real local registries ------------------------------------------------------------------


class TestOpenRegistry:
    def test_exists_and_missing(self, open_registry: str) -> None:
        repository = unique_repository()
        push_oci_image(open_registry, repository, "v1")
        # The AAD credential is never needed: an open registry sends no challenge.
        credential = FakeCredential()
        registry = AzureContainerRegistry(open_registry, credential)
        assert registry.image_exists(repository, "v1") is True
        assert registry.image_exists(repository, "v2") is False
        assert credential.calls == []


class TestHtpasswdRegistry:
    @pytest.fixture
    def pushed(self, auth_registry: str, auth_credentials: tuple[str, str]) -> tuple[str, str]:
        repository = unique_repository()
        push_oci_image(auth_registry, repository, "v1", auth=auth_credentials)
        return repository, "v1"

    def test_docker_config_credentials(
        self,
        auth_registry: str,
        auth_credentials: tuple[str, str],
        pushed: tuple[str, str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        docker_config_with(tmp_path, monkeypatch, auth_registry, *auth_credentials)
        credential = FakeCredential()
        registry = AzureContainerRegistry(auth_registry, credential)
        assert registry.image_exists(*pushed) is True
        assert registry.image_exists(pushed[0], "missing") is False
        assert credential.calls == []  # the docker config came first

    def test_explicit_credentials(
        self, auth_registry: str, auth_credentials: tuple[str, str], pushed: tuple[str, str]
    ) -> None:
        registry = AzureContainerRegistry(auth_registry, credentials=auth_credentials)
        assert registry.image_exists(*pushed) is True

    def test_wrong_password_from_docker_config(
        self,
        auth_registry: str,
        pushed: tuple[str, str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        docker_config_with(tmp_path, monkeypatch, auth_registry, USER, "not-the-password")
        with pytest.raises(RegistryError, match="refused the credentials") as caught:
            AzureContainerRegistry(auth_registry, FakeCredential()).image_exists(*pushed)
        assert auth_registry in caught.value.message
        # Docker credentials were used, so the docker advice stands.
        assert caught.value.fix is not None and "docker login" in caught.value.fix

    def test_wrong_explicit_password(self, auth_registry: str, pushed: tuple[str, str]) -> None:
        registry = AzureContainerRegistry(auth_registry, credentials=(USER, "nope"))
        with pytest.raises(RegistryError, match="refused the credentials"):
            registry.image_exists(*pushed)

    def test_no_credentials_anywhere(self, auth_registry: str, pushed: tuple[str, str]) -> None:
        with pytest.raises(RegistryError, match="needs credentials") as caught:
            AzureContainerRegistry(auth_registry).image_exists(*pushed)
        assert caught.value.fix is not None and f"docker login {auth_registry}" in caught.value.fix

    def test_a_registry_without_token_exchange(
        self, auth_registry: str, pushed: tuple[str, str]
    ) -> None:
        """Not an ACR: /oauth2/exchange is 404, reported as a refused exchange."""
        with pytest.raises(RegistryError, match="HTTP 404") as caught:
            AzureContainerRegistry(auth_registry, FakeCredential()).image_exists(*pushed)
        assert auth_registry in caught.value.message
        assert caught.value.fix is not None and "AcrPull" in caught.value.fix


# -- a fake ACR ---------------------------------------------------------------------------------


@dataclass
class FakeAcr:
    port: int = 0
    images: set[tuple[str, str]] = field(default_factory=lambda: {("ascend/tiny", "v1")})
    aad_token: str = "aad-token"
    refresh_token: str = "acr-refresh-token"
    access_token: str = "acr-access-token"
    exchange_mode: str = "ok"  # ok | deny | drop | empty
    token_mode: str = "ok"  # ok | deny
    docker_login: tuple[str, str] = ("docker-user", "docker-pass")
    exchanges: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    manifest_requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


class _AcrHandler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    @property
    def acr(self) -> FakeAcr:
        return self.server.acr  # type: ignore[attr-defined,no-any-return]

    def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def do_POST(self) -> None:
        if self.path != "/oauth2/exchange":
            self._reply(404)
            return
        length = int(self.headers.get("Content-Length", "0"))
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        form["content-type"] = self.headers.get("Content-Type", "")
        self.acr.exchanges.append(form)
        mode = self.acr.exchange_mode
        if mode == "drop":
            self.close_connection = True  # no answer at all
            return
        valid = (
            form.get("grant_type") == "access_token"
            and form.get("service") == self.acr.host
            and form.get("access_token") == self.acr.aad_token
        )
        if mode == "deny" or not valid:
            self._reply(401, {"errors": [{"code": "UNAUTHORIZED"}]})
        elif mode == "empty":
            self._reply(200, {})
        else:
            self._reply(200, {"refresh_token": self.acr.refresh_token})

    def do_GET(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path != "/oauth2/token":
            self._reply(404)
            return
        auth = self.headers.get("Authorization")
        self.acr.token_requests.append(
            {"query": dict(urllib.parse.parse_qsl(parsed.query)), "auth": auth}
        )
        allowed = {
            basic_auth(ACR_REFRESH_USER, self.acr.refresh_token),
            basic_auth(*self.acr.docker_login),
        }
        if self.acr.token_mode == "deny" or auth not in allowed:
            self._reply(401, {"errors": [{"code": "UNAUTHORIZED"}]})
        else:
            self._reply(200, {"access_token": self.acr.access_token})

    def do_HEAD(self) -> None:
        auth = self.headers.get("Authorization")
        self.acr.manifest_requests.append(
            {"path": self.path, "auth": auth, "accept": self.headers.get("Accept")}
        )
        if auth != f"Bearer {self.acr.access_token}":
            realm = f"http://{self.acr.host}/oauth2/token"
            challenge = f'Bearer realm="{realm}",service="{self.acr.host}"'
            self._reply(401, headers={"WWW-Authenticate": challenge})
            return
        repository, _, tag = self.path.removeprefix("/v2/").partition("/manifests/")
        self._reply(200 if (repository, tag) in self.acr.images else 404)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def acr() -> Iterator[FakeAcr]:
    state = FakeAcr()
    with serving(_AcrHandler, acr=state) as port:
        state.port = port
        yield state


class TestAadExchange:
    def test_exists_and_missing_through_the_exchange(self, acr: FakeAcr) -> None:
        credential = FakeCredential(acr.aad_token)
        registry = AzureContainerRegistry(acr.host, credential, timeout=5)
        assert registry.image_exists("ascend/tiny", "v1") is True
        assert registry.image_exists("ascend/tiny", "v2") is False
        assert registry.image_exists("ascend/other", "v1") is False

        assert credential.calls == [((ACR_SCOPE,), {})]
        assert acr.exchanges == [
            {
                "grant_type": "access_token",
                "service": acr.host,
                "access_token": acr.aad_token,
                "content-type": "application/x-www-form-urlencoded",
            }
        ]
        first = acr.token_requests[0]
        assert first["auth"] == basic_auth(ACR_REFRESH_USER, acr.refresh_token)
        assert first["query"] == {"service": acr.host, "scope": "repository:ascend/tiny:pull"}
        assert all(r["accept"] == MANIFEST_ACCEPT for r in acr.manifest_requests)

    def test_one_exchange_serves_many_questions(self, acr: FakeAcr) -> None:
        credential = FakeCredential(acr.aad_token)
        registry = AzureContainerRegistry(acr.host, credential, timeout=5)
        answers = [registry.image_exists("ascend/tiny", t) for t in ("v1", "nope", "v1")]
        assert answers == [True, False, True]
        assert len(acr.exchanges) == 1
        assert len(credential.calls) == 1

    def test_tenant_and_scope(self, acr: FakeAcr) -> None:
        credential = FakeCredential(acr.aad_token)
        registry = AzureContainerRegistry(
            acr.host, credential, timeout=5, tenant_id=TENANT, scope=ACR_SCOPE
        )
        assert registry.image_exists("ascend/tiny", "v1") is True
        assert credential.calls == [((ACR_SCOPE,), {"tenant_id": TENANT})]
        assert acr.exchanges[0]["tenant"] == TENANT

    def test_docker_config_wins(
        self, acr: FakeAcr, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        docker_config_with(tmp_path, monkeypatch, acr.host, *acr.docker_login)
        credential = FakeCredential(acr.aad_token)
        registry = AzureContainerRegistry(acr.host, credential, timeout=5)
        assert registry.image_exists("ascend/tiny", "v1") is True
        assert acr.exchanges == []
        assert credential.calls == []
        assert acr.token_requests[0]["auth"] == basic_auth(*acr.docker_login)

    def test_explicit_credentials_win(self, acr: FakeAcr) -> None:
        credential = FakeCredential(acr.aad_token)
        registry = AzureContainerRegistry(
            acr.host, credential, timeout=5, credentials=acr.docker_login
        )
        assert registry.image_exists("ascend/tiny", "v1") is True
        assert acr.exchanges == []
        assert credential.calls == []

    @pytest.mark.parametrize("cause", ["refused", "foreign token"])
    def test_exchange_refused(self, acr: FakeAcr, cause: str) -> None:
        if cause == "refused":
            acr.exchange_mode = "deny"
        token = "someone-elses-token" if cause == "foreign token" else acr.aad_token
        registry = AzureContainerRegistry(acr.host, FakeCredential(token), timeout=5)
        with pytest.raises(RegistryError, match="HTTP 401") as caught:
            registry.image_exists("ascend/tiny", "v1")
        assert acr.host in caught.value.message
        assert caught.value.fix is not None
        assert "AcrPull" in caught.value.fix
        assert "az login" in caught.value.fix
        assert "az role assignment create --role AcrPull" in str(caught.value)
        assert len(acr.exchanges) == 1
        assert acr.token_requests == []  # no anonymous attempt hides the exchange's answer

    def test_exchange_unreachable(self, acr: FakeAcr) -> None:
        acr.exchange_mode = "drop"
        registry = AzureContainerRegistry(acr.host, FakeCredential(acr.aad_token), timeout=5)
        with pytest.raises(RegistryError, match="token exchange") as caught:
            registry.image_exists("ascend/tiny", "v1")
        assert acr.host in caught.value.message
        assert caught.value.fix is not None and "network" in caught.value.fix

    def test_exchange_without_refresh_token(self, acr: FakeAcr) -> None:
        acr.exchange_mode = "empty"
        registry = AzureContainerRegistry(acr.host, FakeCredential(acr.aad_token), timeout=5)
        with pytest.raises(RegistryError, match="no refresh token") as caught:
            registry.image_exists("ascend/tiny", "v1")
        assert acr.host in caught.value.message

    def test_not_signed_in(self, acr: FakeAcr) -> None:
        error = ClientAuthenticationError("Please run 'az login' to set up an account")
        registry = AzureContainerRegistry(acr.host, FakeCredential(error=error), timeout=5)
        with pytest.raises(RegistryError, match="Azure AD token") as caught:
            registry.image_exists("ascend/tiny", "v1")
        assert acr.host in caught.value.message
        assert caught.value.fix is not None and "az login" in caught.value.fix
        assert caught.value.__cause__ is error
        assert acr.exchanges == []

    def test_refresh_token_not_good_for_pull(self, acr: FakeAcr) -> None:
        """The exchange worked but the token service refuses to pull: the identity's role."""
        acr.token_mode = "deny"
        registry = AzureContainerRegistry(acr.host, FakeCredential(acr.aad_token), timeout=5)
        with pytest.raises(RegistryError, match="refused access") as caught:
            registry.image_exists("ascend/tiny", "v1")
        assert caught.value.fix is not None
        assert "AcrPull" in caught.value.fix
        assert "docker login" not in caught.value.fix

    def test_no_credential_and_no_docker_credentials(self, acr: FakeAcr) -> None:
        registry = AzureContainerRegistry(acr.host, timeout=5)
        with pytest.raises(RegistryError) as caught:
            registry.image_exists("ascend/tiny", "v1")
        assert acr.exchanges == []
        assert caught.value.fix is not None and f"docker login {acr.host}" in caught.value.fix
