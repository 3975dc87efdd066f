"""``ascend azure doctor``: check each part of an Azure set-up and say how to fix what fails.

Every check runs even when an earlier one failed (a broken registry says nothing about the
storage), and each answers ``ok``, ``warn`` (works, but not as recommended), ``fail`` (calls
will fail; the fix says what to do) or ``skip`` (not configured; the fix says how).
"""

from __future__ import annotations

import socket
import urllib.parse
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ascend.errors import AscendError
from ascend_azure.credentials import token_claims

if TYPE_CHECKING:
    from ascend.backend import CloudBackend

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
# (connect, read) seconds for every Kubernetes call: a server that accepts and never answers
# must not hang the doctor
KUBE_TIMEOUT = (5, 15)


@dataclass
class Check:
    """The outcome of one check."""

    name: str
    status: str
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_credentials(backend: CloudBackend, credential: Any) -> Check:
    config = backend.config
    if config.get("azure.connection_string") and not config.get("azure.subscription_id"):
        return Check(
            "credentials",
            SKIP,
            "storage uses a connection string and no subscription is configured",
            fix="for Azure AD sign-in: az login, then set azure.subscription_id",
        )
    from ascend_azure.credentials import ARM_SCOPE, get_credential

    try:
        token = (credential or get_credential(config)).get_token(ARM_SCOPE)
    except Exception as error:  # every credential failure is reported, none is fatal here
        return Check(
            "credentials",
            FAIL,
            f"no Azure AD token: {type(error).__name__}: {str(error).splitlines()[0]}",
            fix="sign in with 'az login', or on Azure set azure.client_id to your managed "
            "identity's client id",
        )
    claims = token_claims(token.token)
    who = claims.get("upn") or claims.get("unique_name") or claims.get("appid") or "unknown"
    return Check("credentials", OK, f"signed in as {who}")


def _unreachable(url: str, timeout: float = 5.0) -> str | None:
    """Why ``url``'s host cannot be reached, or ``None``: a quick answer before the storage
    SDK's own retries, which wait about a minute and a half on a dead endpoint."""
    parsed = urllib.parse.urlsplit(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            return None
    except OSError as error:
        return f"{parsed.hostname}:{port} is unreachable ({error.strerror or error})"


def check_storage(backend: CloudBackend) -> Check:
    from ascend_azure.storage import AzureBlobStorage

    probe = f"doctor/probe-{uuid.uuid4().hex}"
    try:
        storage = backend.storage
        endpoint = storage.blob_endpoint if isinstance(storage, AzureBlobStorage) else None
        problem = _unreachable(endpoint) if endpoint else None
        if problem:
            return Check(
                "storage",
                FAIL,
                f"blob endpoint {endpoint}: {problem}",
                fix="check azure.storage_account (or the connection string's BlobEndpoint) "
                "and your network",
            )
        storage.write(probe, b"ascend doctor")
        if storage.read(probe) != b"ascend doctor":
            return Check("storage", FAIL, f"{storage.storage_uri(probe)} read back differently")
        storage.delete(probe)
    except AscendError as error:
        account = backend.config.get("azure.storage_account") or "<account>"
        return Check(
            "storage",
            FAIL,
            error.message.splitlines()[0],
            fix=error.fix
            or "give your identity 'Storage Blob Data Contributor' on the account: "
            'az role assignment create --role "Storage Blob Data Contributor" '
            f"--assignee <you> --scope $(az storage account show -n {account} --query id -o tsv)",
        )
    return Check("storage", OK, f"wrote, read and deleted {storage.storage_uri(probe)}")


def check_registry(backend: CloudBackend) -> Check:
    """Checks the very reference a Job runs (``runtime_image``), on the registry the hooks
    answer."""
    from ascend.images.choose import runtime_image
    from ascend.registry import split_reference

    configured = backend.config.get("images.runtime")
    if not backend.config.get("azure.registry") and not backend.config.registry_url:
        return Check(
            "registry",
            SKIP,
            f"no registry configured; jobs run {configured}"
            if configured
            else "no registry configured: jobs have no runtime image to run",
            fix="set azure.registry: <acr name> (see 'ascend azure init')",
        )
    try:
        registry = backend.registry
        image = runtime_image(backend)
        host, repository, tag = split_reference(image)
        if host != registry.registry_url():
            return Check(
                "registry",
                SKIP,
                f"jobs run {image} (images.runtime), which is not on {registry.registry_url()}",
            )
        found = registry.image_exists(repository, tag)
    except AscendError as error:
        return Check("registry", FAIL, error.message.splitlines()[0], fix=error.fix)
    if not found:
        return Check(
            "registry",
            WARN,
            f"reachable, but the runtime image {image} is missing",
            fix="push it with 'ascend images build-runtime' (no Docker needed), or build "
            f"docker/Dockerfile.runtime and push it as {image}",
        )
    return Check("registry", OK, f"reachable; runtime image {image} exists")


def _cluster(backend: CloudBackend) -> tuple[Any, str]:
    """The Kubernetes API client and the namespace this user's jobs run in."""
    from ascend.compute import JobRequest
    from ascend.kubernetes.compute import KubernetesCompute
    from ascend.runtime import current_user

    compute = backend.compute
    if not isinstance(compute, KubernetesCompute):
        raise _NotKubernetes(compute.name)
    probe = JobRequest(job_id="doctor", package_uri="", result_uri="")
    probe.labels["user"] = current_user(backend.config)
    return compute._api(), compute.namespace_for(probe)


class _NotKubernetes(Exception):
    pass


def check_cluster(backend: CloudBackend) -> Check:
    try:
        api, namespace = _cluster(backend)
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        version = client.VersionApi(api).get_code(_request_timeout=KUBE_TIMEOUT).git_version
        try:
            client.CoreV1Api(api).read_namespace(namespace, _request_timeout=KUBE_TIMEOUT)
        except ApiException as error:
            if error.status != 404:
                raise
            return Check(
                "cluster",
                FAIL,
                f"Kubernetes {version} is reachable, but namespace {namespace} does not exist",
                fix=f"ask a cluster admin to run: ascend admin add-user {namespace.split('-')[-1]}",
            )
    except _NotKubernetes as name:
        return Check("cluster", SKIP, f"jobs run on {name}, not Kubernetes")
    except AscendError as error:
        return Check("cluster", FAIL, error.message.splitlines()[0], fix=error.fix)
    except Exception as error:  # kubeconfig and connection problems, reported with the fix
        return Check(
            "cluster",
            FAIL,
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
            fix="az aks get-credentials -g <group> -n <cluster>, or set kubernetes.kubeconfig",
        )
    return Check("cluster", OK, f"Kubernetes {version}; namespace {namespace} exists")


def check_node_pools(
    backend: CloudBackend, credential: Any = None, connection_verify: Any = None
) -> Check:
    config = backend.config
    names = ("azure.subscription_id", "azure.resource_group", "azure.cluster")
    missing = [name for name in names if not config.get(name)]
    if missing:
        return Check(
            "node pools",
            SKIP,
            f"{', '.join(missing)} not set, so node types are not checked before submitting",
            fix="run 'ascend azure init', or set them in .ascend.yaml",
        )
    from ascend_azure.credentials import get_credential
    from ascend_azure.node_types import AKS_NODE_TYPES, pool_of
    from ascend_azure.pools import agent_pools
    from ascend_azure.settings import DEFAULT_ARM_ENDPOINT

    try:
        pools = agent_pools(
            config.get("azure.subscription_id"),
            config.get("azure.resource_group"),
            config.get("azure.cluster"),
            credential or get_credential(config),
            config.get("azure.arm_endpoint") or DEFAULT_ARM_ENDPOINT,
            connection_verify,
        )
        existing = {pool.name for pool in pools.list()}
    except AscendError as error:
        return Check("node pools", FAIL, error.message.splitlines()[0], fix=error.fix)
    usable = [t.name for t in AKS_NODE_TYPES if pool_of(t.name) in existing]
    detail = f"pools: {', '.join(sorted(existing)) or 'none'}; node types available: "
    detail += ", ".join(usable) if usable else "none of the catalog's"
    if not usable:
        return Check(
            "node pools",
            WARN,
            detail,
            fix="jobs without node_type still run; add a pool for a node type with the "
            "command 'ascend' prints when you ask for it",
        )
    return Check("node pools", OK, detail)


def check_pod_identity(backend: CloudBackend, cluster_reachable: bool = True) -> Check:
    from ascend_azure.checks import check_pod_access

    config = backend.config
    try:
        check_pod_access(config)
    except AscendError as error:
        return Check("pod identity", FAIL, error.message, fix=error.fix)
    if not cluster_reachable and (
        config.get("azure.workload_identity") or config.get("azure.connection_string_secret")
    ):
        return Check("pod identity", SKIP, "the cluster is not reachable; see the cluster check")
    if config.get("azure.workload_identity"):
        return _check_service_account(backend)
    if config.get("azure.connection_string_secret"):
        return _check_secret(backend)
    return Check(
        "pod identity",
        WARN,
        "pods use the node's managed identity, which every pod on the node shares",
        fix="use workload identity: azure.workload_identity: true, azure.client_id, and a "
        "service account federated with that identity (azure.service_account)",
    )


def _read(backend: CloudBackend, kind: str, name: str) -> tuple[Any, str] | Check:
    """The ``kind`` object (service account or secret) ``name`` in the jobs' namespace, or the
    Check that explains why it could not be read."""
    try:
        api, namespace = _cluster(backend)
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        core = client.CoreV1Api(api)
        reader = (
            core.read_namespaced_service_account if kind == "sa" else core.read_namespaced_secret
        )
        try:
            return reader(name, namespace, _request_timeout=KUBE_TIMEOUT), namespace
        except ApiException as error:
            if error.status == 404:
                return None, namespace
            if error.status == 403:
                what = "service account" if kind == "sa" else "secret"
                return Check(
                    "pod identity",
                    WARN,
                    f"you may not read {what} {namespace}/{name}, so it was not checked",
                    fix="ask a cluster admin to check it, or for read access to it",
                )
            raise
    except _NotKubernetes:
        return Check("pod identity", SKIP, "jobs do not run on Kubernetes")
    except Exception as error:  # the cluster check reports why; say only that this one waits
        return Check(
            "pod identity",
            SKIP,
            f"could not read the cluster ({type(error).__name__}); see the cluster check",
        )


def _check_service_account(backend: CloudBackend) -> Check:
    config = backend.config
    account = config.get("azure.service_account")
    client_id = config.get("azure.client_id")
    found = _read(backend, "sa", account)
    if isinstance(found, Check):
        return found
    service_account, namespace = found
    if service_account is None:
        cluster = config.get("azure.cluster") or "<cluster>"
        group = config.get("azure.resource_group") or "<group>"
        return Check(
            "pod identity",
            FAIL,
            f"workload identity is on, but service account {account} does not exist in "
            f"namespace {namespace}",
            fix=f"kubectl create serviceaccount {account} -n {namespace} && kubectl annotate "
            f"serviceaccount {account} -n {namespace} "
            f"azure.workload.identity/client-id={client_id}; then federate the identity: "
            f"az identity federated-credential create --name ascend-{namespace} "
            f"--identity-name <identity> -g {group} --issuer $(az aks show -g {group} "
            f"-n {cluster} --query oidcIssuerProfile.issuerUrl -o tsv) "
            f"--subject system:serviceaccount:{namespace}:{account}",
        )
    annotations = (service_account.metadata.annotations or {}) if service_account.metadata else {}
    annotated = annotations.get("azure.workload.identity/client-id")
    if annotated and annotated != client_id:
        return Check(
            "pod identity",
            WARN,
            f"service account {namespace}/{account} is annotated with client id {annotated}, "
            f"but azure.client_id is {client_id}; pods use azure.client_id",
            fix="make them agree: the federated credential belongs to one identity",
        )
    return Check(
        "pod identity",
        OK,
        f"workload identity through service account {namespace}/{account} (client id "
        f"{client_id}); the identity's federated credential is not visible from here",
    )


def _check_secret(backend: CloudBackend) -> Check:
    name, key = backend.config.get("azure.connection_string_secret").split("/", 1)
    found = _read(backend, "secret", name)
    if isinstance(found, Check):
        return found
    secret, namespace = found
    fix = (
        f"kubectl create secret generic {name} -n {namespace} "
        f'--from-literal={key}="$ASCEND_AZURE_CONNECTION_STRING"'
    )
    if secret is None:
        return Check(
            "pod identity",
            FAIL,
            f"secret {namespace}/{name} does not exist; pods cannot start",
            fix=fix,
        )
    if key not in (secret.data or {}):
        return Check("pod identity", FAIL, f"secret {namespace}/{name} has no key {key!r}", fix=fix)
    return Check(
        "pod identity",
        WARN,
        f"pods read a connection string from secret {namespace}/{name} (an account key: fine "
        "for development, too broad for production)",
        fix="use workload identity: azure.workload_identity: true and azure.client_id",
    )


def run_checks(
    backend: CloudBackend, *, credential: Any = None, connection_verify: Any = None
) -> list[Check]:
    """Every check, in the order a user would fix them."""
    checks = [
        check_credentials(backend, credential),
        check_storage(backend),
        check_registry(backend),
        check_cluster(backend),
        check_node_pools(backend, credential, connection_verify),
    ]
    cluster_reachable = checks[3].status not in (FAIL, SKIP)
    checks.append(check_pod_identity(backend, cluster_reachable))
    return checks
