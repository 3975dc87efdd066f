"""Configuration checks run once when the ``azure`` provider is selected (``ascend_configure``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ascend.errors import ConfigError

if TYPE_CHECKING:
    from ascend.config import AscendConfig


def check_configuration(config: AscendConfig) -> None:
    """Refuse a configuration that cannot work, naming the missing key and how to set it."""
    storage_url = config.storage_url
    if not (
        config.get("azure.storage_account")
        or config.get("azure.connection_string")
        or (storage_url and not storage_url.startswith(("az://", "abfs://")))
    ):
        raise ConfigError(
            "cloud_provider 'azure' needs a storage account for jobs",
            fix="run 'ascend azure init' in your project, or set azure.storage_account in "
            ".ascend.yaml (ASCEND_AZURE_STORAGE_ACCOUNT); for Azurite set "
            "ASCEND_AZURE_CONNECTION_STRING",
        )
    if config.get("azure.workload_identity") and not config.get("azure.client_id"):
        raise ConfigError(
            "azure.workload_identity is on but azure.client_id is not set",
            fix="set azure.client_id to the client id of the managed identity federated with "
            "the service account (az identity show -n NAME -g GROUP --query clientId)",
        )


def check_pod_access(config: AscendConfig) -> None:
    """Refuse, before anything is uploaded, a set-up whose job pods could not reach storage."""
    check_configuration(config)
    if (
        config.get("azure.connection_string")
        and not config.get("azure.connection_string_secret")
        and not config.get("azure.workload_identity")
    ):
        raise ConfigError(
            "storage is reached with a connection string, which job pods cannot receive "
            "safely from your configuration",
            fix="store it in a Kubernetes Secret and set azure.connection_string_secret: "
            "NAME/KEY (kubectl create secret generic NAME --from-literal=KEY=...), or use "
            "workload identity (azure.workload_identity: true)",
        )
