"""The configuration keys of the Azure plugin (``azure.*`` in ``.ascend.yaml``)."""

from __future__ import annotations

import re
import urllib.parse
import uuid

from ascend.plugins.types import Setting

DEFAULT_CONTAINER = "ascend-data"
DEFAULT_ARM_ENDPOINT = "https://management.azure.com"

_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_REGISTRY = re.compile(
    r"^([A-Za-z0-9]{5,50}(\.azurecr\.(io|cn|us))?|127\.\d+\.\d+\.\d+|localhost)(:\d+)?$",
    re.IGNORECASE,
)
_RESOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.()-]{0,89}$")
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def check_storage_account(value: str) -> None:
    if not _ACCOUNT.match(value):
        raise ValueError("a storage account name is 3-24 lowercase letters and digits")


def check_container(value: str) -> None:
    if not _CONTAINER.match(value):
        raise ValueError(
            "a blob container name is 3-63 lowercase letters, digits and single hyphens"
        )


def check_registry(value: str) -> None:
    if not _REGISTRY.match(value):
        raise ValueError(
            "expected an Azure Container Registry: its name (5-50 letters and digits) or its "
            "login server, e.g. myacr.azurecr.io; other registries go in registry_url"
        )


def check_uuid(value: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError:
        raise ValueError("expected a GUID such as 00000000-0000-0000-0000-000000000000") from None


def check_resource_name(value: str) -> None:
    if not _RESOURCE_NAME.match(value):
        raise ValueError("expected an Azure resource name (letters, digits, '-', '_', '.')")


def check_k8s_name(value: str) -> None:
    if not _K8S_NAME.match(value):
        raise ValueError("expected a Kubernetes name (lowercase letters, digits and '-')")


def check_secret_ref(value: str) -> None:
    if value.count("/") != 1 or not all(value.split("/")):
        raise ValueError("expected 'secret-name/key'")


def check_https_url(value: str) -> None:
    # bearer tokens go to this endpoint: plain http only to this machine
    parsed = urllib.parse.urlsplit(value)
    local = parsed.hostname in ("127.0.0.1", "localhost", "::1")
    if not parsed.hostname or not (parsed.scheme == "https" or (parsed.scheme == "http" and local)):
        raise ValueError("expected an https:// URL")


SETTINGS = [
    Setting(
        "azure.storage_account",
        str,
        help="storage account holding jobs (az://<container> in this account)",
        validate=check_storage_account,
        fix="write the account's name, e.g. ascenddata (see 'ascend azure init')",
    ),
    Setting(
        "azure.container",
        str,
        default=DEFAULT_CONTAINER,
        help="blob container for jobs",
        validate=check_container,
        fix="write a name such as ascend-data",
    ),
    Setting(
        "azure.connection_string",
        str,
        secret=True,
        help="storage connection string, for development and Azurite only (prefer identities); "
        "set it as ASCEND_AZURE_CONNECTION_STRING, not in a file",
    ),
    Setting(
        "azure.connection_string_secret",
        str,
        help="Kubernetes Secret holding the connection string for pods, 'secret-name/key'",
        validate=check_secret_ref,
        fix="write 'secret-name/key', e.g. ascend-storage/connection-string",
    ),
    Setting(
        "azure.client_id",
        str,
        help="client id of the managed identity to use (user-assigned identity on a VM, or the "
        "workload identity of job pods)",
        validate=check_uuid,
        fix="copy the identity's client id: az identity show -n NAME -g GROUP --query clientId",
    ),
    Setting(
        "azure.tenant_id",
        str,
        help="Entra tenant id (default: the credential's)",
        validate=check_uuid,
        fix="copy it from: az account show --query tenantId",
    ),
    Setting(
        "azure.workload_identity",
        bool,
        default=False,
        help="job pods reach storage with Azure Workload Identity (needs azure.client_id and "
        "a federated service account, azure.service_account)",
    ),
    Setting(
        "azure.service_account",
        str,
        default="ascend-jobs",
        help="Kubernetes service account federated with the workload identity",
        validate=check_k8s_name,
        fix="write the service account's name, e.g. ascend-jobs",
    ),
    Setting(
        "azure.registry",
        str,
        help="Azure Container Registry: its name (myacr) or login server (myacr.azurecr.io)",
        validate=check_registry,
        fix="write the registry's name, e.g. myacr",
    ),
    Setting(
        "azure.subscription_id",
        str,
        help="subscription of the AKS cluster (for node-pool checks and 'ascend azure' commands)",
        validate=check_uuid,
        fix="copy it from: az account show --query id",
    ),
    Setting(
        "azure.resource_group",
        str,
        help="resource group of the AKS cluster",
        validate=check_resource_name,
        fix="write the resource group's name",
    ),
    Setting(
        "azure.cluster",
        str,
        help="AKS cluster name (for node-pool checks)",
        validate=check_resource_name,
        fix="write the cluster's name: az aks list --query [].name",
    ),
    Setting(
        "azure.check_node_pools",
        bool,
        default=True,
        help="before submitting, check that the node type's agent pool exists in the cluster",
    ),
    Setting(
        "azure.arm_endpoint",
        str,
        default=DEFAULT_ARM_ENDPOINT,
        help="Azure Resource Manager endpoint (sovereign clouds, tests)",
        validate=check_https_url,
        fix="write an https:// URL such as https://management.azure.com",
    ),
]
