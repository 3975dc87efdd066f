"""FakeArm against the real Azure management SDKs: the calls Ascend's Azure code makes work.

Every client is built the way Ascend builds one for a custom endpoint (``base_url``,
``credential_scopes``, ``connection_verify``); long-running operations must finish without the
pollers' 30 s wait.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.storage import StorageManagementClient

from ascend_azure.testing import BUILTIN_ROLES, FakeArm, FakeCredential

from .conftest import CLUSTER, GROUP, SUBSCRIPTION, cluster_id, group_id, seed_cluster

PRINCIPAL = "3a9d2c1b-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
STORAGE = "Microsoft.Storage/storageAccounts"


def client(cls: Any, arm: FakeArm, credential: Any = None, **options: Any) -> Any:
    return cls(credential or arm.credential, SUBSCRIPTION, **arm.client_kwargs(), **options)


def raw(arm: FakeArm, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
    """A request without the SDK, to see exactly what the server answers."""
    context = ssl.create_default_context(cafile=arm.ca_file)
    request = urllib.request.Request(arm.url + path, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def seed_group(arm: FakeArm, group: str = GROUP) -> None:
    arm.put(group_id(group=group), {"location": "westeurope"})


def role_id(role: str) -> str:
    return (
        f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/"
        f"{BUILTIN_ROLES[role]}"
    )


# -- AKS ----------------------------------------------------------------------------------------


def test_agent_pools_list_and_cluster_get(fake_arm):
    seed_cluster(
        fake_arm,
        pools=[("system", "Standard_D4s_v5", 3), ("nc4ast4v3", "Standard_NC4as_T4_v3", 0)],
    )
    aks = client(ContainerServiceClient, fake_arm)

    pools = {p.name: p for p in aks.agent_pools.list(GROUP, CLUSTER)}
    assert set(pools) == {"system", "nc4ast4v3"}
    assert pools["system"].vm_size == "Standard_D4s_v5"
    assert pools["system"].count == 3
    assert pools["system"].mode == "System"
    assert pools["nc4ast4v3"].mode == "User"
    assert pools["nc4ast4v3"].type == "Microsoft.ContainerService/managedClusters/agentPools"

    cluster = aks.managed_clusters.get(GROUP, CLUSTER)
    assert cluster.id == cluster_id()
    assert cluster.node_resource_group == f"MC_{GROUP}_{CLUSTER}_westeurope"
    kubelet = cluster.identity_profile["kubeletidentity"]
    assert kubelet.client_id == "0b8f2a9e-5a7d-4a57-8c3e-2f6a1d9b7c11"
    assert kubelet.object_id == "7d4e1c2b-9f3a-4b8e-a6d5-1c2e3f4a5b22"
    assert {p.name: p.vm_size for p in cluster.agent_pool_profiles} == {
        "system": "Standard_D4s_v5",
        "nc4ast4v3": "Standard_NC4as_T4_v3",
    }
    assert cluster.provisioning_state == "Succeeded"
    assert cluster.identity.principal_id  # generated for a system-assigned identity


def test_agent_pool_create_and_delete_pollers_finish_at_once(fake_arm):
    seed_cluster(fake_arm)
    aks = client(ContainerServiceClient, fake_arm)

    started = time.monotonic()
    pool = aks.agent_pools.begin_create_or_update(
        GROUP, CLUSTER, "gpu", {"properties": {"vmSize": "Standard_NC4as_T4_v3", "count": 1}}
    ).result()
    aks.agent_pools.begin_delete(GROUP, CLUSTER, "system").result()
    assert time.monotonic() - started < 5  # no poll interval was waited

    assert pool.name == "gpu"
    assert pool.provisioning_state == "Succeeded"
    assert [p.name for p in aks.agent_pools.list(GROUP, CLUSTER)] == ["gpu"]
    with pytest.raises(ResourceNotFoundError):
        aks.agent_pools.get(GROUP, CLUSTER, "system")


def test_managed_cluster_create_turns_profiles_into_agent_pools(fake_arm):
    seed_group(fake_arm)
    aks = client(ContainerServiceClient, fake_arm)
    created = aks.managed_clusters.begin_create_or_update(
        GROUP,
        "fresh",
        {
            "location": "eastus",
            "identity": {"type": "SystemAssigned"},
            "properties": {
                "dnsPrefix": "fresh",
                "oidcIssuerProfile": {"enabled": True},
                "agentPoolProfiles": [
                    {"name": "system", "vmSize": "Standard_D2s_v5", "count": 1, "mode": "System"}
                ],
            },
        },
    ).result()
    assert created.node_resource_group == f"MC_{GROUP}_fresh_eastus"
    assert created.oidc_issuer_profile.issuer_url.startswith("https://eastus.oic.")
    assert created.identity_profile["kubeletidentity"].client_id
    assert [p.name for p in aks.agent_pools.list(GROUP, "fresh")] == ["system"]


def test_list_cluster_user_credential(fake_arm):
    seed_cluster(fake_arm)
    aks = client(ContainerServiceClient, fake_arm)
    kubeconfig = aks.managed_clusters.list_cluster_user_credentials(GROUP, CLUSTER)
    assert kubeconfig.kubeconfigs[0].name == "clusterUser"
    assert b"current-context: ascend-aks" in bytes(kubeconfig.kubeconfigs[0].value)

    fake_arm.set_kubeconfig(cluster_id(), "apiVersion: v1\nkind: Config\n")
    again = aks.managed_clusters.list_cluster_user_credentials(GROUP, CLUSTER)
    assert bytes(again.kubeconfigs[0].value) == b"apiVersion: v1\nkind: Config\n"


# -- storage ------------------------------------------------------------------------------------


def test_storage_account_create_keys_container_and_name_check(fake_arm):
    seed_group(fake_arm)
    storage = client(StorageManagementClient, fake_arm)

    started = time.monotonic()
    account = storage.storage_accounts.begin_create(
        GROUP,
        "ascenddata",
        {"location": "westeurope", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"},
    ).result()
    assert time.monotonic() - started < 5
    assert account.name == "ascenddata"
    assert account.primary_endpoints.blob == "https://ascenddata.blob.core.windows.net/"
    assert account.provisioning_state == "Succeeded"

    keys = storage.storage_accounts.list_keys(GROUP, "ascenddata").keys_property
    assert [k.key_name for k in keys] == ["key1", "key2"]
    assert keys[0].value != keys[1].value
    assert base64.b64decode(keys[0].value)
    assert storage.storage_accounts.list_keys(GROUP, "ascenddata").keys_property[0].value == (
        keys[0].value
    )  # stable

    container = storage.blob_containers.create(GROUP, "ascenddata", "ascend-data", {})
    assert container.name == "ascend-data"
    assert container.id.endswith("/blobServices/default/containers/ascend-data")
    listed = storage.blob_containers.list(GROUP, "ascenddata")
    assert [c.name for c in listed] == ["ascend-data"]

    def check(name: str) -> Any:
        return storage.storage_accounts.check_name_availability({"name": name, "type": STORAGE})

    taken = check("ascenddata")
    assert (taken.name_available, taken.reason) == (False, "AlreadyExists")
    assert check("ascendother").name_available is True
    assert check("Not_Valid").reason == "AccountNameInvalid"
    fake_arm.take_name(STORAGE, "someoneelses")
    assert check("someoneelses").name_available is False


def test_storage_account_names_are_global_across_subscriptions(fake_arm):
    fake_arm.put(
        f"/subscriptions/{uuid.uuid4()}/resourceGroups/theirs/providers/{STORAGE}/sharedname",
        {"location": "eastus"},
    )
    storage = client(StorageManagementClient, fake_arm)
    answer = storage.storage_accounts.check_name_availability(
        {"name": "sharedname", "type": STORAGE}
    )
    assert answer.name_available is False


def test_subscription_level_list_spans_resource_groups(fake_arm):
    for group in ("one", "two"):
        fake_arm.put(f"{group_id(group=group)}/providers/{STORAGE}/acct{group}", {})
    storage = client(StorageManagementClient, fake_arm)
    assert sorted(a.name for a in storage.storage_accounts.list()) == ["acctone", "accttwo"]
    assert [a.name for a in storage.storage_accounts.list_by_resource_group("one")] == ["acctone"]


# -- container registry -------------------------------------------------------------------------


def test_registry_create_get_and_name_check(fake_arm):
    seed_group(fake_arm)
    acr = client(ContainerRegistryManagementClient, fake_arm)
    started = time.monotonic()
    created = acr.registries.begin_create(
        GROUP, "ascendacr", {"location": "westeurope", "sku": {"name": "Basic"}}
    ).result()
    assert time.monotonic() - started < 5
    assert created.login_server == "ascendacr.azurecr.io"
    fetched = acr.registries.get(GROUP, "ascendacr")
    assert fetched.id == created.id
    assert fetched.sku.name == "Basic"

    def check(name: str) -> Any:
        return acr.registries.check_name_availability(
            {"name": name, "type": "Microsoft.ContainerRegistry/registries"}
        )

    assert check("AscendACR").name_available is False  # registry names ignore case
    assert check("freshacr").name_available is True
    assert check("no").name_available is False


# -- role assignments ---------------------------------------------------------------------------


def test_role_assignment_create_is_idempotent_and_duplicates_conflict(fake_arm):
    account = fake_arm.put(f"{group_id()}/providers/{STORAGE}/ascenddata", {})
    auth = client(AuthorizationManagementClient, fake_arm)
    parameters = {
        "properties": {
            "roleDefinitionId": role_id("Storage Blob Data Contributor"),
            "principalId": PRINCIPAL,
            "principalType": "ServicePrincipal",
        }
    }
    name = str(uuid.uuid4())

    first = auth.role_assignments.create(account["id"], name, parameters)
    second = auth.role_assignments.create(account["id"], name, parameters)
    assert first.id == second.id
    assert first.scope == account["id"]
    assert first.principal_id == PRINCIPAL

    with pytest.raises(ResourceExistsError) as caught:
        auth.role_assignments.create(account["id"], str(uuid.uuid4()), parameters)
    assert caught.value.status_code == 409
    assert caught.value.error.code == "RoleAssignmentExists"

    other = {"properties": {**parameters["properties"], "principalId": str(uuid.uuid4())}}
    with pytest.raises(HttpResponseError) as changed:
        auth.role_assignments.create(account["id"], name, other)
    assert changed.value.error.code == "RoleAssignmentUpdateNotPermitted"

    with pytest.raises(HttpResponseError) as not_guid:
        auth.role_assignments.create(account["id"], "not-a-guid", parameters)
    assert not_guid.value.error.code == "InvalidRoleAssignmentId"

    mine = auth.role_assignments.list_for_scope(
        account["id"], filter=f"principalId eq '{PRINCIPAL}'"
    )
    assert [a.name for a in mine] == [name]
    assert list(auth.role_assignments.list_for_scope(group_id(), filter="atScope()")) == []
    assert [a.name for a in auth.role_assignments.list_for_scope(group_id())] == [name]


def test_role_assignment_at_subscription_and_group_scope(fake_arm):
    seed_group(fake_arm)
    auth = client(AuthorizationManagementClient, fake_arm)
    for scope in (f"/subscriptions/{SUBSCRIPTION}", group_id()):
        created = auth.role_assignments.create(
            scope,
            str(uuid.uuid4()),
            {"properties": {"roleDefinitionId": role_id("Reader"), "principalId": PRINCIPAL}},
        )
        assert created.scope == scope


def test_builtin_role_definitions(fake_arm):
    auth = client(AuthorizationManagementClient, fake_arm)
    scope = f"/subscriptions/{SUBSCRIPTION}"
    found = list(auth.role_definitions.list(scope, filter="roleName eq 'AcrPull'"))
    assert [(d.role_name, d.name) for d in found] == [("AcrPull", BUILTIN_ROLES["AcrPull"])]
    reader = auth.role_definitions.get(scope, BUILTIN_ROLES["Reader"])
    assert reader.role_name == "Reader"


# -- errors -------------------------------------------------------------------------------------


def test_missing_resources_raise_resource_not_found(fake_arm):
    seed_cluster(fake_arm)
    aks = client(ContainerServiceClient, fake_arm)
    with pytest.raises(ResourceNotFoundError) as missing:
        aks.managed_clusters.get(GROUP, "nope")
    assert missing.value.error.code == "ResourceNotFound"
    assert "managedClusters/nope" in missing.value.message
    with pytest.raises(ResourceNotFoundError) as no_group:
        aks.agent_pools.list(GROUP + "-gone", CLUSTER).next()
    assert no_group.value.error.code == "ResourceGroupNotFound"
    with pytest.raises(ResourceNotFoundError) as no_cluster:
        list(aks.agent_pools.list(GROUP, "nope"))
    assert no_cluster.value.error.code == "ResourceNotFound"


def test_put_needs_the_group_and_the_parent(fake_arm):
    storage = client(StorageManagementClient, fake_arm)
    with pytest.raises(ResourceNotFoundError) as no_group:
        storage.blob_containers.create(GROUP, "ascenddata", "ascend-data", {})
    assert no_group.value.error.code == "ResourceGroupNotFound"
    seed_group(fake_arm)
    with pytest.raises(ResourceNotFoundError) as no_parent:
        storage.blob_containers.create(GROUP, "ascenddata", "ascend-data", {})
    assert no_parent.value.error.code == "ParentResourceNotFound"


def test_injected_error_surfaces_with_its_code(fake_arm):
    seed_cluster(fake_arm)
    fake_arm.fail(
        "GET", r"/managedClusters/ascend-aks$", 403, "AuthorizationFailed", "no read", times=1
    )
    aks = client(ContainerServiceClient, fake_arm)
    with pytest.raises(HttpResponseError) as denied:
        aks.managed_clusters.get(GROUP, CLUSTER)
    assert denied.value.status_code == 403
    assert denied.value.error.code == "AuthorizationFailed"
    assert "no read" in denied.value.message
    assert aks.managed_clusters.get(GROUP, CLUSTER).name == CLUSTER  # times=1 ran out


def test_injected_server_error_with_retries_off(fake_arm):
    seed_cluster(fake_arm)
    fake_arm.fail("*", r"/agentPools", 503, "ServiceUnavailable")
    aks = client(ContainerServiceClient, fake_arm, retry_total=0)
    with pytest.raises(HttpResponseError) as unavailable:
        list(aks.agent_pools.list(GROUP, CLUSTER))
    assert unavailable.value.status_code == 503
    fake_arm.clear_failures()
    assert len(list(aks.agent_pools.list(GROUP, CLUSTER))) == 1


def test_wrong_token_is_client_authentication_error(fake_arm):
    seed_cluster(fake_arm)
    aks = client(ContainerServiceClient, fake_arm, credential=FakeCredential("stolen"))
    with pytest.raises(ClientAuthenticationError) as refused:
        aks.managed_clusters.get(GROUP, CLUSTER)
    assert refused.value.status_code == 401
    assert refused.value.error.code == "InvalidAuthenticationToken"


def test_missing_token_and_api_version_are_refused(fake_arm):
    path = cluster_id()
    status, body = raw(fake_arm, "GET", path + "?api-version=2024-01-01")
    assert status == 401
    assert body["error"]["code"] == "AuthenticationFailed"
    authorized = {"Authorization": f"Bearer {fake_arm.token}"}
    status, body = raw(fake_arm, "GET", path, authorized)
    assert status == 400
    assert body["error"]["code"] == "MissingApiVersionParameter"
    status, body = raw(fake_arm, "POST", path + "/frobnicate?api-version=1", authorized)
    assert (status, body["error"]["code"]) == (404, "ActionNotFound")


# -- generic semantics --------------------------------------------------------------------------


def test_ids_are_case_insensitive_and_keep_their_case(fake_arm):
    seed_cluster(fake_arm)
    aks = client(ContainerServiceClient, fake_arm)
    cluster = aks.managed_clusters.get(GROUP.upper(), CLUSTER.upper())
    assert cluster.name == CLUSTER
    assert cluster.id == cluster_id()
    assert fake_arm.get(cluster_id().lower()) is not None


def test_patch_merges_and_delete_removes(fake_arm):
    seed_group(fake_arm)
    storage = client(StorageManagementClient, fake_arm)
    storage.storage_accounts.begin_create(
        GROUP, "ascenddata", {"location": "westeurope", "sku": {"name": "Standard_LRS"}}
    ).result()
    updated = storage.storage_accounts.update(GROUP, "ascenddata", {"tags": {"team": "ml"}})
    assert updated.tags == {"team": "ml"}
    assert updated.sku.name == "Standard_LRS"  # kept
    storage.storage_accounts.delete(GROUP, "ascenddata")
    assert fake_arm.get(f"{group_id()}/providers/{STORAGE}/ascenddata") is None
    storage.storage_accounts.delete(GROUP, "ascenddata")  # 204: already gone


def test_requests_and_scopes_are_recorded(fake_arm):
    seed_cluster(fake_arm)
    aks = client(ContainerServiceClient, fake_arm)
    aks.managed_clusters.get(GROUP, CLUSTER)
    assert fake_arm.requests == [("GET", cluster_id())]
    assert set(fake_arm.credential.scopes) == {fake_arm.url + "/.default"}


def test_async_credential_hands_out_the_token(fake_arm):
    async def fetch() -> str:
        async with fake_arm.async_credential as credential:
            return (await credential.get_token(fake_arm.scope)).token

    assert asyncio.run(fetch()) == fake_arm.token
    assert fake_arm.async_credential.scopes == [fake_arm.scope]


def test_custom_action(fake_arm):
    seen = []

    def handler(arm: FakeArm, request: Any) -> tuple[int, Any]:
        seen.append(request.body)
        return 200, {"ok": True}

    fake_arm.action(r"/doSomething$", handler)
    status, body = raw(
        fake_arm,
        "POST",
        f"{cluster_id()}/doSomething?api-version=1",
        {"Authorization": f"Bearer {fake_arm.token}"},
    )
    assert (status, body) == (200, {"ok": True})


def test_stop_joins_every_thread():
    before = {t.ident for t in threading.enumerate()}
    with FakeArm() as arm:
        seed_cluster(arm)
        aks = client(ContainerServiceClient, arm)
        aks.managed_clusters.get(GROUP, CLUSTER)  # leaves a kept-alive connection open
    leftover = [
        t for t in threading.enumerate() if t.ident not in before and t.name.startswith("fake-arm")
    ]
    assert leftover == []
