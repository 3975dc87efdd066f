"""An in-house plugin that answers only ``ascend_registry_url`` layers on the Azure plugin."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ascend.registry import OCIRegistry
from ascend_azure.registry import AzureContainerRegistry
from ascend_azure.storage import AzureBlobStorage


class _AsyncCredential:
    """Stands in for azure-identity's async credential; building storage asks no token."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        raise AssertionError("no token is needed to assemble the backend")

    async def close(self) -> None:
        pass


@pytest.fixture
def layered(ascend_pm: Any, register_plugin: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    import ascend_azure.plugin
    from ascend_azure.credentials import override_credential
    from tests.plugins import acme_registry

    register_plugin(ascend_azure.plugin, "azure")
    register_plugin(acme_registry, "acme-registry")
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "azure")
    monkeypatch.setenv("ASCEND_AZURE_STORAGE_ACCOUNT", "ascenddata")
    monkeypatch.setenv("ASCEND_AZURE_REGISTRY", "myacr")
    with override_credential(object(), _AsyncCredential()):
        yield ascend_pm


def test_backend_has_azure_storage_and_the_in_house_registry(
    layered: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ascend import get_backend

    monkeypatch.setenv("ASCEND_ACME_REGISTRY_HOST", "registry.acme.internal")
    backend = get_backend()
    assert isinstance(backend.storage, AzureBlobStorage)
    assert backend.storage.account_name == "ascenddata"
    assert backend.registry.registry_url() == "registry.acme.internal"
    # not an Azure registry: no Azure AD tokens are offered to it, the core's client answers
    assert type(backend.registry) is OCIRegistry
    assert backend.answered_by["ascend_storage"] == "azure"
    assert backend.answered_by["ascend_registry_url"] == "acme-registry"
    assert backend.answered_by["ascend_registry"] == "core"


def test_without_the_in_house_setting_azure_answers_with_acr(layered: Any) -> None:
    from ascend import get_backend

    backend = get_backend()
    assert backend.registry.registry_url() == "myacr.azurecr.io"
    assert isinstance(backend.registry, AzureContainerRegistry)
    assert backend.answered_by["ascend_registry_url"] == "azure"


def test_ascend_plugins_shows_who_answers_each_hook(
    layered: Any, ascend_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASCEND_ACME_REGISTRY_HOST", "registry.acme.internal")
    result = ascend_cli("plugins", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    answers = {hook: entry["plugin"] for hook, entry in report["backend"].items()}
    assert answers["ascend_storage"] == "azure"
    assert answers["ascend_registry_url"] == "acme-registry"
    assert answers["ascend_compute"] == "kubernetes-compute"
    human = ascend_cli("plugins")
    assert "acme-registry" in human.output and "ascend_registry_url" in human.output


def test_azure_ad_tokens_never_go_to_a_registry_outside_azure(
    layered: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ascend import get_backend
    from ascend.errors import ConfigError

    # named in azure.registry by mistake: refused, pointing at registry_url
    monkeypatch.setenv("ASCEND_AZURE_REGISTRY", "registry.acme.internal")
    with pytest.raises(ConfigError) as caught:
        get_backend()
    assert "registry_url" in str(caught.value)
