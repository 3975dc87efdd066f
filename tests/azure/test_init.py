"""``ascend azure init``: discovery against the fake ARM, then a merged ``.ascend.yaml``.

What matters: one account and one registry are used as they are; several are never picked
silently (a numbered choice when someone can answer, else an error that lists them and names
the option); what the file already holds is kept; the result loads as an Azure configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ascend.config import AscendConfig
from ascend.errors import ConfigError
from ascend_azure.bootstrap import Arm
from ascend_azure.init import discover, write_project_file
from ascend_azure.testing import FakeArm
from ascend_azure.testing.arm import unsigned_jwt

from .conftest import CLUSTER, GROUP, LOCATION, SUBSCRIPTION, group_id, seed_cluster

pytest.importorskip("azure.mgmt.storage")
pytest.importorskip("azure.mgmt.containerregistry")


def add_account(arm: FakeArm, name: str, *, managed: bool = False, container: bool = True) -> None:
    account_id = f"{group_id()}/providers/Microsoft.Storage/storageAccounts/{name}"
    arm.put(
        account_id,
        {
            "location": LOCATION,
            "kind": "StorageV2",
            "sku": {"name": "Standard_LRS"},
            "tags": {"managed-by": "ascend"} if managed else {},
        },
    )
    if container:
        arm.put(f"{account_id}/blobServices/default/containers/ascend-data", {"properties": {}})


def add_registry(arm: FakeArm, name: str) -> None:
    arm.put(
        f"{group_id()}/providers/Microsoft.ContainerRegistry/registries/{name}",
        {"location": LOCATION, "sku": {"name": "Basic"}},
    )


@pytest.fixture
def arm() -> Iterator[FakeArm]:
    with FakeArm(
        token=unsigned_jwt(dict(oid="3b2f7d1e-6c4a-4e8b-9d1f-0a2b3c4d5e6f", upn="a@b.c"))
    ) as fake:
        seed_cluster(fake)
        yield fake
        assert not fake.errors, "the fake ARM failed:\n" + "\n".join(fake.errors)


def init(azure_cli: Callable[..., Any], *args: str, **kwargs: Any) -> Any:
    base = ["azure", "init", "-g", GROUP, "--cluster", CLUSTER, "--subscription", SUBSCRIPTION]
    return azure_cli(*base, *args, **kwargs)


def written(directory: Path) -> dict[str, Any]:
    data = yaml.safe_load((directory / ".ascend.yaml").read_text())
    assert isinstance(data, dict)
    return data


# -- the command --------------------------------------------------------------------------------


def test_one_account_and_registry_write_a_loadable_config(
    azure_cli: Any, arm: FakeArm, ascend_env: Path, ascend_pm: Any
) -> None:
    add_account(arm, "teamjobs")
    add_registry(arm, "teamacr")

    result = init(azure_cli, "--no-input")

    assert result.exit_code == 0, result.output
    assert written(ascend_env) == {
        "cloud_provider": "azure",
        "azure": {
            "subscription_id": SUBSCRIPTION,
            "resource_group": GROUP,
            "cluster": CLUSTER,
            "storage_account": "teamjobs",
            "container": "ascend-data",
            "registry": "teamacr",
        },
    }
    assert "azure.storage_account: teamjobs" in result.output
    assert "next: ascend azure doctor" in result.output
    config = AscendConfig.load(cwd=ascend_env, env={}, pm=ascend_pm)
    assert config.cloud_provider == "azure"
    assert config.get("azure.storage_account") == "teamjobs"
    assert config.get("azure.registry") == "teamacr"
    assert config.get("azure.cluster") == CLUSTER
    assert config.get("azure.subscription_id") == SUBSCRIPTION
    assert not config.problems and not config.warnings
    assert [p.name for p in ascend_env.iterdir()] == [".ascend.yaml"]  # no temporary file left


def test_other_keys_in_the_file_are_kept(azure_cli: Any, arm: FakeArm, ascend_env: Path) -> None:
    add_account(arm, "teamjobs")
    add_registry(arm, "teamacr")
    (ascend_env / ".ascend.yaml").write_text(
        "git_check: false\n"
        "azure:\n"
        "  client_id: 11111111-2222-3333-4444-555555555555\n"
        "  storage_account: oldaccount\n"
        "kubernetes:\n"
        "  namespace: team-a\n"
    )

    result = init(azure_cli, "--no-input")

    assert result.exit_code == 0, result.output
    data = written(ascend_env)
    assert data["git_check"] is False
    assert data["kubernetes"] == {"namespace": "team-a"}
    assert data["cloud_provider"] == "azure"
    assert data["azure"]["client_id"] == "11111111-2222-3333-4444-555555555555"
    assert data["azure"]["storage_account"] == "teamjobs"
    assert "updated" in result.output


def test_several_accounts_without_input_is_an_error_listing_them(
    azure_cli: Any, arm: FakeArm, ascend_env: Path
) -> None:
    add_account(arm, "alphajobs")
    add_account(arm, "betajobs", managed=True)
    add_registry(arm, "teamacr")

    result = init(azure_cli, "--no-input")

    assert result.exit_code == 1
    assert "alphajobs" in result.output and "betajobs" in result.output
    assert "managed-by=ascend" in result.output
    assert "--storage-account" in result.output
    assert not (ascend_env / ".ascend.yaml").exists()


def test_several_accounts_with_a_non_interactive_stdin_is_an_error_too(
    azure_cli: Any, arm: FakeArm
) -> None:
    add_account(arm, "alphajobs")
    add_account(arm, "betajobs")
    add_registry(arm, "teamacr")
    result = init(azure_cli, input="2\n")  # CliRunner's stdin is not a terminal
    assert result.exit_code == 1
    assert "--storage-account" in result.output


def test_several_accounts_interactively_writes_the_chosen_one(
    azure_cli: Any, arm: FakeArm, ascend_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ascend_azure.cli.stdin_is_interactive", lambda: True)
    add_account(arm, "alphajobs")
    add_account(arm, "betajobs", managed=True)
    add_registry(arm, "teamacr")

    result = init(azure_cli, input="2\n")

    assert result.exit_code == 0, result.output
    assert "1. alphajobs (westeurope)" in result.output
    assert "2. betajobs (westeurope, managed-by=ascend)" in result.output
    assert written(ascend_env)["azure"]["storage_account"] == "betajobs"


def test_an_explicit_option_picks_among_several(
    azure_cli: Any, arm: FakeArm, ascend_env: Path
) -> None:
    add_account(arm, "alphajobs")
    add_account(arm, "betajobs")
    add_registry(arm, "acrone01")
    add_registry(arm, "acrtwo02")
    result = init(
        azure_cli, "--no-input", "--storage-account", "alphajobs", "--registry", "acrtwo02"
    )
    assert result.exit_code == 0, result.output
    azure = written(ascend_env)["azure"]
    assert (azure["storage_account"], azure["registry"]) == ("alphajobs", "acrtwo02")


def test_an_explicit_unknown_name_is_an_error_listing_what_exists(
    azure_cli: Any, arm: FakeArm, ascend_env: Path
) -> None:
    add_account(arm, "teamjobs")
    add_registry(arm, "teamacr")
    result = init(azure_cli, "--storage-account", "nosuchacct")
    assert result.exit_code == 1
    assert "'nosuchacct'" in result.output
    assert "teamjobs" in result.output
    assert not (ascend_env / ".ascend.yaml").exists()


def test_no_account_points_at_bootstrap(azure_cli: Any, arm: FakeArm) -> None:
    add_registry(arm, "teamacr")
    result = init(azure_cli, "--no-input")
    assert result.exit_code == 1
    assert "no storage account" in result.output
    assert f"ascend azure bootstrap -g {GROUP}" in result.output


def test_a_missing_cluster_lists_the_group_and_gives_the_az_command(
    azure_cli: Any, arm: FakeArm, ascend_env: Path
) -> None:
    add_account(arm, "teamjobs")
    add_registry(arm, "teamacr")
    result = azure_cli(
        "azure", "init", "-g", GROUP, "--cluster", "typo", "--subscription", SUBSCRIPTION
    )
    assert result.exit_code == 1
    assert "'typo'" in result.output
    assert CLUSTER in result.output
    assert f"az aks list -g {GROUP} -o table" in result.output
    assert not (ascend_env / ".ascend.yaml").exists()


def test_a_missing_resource_group_says_so(azure_cli: Any) -> None:
    result = azure_cli(
        "azure", "init", "-g", "nope-rg", "--cluster", CLUSTER, "--subscription", SUBSCRIPTION
    )
    assert result.exit_code == 1
    assert "resource group 'nope-rg'" in result.output
    assert "az group" in result.output


def test_another_cloud_provider_needs_confirmation(
    azure_cli: Any, arm: FakeArm, ascend_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_account(arm, "teamjobs")
    add_registry(arm, "teamacr")
    project = ascend_env / ".ascend.yaml"
    project.write_text("cloud_provider: local\n")
    before = len(arm.requests)

    refused = init(azure_cli, "--no-input")
    assert refused.exit_code == 1
    assert "'local'" in refused.output and "--yes" in refused.output
    assert project.read_text() == "cloud_provider: local\n"
    assert len(arm.requests) == before  # refused before asking Azure anything

    monkeypatch.setattr("ascend_azure.cli.stdin_is_interactive", lambda: True)
    declined = init(azure_cli, input="n\n")
    assert declined.exit_code == 1
    assert project.read_text() == "cloud_provider: local\n"

    accepted = init(azure_cli, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert written(ascend_env)["cloud_provider"] == "azure"

    project.write_text("cloud_provider: local\n")
    forced = init(azure_cli, "--no-input", "--yes")
    assert forced.exit_code == 0, forced.output
    assert "cloud_provider was 'local'" in forced.output


def test_subscription_comes_from_the_environment_or_is_asked_for(
    azure_cli: Any, arm: FakeArm, ascend_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_account(arm, "teamjobs")
    add_registry(arm, "teamacr")
    missing = azure_cli("azure", "init", "-g", GROUP, "--cluster", CLUSTER)
    assert missing.exit_code == 1
    assert "az account show --query id -o tsv" in missing.output

    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION)
    result = azure_cli("azure", "init", "-g", GROUP, "--cluster", CLUSTER)
    assert result.exit_code == 0, result.output
    assert written(ascend_env)["azure"]["subscription_id"] == SUBSCRIPTION


def test_path_writes_elsewhere_and_a_missing_container_is_noted(
    azure_cli: Any, arm: FakeArm, ascend_env: Path
) -> None:
    add_account(arm, "teamjobs", container=False)
    add_registry(arm, "teamacr")
    target = ascend_env / "project"
    target.mkdir()

    result = init(azure_cli, "--path", str(target), "--container", "jobs")

    assert result.exit_code == 0, result.output
    assert written(target)["azure"]["container"] == "jobs"
    assert not (ascend_env / ".ascend.yaml").exists()
    assert "blob container 'jobs' does not exist" in result.output
    assert (
        "az storage container create --account-name teamjobs -n jobs --auth-mode login"
        in result.output
    )


# -- the functions ------------------------------------------------------------------------------


def test_discover_never_chooses_silently(arm: FakeArm) -> None:
    add_account(arm, "alphajobs")
    add_account(arm, "betajobs")
    add_registry(arm, "teamacr")
    client = Arm(SUBSCRIPTION, arm.credential, arm.url, arm.ca_file)

    with pytest.raises(ConfigError) as caught:
        discover(client, GROUP, CLUSTER)
    assert "alphajobs" in caught.value.message and "betajobs" in caught.value.message
    assert caught.value.fix == "choose with --storage-account NAME"

    asked: list[list[str]] = []

    def choose(kind: str, option: str, candidates: list[Any]) -> str:
        asked.append([c.name for c in candidates])
        return "alphajobs"

    found = discover(client, GROUP, CLUSTER, choose=choose)
    assert found.storage_account == "alphajobs"
    assert asked == [["alphajobs", "betajobs"]]  # the single registry needed no question


def test_write_keeps_the_file_mode_and_reports_dropped_comments(tmp_path: Path) -> None:
    project = tmp_path / ".ascend.yaml"
    project.write_text("# team settings\ngit_check: true\n")
    project.chmod(0o600)

    result = write_project_file(project, {"storage_account": "teamjobs"})

    assert result.comments_dropped and not result.created
    assert project.stat().st_mode & 0o777 == 0o600
    assert yaml.safe_load(project.read_text()) == {
        "cloud_provider": "azure",
        "git_check": True,
        "azure": {"storage_account": "teamjobs"},
    }
