"""The Azure plugin's hook implementations (the ``ascend`` entry point ``azure``).

Only hooks live here, and nothing at module level imports an Azure SDK or adlfs: each hook
imports the module that does the work when it is called. The backend hooks are plain
(neither ``tryfirst`` nor ``trylast``): they beat the core's ``trylast`` defaults, and a partial
plugin meant to replace one of them (an in-house registry) marks itself ``tryfirst``. Provider hooks answer only when
``cloud_provider`` is ``azure`` (or Azure is the only provider installed, which the core
resolves into ``cloud_provider``), so other providers are never disturbed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ascend.plugins.markers import hookimpl
from ascend.plugins.types import NodeType, Provider, Setting
from ascend_azure import PROVIDER

if TYPE_CHECKING:
    from ascend.compute import JobRequest
    from ascend.config import AscendConfig
    from ascend.registry import ContainerRegistry
    from ascend.storage.base import CloudStorage


def _selected(config: AscendConfig) -> bool:
    return config.cloud_provider == PROVIDER


@hookimpl
def ascend_providers() -> Iterable[Provider]:
    from ascend_azure.availability import EXTRA_FIX, missing_distributions

    missing = missing_distributions()
    return [
        Provider(
            PROVIDER,
            summary="AKS compute, Blob storage, Azure Container Registry",
            unavailable=f"missing {', '.join(missing)}" if missing else None,
            fix=EXTRA_FIX if missing else None,
        )
    ]


@hookimpl
def ascend_settings() -> Iterable[Setting]:
    from ascend_azure.settings import SETTINGS

    return SETTINGS


@hookimpl
def ascend_node_types() -> Iterable[NodeType]:
    from ascend_azure.node_types import AKS_NODE_TYPES

    return AKS_NODE_TYPES


@hookimpl
def ascend_configure(config: AscendConfig) -> None:
    if _selected(config):
        from ascend_azure.checks import check_configuration

        check_configuration(config)


@hookimpl
def ascend_storage(config: AscendConfig) -> CloudStorage | None:
    if not _selected(config):
        return None
    if config.storage_url and not config.storage_url.startswith(("az://", "abfs://")):
        return None  # another fsspec URL: the core's generic storage answers
    from ascend_azure.storage import storage_from_config

    return storage_from_config(config)


@hookimpl
def ascend_registry_url(config: AscendConfig) -> str | None:
    if not _selected(config) or not config.get("azure.registry"):
        return None
    from ascend_azure.registry import login_server

    return login_server(config.get("azure.registry"))


@hookimpl
def ascend_registry(config: AscendConfig, url: str) -> ContainerRegistry | None:
    if not _selected(config):
        return None
    from ascend_azure.registry import is_acr

    if not is_acr(url, config.get("azure.registry")):
        return None  # an in-house registry: the core's OCI client (or its plugin) answers
    from ascend_azure.credentials import get_credential
    from ascend_azure.registry import AzureContainerRegistry

    return AzureContainerRegistry(
        url, credential=get_credential(config), tenant_id=config.get("azure.tenant_id")
    )


@hookimpl
def ascend_validate_job(config: AscendConfig, request: JobRequest) -> None:
    if not _selected(config):
        return
    from ascend_azure.checks import check_pod_access

    check_pod_access(config)
    if not request.node_type:
        return
    from ascend.plugins.manager import get_plugin_manager
    from ascend_azure.pools import check_node_type

    found = get_plugin_manager().node_types().get(request.node_type)
    if found is not None:
        check_node_type(config, found[0])


@hookimpl
def ascend_job_manifest(
    config: AscendConfig, request: JobRequest, manifest: dict[str, Any]
) -> None:
    if not _selected(config):
        return
    from ascend_azure.workload_identity import configure_pod

    configure_pod(config, manifest)


@hookimpl
def ascend_cli_commands() -> Iterable[Any]:
    from ascend_azure.cli import azure

    return [azure]
