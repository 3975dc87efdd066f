"""The pre-submit AKS agent-pool check, against FakeArm with the real containerservice SDK."""

from __future__ import annotations

import socket
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ascend.config import AscendConfig
from ascend.errors import ConfigError
from ascend.plugins.markers import hookimpl
from ascend.plugins.types import NodeType, Setting
from ascend_azure import credentials, pools
from ascend_azure.node_types import AKS_NODE_TYPES, GPU_TOLERATIONS
from ascend_azure.pools import (
    AgentPools,
    NodePoolMismatchWarning,
    NodePoolNotFoundError,
    PoolInfo,
    check_node_type,
)
from ascend_azure.settings import SETTINGS
from ascend_azure.testing import FakeArm, FakeCredential

from .conftest import CLUSTER, GROUP, SUBSCRIPTION, cluster_id, seed_cluster

NODE_TYPES = {t.name: t for t in AKS_NODE_TYPES}
CPU_D4 = NODE_TYPES["cpu-d4"]  # pool d4sv5, Standard_D4s_v5
GPU_T4 = NODE_TYPES["gpu-t4"]  # pool nc4ast4v3, Standard_NC4as_T4_v3
POOLS = [("system", "Standard_D2s_v5", 2), ("d4sv5", "Standard_D4s_v5", 0)]


class AzureSettings:
    """Declares the azure.* settings without the rest of the Azure plugin."""

    @hookimpl
    def ascend_settings(self) -> list[Setting]:
        return list(SETTINGS)


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh pool cache per test, and never a real Azure credential."""

    def refuse(*args: Any) -> Any:
        raise AssertionError("a test tried to build a real DefaultAzureCredential")

    monkeypatch.setattr(credentials, "_build", refuse)
    pools.clear_cache()
    yield
    pools.clear_cache()


@pytest.fixture
def make_config(register_plugin: Callable[..., str], ascend_pm: Any) -> Callable[..., AscendConfig]:
    register_plugin(AzureSettings(), name="azure-settings")

    def make(arm: FakeArm | None = None, **values: Any) -> AscendConfig:
        overrides: dict[str, Any] = {
            "azure.subscription_id": SUBSCRIPTION,
            "azure.resource_group": GROUP,
            "azure.cluster": CLUSTER,
        }
        if arm is not None:
            overrides["azure.arm_endpoint"] = arm.url
        overrides.update({f"azure.{key}": value for key, value in values.items()})
        overrides = {key: value for key, value in overrides.items() if value is not None}
        return AscendConfig.load(pm=ascend_pm, overrides=overrides)

    return make


def check(config: AscendConfig, arm: FakeArm, node_type: NodeType, **kwargs: Any) -> None:
    check_node_type(
        config, node_type, credential=arm.credential, connection_verify=arm.ca_file, **kwargs
    )


def cluster_reads(arm: FakeArm) -> int:
    return arm.requests.count(("GET", cluster_id()))


# -- the pool is there, or it is not ------------------------------------------------------------


def test_present_pool_passes_without_warning(fake_arm, make_config):
    seed_cluster(fake_arm, pools=POOLS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check(make_config(fake_arm), fake_arm, CPU_D4)
    assert cluster_reads(fake_arm) == 1


def test_missing_pool_lists_existing_pools_and_the_add_command(fake_arm, make_config):
    seed_cluster(fake_arm, pools=POOLS)
    with pytest.raises(NodePoolNotFoundError) as caught:
        check(make_config(fake_arm), fake_arm, GPU_T4)
    error = caught.value
    assert isinstance(error, ConfigError)
    assert "'gpu-t4'" in error.message
    assert "'nc4ast4v3'" in error.message
    assert f"'{CLUSTER}'" in error.message
    assert "system (Standard_D2s_v5, 2 nodes, System)" in error.message
    assert "d4sv5 (Standard_D4s_v5, 0 nodes, User)" in error.message
    assert error.fix is not None
    assert error.fix.startswith("az aks nodepool add")
    assert "--name nc4ast4v3" in error.fix
    assert f"--cluster-name {CLUSTER}" in error.fix
    assert f"--resource-group {GROUP}" in error.fix
    assert "--node-vm-size Standard_NC4as_T4_v3" in error.fix
    assert "az aks nodepool add" in str(error)
    assert (error.node_type, error.pool, error.cluster) == ("gpu-t4", "nc4ast4v3", CLUSTER)
    assert [p.name for p in error.pools] == ["system", "d4sv5"]


def test_no_fallback_on_vm_size(fake_arm, make_config):
    # A pool with the T4 VM size under another name is not the pool gpu-t4 selects: a job
    # there would never be scheduled, so it must not count.
    seed_cluster(
        fake_arm, pools=[("system", "Standard_D2s_v5"), ("gpupool", "Standard_NC4as_T4_v3")]
    )
    with pytest.raises(NodePoolNotFoundError):
        check(make_config(fake_arm), fake_arm, GPU_T4)


def test_pool_names_match_exactly(fake_arm, make_config):
    seed_cluster(fake_arm, pools=[("system", "Standard_D2s_v5"), ("D4SV5", "Standard_D4s_v5")])
    with pytest.raises(NodePoolNotFoundError):
        check(make_config(fake_arm), fake_arm, CPU_D4)


def test_other_plugins_node_type_gets_a_command_with_a_vm_size_placeholder(fake_arm, make_config):
    seed_cluster(fake_arm, pools=POOLS)
    foreign = NodeType(
        "acme-bigmem",
        node_selector=(("agentpool", "bigmem"),),
        tolerations=GPU_TOLERATIONS,
    )
    with pytest.raises(NodePoolNotFoundError) as caught:
        check(make_config(fake_arm), fake_arm, foreign)
    fix = caught.value.fix or ""
    assert fix.startswith("az aks nodepool add")
    assert "--name bigmem" in fix
    assert "--node-vm-size <vm-size>" in fix
    assert "--node-taints sku=gpu:NoSchedule" in fix  # only the taints the type tolerates


def test_vm_size_mismatch_warns(fake_arm, make_config):
    seed_cluster(fake_arm, pools=[("system", "Standard_D2s_v5"), ("d4sv5", "Standard_D8s_v5")])
    with pytest.warns(NodePoolMismatchWarning) as record:
        check(make_config(fake_arm), fake_arm, CPU_D4)
    message = str(record[0].message)
    assert "Standard_D8s_v5" in message
    assert "Standard_D4s_v5" in message
    assert "cpu-d4" in message
    assert issubclass(NodePoolMismatchWarning, UserWarning)


# -- when nothing is asked ----------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["subscription_id", "resource_group", "cluster"])
def test_unconfigured_cluster_skips_the_check(fake_arm, make_config, missing):
    config = make_config(fake_arm, **{missing: None})
    check(config, fake_arm, GPU_T4)
    assert fake_arm.requests == []
    assert fake_arm.credential.scopes == []


def test_disabled_check_asks_nothing(fake_arm, make_config):
    check(make_config(fake_arm, check_node_pools=False), fake_arm, GPU_T4)
    assert fake_arm.requests == []


def test_node_type_without_pool_selector_asks_nothing(fake_arm, make_config):
    check(make_config(fake_arm), fake_arm, NodeType("anywhere"))
    check(make_config(fake_arm), fake_arm, NodeType("zoned", node_selector=(("zone", "1"),)))
    assert fake_arm.requests == []


# -- caching ------------------------------------------------------------------------------------


def test_answers_are_cached_per_cluster(fake_arm, make_config):
    seed_cluster(fake_arm, pools=POOLS)
    config = make_config(fake_arm)
    check(config, fake_arm, CPU_D4)
    check(config, fake_arm, CPU_D4)
    with pytest.raises(NodePoolNotFoundError):
        check(make_config(fake_arm), fake_arm, GPU_T4)
    assert cluster_reads(fake_arm) == 1
    assert len(fake_arm.requests) == 1


def test_ttl_expiry_refetches(fake_arm, monkeypatch):
    seed_cluster(fake_arm, pools=POOLS)
    now = [1000.0]
    monkeypatch.setattr(pools.time, "monotonic", lambda: now[0])
    agent_pools = AgentPools(
        SUBSCRIPTION,
        GROUP,
        CLUSTER,
        fake_arm.credential,
        fake_arm.url,
        connection_verify=fake_arm.ca_file,
        ttl=60.0,
    )
    assert [p.name for p in agent_pools.list()] == ["system", "d4sv5"]
    now[0] += 59.0
    agent_pools.list()
    assert cluster_reads(fake_arm) == 1

    seed_cluster(fake_arm, pools=[*POOLS, ("nc4ast4v3", "Standard_NC4as_T4_v3")])
    now[0] += 2.0
    assert agent_pools.get("nc4ast4v3") == PoolInfo("nc4ast4v3", "Standard_NC4as_T4_v3", 1, "User")
    assert cluster_reads(fake_arm) == 2


def test_a_miss_is_rechecked_after_ten_seconds_not_five_minutes(fake_arm, make_config, monkeypatch):
    # the user runs the suggested 'az aks nodepool add' and calls again
    seed_cluster(fake_arm, pools=POOLS)
    now = [1000.0]
    monkeypatch.setattr(pools.time, "monotonic", lambda: now[0])
    config = make_config(fake_arm)
    with pytest.raises(NodePoolNotFoundError):
        check(config, fake_arm, GPU_T4)
    seed_cluster(fake_arm, pools=[*POOLS, ("nc4ast4v3", "Standard_NC4as_T4_v3")])
    now[0] += 5.0
    with pytest.raises(NodePoolNotFoundError):
        check(config, fake_arm, GPU_T4)
    reads = cluster_reads(fake_arm)
    now[0] += pools.MISS_RECHECK_SECONDS
    check(config, fake_arm, GPU_T4)
    assert cluster_reads(fake_arm) == reads + 1
    check(config, fake_arm, CPU_D4)  # hits are served from the cache
    assert cluster_reads(fake_arm) == reads + 1


def test_concurrent_callers_share_one_request(fake_arm):
    seed_cluster(fake_arm, pools=POOLS)
    agent_pools = pools.agent_pools(
        SUBSCRIPTION, GROUP, CLUSTER, fake_arm.credential, fake_arm.url, fake_arm.ca_file
    )
    assert (
        pools.agent_pools(
            SUBSCRIPTION.upper(),
            GROUP,
            CLUSTER,
            fake_arm.credential,
            fake_arm.url,
            fake_arm.ca_file,
        )
        is agent_pools
    )
    results: list[list[PoolInfo]] = []
    threads = [
        threading.Thread(target=lambda: results.append(agent_pools.list())) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert all(result == results[0] for result in results)
    assert cluster_reads(fake_arm) == 1


def test_failures_are_not_cached(fake_arm, make_config):
    seed_cluster(fake_arm, pools=POOLS)
    fake_arm.fail("GET", "/managedClusters/", 403, "AuthorizationFailed", times=1)
    config = make_config(fake_arm)
    with pytest.raises(ConfigError):
        check(config, fake_arm, CPU_D4)
    check(config, fake_arm, CPU_D4)
    assert cluster_reads(fake_arm) == 2


# -- ARM errors ---------------------------------------------------------------------------------


def test_forbidden_names_the_role_and_the_switch(fake_arm, make_config):
    seed_cluster(fake_arm, pools=POOLS)
    fake_arm.fail(
        "GET",
        "/managedClusters/",
        403,
        "AuthorizationFailed",
        "The client does not have authorization to perform action "
        "'Microsoft.ContainerService/managedClusters/read'",
    )
    with pytest.raises(ConfigError) as caught:
        check(make_config(fake_arm), fake_arm, CPU_D4)
    error = caught.value
    assert not isinstance(error, NodePoolNotFoundError)
    assert "lacks read access" in error.message
    assert f"'{CLUSTER}'" in error.message
    assert error.fix is not None
    assert 'az role assignment create --role "Azure Kubernetes Service Cluster User Role"' in (
        error.fix
    )
    assert f"--scope {cluster_id()}" in error.fix
    assert "azure.check_node_pools: false" in error.fix


def test_missing_cluster_is_named(fake_arm, make_config):
    seed_cluster(fake_arm, pools=POOLS)
    with pytest.raises(ConfigError) as caught:
        check(make_config(fake_arm, cluster="other-aks"), fake_arm, CPU_D4)
    assert "'other-aks'" in caught.value.message
    assert "was not found" in caught.value.message
    assert "az aks list" in (caught.value.fix or "")


def test_missing_resource_group_is_named(fake_arm, make_config):
    with pytest.raises(ConfigError) as caught:
        check(make_config(fake_arm, resource_group="gone-rg"), fake_arm, CPU_D4)
    assert "resource group 'gone-rg'" in caught.value.message
    assert "azure.resource_group" in caught.value.message


def test_refused_token_says_to_log_in(fake_arm, make_config):
    seed_cluster(fake_arm, pools=POOLS)
    with pytest.raises(ConfigError) as caught:
        check_node_type(
            make_config(fake_arm),
            CPU_D4,
            credential=FakeCredential("expired"),
            connection_verify=fake_arm.ca_file,
        )
    assert "401" in caught.value.message
    assert "az login" in (caught.value.fix or "")


def test_unreachable_endpoint_names_the_setting(make_config, monkeypatch):
    monkeypatch.setitem(pools.CLIENT_OPTIONS, "retry_total", 0)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"https://127.0.0.1:{port}"
    config = make_config(arm_endpoint=endpoint)
    with pytest.raises(ConfigError) as caught:
        check_node_type(config, CPU_D4, credential=FakeCredential())
    assert "azure.arm_endpoint" in caught.value.message
    assert endpoint in caught.value.message


# -- credentials and endpoint -------------------------------------------------------------------


def test_default_credential_comes_from_the_plugin(fake_arm, make_config):
    seed_cluster(fake_arm, pools=POOLS)
    with credentials.override_credential(fake_arm.credential):
        check_node_type(make_config(fake_arm), CPU_D4, connection_verify=fake_arm.ca_file)
    assert cluster_reads(fake_arm) == 1


def test_token_is_asked_for_the_configured_endpoint(fake_arm, make_config):
    seed_cluster(fake_arm, pools=POOLS)
    check(make_config(fake_arm), fake_arm, CPU_D4)
    assert set(fake_arm.credential.scopes) == {fake_arm.url + "/.default"}


def test_credential_without_token_says_to_log_in(fake_arm, make_config):
    from azure.core.exceptions import ClientAuthenticationError

    class NoLogin:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise ClientAuthenticationError("Please run 'az login' to set up an account")

    with pytest.raises(ConfigError) as caught:
        check_node_type(
            make_config(fake_arm), CPU_D4, credential=NoLogin(), connection_verify=fake_arm.ca_file
        )
    assert "no Azure credential" in caught.value.message
    assert "az login" in (caught.value.fix or "")
    assert fake_arm.requests == []
