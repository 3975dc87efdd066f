"""``ascend azure bootstrap``: the real management SDKs against the fake ARM, no network.

What matters: from an empty group it creates a hardened account, its container, a registry and
the role assignments; a second run changes nothing (no PUT at all); names taken elsewhere and
a missing group or cluster fail before anything is created; a role the caller may not assign
is a warning carrying the ``az`` command for an owner, not a failure.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from ascend.errors import ConfigError
from ascend_azure.bootstrap import (
    ACR_PULL,
    ACR_PUSH,
    STORAGE_BLOB_DATA_CONTRIBUTOR,
    Arm,
    BootstrapError,
    assignment_name,
    bootstrap,
    default_registry_name,
    default_storage_account_name,
    principal_from_token,
    resolve_subscription,
)
from ascend_azure.testing import FakeArm
from ascend_azure.testing.arm import unsigned_jwt

from .conftest import CLUSTER, GROUP, LOCATION, SUBSCRIPTION, group_id, seed_cluster

pytest.importorskip("azure.mgmt.storage")
pytest.importorskip("azure.mgmt.containerregistry")
pytest.importorskip("azure.mgmt.authorization")

USER_OID = "3b2f7d1e-6c4a-4e8b-9d1f-0a2b3c4d5e6f"
KUBELET_OID = "7d4e1c2b-9f3a-4b8e-a6d5-1c2e3f4a5b22"  # what seed_cluster gives the cluster
ACCOUNT = default_storage_account_name(SUBSCRIPTION, GROUP)
REGISTRY = default_registry_name(SUBSCRIPTION, GROUP)
ACCOUNT_ID = f"{group_id()}/providers/Microsoft.Storage/storageAccounts/{ACCOUNT}"
REGISTRY_ID = f"{group_id()}/providers/Microsoft.ContainerRegistry/registries/{REGISTRY}"


def jwt(**claims: Any) -> str:
    """An unsigned JWT with ``claims``: what bootstrap reads the caller's object id from."""
    return unsigned_jwt(claims)


USER_TOKEN = jwt(
    oid=USER_OID, upn="alice@contoso.com", appid="04b07795-8ddb-461a-bbee-02f9e1bf7b46"
)


@pytest.fixture
def arm() -> Iterator[FakeArm]:
    """A fake ARM whose token is a user's JWT, with the resource group in it."""
    with FakeArm(token=USER_TOKEN) as fake:
        fake.put(group_id(), {"location": LOCATION})
        yield fake
        assert not fake.errors, "the fake ARM failed:\n" + "\n".join(fake.errors)


def client_of(fake: FakeArm) -> Arm:
    return Arm(SUBSCRIPTION, fake.credential, fake.url, fake.ca_file)


def writes(fake: FakeArm, since: int = 0) -> list[tuple[str, str]]:
    return [r for r in fake.requests[since:] if r[0] in ("PUT", "PATCH", "POST", "DELETE")]


def assignments(fake: FakeArm, scope: str) -> list[dict[str, Any]]:
    found = []
    for role in (STORAGE_BLOB_DATA_CONTRIBUTOR, ACR_PUSH, ACR_PULL):
        for principal in (USER_OID, KUBELET_OID):
            name = assignment_name(scope, role.id, principal)
            body = fake.get(f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}")
            if body is not None:
                found.append(body["properties"])
    return found


# -- the function -------------------------------------------------------------------------------


def test_from_empty_creates_a_hardened_account_container_registry_and_roles(arm: FakeArm) -> None:
    result = bootstrap(client_of(arm), GROUP)

    assert [(s.resource, s.action) for s in result.steps] == [
        ("resource group", "exists"),
        ("storage account", "created"),
        ("blob container", "created"),
        ("container registry", "created"),
        ("role assignment", "created"),
        ("role assignment", "created"),
    ]
    account = arm.get(ACCOUNT_ID)
    assert account is not None
    assert account["kind"] == "StorageV2"
    assert account["sku"] == {"name": "Standard_LRS"}
    assert account["location"] == LOCATION
    assert account["tags"] == {"managed-by": "ascend"}
    assert account["properties"]["minimumTlsVersion"] == "TLS1_2"
    assert account["properties"]["allowBlobPublicAccess"] is False
    assert account["properties"]["supportsHttpsTrafficOnly"] is True
    container = arm.get(f"{ACCOUNT_ID}/blobServices/default/containers/ascend-data")
    assert container is not None
    assert container["properties"]["publicAccess"] == "None"
    registry = arm.get(REGISTRY_ID)
    assert registry is not None
    assert registry["sku"] == {"name": "Basic"}
    assert registry["properties"]["adminUserEnabled"] is False
    assert registry["tags"] == {"managed-by": "ascend"}

    (blob,) = assignments(arm, ACCOUNT_ID)
    assert blob["principalId"] == USER_OID
    assert blob["principalType"] == "User"
    assert blob["roleDefinitionId"].endswith(STORAGE_BLOB_DATA_CONTRIBUTOR.id)
    (push,) = assignments(arm, REGISTRY_ID)
    assert push["principalId"] == USER_OID
    assert push["roleDefinitionId"].endswith(ACR_PUSH.id)
    assert result.settings == {
        "subscription_id": SUBSCRIPTION,
        "resource_group": GROUP,
        "storage_account": ACCOUNT,
        "container": "ascend-data",
        "registry": REGISTRY,
    }
    assert not result.warnings


def test_a_second_run_reports_everything_as_existing_and_writes_nothing(arm: FakeArm) -> None:
    seed_cluster(arm)
    bootstrap(client_of(arm), GROUP, cluster=CLUSTER)
    before = len(arm.requests)

    again = bootstrap(client_of(arm), GROUP, cluster=CLUSTER)

    assert {s.action for s in again.steps} == {"exists"}
    assert len(again.steps) == 7
    assert writes(arm, before) == []


def test_default_names_are_stable_valid_and_differ_per_group() -> None:
    name = default_storage_account_name(SUBSCRIPTION, GROUP)
    assert name == default_storage_account_name(SUBSCRIPTION.upper(), GROUP.upper())
    assert name != default_storage_account_name(SUBSCRIPTION, "other-rg")
    assert name.isalnum() and name.islower() and 3 <= len(name) <= 24
    registry = default_registry_name(SUBSCRIPTION, GROUP)
    assert registry.isalnum() and 5 <= len(registry) <= 50


def test_explicit_names_and_location_are_used(arm: FakeArm) -> None:
    result = bootstrap(
        client_of(arm),
        GROUP,
        storage_account="teamjobs",
        registry="TeamAcr01.azurecr.io",
        container="jobs",
        location="northeurope",
    )
    assert result.settings["storage_account"] == "teamjobs"
    assert result.settings["registry"] == "teamacr01"
    account = arm.get(f"{group_id()}/providers/Microsoft.Storage/storageAccounts/teamjobs")
    assert account is not None and account["location"] == "northeurope"
    assert arm.get(f"{account['id']}/blobServices/default/containers/jobs") is not None


def test_a_later_run_without_names_reuses_what_bootstrap_made(arm: FakeArm) -> None:
    bootstrap(client_of(arm), GROUP, storage_account="teamjobs", registry="teamacr01")
    before = len(arm.requests)

    again = bootstrap(client_of(arm), GROUP)

    assert again.settings["storage_account"] == "teamjobs"
    assert again.settings["registry"] == "teamacr01"
    assert writes(arm, before) == []
    assert arm.get(ACCOUNT_ID) is None  # no second account under the derived name


def test_several_accounts_made_by_bootstrap_need_a_choice(arm: FakeArm) -> None:
    bootstrap(client_of(arm), GROUP, storage_account="teamjobs")
    bootstrap(client_of(arm), GROUP, storage_account="otherjobs")
    with pytest.raises(BootstrapError) as caught:
        bootstrap(client_of(arm), GROUP)
    assert "otherjobs, teamjobs" in caught.value.message
    assert caught.value.fix == "choose with --storage-account NAME"


def test_a_storage_name_taken_elsewhere_fails_before_creating_anything(arm: FakeArm) -> None:
    arm.take_name("Microsoft.Storage/storageAccounts", "takenname")

    with pytest.raises(BootstrapError) as caught:
        bootstrap(client_of(arm), GROUP, storage_account="takenname")

    assert "'takenname'" in caught.value.message
    assert "--storage-account" in (caught.value.fix or "")
    assert [s.resource for s in caught.value.steps] == ["resource group"]
    assert writes(arm) == [
        ("POST", f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Storage/checkNameAvailability")
    ]


def test_a_name_used_in_another_group_of_the_subscription_names_that_group(arm: FakeArm) -> None:
    arm.put(
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/elsewhere/providers/"
        "Microsoft.ContainerRegistry/registries/sharedacr",
        {"location": LOCATION, "sku": {"name": "Basic"}},
    )
    with pytest.raises(BootstrapError) as caught:
        bootstrap(client_of(arm), GROUP, registry="sharedacr")
    assert "'sharedacr'" in caught.value.message
    assert "'elsewhere'" in caught.value.message
    assert "--registry" in (caught.value.fix or "")


def test_a_missing_resource_group_names_the_az_command(arm: FakeArm) -> None:
    with pytest.raises(BootstrapError) as caught:
        bootstrap(client_of(arm), "nope-rg", location="westeurope")
    assert "'nope-rg'" in caught.value.message
    assert caught.value.fix is not None
    assert "az group create -n nope-rg -l westeurope" in caught.value.fix
    assert writes(arm) == []


def test_a_missing_cluster_fails_before_anything_is_created(arm: FakeArm) -> None:
    seed_cluster(arm, cluster="real-aks")
    with pytest.raises(BootstrapError) as caught:
        bootstrap(client_of(arm), GROUP, cluster="typo-aks")
    assert "'typo-aks'" in caught.value.message
    assert "real-aks" in caught.value.message
    assert f"az aks list -g {GROUP} -o table" in (caught.value.fix or "")
    assert writes(arm) == []


def test_cluster_gives_acrpull_to_the_kubelet_identity_and_no_storage_role(arm: FakeArm) -> None:
    seed_cluster(arm)
    result = bootstrap(client_of(arm), GROUP, cluster=CLUSTER)

    pull = [a for a in assignments(arm, REGISTRY_ID) if a["principalId"] == KUBELET_OID]
    assert len(pull) == 1
    assert pull[0]["roleDefinitionId"].endswith(ACR_PULL.id)
    assert pull[0]["principalType"] == "ServicePrincipal"
    assert all(a["principalId"] != KUBELET_OID for a in assignments(arm, ACCOUNT_ID))
    assert result.settings["cluster"] == CLUSTER
    assert "kubelet identity" in result.steps[-1].name


def test_a_403_on_a_role_assignment_is_a_warning_with_the_az_command(arm: FakeArm) -> None:
    arm.fail("PUT", r"/roleAssignments/", 403, "AuthorizationFailed", "no write on roles")

    result = bootstrap(client_of(arm), GROUP)

    assert [s.action for s in result.warnings] == ["warning", "warning"]
    detail = result.warnings[0].detail
    assert (
        f"az role assignment create --assignee-object-id {USER_OID} --assignee-principal-type "
        f"User --role 'Storage Blob Data Contributor' --scope {ACCOUNT_ID}"
    ) in detail
    assert "AuthorizationFailed" in detail
    assert arm.get(ACCOUNT_ID) is not None  # the resources were still created


def test_an_assignment_made_by_someone_else_counts_as_done(arm: FakeArm) -> None:
    bootstrap(client_of(arm), GROUP)
    # the same role for the same principal, under another name (say, made with 'az')
    arm.delete(
        f"{ACCOUNT_ID}/providers/Microsoft.Authorization/roleAssignments/"
        + assignment_name(ACCOUNT_ID, STORAGE_BLOB_DATA_CONTRIBUTOR.id, USER_OID)
    )
    arm.put(
        f"{ACCOUNT_ID}/providers/Microsoft.Authorization/roleAssignments/"
        "0f0f0f0f-0000-4000-8000-000000000001",
        {
            "properties": {
                "roleDefinitionId": f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft."
                f"Authorization/roleDefinitions/{STORAGE_BLOB_DATA_CONTRIBUTOR.id}",
                "principalId": USER_OID,
                "scope": ACCOUNT_ID,
            }
        },
    )
    # reading assignments is refused: the PUT answers 409 RoleAssignmentExists
    arm.fail("GET", r"/roleAssignments$", 403, "AuthorizationFailed")

    result = bootstrap(client_of(arm), GROUP)

    assert [s.action for s in result.steps if s.resource == "role assignment"] == [
        "exists",
        "exists",
    ]


def test_an_inherited_assignment_counts_as_done(arm: FakeArm) -> None:
    arm.put(
        f"{group_id()}/providers/Microsoft.Authorization/roleAssignments/"
        "0f0f0f0f-0000-4000-8000-000000000002",
        {
            "properties": {
                "roleDefinitionId": f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft."
                f"Authorization/roleDefinitions/{STORAGE_BLOB_DATA_CONTRIBUTOR.id}",
                "principalId": USER_OID,
                "scope": group_id(),
            }
        },
    )
    result = bootstrap(client_of(arm), GROUP)
    blob = next(s for s in result.steps if s.name.startswith("Storage Blob Data Contributor"))
    assert blob.action == "exists"
    assert f"inherited from {group_id()}" in blob.detail


def test_assignee_overrides_the_signed_in_principal(arm: FakeArm) -> None:
    other = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
    bootstrap(client_of(arm), GROUP, assignee=other)
    name = assignment_name(ACCOUNT_ID, STORAGE_BLOB_DATA_CONTRIBUTOR.id, other)
    found = arm.get(f"{ACCOUNT_ID}/providers/Microsoft.Authorization/roleAssignments/{name}")
    assert found is not None and found["properties"]["principalId"] == other


def test_an_existing_weak_account_is_kept_with_a_warning(arm: FakeArm) -> None:
    arm.put(
        ACCOUNT_ID,
        {
            "location": LOCATION,
            "kind": "StorageV2",
            "sku": {"name": "Standard_LRS"},
            "properties": {"minimumTlsVersion": "TLS1_0", "allowBlobPublicAccess": True},
        },
    )
    result = bootstrap(client_of(arm), GROUP)
    account_steps = [s for s in result.steps if s.resource == "storage account"]
    assert [s.action for s in account_steps] == ["exists", "warning"]
    assert "minimum TLS TLS1_0" in account_steps[1].detail
    assert "az storage account update" in account_steps[1].detail
    stored = arm.get(ACCOUNT_ID)
    assert stored is not None and stored["properties"]["minimumTlsVersion"] == "TLS1_0"


def test_a_missing_management_sdk_names_the_extra(
    arm: FakeArm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "azure.mgmt.containerregistry", None)
    with pytest.raises(BootstrapError) as caught:
        bootstrap(client_of(arm), GROUP)
    assert "azure.mgmt.containerregistry" in caught.value.message
    assert caught.value.fix == "pip install ascend[azure-admin]"
    assert writes(arm) == []


# -- principals and subscription ----------------------------------------------------------------


def test_principal_comes_from_the_token_claims() -> None:
    user = principal_from_token(USER_TOKEN)
    assert (user.object_id, user.type) == (USER_OID, "User")
    assert "alice@contoso.com" in user.label
    app = principal_from_token(jwt(oid="o-1", appid="a-1"))
    assert (app.object_id, app.type) == ("o-1", "ServicePrincipal")
    identity = principal_from_token(jwt(oid="o-2", idtyp="app", appid="a-2"))
    assert identity.type == "ServicePrincipal"


def test_a_token_without_oid_asks_for_assignee() -> None:
    with pytest.raises(ConfigError) as caught:
        principal_from_token("not-a-jwt")
    assert "--assignee" in str(caught.value)


def test_subscription_comes_from_option_config_then_environment() -> None:
    class Config:
        def __init__(self, value: str | None) -> None:
            self.value = value

        def get(self, key: str) -> str | None:
            return self.value

    other = "00000000-0000-4000-8000-000000000000"
    assert resolve_subscription(SUBSCRIPTION, Config(other), {}) == SUBSCRIPTION  # type: ignore[arg-type]
    assert resolve_subscription(None, Config(other), {}) == other  # type: ignore[arg-type]
    env = {"AZURE_SUBSCRIPTION_ID": SUBSCRIPTION}
    assert resolve_subscription(None, Config(None), env) == SUBSCRIPTION  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as caught:
        resolve_subscription(None, Config(None), {})  # type: ignore[arg-type]
    assert "az account show --query id -o tsv" in str(caught.value)
    with pytest.raises(ConfigError) as bad:
        resolve_subscription("my-sub", None, {})
    assert "--subscription" in str(bad.value)


# -- the command --------------------------------------------------------------------------------


def test_command_reports_each_resource_and_the_settings(azure_cli: Any, arm: FakeArm) -> None:
    result = azure_cli("azure", "bootstrap", "-g", GROUP, "--subscription", SUBSCRIPTION)

    assert result.exit_code == 0, result.output
    assert f"storage account {ACCOUNT}: created" in result.output
    assert f"container registry {REGISTRY}: created" in result.output
    assert "cloud_provider: azure" in result.output
    assert f"    storage_account: {ACCOUNT}" in result.output
    assert f"    registry: {REGISTRY}" in result.output
    assert f"ascend azure init -g {GROUP} --cluster <cluster>" in result.output

    again = azure_cli("azure", "bootstrap", "-g", GROUP, "--subscription", SUBSCRIPTION)
    assert again.exit_code == 0
    assert f"storage account {ACCOUNT}: exists" in again.output


def test_command_json_lists_the_steps(azure_cli: Any) -> None:
    result = azure_cli("azure", "bootstrap", "-g", GROUP, "--subscription", SUBSCRIPTION, "--json")
    assert result.exit_code == 0, result.output
    steps = json.loads(result.output)
    assert all(set(step) == {"resource", "name", "action", "detail"} for step in steps)
    assert {"resource": "storage account", "name": ACCOUNT, "action": "created"}.items() <= steps[
        1
    ].items()


def test_command_exits_0_with_warnings_on_403(azure_cli: Any, arm: FakeArm) -> None:
    arm.fail("PUT", r"/roleAssignments/", 403, "AuthorizationFailed")

    result = azure_cli("azure", "bootstrap", "-g", GROUP, "--subscription", SUBSCRIPTION)

    assert result.exit_code == 0, result.output
    assert "role assignment" in result.output and ": warning" in result.output
    expected = (
        f"az role assignment create --assignee-object-id {USER_OID} --assignee-principal-type "
        f"User --role AcrPush --scope {REGISTRY_ID}"
    )
    assert expected in result.output  # on one line, so it can be copied
    assert "2 warning(s)" in result.output


def test_command_exits_1_on_a_failure_after_reporting_progress(
    azure_cli: Any, arm: FakeArm
) -> None:
    arm.take_name("Microsoft.ContainerRegistry/registries", REGISTRY)

    result = azure_cli("azure", "bootstrap", "-g", GROUP, "--subscription", SUBSCRIPTION)

    assert result.exit_code == 1
    assert f"storage account {ACCOUNT}: created" in result.output
    assert f"'{REGISTRY}'" in result.output
    assert "--registry" in result.output

    as_json = azure_cli("azure", "bootstrap", "-g", GROUP, "--subscription", SUBSCRIPTION, "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.output)[-1]["action"] == "failed"


def test_command_takes_the_subscription_from_the_environment(
    azure_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = azure_cli("azure", "bootstrap", "-g", GROUP)
    assert missing.exit_code == 1
    assert "az account show --query id -o tsv" in missing.output
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION)
    assert azure_cli("azure", "bootstrap", "-g", GROUP).exit_code == 0
