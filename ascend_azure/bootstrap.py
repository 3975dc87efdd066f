"""``ascend azure bootstrap``: create, or find, what Ascend needs in one resource group.

Why a command rather than a checklist: the storage account, its blob container, the registry
and the role assignments must agree with each other and with ``.ascend.yaml``. Every step reads
first and creates only what is missing, and role assignments get deterministic names, so a
second run changes nothing and says so.

What is created, and why it differs from the previous generation:

- the storage account is StorageV2/Standard_LRS with https only, TLS 1.2 at least and blob
  public access off (those were left at their defaults); an existing account is kept as it is,
  with a warning when its settings are weaker;
- the registry is Basic with the admin user off;
- the caller gets Storage Blob Data Contributor on the account and AcrPush on the registry. The
  cluster's kubelet identity gets AcrPull only, never storage rights: pods that share the
  node's identity would otherwise read and overwrite every user's jobs (use workload identity);
- a 403 on a role assignment is a warning carrying the ``az role assignment create`` command an
  owner can run, not a failure: creating resources and granting roles often need different
  people.

The SDKs (the ``azure-admin`` extra) are imported when a function runs, never at import time.
:class:`Arm` holds the subscription, credential and endpoint, and builds clients the way
``pools.py`` does (``azure.arm_endpoint``, the endpoint's token scope, optional TLS override).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ascend.errors import ConfigError
from ascend_azure.arm import Arm
from ascend_azure.credentials import token_claims
from ascend_azure.settings import (
    DEFAULT_ARM_ENDPOINT,
    DEFAULT_CONTAINER,
    check_container,
    check_resource_name,
    check_storage_account,
    check_uuid,
)

if TYPE_CHECKING:
    from ascend.config import AscendConfig

__all__ = [
    "ACR_PULL",
    "ACR_PUSH",
    "ADMIN_EXTRA_FIX",
    "CREATED",
    "EXISTS",
    "FAILED",
    "STORAGE_BLOB_DATA_CONTRIBUTOR",
    "TAGS",
    "WARNING",
    "Arm",
    "BootstrapError",
    "BootstrapResult",
    "Principal",
    "Role",
    "Step",
    "admin_sdk",
    "arm_errors",
    "arm_for",
    "assignment_name",
    "bootstrap",
    "default_registry_name",
    "default_storage_account_name",
    "error_code",
    "get_cluster",
    "get_resource_group",
    "group_missing",
    "principal_from_token",
    "resolve_subscription",
    "role_assignment_command",
    "status_of",
    "text_of",
]

T = TypeVar("T")

ADMIN_EXTRA_FIX = "pip install ascend[azure-admin]"
TAGS = {"managed-by": "ascend"}
CREATED, EXISTS, WARNING, FAILED = "created", "exists", "warning", "failed"

_RESOURCE_GROUP_API = "2021-04-01"
_SUBSCRIPTION_ENV = "AZURE_SUBSCRIPTION_ID"


@dataclass(frozen=True)
class Role:
    """A built-in Azure role: its name (for people and ``az``) and its GUID (for ARM)."""

    name: str
    id: str


STORAGE_BLOB_DATA_CONTRIBUTOR = Role(
    "Storage Blob Data Contributor", "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
)
ACR_PUSH = Role("AcrPush", "8311e382-0749-4cb8-b61a-304f252e45ec")
ACR_PULL = Role("AcrPull", "7f951dda-4ed3-4680-a7ca-43fe172d538d")


@dataclass(frozen=True)
class Step:
    """One line of the report: what was looked at and what happened to it."""

    resource: str
    name: str
    action: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class BootstrapResult:
    """Every step, in order, and the ``azure.*`` settings that point Ascend at the result."""

    steps: list[Step] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def warnings(self) -> list[Step]:
        return [step for step in self.steps if step.action == WARNING]


class BootstrapError(ConfigError):
    """A step failed; ``steps`` holds what had been done before it (to report it)."""

    def __init__(self, message: str, *, steps: list[Step], fix: str | None = None) -> None:
        self.steps = list(steps)
        super().__init__(message, fix=fix)


@dataclass(frozen=True)
class Principal:
    """Who receives a role: object id, principal type (``None``: ARM looks it up), label."""

    object_id: str
    type: str | None
    label: str


# -- talking to ARM -----------------------------------------------------------------------------


@contextlib.contextmanager
def admin_sdk() -> Iterator[None]:
    """Turn a missing management SDK into an error that names the extra to install."""
    try:
        yield
    except ImportError as error:
        raise ConfigError(
            f"this command needs the Azure management SDKs ({error.name} is not installed)",
            fix=ADMIN_EXTRA_FIX,
        ) from error


def resolve_subscription(
    explicit: str | None, config: AscendConfig | None, env: Mapping[str, str] | None = None
) -> str:
    """--subscription, else ``azure.subscription_id``, else ``AZURE_SUBSCRIPTION_ID``."""
    env = os.environ if env is None else env
    candidates = (
        (explicit, "--subscription"),
        (
            config.get("azure.subscription_id") if config is not None else None,
            "azure.subscription_id",
        ),
        (env.get(_SUBSCRIPTION_ENV), _SUBSCRIPTION_ENV),
    )
    for value, source in candidates:
        if value:
            try:
                check_uuid(value)
            except ValueError as error:
                raise ConfigError(
                    f"{source} = {value!r} is not a subscription id: {error}",
                    fix="az account show --query id -o tsv",
                ) from None
            return str(value)
    raise ConfigError(
        "no Azure subscription given (--subscription, azure.subscription_id or "
        f"{_SUBSCRIPTION_ENV})",
        fix="pass --subscription $(az account show --query id -o tsv)",
    )


def arm_for(
    config: AscendConfig,
    subscription_id: str,
    *,
    credential: Any = None,
    connection_verify: str | bool | None = None,
) -> Arm:
    """An :class:`Arm` for ``config``'s endpoint (``azure.arm_endpoint``) and credential."""
    if credential is None:
        from ascend_azure.credentials import get_credential

        credential = get_credential(config)
    endpoint = config.get("azure.arm_endpoint") or DEFAULT_ARM_ENDPOINT
    return Arm(subscription_id, credential, str(endpoint), connection_verify)


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "message", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def error_code(error: BaseException) -> str | None:
    code = getattr(getattr(error, "error", None), "code", None)
    return str(code) if code else None


def status_of(error: BaseException) -> int | None:
    status = getattr(error, "status_code", None)
    return int(status) if status is not None else None


@contextlib.contextmanager
def arm_errors(arm: Arm, doing: str, *, fix: str | None = None) -> Iterator[None]:
    """Turn an azure-core failure while ``doing`` something into a :class:`ConfigError`."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        yield
    except ClientAuthenticationError as error:
        if getattr(error, "response", None) is None:  # no token at all
            raise ConfigError(
                f"no Azure credential to {doing}: {_first_line(error)}",
                fix="run 'az login' (or set azure.client_id to a managed identity)",
            ) from error
        raise ConfigError(
            f"Azure Resource Manager ({arm.endpoint}) refused the credential (401) while trying "
            f"to {doing}: {_first_line(error)}",
            fix="run 'az login' again, or check azure.tenant_id and azure.client_id",
        ) from error
    except HttpResponseError as error:
        status, code = status_of(error), error_code(error)
        answer = f"{status} {code}" if code else str(status)
        if status == 403:
            raise ConfigError(
                f"the Azure identity may not {doing} ({answer}): {_first_line(error)}",
                fix=fix or "ask an owner of the resource group for the Contributor role on it",
            ) from error
        raise ConfigError(
            f"Azure Resource Manager answered {answer} while trying to {doing}: "
            f"{_first_line(error)}",
            fix=fix,
        ) from error
    except (ServiceRequestError, ServiceResponseError) as error:
        raise ConfigError(
            f"cannot reach Azure Resource Manager at {arm.endpoint} (azure.arm_endpoint) to "
            f"{doing}: {_first_line(error)}",
            fix="check the network, proxy and azure.arm_endpoint",
        ) from error


def _missing(call: Callable[[], T]) -> T | None:
    """``call()``, or ``None`` when ARM answers 404."""
    from azure.core.exceptions import HttpResponseError

    try:
        return call()
    except HttpResponseError as error:
        if status_of(error) == 404:
            return None
        raise


def group_missing(arm: Arm, resource_group: str, location: str | None = None) -> ConfigError:
    """The error for a resource group that does not exist, with the command that creates it."""
    where = shlex.quote(location) if location else "<location, e.g. westeurope>"
    return ConfigError(
        f"resource group {resource_group!r} (--resource-group) does not exist in subscription "
        f"{arm.subscription_id}",
        fix=f"az group create -n {shlex.quote(resource_group)} -l {where} (or check "
        "--subscription: az group list -o table)",
    )


def get_resource_group(arm: Arm, resource_group: str, *, location: str | None = None) -> str:
    """The group's location; a missing group is an error with the ``az group create`` fix."""
    with admin_sdk():
        from azure.core.rest import HttpRequest
        from azure.mgmt.containerservice import ContainerServiceClient

    from azure.core.exceptions import HttpResponseError

    client = arm.client(ContainerServiceClient)
    request = HttpRequest(
        "GET", arm.group_id(resource_group), params={"api-version": _RESOURCE_GROUP_API}
    )
    with arm_errors(arm, f"read resource group {resource_group!r}"):
        response = client.send_request(request)
        try:
            response.raise_for_status()
        except HttpResponseError as error:
            if status_of(error) != 404:
                raise
            raise group_missing(arm, resource_group, location) from None
        body = response.json()
    return str(body.get("location") or location or "")


def get_cluster(arm: Arm, resource_group: str, cluster: str) -> Any:
    """The managed cluster; a missing one is an error listing the group's clusters."""
    with admin_sdk():
        from azure.mgmt.containerservice import ContainerServiceClient

    from azure.core.exceptions import HttpResponseError

    client = arm.client(ContainerServiceClient)
    with arm_errors(arm, f"read AKS cluster {cluster!r} in resource group {resource_group!r}"):
        try:
            return client.managed_clusters.get(resource_group, cluster)
        except HttpResponseError as error:
            if status_of(error) != 404:
                raise
            if error_code(error) == "ResourceGroupNotFound":
                raise group_missing(arm, resource_group) from None
        others = sorted(
            str(found.name)
            for found in client.managed_clusters.list_by_resource_group(resource_group)
        )
    listing = f"; the group has: {', '.join(others)}" if others else "; the group has no cluster"
    raise ConfigError(
        f"AKS cluster {cluster!r} (--cluster) was not found in resource group "
        f"{resource_group!r} (subscription {arm.subscription_id}){listing}",
        fix=f"pick one from: az aks list -g {shlex.quote(resource_group)} -o table",
    )


# -- names, principals, role assignments --------------------------------------------------------


def _digest(subscription_id: str, resource_group: str) -> str:
    text = f"{subscription_id.lower()}/{resource_group.lower()}"
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def default_storage_account_name(subscription_id: str, resource_group: str) -> str:
    """``ascend`` + 8 hex digits of sha256(subscription/group): stable, 14 lowercase alnum."""
    return "ascend" + _digest(subscription_id, resource_group)


def default_registry_name(subscription_id: str, resource_group: str) -> str:
    """The same stable name for the registry (ACR names live in another namespace)."""
    return "ascend" + _digest(subscription_id, resource_group)


def assignment_name(scope: str, role_id: str, principal_id: str) -> str:
    """A GUID from scope, role and principal, so a re-run PUTs the same assignment."""
    key = f"{scope.lower()}|{role_id.lower()}|{principal_id.lower()}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, key))


def principal_from_token(token: str) -> Principal:
    """The signed-in principal, from the (unverified) claims of an ARM access token.

    ``idtyp`` says app or user when present; otherwise a token with ``appid`` and no ``upn``
    (nor ``unique_name``) belongs to a service principal or managed identity.
    """
    claims = token_claims(token)
    object_id = claims.get("oid")
    if not isinstance(object_id, str) or not object_id:
        raise ConfigError(
            "cannot tell who is signed in: the ARM access token carries no 'oid' claim",
            fix="pass --assignee OBJECT_ID (yours: az ad signed-in-user show --query id -o tsv)",
        )
    user_name = claims.get("upn") or claims.get("unique_name") or claims.get("preferred_username")
    kind = str(claims.get("idtyp") or "").lower()
    if kind == "app" or (not kind and claims.get("appid") and not claims.get("upn")):
        app = claims.get("appid") or claims.get("azp") or object_id
        return Principal(object_id, "ServicePrincipal", f"service principal {app}")
    return Principal(object_id, "User", f"you ({user_name})" if user_name else "you")


def _caller(arm: Arm, assignee: str | None) -> Principal:
    if assignee:
        try:
            check_uuid(assignee)
        except ValueError as error:
            raise ConfigError(
                f"--assignee {assignee!r} is not an object id: {error}",
                fix="pass the principal's object id, e.g. az ad signed-in-user show --query id",
            ) from None
        return Principal(assignee, None, f"principal {assignee}")
    from azure.core.exceptions import ClientAuthenticationError

    try:
        token = arm.credential.get_token(arm.scope).token
    except ClientAuthenticationError as error:
        raise ConfigError(
            f"no Azure credential: {_first_line(error)}",
            fix="run 'az login' (or set azure.client_id to a managed identity)",
        ) from error
    return principal_from_token(str(token))


def role_assignment_command(principal: Principal, role: Role, scope: str) -> str:
    """The ``az`` command that makes the assignment, for someone allowed to."""
    parts = ["az", "role", "assignment", "create", "--assignee-object-id", principal.object_id]
    if principal.type:
        parts += ["--assignee-principal-type", principal.type]
    parts += ["--role", role.name, "--scope", scope]
    return shlex.join(parts)


def text_of(value: Any) -> str:
    """An SDK enum or string as its plain value ("TLS1_2", not "MinimumTlsVersion.TLS1_2")."""
    return str(getattr(value, "value", value) or "")


def _trailing_guid(resource_id: str | None) -> str:
    return str(resource_id or "").rstrip("/").rsplit("/", 1)[-1].lower()


def _assign(arm: Arm, client: Any, scope: str, role: Role, principal: Principal, on: str) -> Step:
    """Give ``principal`` ``role`` on ``scope`` unless it already has it (here or above)."""
    from azure.core.exceptions import HttpResponseError

    with admin_sdk():
        from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

    label = f"{role.name} for {principal.label} on {on}"
    doing = f"assign {role.name} on {on}"
    command = role_assignment_command(principal, role, scope)
    with arm_errors(arm, doing, fix=f"ask an owner to run: {command}"):
        try:
            existing = client.role_assignments.list_for_scope(
                scope, filter=f"assignedTo('{principal.object_id}')"
            )
            for assignment in existing:
                if _trailing_guid(assignment.role_definition_id) == role.id:
                    where = str(assignment.scope or scope)
                    detail = "" if where.lower() == scope.lower() else f"inherited from {where}"
                    return Step("role assignment", label, EXISTS, detail)
        except HttpResponseError as error:
            if status_of(error) != 403:
                raise
            # may not read assignments: try creating it; ARM answers 409 when it exists
        parameters = RoleAssignmentCreateParameters(
            role_definition_id=f"/subscriptions/{arm.subscription_id}/providers/"
            f"Microsoft.Authorization/roleDefinitions/{role.id}",
            principal_id=principal.object_id,
        )
        if principal.type:  # unknown (--assignee): ARM looks the type up
            parameters.principal_type = principal.type
        name = assignment_name(scope, role.id, principal.object_id)
        try:
            # ARM answers 201 when it creates and 200 when the same assignment was there
            status = client.role_assignments.create(
                scope, name, parameters, cls=lambda response, *_: response.http_response.status_code
            )
        except HttpResponseError as error:
            status, code = status_of(error), error_code(error)
            if status == 409 and code == "RoleAssignmentExists":
                return Step("role assignment", label, EXISTS)
            if status == 403:
                return Step(
                    "role assignment",
                    label,
                    WARNING,
                    f"not allowed to assign roles ({code or 'AuthorizationFailed'}); ask an owner "
                    f"of the resource to run: {command}",
                )
            raise
    if status == 200:
        return Step("role assignment", label, EXISTS)
    return Step("role assignment", label, CREATED)


# -- resources ----------------------------------------------------------------------------------


def _require_available(
    kind: str, name: str, availability: Any, list_all: Callable[[], Any], fix: str
) -> None:
    """Refuse a name ARM says is taken, naming who has it when it is in this subscription."""
    if availability.name_available:
        return
    where = _owner_in_subscription(list_all, name)
    if where:
        message = f"{kind} name {name!r} is already used in this subscription, by {where}"
    else:
        reason, detail = str(availability.reason or ""), str(availability.message or "")
        message = f"{kind} name {name!r} is not available ({reason}): {detail}".rstrip(": ")
    raise ConfigError(
        message, fix=fix + (", or run bootstrap with that resource group" if where else "")
    )


def _storage_account(
    arm: Arm, client: Any, resource_group: str, name: str, location: str, steps: list[Step]
) -> Any:
    with admin_sdk():
        from azure.mgmt.storage.models import StorageAccountCheckNameAvailabilityParameters

    with arm_errors(arm, f"read storage account {name!r} in resource group {resource_group!r}"):
        account = _missing(lambda: client.storage_accounts.get_properties(resource_group, name))
    if account is not None:
        steps.append(Step("storage account", name, EXISTS, str(account.location or "")))
        weak = []
        tls = text_of(account.minimum_tls_version) or "TLS1_0"
        if tls not in ("TLS1_2", "TLS1_3"):
            weak.append(f"minimum TLS {tls}")
        if account.allow_blob_public_access:
            weak.append("blob public access allowed")
        if account.enable_https_traffic_only is False:
            weak.append("plain http allowed")
        if weak:
            fix = shlex.join(
                ["az", "storage", "account", "update", "-n", name, "-g", resource_group,
                 "--min-tls-version", "TLS1_2", "--allow-blob-public-access", "false",
                 "--https-only", "true"]
            )  # fmt: skip
            steps.append(
                Step("storage account", name, WARNING, f"{', '.join(weak)}; harden it: {fix}")
            )
        return account
    with arm_errors(arm, f"create storage account {name!r}"):
        _require_available(
            "storage account",
            name,
            client.storage_accounts.check_name_availability(
                StorageAccountCheckNameAvailabilityParameters(name=name)
            ),
            client.storage_accounts.list,
            "pass another name with --storage-account (3-24 lowercase letters and digits)",
        )
        account = client.storage_accounts.begin_create(
            resource_group,
            name,
            {
                "location": location,
                "kind": "StorageV2",
                "sku": {"name": "Standard_LRS"},
                "tags": dict(TAGS),
                "properties": {
                    "supportsHttpsTrafficOnly": True,
                    "minimumTlsVersion": "TLS1_2",
                    "allowBlobPublicAccess": False,
                },
            },
        ).result()
    steps.append(
        Step(
            "storage account",
            name,
            CREATED,
            f"StorageV2, Standard_LRS, {location}, https only, TLS 1.2, no public blob access",
        )
    )
    return account


def _owner_in_subscription(list_all: Callable[[], Any], name: str) -> str | None:
    """Which group of this subscription holds ``name``, if any (for a clearer error)."""
    try:
        for resource in list_all():
            if str(resource.name).lower() == name.lower():
                group = str(resource.id).split("/")[4]
                return f"resource group {group!r}"
    except Exception:  # only makes a message more precise; never fails the command
        return None
    return None


def _blob_container(
    arm: Arm, client: Any, resource_group: str, account: str, name: str, steps: list[Step]
) -> None:
    where = f"blob container {name!r} in storage account {account!r}"
    with arm_errors(arm, f"read or create {where}"):
        found = _missing(lambda: client.blob_containers.get(resource_group, account, name))
        if found is not None:
            steps.append(Step("blob container", f"{account}/{name}", EXISTS))
            return
        client.blob_containers.create(
            resource_group, account, name, {"properties": {"publicAccess": "None"}}
        )
    steps.append(Step("blob container", f"{account}/{name}", CREATED, "private"))


def _registry(
    arm: Arm, client: Any, resource_group: str, name: str, location: str, steps: list[Step]
) -> Any:
    with arm_errors(arm, f"read container registry {name!r} in resource group {resource_group!r}"):
        registry = _missing(lambda: client.registries.get(resource_group, name))
    if registry is not None:
        detail = str(registry.login_server or "")
        steps.append(Step("container registry", name, EXISTS, detail))
        if registry.admin_user_enabled:
            fix = shlex.join(["az", "acr", "update", "-n", name, "--admin-enabled", "false"])
            steps.append(
                Step(
                    "container registry",
                    name,
                    WARNING,
                    f"the admin user (a shared password) is enabled; Ascend does not need it: {fix}",
                )
            )
        return registry
    with arm_errors(arm, f"create container registry {name!r}"):
        _require_available(
            "container registry",
            name,
            client.registries.check_name_availability(
                {"name": name, "type": "Microsoft.ContainerRegistry/registries"}
            ),
            client.registries.list,
            "pass another name with --registry (5-50 letters and digits)",
        )
        registry = client.registries.begin_create(
            resource_group,
            name,
            {
                "location": location,
                "sku": {"name": "Basic"},
                "tags": dict(TAGS),
                "properties": {"adminUserEnabled": False},
            },
        ).result()
    steps.append(
        Step("container registry", name, CREATED, f"Basic, {location}, admin user disabled")
    )
    return registry


def _registry_name(value: str) -> str:
    name = value.strip().lower().removesuffix(".azurecr.io")
    if not (5 <= len(name) <= 50 and name.isalnum() and name.isascii()):
        raise ConfigError(
            f"--registry {value!r} is not a container registry name",
            fix="pass 5-50 letters and digits, e.g. --registry ascendacr",
        )
    return name


def _default_name(kind: str, option: str, derived: str, existing: Iterable[Any]) -> str:
    """The derived name, unless the group already holds another resource bootstrap made.

    Why: after ``bootstrap --storage-account X``, a later ``bootstrap --cluster C`` (to add
    AcrPull) must reuse X rather than create a second account under the derived name.
    """
    managed = sorted(
        str(resource.name)
        for resource in existing
        if all((resource.tags or {}).get(k) == v for k, v in TAGS.items())
    )
    if not managed or derived.lower() in (name.lower() for name in managed):
        return derived
    if len(managed) == 1:
        return managed[0].lower() if kind == "container registry" else managed[0]
    raise ConfigError(
        f"the resource group has several {kind}s tagged managed-by=ascend: "
        f"{', '.join(managed)}; bootstrap does not pick one for you",
        fix=f"choose with {option} NAME",
    )


def _checked(option: str, value: str, check: Callable[[str], None], fix: str) -> str:
    try:
        check(value)
    except ValueError as error:
        raise ConfigError(f"{option} {value!r}: {error}", fix=fix) from None
    return value


def _kubelet(cluster: Any, name: str) -> Principal | None:
    profile = getattr(cluster, "identity_profile", None) or {}
    identity = profile.get("kubeletidentity") if isinstance(profile, dict) else None
    object_id = getattr(identity, "object_id", None)
    if not object_id:
        return None
    return Principal(str(object_id), "ServicePrincipal", f"the kubelet identity of {name}")


def bootstrap(
    arm: Arm,
    resource_group: str,
    *,
    location: str | None = None,
    storage_account: str | None = None,
    container: str = DEFAULT_CONTAINER,
    registry: str | None = None,
    cluster: str | None = None,
    assignee: str | None = None,
) -> BootstrapResult:
    """Create what is missing of account, container, registry and role assignments.

    Raises :class:`BootstrapError` (with the steps done so far) on a failure; role
    assignments refused with 403 are warnings in the result instead.
    """
    _checked("--resource-group", resource_group, check_resource_name, "pass the group's name")
    if storage_account:
        _checked(
            "--storage-account",
            storage_account,
            check_storage_account,
            "pass 3-24 lowercase letters and digits",
        )
    _checked("--container", container, check_container, "pass a name such as ascend-data")
    registry_name = _registry_name(registry) if registry else None
    if cluster:
        _checked("--cluster", cluster, check_resource_name, "az aks list -o table")

    result = BootstrapResult()
    steps = result.steps
    try:
        with admin_sdk():
            from azure.mgmt.authorization import AuthorizationManagementClient
            from azure.mgmt.containerregistry import ContainerRegistryManagementClient
            from azure.mgmt.storage import StorageManagementClient

        caller = _caller(arm, assignee)
        group_location = get_resource_group(arm, resource_group, location=location)
        where = location or group_location
        steps.append(Step("resource group", resource_group, EXISTS, group_location))
        # the cluster is read before anything is created, so a typo changes nothing
        managed_cluster = get_cluster(arm, resource_group, cluster) if cluster else None

        storage = arm.client(StorageManagementClient)
        acr_client = arm.client(ContainerRegistryManagementClient)
        with arm_errors(arm, f"list the resources of resource group {resource_group!r}"):
            account_name = storage_account or _default_name(
                "storage account",
                "--storage-account",
                default_storage_account_name(arm.subscription_id, resource_group),
                storage.storage_accounts.list_by_resource_group(resource_group),
            )
            registry_name = registry_name or _default_name(
                "container registry",
                "--registry",
                default_registry_name(arm.subscription_id, resource_group),
                acr_client.registries.list_by_resource_group(resource_group),
            )
        account = _storage_account(arm, storage, resource_group, account_name, where, steps)
        _blob_container(arm, storage, resource_group, account_name, container, steps)
        acr = _registry(arm, acr_client, resource_group, registry_name, where, steps)

        auth = arm.client(AuthorizationManagementClient)
        account_on = f"storage account {account_name}"
        registry_on = f"registry {registry_name}"
        steps.append(
            _assign(arm, auth, str(account.id), STORAGE_BLOB_DATA_CONTRIBUTOR, caller, account_on)
        )
        steps.append(_assign(arm, auth, str(acr.id), ACR_PUSH, caller, registry_on))
        if managed_cluster is not None and cluster:
            kubelet = _kubelet(managed_cluster, cluster)
            if kubelet is None:
                fix = shlex.join(
                    ["az", "aks", "update", "-g", resource_group, "-n", cluster,
                     "--attach-acr", registry_name]
                )  # fmt: skip
                steps.append(
                    Step(
                        "role assignment",
                        f"AcrPull for cluster {cluster} on {registry_on}",
                        WARNING,
                        f"the cluster has no kubelet managed identity; attach the registry: {fix}",
                    )
                )
            else:
                steps.append(_assign(arm, auth, str(acr.id), ACR_PULL, kubelet, registry_on))
    except ConfigError as error:
        raise BootstrapError(error.message, steps=steps, fix=error.fix) from error

    result.settings = {
        "subscription_id": arm.subscription_id,
        "resource_group": resource_group,
        "storage_account": account_name,
        "container": container,
        "registry": registry_name,
    }
    if cluster:
        result.settings["cluster"] = cluster
    return result
