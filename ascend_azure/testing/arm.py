"""``FakeArm``: a small Azure Resource Manager on 127.0.0.1 that the real Azure SDKs talk to.

README
======

Why: code that drives Azure goes through the management SDKs (``azure-mgmt-*``), and what
breaks in practice is in them: URL building, (de)serialization, long-running-operation
pollers, error mapping. A local server that speaks ARM's REST conventions lets tests run that
code for real, with no subscription and no network beyond 127.0.0.1.

Starting it::

    from azure.mgmt.containerservice import ContainerServiceClient
    from ascend_azure.testing import FakeArm

    with FakeArm() as arm:
        client = ContainerServiceClient(arm.credential, SUBSCRIPTION, **arm.client_kwargs())

``client_kwargs()`` is ``base_url=arm.url, credential_scopes=[arm.scope],
connection_verify=arm.ca_file``: the three settings every generated ARM client (track 2)
accepts to talk to another endpoint. The server speaks HTTPS with a throwaway self-signed
certificate (``ca_file``) because azure-core refuses to send a bearer token over plain http.
In tests, use the ``fake_arm`` fixture of ``tests/azure/conftest.py``.

The object: ``url``, ``port``, ``scope`` (``url + "/.default"``), ``ca_file``, ``token``,
``credential`` (a :class:`FakeCredential`, sync) and ``async_credential``
(:class:`AsyncFakeCredential`), both handing out ``token`` and recording the scopes asked for;
``tenant_id``; ``requests``, every ``(method, path)`` received, query string left out;
``errors``, tracebacks of the fake's own failures (answered 500; empty when healthy);
``put(id, body)`` and ``get(id)`` and ``delete(id)`` to seed and inspect the store directly;
``fail(method, path_regex, status, code, message, times=None)`` to answer matching requests
with an ARM error; ``action(path_regex, handler)`` to add a POST action; ``take_name(type,
name)`` to make a globally unique name (storage account, registry) unavailable;
``set_kubeconfig(cluster_id, text)``; ``start()``, ``stop()``, context manager.

Semantics (those of ARM, kept generic so any resource provider works):

- Every request needs ``Authorization: Bearer <token>`` (else 401 ``AuthenticationFailed`` or
  ``InvalidAuthenticationToken``) and an ``api-version`` (else 400
  ``MissingApiVersionParameter``); its value is not checked. Injected failures come next.
- Ids are case-insensitive and keep the case they were created with. A resource is stored
  at ``/subscriptions/S/resourceGroups/G/providers/NS/type/name[/type/name...]``, at
  subscription level, or under any scope (``{scope}/providers/NS/type/name``, e.g. role
  assignments). Its ``type`` is the namespace plus the types (``Microsoft.ContainerService/
  managedClusters/agentPools``).
- PUT replaces the resource with the body plus ``id``, ``name``, ``type`` and
  ``properties.provisioningState = "Succeeded"`` (not for ``Microsoft.Authorization``
  types, which have none), and answers 201 when it creates, 200 when it
  replaces (storage accounts answer 200 both ways: their SDK accepts only 200 and 202). The
  resource group must exist (404 ``ResourceGroupNotFound``), and so must parent resources (404
  ``ParentResourceNotFound``), except the implicit singletons named ``default``
  (``blobServices/default``). Long-running operations finish at once: the SDK pollers see a
  terminal ``provisioningState`` and return without polling.
- GET answers the resource or 404 (``ResourceGroupNotFound``, ``ResourceNotFound``); GET on a
  collection path answers ``{"value": [...]}`` with the resources of that type directly under
  the parent (at subscription level also those in every resource group of the subscription).
  PATCH merges (JSON merge patch); DELETE removes the resource and everything under it: 200,
  or 204 when there was nothing; 202 for the types whose delete is long-running in ARM
  (resource groups, AKS clusters and pools, registries), with a ``Location`` that is already
  done and ``Retry-After: 0``, so ``begin_delete().result()`` returns at once.
- Resource groups: ``/subscriptions/S/resourcegroups/G``; subscriptions themselves all exist.
- Managed clusters: ``agentPoolProfiles`` in a PUT become ``agentPools`` children, and a GET
  lists the children as ``agentPoolProfiles``; ``nodeResourceGroup``, ``fqdn``, the kubelet
  identity and (when enabled) the OIDC issuer URL are filled in when absent. Storage accounts
  get ``primaryEndpoints``, registries ``loginServer``, resources with a system-assigned
  identity a ``principalId``. Generated GUIDs derive from the resource id (stable).
- Role assignments: the name must be a GUID (400 ``InvalidRoleAssignmentId``); a second PUT of
  the same assignment (same principal and role) succeeds (200); changing them is 400
  ``RoleAssignmentUpdateNotPermitted``; another name for the same scope, role and principal
  is 409 ``RoleAssignmentExists``. Listing honours ``$filter`` ``atScope()``, ``principalId eq
  '...'`` and ``assignedTo('...')``. Built-in role definitions (``BUILTIN_ROLES``) answer GET
  and ``$filter=roleName eq '...'``.
- POST actions: storage and ACR ``checkNameAvailability`` (a name is unavailable when any
  subscription has it, or after ``take_name``), storage ``listKeys`` (two stable keys), AKS
  ``listClusterUserCredential`` and ``listClusterAdminCredential`` (a kubeconfig, see
  ``set_kubeconfig``), and provider ``register``. Another POST is 404 ``ActionNotFound``: add it
  with ``action()``; a handler returns ``(status, json)`` or raises :class:`ArmError`.

Limits: PUTs are never asynchronous (no ``Azure-AsyncOperation``), no ETags or ``If-Match``, no
paging (``nextLink``), no RBAC enforcement, no request validation beyond the above. The
SDKs retry 408, 429 and 5xx answers with back-off: pass ``retry_total=0`` to a client that
meets an injected 5xx, or ``times=1`` to let the retry succeed.
"""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import json
import re
import shutil
import ssl
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ascend.testing.http import ConnectionServer

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions

Json = dict[str, Any]

DEFAULT_USER_OBJECT_ID = "3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b"
DEFAULT_USER = "dev@example.com"


def unsigned_jwt(claims: Mapping[str, Any]) -> str:
    """An unsigned JWT carrying ``claims``: what code that reads token claims (who is signed
    in) needs; nothing here verifies signatures."""

    def part(data: Mapping[str, Any]) -> str:
        raw = json.dumps(dict(data), separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


# A token whose claims name a user, as Entra ID's ARM tokens do (upn, oid, tid).
DEFAULT_TOKEN = unsigned_jwt(
    {
        "aud": "https://management.azure.com",
        "upn": DEFAULT_USER,
        "oid": DEFAULT_USER_OBJECT_ID,
        "tid": "72f988bf-0000-4000-8000-2d7cd011db47",
    }
)
SUBSCRIPTION_TYPE = "Microsoft.Resources/subscriptions"
GROUP_TYPE = "Microsoft.Resources/resourceGroups"
_PROVIDER_TYPE = "Microsoft.Resources/providers"
_ROLE_ASSIGNMENTS = "microsoft.authorization/roleassignments"
_ROLE_DEFINITIONS = "microsoft.authorization/roledefinitions"
_NOT_FOUND_HELP = "For more details please go to https://aka.ms/ARMResourceNotFoundFix"

BUILTIN_ROLES: Mapping[str, str] = {
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "Reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Blob Data Reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    "AcrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    "AcrPush": "8311e382-0749-4cb8-b61a-304f252e45ec",
    "Azure Kubernetes Service Cluster User Role": "4abbcc35-e782-43d8-92c5-2d3f1bd2253f",
    "Azure Kubernetes Service Cluster Admin Role": "0ab0b1a8-8aac-4efd-b8c2-3ee1fb270be8",
    "Managed Identity Operator": "f1a07417-d97a-45cb-824c-7a7467783830",
}
"""Role name -> built-in role definition GUID (the same in every subscription)."""

# Resource types whose SDK accepts only 200/202 for a PUT, never 201.
_CREATE_STATUS = {"microsoft.storage/storageaccounts": 200}
# Resource types whose DELETE is a long-running operation (their SDKs accept only 202/204):
# answered 202 with a Location that is already done, and Retry-After: 0.
_ASYNC_DELETE = frozenset(
    {
        "microsoft.resources/resourcegroups",
        "microsoft.containerservice/managedclusters",
        "microsoft.containerservice/managedclusters/agentpools",
        "microsoft.containerregistry/registries",
    }
)
_OPERATION_RESULTS = "microsoft.resources/operationresults"


class _Accepted:
    """A 202 answer: the operation finishes by the time its Location is polled."""


class _Done(Exception):
    """A poll of an operation result: always finished (204)."""


class ArmError(Exception):
    """An ARM error answer: ``{"error": {"code": ..., "message": ...}}`` with ``status``.

    Action handlers raise it; the server sends it as ARM would.
    """

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> Json:
        return {"error": {"code": self.code, "message": self.message}}


@dataclass(frozen=True)
class ArmRequest:
    """One request as an action handler sees it; ``query`` keys are lowercase."""

    method: str
    path: str
    query: Mapping[str, str]
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


Action = Callable[["FakeArm", ArmRequest], tuple[int, Any]]


# -- credentials --------------------------------------------------------------------------------


class FakeCredential:
    """A sync ``TokenCredential`` with a fixed token, so no test builds a real credential.

    ``scopes`` records every scope asked for (to check which audience a client requested).
    """

    def __init__(self, token: str = DEFAULT_TOKEN, *, expires_in: int = 3600) -> None:
        self.token = token
        self.expires_in = expires_in
        self.scopes: list[str] = []
        self._lock = threading.Lock()

    def _record(self, scopes: tuple[str, ...]) -> int:
        with self._lock:
            self.scopes.extend(scopes)
        return int(time.time()) + self.expires_in

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        from azure.core.credentials import AccessToken

        return AccessToken(self.token, self._record(scopes))

    def get_token_info(
        self, *scopes: str, options: TokenRequestOptions | None = None
    ) -> AccessTokenInfo:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self.token, self._record(scopes))

    def close(self) -> None:
        pass

    def __enter__(self) -> FakeCredential:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


class AsyncFakeCredential:
    """The ``AsyncTokenCredential`` twin of :class:`FakeCredential` (for adlfs and aio clients)."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, expires_in: int = 3600) -> None:
        self._sync = FakeCredential(token, expires_in=expires_in)

    @property
    def token(self) -> str:
        return self._sync.token

    @property
    def scopes(self) -> list[str]:
        return self._sync.scopes

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return self._sync.get_token(*scopes)

    async def get_token_info(
        self, *scopes: str, options: TokenRequestOptions | None = None
    ) -> AccessTokenInfo:
        return self._sync.get_token_info(*scopes)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> AsyncFakeCredential:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pass


# -- paths --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Level:
    type: str  # the full type, "Microsoft.Storage/storageAccounts/blobServices"
    name: str | None  # None: a collection
    end: int  # index in the segments just past this level
    marker: bool = False  # the "providers/{namespace}" step itself, not a resource


@dataclass(frozen=True)
class _Path:
    segments: tuple[str, ...]
    levels: tuple[_Level, ...]

    @property
    def target(self) -> _Level:
        return self.levels[-1]

    def id_of(self, level: _Level) -> str:
        return "/" + "/".join(self.segments[: level.end])

    @property
    def id(self) -> str:
        return self.id_of(self.target)

    def ancestors(self) -> list[_Level]:
        """The resource levels above the target, outermost first (no namespace markers)."""
        return [level for level in self.levels[:-1] if not level.marker]

    @property
    def parent(self) -> _Level | None:
        ancestors = self.ancestors()
        return ancestors[-1] if ancestors else None

    @property
    def subscription(self) -> str | None:
        first = self.levels[0]
        return first.name if first.type == SUBSCRIPTION_TYPE else None

    @property
    def group(self) -> _Level | None:
        if len(self.levels) > 1 and self.levels[1].type == GROUP_TYPE:
            return self.levels[1]
        return None

    def display(self, level: _Level) -> str:
        """``Microsoft.NS/type/name[/type/name]`` of ``level``, as ARM words its 404s."""
        end = level.end
        start = max(
            (i for i, s in enumerate(self.segments[:end]) if s.lower() == "providers"), default=-1
        )
        if start < 0:
            return "/".join(self.segments[:end])
        return "/".join(self.segments[start + 1 : end])


def _parse(path: str) -> _Path | None:
    segments = [urllib.parse.unquote(s) for s in path.split("/") if s]
    levels: list[_Level] = []
    namespace: str | None = None
    types: list[str] = []
    i = 0
    while i < len(segments):
        word = segments[i]
        if word.lower() == "providers":
            if i + 1 >= len(segments):
                return None
            namespace, types = segments[i + 1], []
            i += 2
            levels.append(_Level(_PROVIDER_TYPE, namespace, i, marker=True))
            continue
        if namespace is not None:
            types.append(word)
            kind = namespace + "/" + "/".join(types)
        elif word.lower() == "subscriptions" and not levels:
            kind = SUBSCRIPTION_TYPE
        elif word.lower() == "resourcegroups" and len(levels) == 1 and levels[0].name:
            kind = GROUP_TYPE
        else:
            return None
        name = segments[i + 1] if i + 1 < len(segments) else None
        i += 2
        levels.append(_Level(kind, name, min(i, len(segments))))
    if not levels:
        return None
    return _Path(tuple(segments), tuple(levels))


def _path_of(resource_id: str) -> _Path:
    parsed = _parse(resource_id)
    if parsed is None or parsed.target.name is None or parsed.target.marker:
        raise ValueError(f"not an ARM resource id: {resource_id!r}")
    return parsed


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _stable_uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts).lower()))


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def _trailing_guid(role_definition_id: str) -> str:
    return role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()


@dataclass
class _Resource:
    id: str
    type: str
    parent: str  # lowercase id of the parent resource ("" at tenant level)
    body: Json


# -- certificate --------------------------------------------------------------------------------


def _write_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (also its own CA)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ascend fake ARM")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "arm.crt"
    key_file = directory / "arm.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


# -- HTTP ---------------------------------------------------------------------------------------


class _Server(ConnectionServer):
    thread_name = "fake-arm"

    def __init__(self, address: tuple[str, int], arm: FakeArm, context: ssl.SSLContext) -> None:
        super().__init__(address, _Handler, context)
        self.arm = arm


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ascend-fake-arm"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, body, extra = self.server.arm._answer(method, self.path, headers, raw)
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)


# -- the fake -----------------------------------------------------------------------------------


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern[str]
    error: ArmError
    times: int | None


class FakeArm:
    """A generic Azure Resource Manager over HTTPS on 127.0.0.1 (see the module docstring).

    :param token: the bearer token requests must carry (``credential`` hands it out).
    :param host: the address to listen on; only 127.0.0.1 is in the certificate.
    :param port: 0 for an ephemeral port.
    """

    def __init__(self, *, token: str = DEFAULT_TOKEN, host: str = "127.0.0.1", port: int = 0):
        self.token = token
        self.host = host
        self.tenant_id = _stable_uuid("tenant", token)
        self.credential = FakeCredential(token)
        self.async_credential = AsyncFakeCredential(token)
        self.requests: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self._port = port
        self._lock = threading.RLock()
        self._resources: dict[str, _Resource] = {}
        self._failures: list[_Failure] = []
        self._actions: list[tuple[re.Pattern[str], Action]] = []
        self._taken: set[tuple[str, str]] = set()
        self._kubeconfigs: dict[str, str] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._directory: Path | None = None
        self.ca_file = ""
        self._install_actions()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeArm:
        if self._server is not None:
            return self
        self._directory = Path(tempfile.mkdtemp(prefix="ascend-fake-arm-"))
        cert_file, key_file = _write_certificate(self._directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self.ca_file = str(cert_file)
        self._server = _Server((self.host, self._port), self, context)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-arm-accept",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection, join every thread, remove the certificate."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_all()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> FakeArm:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeArm is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def scope(self) -> str:
        """The token scope for this endpoint, as for any ARM endpoint: ``<url>/.default``."""
        return self.url + "/.default"

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that point any azure-mgmt client at this server."""
        return {
            "base_url": self.url,
            "credential_scopes": [self.scope],
            "connection_verify": self.ca_file,
        }

    # -- seeding and inspection ----------------------------------------------------------------

    def put(self, resource_id: str, body: Mapping[str, Any] | None = None) -> Json:
        """Store a resource as a PUT would, without the checks (its resource group is created
        when missing); returns what a GET answers."""
        path = _path_of(resource_id)
        with self._lock:
            group = path.group
            if group is not None and path.target is not group:
                group_id = path.id_of(group)
                if group_id.lower() not in self._resources:
                    self._store(_path_of(group_id), {"location": "eastus"})
            return self._render(self._store(path, dict(body or {})))

    def get(self, resource_id: str) -> Json | None:
        """The resource as a GET answers it, or ``None``."""
        with self._lock:
            resource = self._resources.get(_path_of(resource_id).id.lower())
            return None if resource is None else self._render(resource)

    def delete(self, resource_id: str) -> bool:
        """Remove a resource and everything under it; whether it existed."""
        with self._lock:
            return self._remove(_path_of(resource_id).id.lower())

    def fail(
        self,
        method: str,
        path_regex: str,
        status: int,
        code: str,
        message: str = "",
        *,
        times: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer requests whose method (``"*"``: any) and path (``re.search``, ignoring case)
        match with this ARM error; ``times`` limits how often (default: always)."""
        error = ArmError(status, code, message or f"injected {code}", headers)
        pattern = re.compile(path_regex, re.IGNORECASE)
        with self._lock:
            self._failures.append(_Failure(method.upper(), pattern, error, times))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def action(self, path_regex: str, handler: Action) -> None:
        """Handle POSTs whose path matches (``re.search``, ignoring case); added last wins."""
        with self._lock:
            self._actions.insert(0, (re.compile(path_regex, re.IGNORECASE), handler))

    def take_name(self, resource_type: str, name: str) -> None:
        """Make ``name`` unavailable for ``resource_type`` (taken in another subscription)."""
        with self._lock:
            self._taken.add((resource_type.lower(), name.lower()))

    def set_kubeconfig(self, cluster_id: str, kubeconfig: str) -> None:
        """What ``listClusterUserCredential`` answers for this cluster."""
        with self._lock:
            self._kubeconfigs[_path_of(cluster_id).id.lower()] = kubeconfig

    def not_found(self, resource_id: str) -> ArmError:
        """The 404 ARM answers for a missing ``resource_id`` (for action handlers)."""
        path = _parse(resource_id)
        if path is None:
            return ArmError(404, "ResourceNotFound", f"The Resource '{resource_id}' was not found.")
        return self._not_found(path)

    # -- request handling ----------------------------------------------------------------------

    def _answer(
        self, method: str, target: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        split = urllib.parse.urlsplit(target)
        path = re.sub("/{2,}", "/", split.path)
        if len(path) > 1:
            path = path.rstrip("/")
        with self._lock:
            self.requests.append((method, path))
        try:
            self._authorize(headers)
            query = {
                key.lower(): values[-1]
                for key, values in urllib.parse.parse_qs(
                    split.query, keep_blank_values=True
                ).items()
            }
            if not query.get("api-version"):
                raise ArmError(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            self._raise_injected(method, path)
            try:
                body = json.loads(raw) if raw.strip() else None
            except ValueError as error:
                raise ArmError(
                    400, "InvalidRequestContent", f"The request content was invalid: {error}"
                ) from None
            request = ArmRequest(method, path, query, body, dict(headers))
            with self._lock:
                status, answer = self._route(request)
            if isinstance(answer, _Accepted):
                return status, None, self._accepted_headers(path, query)
            return status, answer, {}
        except ArmError as error:
            return error.status, error.body(), error.headers
        except _Done:
            return 204, None, {}
        except Exception:  # a bug here: answer 500 and keep it for the test to see
            trace = traceback.format_exc()
            with self._lock:
                self.errors.append(trace)
            return 500, ArmError(500, "InternalServerError", trace).body(), {}

    def _accepted_headers(self, path: str, query: Mapping[str, str]) -> dict[str, str]:
        parsed = _parse(path)
        subscription = parsed.subscription if parsed is not None else None
        prefix = f"/subscriptions/{subscription}" if subscription else ""
        version = urllib.parse.quote(query.get("api-version", "2022-09-01"))
        location = (
            f"{self.url}{prefix}/providers/Microsoft.Resources/operationResults/{uuid.uuid4()}"
            f"?api-version={version}"
        )
        return {"Location": location, "Retry-After": "0"}

    def _authorize(self, headers: Mapping[str, str]) -> None:
        value = headers.get("authorization")
        challenge = 'Bearer authorization_uri="https://login.microsoftonline.com/common", '
        if not value:
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                {"WWW-Authenticate": challenge + 'error="invalid_token"'},
            )
        if value != f"Bearer {self.token}":
            raise ArmError(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
                {"WWW-Authenticate": challenge + 'error="invalid_token"'},
            )

    def _raise_injected(self, method: str, path: str) -> None:
        with self._lock:
            for failure in self._failures:
                if failure.method not in ("*", method) or not failure.pattern.search(path):
                    continue
                if failure.times is not None:
                    if failure.times <= 0:
                        continue
                    failure.times -= 1
                raise failure.error

    def _route(self, request: ArmRequest) -> tuple[int, Any]:
        if request.method == "POST":
            for pattern, handler in self._actions:
                if pattern.search(request.path):
                    return handler(self, request)
            raise ArmError(
                404,
                "ActionNotFound",
                f"The fake ARM has no action for POST {request.path}; add one with "
                "FakeArm.action().",
            )
        path = _parse(request.path)
        if path is None:
            raise ArmError(
                400, "InvalidRequestUri", f"'{request.path}' is not a resource or collection path."
            )
        if request.method in ("GET", "HEAD"):
            if path.target.name is None:
                return 200, self._list(path, request.query)
            return 200, self._get(path)
        if path.target.name is None or path.target.marker or path.target.type == SUBSCRIPTION_TYPE:
            raise ArmError(
                405, "MethodNotAllowed", f"{request.method} is not allowed on {request.path}."
            )
        if request.method == "PUT":
            return self._put(path, request.body)
        if request.method == "PATCH":
            return self._patch(path, request.body)
        if request.method == "DELETE":
            return self._delete(path)
        raise ArmError(405, "MethodNotAllowed", f"{request.method} is not supported.")

    # -- verbs ---------------------------------------------------------------------------------

    def _get(self, path: _Path) -> Json:
        resource = self._resources.get(path.id.lower())
        if resource is not None:
            return self._render(resource)
        target = path.target
        if target.type == SUBSCRIPTION_TYPE:
            assert target.name is not None
            return {
                "id": path.id,
                "subscriptionId": target.name,
                "displayName": "Fake subscription",
                "state": "Enabled",
                "tenantId": self.tenant_id,
            }
        if target.marker:
            return {"id": path.id, "namespace": target.name, "registrationState": "Registered"}
        if target.type.lower() == _OPERATION_RESULTS:
            raise _Done()
        if target.type.lower() == _ROLE_DEFINITIONS:
            for role, guid in BUILTIN_ROLES.items():
                if guid == (target.name or "").lower():
                    return self._role_definition(path, role, guid)
        raise self._not_found(path)

    def _list(self, path: _Path, query: Mapping[str, str]) -> Json:
        target = path.target
        kind = target.type.lower()
        self._check_ancestors(path, creating=False)
        parent = path.parent
        if kind == _ROLE_DEFINITIONS:
            return {"value": self._list_role_definitions(path, query.get("$filter", ""))}
        if kind == _ROLE_ASSIGNMENTS:
            return {"value": self._list_role_assignments(path, query.get("$filter", ""))}
        parent_key = path.id_of(parent).lower() if parent is not None else ""
        at_subscription = parent is not None and parent.type == SUBSCRIPTION_TYPE
        top_level = target.type.count("/") == 1
        found = []
        for resource in self._resources.values():
            if resource.type.lower() != kind:
                continue
            if resource.parent == parent_key or (
                at_subscription
                and top_level
                and resource.parent.startswith(parent_key + "/resourcegroups/")
            ):
                found.append(self._render(resource))
        return {"value": found}

    def _put(self, path: _Path, body: Any) -> tuple[int, Json]:
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ArmError(400, "InvalidRequestContent", "The request content must be an object.")
        self._check_ancestors(path, creating=True)
        key = path.id.lower()
        existed = key in self._resources
        if path.target.type.lower() == _ROLE_ASSIGNMENTS:
            same = self._check_role_assignment(path, body)
            if same is not None:
                return 200, self._render(same)
        resource = self._store(path, body)
        status = 200 if existed else _CREATE_STATUS.get(resource.type.lower(), 201)
        return status, self._render(resource)

    def _patch(self, path: _Path, body: Any) -> tuple[int, Json]:
        resource = self._resources.get(path.id.lower())
        if resource is None:
            raise self._not_found(path)
        if not isinstance(body, dict):
            raise ArmError(400, "InvalidRequestContent", "The request content must be an object.")
        merged = _merge_patch(resource.body, body)
        return 200, self._render(self._store(path, merged))

    def _delete(self, path: _Path) -> tuple[int, Any]:
        group = path.group
        if (
            group is not None
            and group is not path.target
            and path.id_of(group).lower() not in self._resources
        ):
            raise self._not_found(path)
        kind = path.target.type.lower()
        if not self._remove(path.id.lower()):
            return 204, None
        return (202, _Accepted()) if kind in _ASYNC_DELETE else (200, None)

    # -- the store -----------------------------------------------------------------------------

    def _check_ancestors(self, path: _Path, *, creating: bool) -> None:
        """404 like ARM when the resource group or a parent resource does not exist."""
        group = path.group
        if (
            group is not None
            and group is not path.target
            and path.id_of(group).lower() not in self._resources
        ):
            raise self._group_not_found(group)
        nested_from = max(
            (i for i, level in enumerate(path.levels) if level.marker), default=len(path.levels)
        )
        for index, level in enumerate(path.levels[:-1]):
            if level.marker or level.type in (SUBSCRIPTION_TYPE, GROUP_TYPE):
                continue
            if (level.name or "").lower() == "default":
                continue  # blobServices/default and the like always exist
            if path.id_of(level).lower() in self._resources:
                continue
            if creating and index > nested_from:
                raise ArmError(
                    404,
                    "ParentResourceNotFound",
                    "Can not perform requested operation on nested resource. Parent resource "
                    f"'{path.display(level)}' not found.",
                )
            raise self._not_found(path, level)

    def _group_not_found(self, group: _Level) -> ArmError:
        return ArmError(
            404, "ResourceGroupNotFound", f"Resource group '{group.name}' could not be found."
        )

    def _not_found(self, path: _Path, level: _Level | None = None) -> ArmError:
        level = level or path.target
        group = path.group
        if group is not None:
            if path.id_of(group).lower() not in self._resources or level is group:
                return self._group_not_found(group)
            where = f" under resource group '{group.name}'"
        else:
            where = ""
        return ArmError(
            404,
            "ResourceNotFound",
            f"The Resource '{path.display(level)}'{where} was not found. {_NOT_FOUND_HELP}",
        )

    def _store(self, path: _Path, body: Json) -> _Resource:
        target = path.target
        assert target.name is not None
        resource_id = path.id
        existing = self._resources.get(resource_id.lower())
        if existing is not None:
            resource_id = existing.id  # ARM keeps the case the resource was created with
        stored = copy.deepcopy(body)
        stored["id"] = resource_id
        stored["name"] = target.name if existing is None else existing.body["name"]
        stored["type"] = target.type
        kind = target.type.lower()
        properties = dict(stored.get("properties") or {})
        if not kind.startswith("microsoft.authorization/"):
            properties["provisioningState"] = "Succeeded"
        profiles = (
            properties.pop("agentPoolProfiles", None) if kind.endswith("/managedclusters") else None
        )
        stored["properties"] = properties
        self._decorate(path, stored)
        parent = path.parent
        resource = _Resource(
            resource_id,
            target.type,
            path.id_of(parent).lower() if parent is not None else "",
            stored,
        )
        self._resources[resource_id.lower()] = resource
        for profile in profiles or []:
            if isinstance(profile, dict) and profile.get("name"):
                pool = {k: v for k, v in profile.items() if k != "name"}
                self._store(
                    _path_of(f"{resource_id}/agentPools/{profile['name']}"), {"properties": pool}
                )
        return resource

    def _decorate(self, path: _Path, body: Json) -> None:
        """Fill in what the real resource providers generate, stable per resource id."""
        kind = path.target.type.lower()
        name = str(body["name"])
        rid = str(body["id"])
        properties: Json = body["properties"]
        location = str(body.get("location") or "eastus")
        identity = body.get("identity")
        if isinstance(identity, dict) and "systemassigned" in str(identity.get("type")).lower():
            identity.setdefault("principalId", _stable_uuid(rid, "principal"))
            identity.setdefault("tenantId", self.tenant_id)
        if kind == "microsoft.resources/resourcegroups":
            body.setdefault("location", location)
        elif kind == "microsoft.storage/storageaccounts":
            properties.setdefault(
                "primaryEndpoints",
                {
                    service: f"https://{name}.{service}.core.windows.net/"
                    for service in ("blob", "dfs", "file", "queue", "table", "web")
                },
            )
            properties.setdefault("primaryLocation", location)
            properties.setdefault("statusOfPrimary", "available")
            properties.setdefault("creationTime", _now())
        elif kind == "microsoft.containerregistry/registries":
            properties.setdefault("loginServer", f"{name.lower()}.azurecr.io")
            properties.setdefault("creationDate", _now())
        elif kind == "microsoft.containerservice/managedclusters":
            group = path.group.name if path.group is not None else "group"
            node_group = properties.setdefault("nodeResourceGroup", f"MC_{group}_{name}_{location}")
            prefix = properties.setdefault("dnsPrefix", name)
            digest = hashlib.sha256(rid.lower().encode()).hexdigest()[:8]
            properties.setdefault("fqdn", f"{prefix}-{digest}.hcp.{location}.azmk8s.io")
            profile = properties.setdefault("identityProfile", {})
            profile.setdefault(
                "kubeletidentity",
                {
                    "resourceId": f"/subscriptions/{path.subscription}/resourcegroups/"
                    f"{node_group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
                    f"{name}-agentpool",
                    "clientId": _stable_uuid(rid, "kubelet-client"),
                    "objectId": _stable_uuid(rid, "kubelet-object"),
                },
            )
            oidc = properties.get("oidcIssuerProfile")
            if isinstance(oidc, dict) and oidc.get("enabled"):
                oidc.setdefault(
                    "issuerURL",
                    f"https://{location}.oic.prod-aks.azure.com/{self.tenant_id}/"
                    f"{_stable_uuid(rid, 'oidc')}/",
                )

    def _render(self, resource: _Resource) -> Json:
        body = copy.deepcopy(resource.body)
        if resource.type.lower() == "microsoft.containerservice/managedclusters":
            key = resource.id.lower()
            pools = [
                {"name": child.body["name"], **copy.deepcopy(child.body.get("properties") or {})}
                for child in self._resources.values()
                if child.parent == key
                and child.type.lower() == "microsoft.containerservice/managedclusters/agentpools"
            ]
            if pools:
                body.setdefault("properties", {})["agentPoolProfiles"] = pools
        return body

    def _remove(self, key: str) -> bool:
        if key not in self._resources:
            return False
        for other in [k for k in self._resources if k == key or k.startswith(key + "/")]:
            del self._resources[other]
        return True

    # -- role assignments and definitions ------------------------------------------------------

    def _check_role_assignment(self, path: _Path, body: Json) -> _Resource | None:
        """ARM's rules for role assignments; the existing one when the PUT repeats it."""
        name = path.target.name or ""
        try:
            uuid.UUID(name)
        except ValueError:
            raise ArmError(
                400,
                "InvalidRoleAssignmentId",
                f"The role assignment ID '{name}' is not valid. The role assignment ID must be a "
                "GUID.",
            ) from None
        properties = body.get("properties") or {}
        role = str(properties.get("roleDefinitionId") or "")
        principal = str(properties.get("principalId") or "")
        if not role or not principal:
            raise ArmError(
                400,
                "InvalidRequestContent",
                "A role assignment needs properties.roleDefinitionId and properties.principalId.",
            )
        scope = self._assignment_scope(path.id)
        existing = self._resources.get(path.id.lower())
        if existing is not None:
            old = existing.body.get("properties") or {}
            if (
                _trailing_guid(str(old.get("roleDefinitionId"))) == _trailing_guid(role)
                and str(old.get("principalId")).lower() == principal.lower()
            ):
                return existing
            raise ArmError(
                400,
                "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            )
        for other in self._resources.values():
            if other.type.lower() != _ROLE_ASSIGNMENTS:
                continue
            props = other.body.get("properties") or {}
            if (
                str(props.get("scope")).lower() == scope.lower()
                and _trailing_guid(str(props.get("roleDefinitionId"))) == _trailing_guid(role)
                and str(props.get("principalId")).lower() == principal.lower()
            ):
                raise ArmError(409, "RoleAssignmentExists", "The role assignment already exists.")
        properties = dict(properties)
        properties["scope"] = scope
        properties.setdefault("principalType", "User")
        properties.setdefault("createdOn", _now())
        properties.setdefault("updatedOn", properties["createdOn"])
        body["properties"] = properties
        return None

    @staticmethod
    def _assignment_scope(resource_id: str) -> str:
        marker = "/providers/microsoft.authorization/"
        index = resource_id.lower().rfind(marker)
        return resource_id[:index] or "/"

    def _list_role_assignments(self, path: _Path, filter_text: str) -> list[Json]:
        scope = self._assignment_scope(path.id).lower().rstrip("/")
        at_scope = "atscope()" in filter_text.lower()
        principal = re.search(
            r"(?:principalId\s+eq\s+|assignedTo\()\s*'([^']*)'", filter_text, re.IGNORECASE
        )
        found = []
        for resource in self._resources.values():
            if resource.type.lower() != _ROLE_ASSIGNMENTS:
                continue
            props = resource.body.get("properties") or {}
            own = str(props.get("scope")).lower().rstrip("/")
            above = scope == own or scope.startswith(own + "/") or own == ""
            below = own.startswith(scope + "/")
            if not (above or (below and not at_scope)):
                continue
            if principal and str(props.get("principalId")).lower() != principal.group(1).lower():
                continue
            found.append(self._render(resource))
        return found

    def _role_definition(self, path: _Path, role: str, guid: str) -> Json:
        scope = self._assignment_scope(path.id)
        scope = "" if scope == "/" else scope
        return {
            "id": f"{scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
            "name": guid,
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": {
                "roleName": role,
                "type": "BuiltInRole",
                "description": role,
                "assignableScopes": ["/"],
                "permissions": [],
            },
        }

    def _list_role_definitions(self, path: _Path, filter_text: str) -> list[Json]:
        wanted = re.search(r"roleName\s+eq\s+'([^']*)'", filter_text, re.IGNORECASE)
        found = [
            self._role_definition(path, role, guid)
            for role, guid in BUILTIN_ROLES.items()
            if wanted is None or wanted.group(1).lower() == role.lower()
        ]
        for resource in self._resources.values():
            if resource.type.lower() == _ROLE_DEFINITIONS:
                role = str((resource.body.get("properties") or {}).get("roleName"))
                if wanted is None or wanted.group(1).lower() == role.lower():
                    found.append(self._render(resource))
        return found

    # -- actions -------------------------------------------------------------------------------

    def _install_actions(self) -> None:
        self.action(r"^/subscriptions/[^/]+/providers/[^/]+/register$", _register_provider)
        self.action(
            r"/providers/Microsoft\.ContainerService/managedClusters/[^/]+/"
            r"listCluster(User|Admin)Credential$",
            _list_cluster_credential,
        )
        self.action(r"/providers/Microsoft\.Storage/storageAccounts/[^/]+/listKeys$", _list_keys)
        self.action(
            r"^/subscriptions/[^/]+/providers/Microsoft\.ContainerRegistry/checkNameAvailability$",
            _check_registry_name,
        )
        self.action(
            r"^/subscriptions/[^/]+/providers/Microsoft\.Storage/checkNameAvailability$",
            _check_storage_name,
        )

    def _resource_for_action(self, request: ArmRequest) -> _Resource:
        resource_id = request.path.rsplit("/", 1)[0]
        resource = self._resources.get(resource_id.lower())
        if resource is None:
            raise self.not_found(resource_id)
        return resource

    def _name_taken(self, resource_type: str, name: str) -> bool:
        kind = resource_type.lower()
        if (kind, name.lower()) in self._taken:
            return True
        return any(
            r.type.lower() == kind and str(r.body.get("name")).lower() == name.lower()
            for r in self._resources.values()
        )


def _request_name(request: ArmRequest) -> str:
    body = request.body if isinstance(request.body, dict) else {}
    name = body.get("name")
    if not isinstance(name, str):
        raise ArmError(400, "InvalidRequestContent", "The request needs a 'name'.")
    return name


def _check_storage_name(arm: FakeArm, request: ArmRequest) -> tuple[int, Json]:
    name = _request_name(request)
    if not re.fullmatch(r"[a-z0-9]{3,24}", name):
        return 200, {
            "nameAvailable": False,
            "reason": "AccountNameInvalid",
            "message": f"{name} is not a valid storage account name. Storage account name must "
            "be between 3 and 24 characters in length and use numbers and lower-case letters "
            "only.",
        }
    if arm._name_taken("Microsoft.Storage/storageAccounts", name):
        return 200, {
            "nameAvailable": False,
            "reason": "AlreadyExists",
            "message": f"The storage account named {name} is already taken.",
        }
    return 200, {"nameAvailable": True}


def _check_registry_name(arm: FakeArm, request: ArmRequest) -> tuple[int, Json]:
    name = _request_name(request)
    if not re.fullmatch(r"[A-Za-z0-9]{5,50}", name):
        return 200, {
            "nameAvailable": False,
            "reason": "Invalid",
            "message": "Registry names may contain only alpha numeric characters and must be "
            "between 5 and 50 characters",
        }
    if arm._name_taken("Microsoft.ContainerRegistry/registries", name):
        return 200, {
            "nameAvailable": False,
            "reason": "AlreadyExists",
            "message": f"The registry {name} is already in use.",
        }
    return 200, {"nameAvailable": True}


def _list_keys(arm: FakeArm, request: ArmRequest) -> tuple[int, Json]:
    account = arm._resource_for_action(request)
    created = str(account.body.get("properties", {}).get("creationTime") or _now())

    def key(name: str) -> Json:
        digest = hashlib.sha512(f"{account.id.lower()}/{name}".encode()).digest()
        return {
            "keyName": name,
            "value": base64.b64encode(digest).decode(),
            "permissions": "FULL",
            "creationTime": created,
        }

    return 200, {"keys": [key("key1"), key("key2")]}


def _list_cluster_credential(arm: FakeArm, request: ArmRequest) -> tuple[int, Json]:
    cluster = arm._resource_for_action(request)
    admin = request.path.lower().endswith("listclusteradmincredential")
    kubeconfig = arm._kubeconfigs.get(cluster.id.lower())
    if kubeconfig is None:
        name = str(cluster.body["name"])
        fqdn = str(cluster.body.get("properties", {}).get("fqdn") or f"{name}.example")
        user = f"cluster{'Admin' if admin else 'User'}_{name}"
        kubeconfig = (
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- cluster:\n    server: https://{fqdn}:443\n  name: {name}\n"
            f"contexts:\n- context:\n    cluster: {name}\n    user: {user}\n  name: {name}\n"
            f"current-context: {name}\n"
            f"users:\n- name: {user}\n  user:\n    token: fake-kube-token\n"
        )
    value = base64.b64encode(kubeconfig.encode()).decode()
    return 200, {
        "kubeconfigs": [{"name": "clusterAdmin" if admin else "clusterUser", "value": value}]
    }


def _register_provider(arm: FakeArm, request: ArmRequest) -> tuple[int, Json]:
    namespace = request.path.rstrip("/").split("/")[-2]
    return 200, {
        "id": request.path.rsplit("/", 1)[0],
        "namespace": namespace,
        "registrationState": "Registered",
    }
