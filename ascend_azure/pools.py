"""Before a job is submitted, check that its node type's AKS agent pool exists.

Why: a pod whose ``kubernetes.azure.com/agentpool`` selector names a pool the cluster does not
have stays Pending until ``pending_timeout``; asking Azure Resource Manager first turns that
wait into an immediate error that lists the pools there are and gives the ``az aks nodepool
add`` command that creates the missing one.

What is checked, and when:

- only with ``azure.check_node_pools`` on (the default) and ``azure.subscription_id``,
  ``azure.resource_group`` and ``azure.cluster`` all set. Without them the check is skipped on
  purpose, silently: the cluster may not be AKS or Ascend may not be told where it is, and the
  Kubernetes ``pending_timeout`` still reports an unschedulable job;
- only for node types that select a pool (``kubernetes.azure.com/agentpool`` or ``agentpool``);
- the pool must exist by its exact name. The VM size is never used to find a pool (an earlier
  version matched pools by VM size and accepted pools the selector could never reach); a pool
  whose VM size differs from the catalog's is a :class:`NodePoolMismatchWarning`.

The pools are read with one ``managed_clusters.get`` (its ``agentPoolProfiles``), not
``agent_pools.list``: reading the cluster needs only ``Microsoft.ContainerService/
managedClusters/read``, which the "Azure Kubernetes Service Cluster User Role" grants (anyone
who ran ``az aks get-credentials`` has it), whereas listing agent pools needs ``.../agentPools/
read``, which that role lacks. Answers are cached per cluster for ``ttl`` seconds, so a burst
of submissions asks ARM once.
"""

from __future__ import annotations

import builtins
import shlex
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ascend.errors import ConfigError
from ascend_azure.arm import Arm
from ascend_azure.settings import DEFAULT_ARM_ENDPOINT

if TYPE_CHECKING:
    from ascend.config import AscendConfig
    from ascend.plugins.types import NodeType

__all__ = [
    "CLIENT_OPTIONS",
    "POOL_LABELS",
    "AgentPools",
    "NodePoolMismatchWarning",
    "NodePoolNotFoundError",
    "PoolInfo",
    "agent_pools",
    "check_node_type",
    "clear_cache",
]

POOL_LABELS = ("kubernetes.azure.com/agentpool", "agentpool")
"""Node labels whose value is the AKS pool name (AKS sets both on every node)."""

CLIENT_OPTIONS: dict[str, Any] = {"read_timeout": 30, "retry_total": 2}
"""Tighter than :data:`ascend_azure.arm.CLIENT_OPTIONS`: it runs before every submit."""

_SKIP = "or set azure.check_node_pools: false to skip this check"


MISS_RECHECK_SECONDS = 10.0


class NodePoolNotFoundError(ConfigError):
    """The node type's agent pool is not in the cluster; ``pools`` lists the ones that are."""

    def __init__(
        self,
        message: str,
        *,
        node_type: str,
        pool: str,
        cluster: str,
        pools: Sequence[PoolInfo] = (),
        fix: str | None = None,
    ) -> None:
        self.node_type = node_type
        self.pool = pool
        self.cluster = cluster
        self.pools = tuple(pools)
        super().__init__(message, fix=fix)


class NodePoolMismatchWarning(UserWarning):
    """The pool exists but runs another VM size than the node type's catalog entry."""


@dataclass(frozen=True)
class PoolInfo:
    """One agent pool of the cluster, as ARM reports it."""

    name: str
    vm_size: str | None = None
    count: int | None = None
    mode: str | None = None

    def describe(self) -> str:
        details = [self.vm_size or "unknown VM size"]
        if self.count is not None:
            details.append(f"{self.count} node{'s' if self.count != 1 else ''}")
        if self.mode:
            details.append(self.mode)
        return f"{self.name} ({', '.join(details)})"


class AgentPools:
    """The agent pools of one AKS cluster, read from ARM and cached for ``ttl`` seconds.

    Thread-safe: concurrent callers share one request. Failures are not cached, and surface as
    :class:`ConfigError` naming what to fix.
    """

    def __init__(
        self,
        subscription_id: str,
        resource_group: str,
        cluster: str,
        credential: Any,
        arm_endpoint: str = DEFAULT_ARM_ENDPOINT,
        connection_verify: str | bool | None = None,
        ttl: float = 300.0,
    ) -> None:
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.cluster = cluster
        self.credential = credential
        self.arm_endpoint = arm_endpoint.rstrip("/")
        self.connection_verify = connection_verify
        self.ttl = ttl
        self._lock = threading.Lock()
        self._pools: list[PoolInfo] | None = None
        self._fetched_at = 0.0
        self._client: Any = None

    @property
    def cluster_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.ContainerService/managedClusters/{self.cluster}"
        )

    def list(self, max_age: float | None = None) -> list[PoolInfo]:
        """The cluster's pools, from the cache when it is younger than ``ttl`` (or
        ``max_age`` seconds, when given)."""
        limit = self.ttl if max_age is None else min(self.ttl, max_age)
        with self._lock:
            now = time.monotonic()
            if self._pools is None or now - self._fetched_at >= limit:
                self._pools = self._fetch()
                self._fetched_at = time.monotonic()
            return list(self._pools)

    def get(self, name: str) -> PoolInfo | None:
        """The pool called exactly ``name``, or ``None``."""
        return next((pool for pool in self.list() if pool.name == name), None)

    def invalidate(self) -> None:
        """Forget the cached answer (after adding a pool)."""
        with self._lock:
            self._pools = None

    def _make_client(self) -> Any:
        try:
            from azure.mgmt.containerservice import ContainerServiceClient
        except ImportError as error:
            raise ConfigError(
                f"checking AKS node pools needs the Azure SDK ({error.name} is missing)",
                fix=f"pip install ascend[azure], {_SKIP}",
            ) from error
        arm = Arm(self.subscription_id, self.credential, self.arm_endpoint, self.connection_verify)
        return arm.client(ContainerServiceClient, **CLIENT_OPTIONS)

    def _fetch(self) -> builtins.list[PoolInfo]:
        if self._client is None:
            self._client = self._make_client()
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        try:
            cluster = self._client.managed_clusters.get(self.resource_group, self.cluster)
        except ClientAuthenticationError as error:
            raise self._auth_error(error) from error
        except HttpResponseError as error:
            raise self._http_error(error) from error
        except (ServiceRequestError, ServiceResponseError) as error:
            raise ConfigError(
                f"cannot reach Azure Resource Manager at {self.arm_endpoint} "
                f"(azure.arm_endpoint) to check the node pools of AKS cluster "
                f"{self.cluster!r}: {_first_line(error)}",
                fix="check the network, proxy and azure.arm_endpoint, " + _SKIP,
            ) from error
        return [_pool_info(profile) for profile in cluster.agent_pool_profiles or []]

    def _auth_error(self, error: Any) -> ConfigError:
        if getattr(error, "response", None) is None:  # the credential could not get a token
            return ConfigError(
                f"no Azure credential to read AKS cluster {self.cluster!r}: {_first_line(error)}",
                fix="run 'az login', or set azure.client_id to a managed identity, " + _SKIP,
            )
        return ConfigError(
            f"Azure Resource Manager ({self.arm_endpoint}) refused the credential (401) while "
            f"reading AKS cluster {self.cluster!r}: {_first_line(error)}",
            fix="run 'az login' again (or check azure.tenant_id and azure.client_id), " + _SKIP,
        )

    def _http_error(self, error: Any) -> ConfigError:
        status = getattr(error, "status_code", None)
        code = _error_code(error)
        where = (
            f"AKS cluster {self.cluster!r} in resource group {self.resource_group!r} "
            f"(subscription {self.subscription_id})"
        )
        if status == 403:
            return ConfigError(
                f"the Azure identity lacks read access on {where} ({code or 'AuthorizationFailed'})"
                ", which the node-pool check needs",
                fix='az role assignment create --role "Azure Kubernetes Service Cluster User Role" '
                f"--assignee <your user, group or identity> --scope {self.cluster_id}, " + _SKIP,
            )
        if status == 404:
            if code == "ResourceGroupNotFound":
                problem = (
                    f"resource group {self.resource_group!r} (azure.resource_group) does not "
                    f"exist in subscription {self.subscription_id}"
                )
            else:
                problem = f"{where} was not found (azure.cluster, azure.resource_group)"
            return ConfigError(
                problem,
                fix="check azure.subscription_id, azure.resource_group and azure.cluster "
                "against 'az aks list -o table', " + _SKIP,
            )
        answer = f"{status} {code}" if code else str(status)
        return ConfigError(
            f"Azure Resource Manager answered {answer} while reading {where}: {_first_line(error)}",
            fix="retry in a moment, " + _SKIP,
        )


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "message", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _error_code(error: Any) -> str | None:
    inner = getattr(error, "error", None)
    code = getattr(inner, "code", None)
    return str(code) if code else None


def _pool_info(profile: Any) -> PoolInfo:
    count = getattr(profile, "count", None)
    mode = getattr(profile, "mode", None)
    return PoolInfo(
        name=str(profile.name),
        vm_size=getattr(profile, "vm_size", None),
        count=int(count) if count is not None else None,
        mode=str(getattr(mode, "value", mode)) if mode is not None else None,
    )


# -- one AgentPools per cluster and process ------------------------------------------------------

_instances_lock = threading.Lock()
_instances: dict[tuple[str, str, str, str], AgentPools] = {}


def agent_pools(
    subscription_id: str,
    resource_group: str,
    cluster: str,
    credential: Any,
    arm_endpoint: str = DEFAULT_ARM_ENDPOINT,
    connection_verify: str | bool | None = None,
) -> AgentPools:
    """The process-wide :class:`AgentPools` of a cluster, so its cache is shared.

    Keyed by endpoint, subscription, group and cluster (ARM names are case-insensitive); a
    different credential or TLS setting replaces the entry, since it may see other answers.
    """
    endpoint = arm_endpoint.rstrip("/")
    key = (endpoint.lower(), subscription_id.lower(), resource_group.lower(), cluster.lower())
    with _instances_lock:
        found = _instances.get(key)
        if (
            found is None
            or found.credential is not credential
            or found.connection_verify != connection_verify
        ):
            found = AgentPools(
                subscription_id,
                resource_group,
                cluster,
                credential,
                endpoint,
                connection_verify=connection_verify,
            )
            _instances[key] = found
        return found


def clear_cache() -> None:
    """Forget every cluster's pools (tests; after changing pools outside Ascend)."""
    with _instances_lock:
        _instances.clear()


# -- the check ----------------------------------------------------------------------------------


def _selected_pool(node_type: NodeType) -> str | None:
    selector = dict(node_type.node_selector)
    for label in POOL_LABELS:
        if selector.get(label):
            return selector[label]
    return None


def _catalog_vm_size(name: str) -> str | None:
    from ascend_azure.node_types import UnknownNodeTypeError, vm_size_of

    try:
        return vm_size_of(name)
    except UnknownNodeTypeError:
        return None  # a node type another plugin declares


def _taints(node_type: NodeType) -> list[str]:
    """``key=value:Effect`` for each toleration a pool can be tainted with for this type."""
    taints = []
    for toleration in node_type.tolerations:
        fields = dict(toleration)
        if (
            fields.get("operator", "Equal") == "Equal"
            and fields.get("key")
            and fields.get("effect")
        ):
            taints.append(f"{fields['key']}={fields.get('value', '')}:{fields['effect']}")
    return taints


def _nodepool_add_command(
    pool: str, vm_size: str | None, cluster: str, group: str, taints: Iterable[str] = ()
) -> str:
    """``az aks nodepool add`` for a pool the catalog does not know (another plugin's type).

    Same shape as the catalog's command: zero nodes to start, autoscaling to 3, so the pool
    costs nothing until a job asks for it; tainted only with taints the node type tolerates.
    """
    parts = [
        "az aks nodepool add",
        f"--resource-group {shlex.quote(group)}",
        f"--cluster-name {shlex.quote(cluster)}",
        f"--name {shlex.quote(pool)}",
        f"--node-vm-size {shlex.quote(vm_size) if vm_size else '<vm-size>'}",
        "--node-count 0",
        "--enable-cluster-autoscaler",
        "--min-count 0",
        "--max-count 3",
    ]
    taint_list = ",".join(taints)
    if taint_list:
        parts.append(f"--node-taints {shlex.quote(taint_list)}")
    return " ".join(parts)


def _add_command(
    node_type: NodeType, pool: str, vm_size: str | None, cluster: str, group: str
) -> str:
    from ascend_azure.node_types import nodepool_add_command, pool_of

    if vm_size is not None and pool_of(node_type.name) == pool:
        return nodepool_add_command(node_type, cluster, group)
    return _nodepool_add_command(pool, vm_size, cluster, group, _taints(node_type))


def check_node_type(
    config: AscendConfig,
    node_type: NodeType,
    *,
    credential: Any = None,
    connection_verify: str | bool | None = None,
) -> None:
    """Raise :class:`NodePoolNotFoundError` when ``node_type``'s AKS pool is not in the cluster.

    Does nothing when the check is off, the cluster is not configured, or the node type
    selects no pool (see the module docstring). ARM failures are :class:`ConfigError`.
    """
    if not config.get("azure.check_node_pools", True):
        return
    subscription = config.get("azure.subscription_id")
    group = config.get("azure.resource_group")
    cluster = config.get("azure.cluster")
    if not (subscription and group and cluster):
        return
    pool_name = _selected_pool(node_type)
    if pool_name is None:
        return
    if credential is None:
        from ascend_azure.credentials import get_credential

        credential = get_credential(config)
    pools = agent_pools(
        subscription,
        group,
        cluster,
        credential,
        config.get("azure.arm_endpoint", DEFAULT_ARM_ENDPOINT),
        connection_verify,
    )
    existing = pools.list()
    expected = _catalog_vm_size(node_type.name)
    found = next((pool for pool in existing if pool.name == pool_name), None)
    if found is None:
        # A miss is not trusted for long: the user may just have run the suggested command.
        existing = pools.list(max_age=MISS_RECHECK_SECONDS)
        found = next((pool for pool in existing if pool.name == pool_name), None)
    if found is None:
        listed = ", ".join(pool.describe() for pool in existing) or "none"
        raise NodePoolNotFoundError(
            f"node type {node_type.name!r} runs on AKS agent pool {pool_name!r}, which cluster "
            f"{cluster!r} (resource group {group!r}) does not have; its pools: {listed}",
            node_type=node_type.name,
            pool=pool_name,
            cluster=cluster,
            pools=existing,
            fix=_add_command(node_type, pool_name, expected, cluster, group),
        )
    if expected and found.vm_size and found.vm_size.lower() != expected.lower():
        warnings.warn(
            f"AKS agent pool {pool_name!r} of cluster {cluster!r} runs {found.vm_size}, but node "
            f"type {node_type.name!r} is {expected}: its default cpu and memory requests may "
            "not fit on (or may waste) those nodes",
            NodePoolMismatchWarning,
            stacklevel=2,
        )
