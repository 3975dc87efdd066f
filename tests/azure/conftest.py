"""Shared fixtures of the Azure plugin's tests: a fake Azure Resource Manager on 127.0.0.1.

``fake_arm`` is a started :class:`ascend_azure.testing.FakeArm`; the real management SDKs talk
to it over HTTPS (``ContainerServiceClient(arm.credential, SUBSCRIPTION,
**arm.client_kwargs())``). ``seed_cluster`` puts an AKS cluster and its agent pools in it.
Nothing here reaches beyond 127.0.0.1 or builds a real Azure credential.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from ascend_azure.testing import FakeArm

SUBSCRIPTION = "6f1c3c2a-0c1d-4f7e-9a51-3d2b8e0c4a01"
GROUP = "ascend-rg"
CLUSTER = "ascend-aks"
LOCATION = "westeurope"
DEFAULT_POOLS: tuple[tuple[Any, ...], ...] = (("system", "Standard_D4s_v5"),)


@pytest.fixture
def fake_arm() -> Iterator[FakeArm]:
    with FakeArm() as arm:
        yield arm
        assert not arm.errors, "the fake ARM failed:\n" + "\n".join(arm.errors)


def group_id(subscription: str = SUBSCRIPTION, group: str = GROUP) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{group}"


def cluster_id(subscription: str = SUBSCRIPTION, group: str = GROUP, cluster: str = CLUSTER) -> str:
    return (
        f"{group_id(subscription, group)}/providers/Microsoft.ContainerService/"
        f"managedClusters/{cluster}"
    )


def seed_cluster(
    arm: FakeArm,
    subscription: str = SUBSCRIPTION,
    group: str = GROUP,
    cluster: str = CLUSTER,
    pools: Sequence[Sequence[Any]] = DEFAULT_POOLS,
    *,
    location: str = LOCATION,
) -> dict[str, Any]:
    """PUT a managed cluster (with a kubelet identity) and its agent pools; return the cluster.

    ``pools``: ``(name, vm_size[, count[, mode]])``; the first pool is the System pool unless
    a mode says otherwise, the others are User pools, with one node each by default.
    """
    resource_id = cluster_id(subscription, group, cluster)
    arm.put(
        resource_id,
        {
            "location": location,
            "identity": {"type": "SystemAssigned"},
            "properties": {
                "kubernetesVersion": "1.30.5",
                "dnsPrefix": cluster,
                "nodeResourceGroup": f"MC_{group}_{cluster}_{location}",
                "identityProfile": {
                    "kubeletidentity": {
                        "resourceId": f"/subscriptions/{subscription}/resourceGroups/MC_{group}_"
                        f"{cluster}_{location}/providers/Microsoft.ManagedIdentity/"
                        f"userAssignedIdentities/{cluster}-agentpool",
                        "clientId": "0b8f2a9e-5a7d-4a57-8c3e-2f6a1d9b7c11",
                        "objectId": "7d4e1c2b-9f3a-4b8e-a6d5-1c2e3f4a5b22",
                    }
                },
            },
        },
    )
    for index, spec in enumerate(pools):
        name, vm_size, *rest = spec
        count = rest[0] if rest else 1
        mode = rest[1] if len(rest) > 1 else ("System" if index == 0 else "User")
        arm.put(
            f"{resource_id}/agentPools/{name}",
            {
                "properties": {
                    "vmSize": vm_size,
                    "count": count,
                    "mode": mode,
                    "osType": "Linux",
                    "type": "VirtualMachineScaleSets",
                }
            },
        )
    cluster_body = arm.get(resource_id)
    assert cluster_body is not None
    return cluster_body


@pytest.fixture
def azure_cli(
    arm: FakeArm,
    ascend_cli: Callable[..., Any],
    register_plugin: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., Any]]:
    """``ascend`` with the azure plugin, pointed at the test module's ``arm`` (a FakeArm) and
    trusting its certificate."""
    import ascend_azure.plugin
    from ascend_azure.credentials import override_credential

    register_plugin(ascend_azure.plugin, "azure")
    monkeypatch.setenv("ASCEND_AZURE_ARM_ENDPOINT", arm.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", arm.ca_file)  # azure-core's requests honours it
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID", raising=False)
    with override_credential(arm.credential):
        yield ascend_cli
