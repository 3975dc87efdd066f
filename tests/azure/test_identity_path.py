"""Workload identity for real: a job pod reaches Blob storage with no key at all.

Everything runs on 127.0.0.1, with the real azure-identity, adlfs and azure-storage-blob:

- an Azurite of its own, over HTTPS with ``--oauth basic``: it accepts a bearer token whose
  ``aud`` is ``https://storage.azure.com`` and whose ``iss`` is ``https://sts.windows.net/<tid>/``
  (it does not check signatures), next to the shared key used only to set up and to look;
- a fake Microsoft Entra ID (:class:`FakeEntra`) that answers the token request azure-identity's
  ``WorkloadIdentityCredential`` sends when ``AZURE_AUTHORITY_HOST`` points at it, and checks
  it the way Entra does: the client assertion must be the pod's projected service-account
  token and the client id the managed identity Ascend configured;
- a trap standing in for every proxy (``HTTP(S)_PROXY``, ``NO_PROXY=127.0.0.1,localhost``):
  anything that tries to leave 127.0.0.1 ends there, is refused and recorded, and the tests
  assert the trap saw nothing.

What was learned running it: azure-identity (1.27) exchanges the federated token with its own
``AadClient``, not MSAL's network code (MSAL only provides the token cache): the only request
is ``POST {AZURE_AUTHORITY_HOST}/{tenant}/oauth2/v2.0/token``. No OpenID discovery, no instance
discovery, so nothing like ``disable_instance_discovery`` is needed to stay local. adlfs has no
variable of its own for the account host, but fsspec reads ``FSSPEC_<PROTOCOL>_<KWARG>``
variables as default arguments, so ``FSSPEC_AZ_ACCOUNT_HOST`` points the unchanged runner code
(``fsspec.open("az://...")``) at the local Azurite.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ascend.compute import JobRequest
from ascend.config import AscendConfig
from ascend.kubernetes.manifest import build_job
from ascend_azure import credentials
from ascend_azure.storage import storage_from_config
from ascend_azure.testing.arm import _write_certificate
from ascend_azure.workload_identity import configure_pod

from .. import services

ACCOUNT = "devstoreaccount1"
# Azurite's documented, public development key: used only to create the container and to look
# at what the keyless clients wrote, never given to them.
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
TENANT_ID = "9a0c1b2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
CLIENT_ID = "5b1d6e2a-7c3f-4d8e-9a0b-1c2d3e4f5a6b"  # the managed identity Ascend is configured with
OTHER_CLIENT_ID = "00000000-1111-4222-8333-444444444444"
OBJECT_ID = "c0ffee00-1234-4567-89ab-cdef01234567"
CONTAINER = "ascend-wi"
NAMESPACE = "ascend-users-alice"
STORAGE_SCOPE = "https://storage.azure.com/.default"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SUBPROCESS_TIMEOUT = 60

# What the runner does in the pod: plain fsspec, the account and the identity from the env.
RUNNER_CODE = textwrap.dedent(
    """
    import sys

    import fsspec

    url, payload = sys.argv[1], sys.argv[2].encode()
    with fsspec.open(url, "wb") as handle:
        handle.write(payload)
    with fsspec.open(url, "rb") as handle:
        sys.stdout.write(handle.read().decode())
    """
)

# Only for the failing pod: azure-storage-blob retries a failed credential like a failed request,
# 3 times with 15 s, 18 s and 24 s (+-3 s) of back-off, so the real runner takes about 90 s per
# storage call to fail. The retries stay; only their sleeps are removed.
NO_BACKOFF = textwrap.dedent(
    """
    from azure.storage.blob._shared import policies_async

    policies_async.ExponentialRetry.get_backoff_time = lambda self, settings: 0
    """
)


def unsigned_jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def service_account_token(namespace: str, service_account: str) -> str:
    """What kubelet projects into the pod for AKS's webhook (unsigned: Entra here is fake)."""
    now = int(time.time())
    return unsigned_jwt(
        {
            "aud": ["api://AzureADTokenExchange"],
            "iss": "https://oidc.local.test/issuer/",
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
        }
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- a fake Microsoft Entra ID token endpoint -----------------------------------------------


class FakeEntra:
    """``POST /{tenant}/oauth2/v2.0/token`` (client credentials with a JWT client assertion),
    over HTTPS on 127.0.0.1; every request is recorded in ``requests`` and the token requests'
    forms in ``token_forms``. ``assertion`` and ``client_id`` are what it accepts."""

    def __init__(self, cert_file: Path, key_file: Path, tenant_id: str, client_id: str) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.assertion = ""
        self.requests: list[tuple[str, str]] = []
        self.token_forms: list[dict[str, str]] = []
        self.issued: list[str] = []
        self._lock = threading.Lock()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self._server = _EntraServer(("127.0.0.1", 0), self, context)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def reset(self, assertion: str) -> None:
        with self._lock:
            self.assertion = assertion
            self.requests.clear()
            self.token_forms.clear()
            self.issued.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def answer(self, method: str, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append((method, path))
            if method == "POST" and path.endswith("/oauth2/v2.0/token"):
                self.token_forms.append(dict(form))
                return self._token(path, form)
        return 404, _aad_error("invalid_request", 90099, f"no such endpoint: {method} {path}")

    def _token(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        tenant = path.strip("/").split("/")[0]
        if tenant != self.tenant_id:
            return 400, _aad_error("invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return 400, _aad_error("unsupported_grant_type", 70003, "The grant type is wrong.")
        if form.get("client_assertion_type") != JWT_BEARER:
            return 400, _aad_error("invalid_request", 7000216, "client_assertion_type is wrong.")
        if form.get("client_id") != self.client_id:
            return 400, _aad_error(
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the "
                f"directory '{self.tenant_id}'.",
            )
        if not self.assertion or form.get("client_assertion") != self.assertion:
            return 401, _aad_error(
                "invalid_client",
                700211,
                "No matching federated identity record found for presented assertion.",
            )
        if form.get("scope") != STORAGE_SCOPE:
            return 400, _aad_error("invalid_scope", 70011, f"scope {form.get('scope')!r}.")
        now = int(time.time())
        token = unsigned_jwt(
            {
                "aud": "https://storage.azure.com",
                "iss": f"https://sts.windows.net/{self.tenant_id}/",
                "iat": now,
                "nbf": now - 60,
                "exp": now + 3600,
                "oid": OBJECT_ID,
                "tid": self.tenant_id,
                "appid": self.client_id,
                "sub": OBJECT_ID,
            }
        )
        self.issued.append(token)
        return 200, {
            "token_type": "Bearer",
            "expires_in": 3600,
            "ext_expires_in": 3600,
            "access_token": token,
        }


def _aad_error(error: str, code: int, message: str) -> dict[str, Any]:
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {message}",
        "error_codes": [code],
        "trace_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4()),
    }


class _EntraServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], entra: FakeEntra, context: Any) -> None:
        super().__init__(address, _EntraHandler)
        self.entra = entra
        self.context = context

    def get_request(self) -> tuple[Any, Any]:
        connection, address = super().get_request()
        # The handshake runs in the connection's thread (first read), not in the accept loop.
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = self.context.wrap_socket(
            connection, server_side=True, do_handshake_on_connect=False
        )
        return connection, address


class _EntraHandler(BaseHTTPRequestHandler):
    server: _EntraServer

    def _reply(self, form: dict[str, str]) -> None:
        path = urllib.parse.urlsplit(self.path).path
        status, body = self.server.entra.answer(self.command, path, form)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._reply({})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        self._reply(dict(urllib.parse.parse_qsl(body, keep_blank_values=True)))

    def log_message(self, format: str, *args: Any) -> None:
        pass


# -- a trap for anything that tries to leave 127.0.0.1 ----------------------------------------


class ProxyTrap:
    """Listens where every proxy variable points; records the first line sent, then hangs up."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        trap = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(2)
                try:
                    line = self.request.recv(512).split(b"\r\n", 1)[0]
                except OSError:
                    line = b"<nothing>"
                trap.hits.append(line.decode(errors="replace"))

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def env(self) -> dict[str, str]:
        names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
        env = {name: self.url for name in names} | {name.lower(): self.url for name in names}
        return env | {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


# -- the module's services ----------------------------------------------------------------


@dataclass
class LocalAzure:
    directory: Path
    ca_file: Path
    blob_port: int
    entra: FakeEntra
    trap: ProxyTrap

    @property
    def account_host(self) -> str:
        """What adlfs puts after ``https://``: the account is the path's first segment."""
        return f"127.0.0.1:{self.blob_port}/{ACCOUNT}"

    def blob_service(self) -> Any:
        """A shared-key client, to set up and to look (never what is under test)."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(
            f"https://{self.account_host}",
            credential={"account_name": ACCOUNT, "account_key": ACCOUNT_KEY},
            connection_verify=str(self.ca_file),
            proxies={},
            retry_total=0,
        )

    def read_blob(self, name: str) -> bytes | None:
        blob = self.blob_service().get_blob_client(CONTAINER, name)
        if not blob.exists():
            return None
        data: bytes = blob.download_blob().readall()
        return data


def _start_azurite(binary: str, directory: Path, cert: Path, key: Path) -> tuple[Any, int]:
    port = _free_port()
    log = open(directory / "azurite.log", "wb")  # noqa: SIM115 (closed with the process)
    command = [
        binary,
        "--blobHost", "127.0.0.1",
        "--blobPort", str(port),
        "--inMemoryPersistence",  # (refused together with --location; cwd is the temp dir)
        "--oauth", "basic",
        "--cert", str(cert),
        "--key", str(key),
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--silent",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=directory)
    log.close()
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, port
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            output = (directory / "azurite.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"Azurite did not listen on 127.0.0.1:{port}:\n{output}")
        time.sleep(0.05)


def _stop(process: Any) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="module")
def local_azure() -> Iterator[LocalAzure]:
    binary = services.require("azurite-bin")
    directory = Path(tempfile.mkdtemp(prefix="ascend-identity-path-"))
    entra = trap = process = None
    try:
        cert, key = _write_certificate(directory)
        process, port = _start_azurite(binary, directory, cert, key)
        entra = FakeEntra(cert, key, TENANT_ID, CLIENT_ID)
        trap = ProxyTrap()
        local = LocalAzure(directory, cert, port, entra, trap)
        local.blob_service().create_container(CONTAINER)
        yield local
    finally:
        if process is not None:
            _stop(process)
        if entra is not None:
            entra.stop()
        if trap is not None:
            trap.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def azure(local_azure: LocalAzure) -> Iterator[LocalAzure]:
    local_azure.trap.hits.clear()
    yield local_azure
    assert local_azure.trap.hits == [], "something tried to leave 127.0.0.1"


# -- 1 and 2: the job pod -----------------------------------------------------------------


@pytest.fixture
def azure_config(
    ascend_pm: Any, register_plugin: Any, monkeypatch: pytest.MonkeyPatch
) -> AscendConfig:
    import ascend_azure.plugin

    register_plugin(ascend_azure.plugin, "azure")
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "azure")
    monkeypatch.setenv("ASCEND_AZURE_STORAGE_ACCOUNT", ACCOUNT)
    monkeypatch.setenv("ASCEND_AZURE_WORKLOAD_IDENTITY", "true")
    monkeypatch.setenv("ASCEND_AZURE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("ASCEND_AZURE_CONTAINER", CONTAINER)
    config = AscendConfig.load(pm=ascend_pm)
    config.raise_for_problems()
    return config


@dataclass
class Pod:
    env: dict[str, str]
    token: str  # the projected service-account token in AZURE_FEDERATED_TOKEN_FILE


def job_pod(config: AscendConfig, azure: LocalAzure, tmp_path: Path) -> Pod:
    """The environment a job's container gets: Ascend's manifest, then AKS's webhook."""
    request = JobRequest(
        job_id="20261128-170000000-abcd--alice--default",
        package_uri=f"az://{CONTAINER}/users/alice/jobs/x/package.pkl",
        result_uri=f"az://{CONTAINER}/users/alice/jobs/x/result.pkl",
    )
    manifest = build_job(request, namespace=NAMESPACE, image="myacr.azurecr.io/rt:py3.11")
    configure_pod(config, manifest)
    pod = manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    assert env["AZURE_STORAGE_ACCOUNT_NAME"] == ACCOUNT and env["AZURE_CLIENT_ID"] == CLIENT_ID
    assert not any("KEY" in name or "CONNECTION_STRING" in name for name in env)

    # AKS's webhook (the pod carries azure.workload.identity/use=true): the tenant, the
    # projected token of the pod's service account, and the authority (here the fake Entra).
    labels = manifest["spec"]["template"]["metadata"]["labels"]
    assert labels["azure.workload.identity/use"] == "true"
    token = service_account_token(manifest["metadata"]["namespace"], pod["serviceAccountName"])
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(token)
    webhook = {
        "AZURE_TENANT_ID": TENANT_ID,
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
        "AZURE_AUTHORITY_HOST": f"{azure.entra.url}/",  # the webhook's value ends with '/'
    }
    # Only to run here: the account's host is Azurite's (fsspec's own variable gives adlfs its
    # account_host argument), and TLS trusts the throwaway certificate.
    local = {
        "FSSPEC_AZ_ACCOUNT_HOST": azure.account_host,
        "FSSPEC_CONFIG_DIR": str(tmp_path / "fsspec"),
        "SSL_CERT_FILE": str(azure.ca_file),
        "REQUESTS_CA_BUNDLE": str(azure.ca_file),
        "HOME": str(tmp_path),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    return Pod({**env, **webhook, **local, **azure.trap.env()}, token)


def run_in_pod(
    pod: Pod, url: str, payload: str, *, prelude: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", prelude + RUNNER_CODE, url, payload],
        env=pod.env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )


def test_pod_reads_and_writes_blobs_with_workload_identity_and_no_key(
    azure: LocalAzure, azure_config: AscendConfig, tmp_path: Path
) -> None:
    pod = job_pod(azure_config, azure, tmp_path)
    azure.entra.reset(assertion=pod.token)
    name = f"users/alice/jobs/{uuid.uuid4().hex}/result.pkl"
    payload = f"written by the pod {uuid.uuid4()}"

    result = run_in_pod(pod, f"az://{CONTAINER}/{name}", payload)

    assert result.returncode == 0, result.stderr
    assert result.stdout == payload
    assert azure.read_blob(name) == payload.encode()  # really in the account
    # One token exchange, and nothing else asked of Entra (no discovery of any kind).
    assert azure.entra.requests == [("POST", f"/{TENANT_ID}/oauth2/v2.0/token")]
    (form,) = azure.entra.token_forms
    assert form == {
        "client_assertion": pod.token,
        "client_assertion_type": JWT_BEARER,
        "client_id": CLIENT_ID,
        "grant_type": "client_credentials",
        "scope": STORAGE_SCOPE,
    }
    assert len(azure.entra.issued) == 1


def test_pod_with_a_wrong_federated_token_fails_to_authenticate_and_writes_nothing(
    azure: LocalAzure, azure_config: AscendConfig, tmp_path: Path
) -> None:
    pod = job_pod(azure_config, azure, tmp_path)
    azure.entra.reset(assertion=service_account_token(NAMESPACE, "someone-else"))
    name = f"users/alice/jobs/{uuid.uuid4().hex}/result.pkl"

    result = run_in_pod(pod, f"az://{CONTAINER}/{name}", "must not land", prelude=NO_BACKOFF)

    assert result.returncode != 0
    assert "ClientAuthenticationError" in result.stderr, result.stderr
    assert "AADSTS700211" in result.stderr, result.stderr
    assert "WorkloadIdentityCredential" in result.stderr, result.stderr
    # Refused each time it was asked (once, then once per retry of the storage SDK).
    assert azure.entra.issued == []
    assert azure.entra.token_forms, "the token was never exchanged"
    assert {form["client_assertion"] for form in azure.entra.token_forms} == {pod.token}
    assert {form["client_id"] for form in azure.entra.token_forms} == {CLIENT_ID}
    assert azure.read_blob(name) is None


def test_the_trap_catches_a_pod_that_would_leave_127_0_0_1(
    local_azure: LocalAzure, azure_config: AscendConfig, tmp_path: Path
) -> None:
    # The guard the other tests rely on: without the local account host, adlfs goes for
    # devstoreaccount1.blob.core.windows.net, and that ends in the trap, not on the internet.
    pod = job_pod(azure_config, local_azure, tmp_path)
    del pod.env["FSSPEC_AZ_ACCOUNT_HOST"]
    local_azure.entra.reset(assertion=pod.token)
    local_azure.trap.hits.clear()
    try:
        result = run_in_pod(pod, f"az://{CONTAINER}/never.bin", "x", prelude=NO_BACKOFF)
        assert result.returncode != 0
        assert local_azure.trap.hits
        assert set(local_azure.trap.hits) == {
            f"CONNECT {ACCOUNT}.blob.core.windows.net:443 HTTP/1.1"
        }
    finally:
        local_azure.trap.hits.clear()


# -- 3: the caller, through Ascend's storage and its real credential ------------------------


def test_caller_storage_uses_the_configured_identity_through_default_azure_credential(
    azure: LocalAzure,
    ascend_pm: Any,
    register_plugin: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import aiohttp.connector
    from azure.storage.blob._shared import policies_async

    import ascend_azure.plugin

    register_plugin(ascend_azure.plugin, "azure")
    for name in list(os.environ):
        if name.startswith(("AZURE_", "IDENTITY_", "MSI_", "FSSPEC_")) or "PROXY" in name.upper():
            monkeypatch.delenv(name)
    token = service_account_token(NAMESPACE, "ascend-jobs")
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(token)
    # The environment says another client id: azure.client_id must win.
    monkeypatch.setenv("AZURE_CLIENT_ID", OTHER_CLIENT_ID)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT_ID)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", azure.entra.url)
    monkeypatch.setenv("SSL_CERT_FILE", str(azure.ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(azure.ca_file))
    for name, value in azure.trap.env().items():
        monkeypatch.setenv(name, value)
    # aiohttp reads SSL_CERT_FILE once, when it is imported, into this default context; build
    # it again as it would be with the variable set from the start.
    monkeypatch.setattr(
        aiohttp.connector, "_SSL_CONTEXT_VERIFIED", ssl.create_default_context(), raising=True
    )
    # A failure fails in seconds: the storage SDK's retries stay, their back-off goes.
    monkeypatch.setattr(
        policies_async.ExponentialRetry, "get_backoff_time", lambda self, settings: 0
    )
    config = AscendConfig.load(
        pm=ascend_pm,
        overrides={
            "cloud_provider": "azure",
            "azure.storage_account": ACCOUNT,
            "azure.client_id": CLIENT_ID,
            "azure.container": CONTAINER,
            "storage_options": {"account_host": azure.account_host},
        },
    )
    assert not config.get("azure.connection_string")
    azure.entra.reset(assertion=token)
    credentials.clear_cache()
    try:
        storage = storage_from_config(config)
        name = f"callers/{uuid.uuid4().hex}/package.pkl"
        uri = storage.write(name, b"from the caller")
        assert uri == f"az://{CONTAINER}/{name}"
        assert storage.read(name) == b"from the caller"
    finally:
        credentials.clear_cache()

    assert azure.read_blob(name) == b"from the caller"
    assert type(storage.get_filesystem().credential).__name__ == "DefaultAzureCredential"
    assert azure.entra.requests == [("POST", f"/{TENANT_ID}/oauth2/v2.0/token")]
    (form,) = azure.entra.token_forms
    assert form["client_id"] == CLIENT_ID
    assert form["client_assertion"] == token
    assert form["scope"] == STORAGE_SCOPE
