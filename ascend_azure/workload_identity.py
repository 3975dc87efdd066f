"""How job pods reach Blob storage without keys (the ``ascend_job_manifest`` hook).

- ``azure.workload_identity: true``: the pod runs as ``azure.service_account`` (federated with
  the managed identity ``azure.client_id``) and carries the ``azure.workload.identity/use``
  label, so AKS's webhook projects a token that azure-identity exchanges; adlfs in the runner
  then finds the account in ``AZURE_STORAGE_ACCOUNT_NAME`` and the identity on its own.
- ``azure.connection_string_secret: name/key``: the connection string reaches the pod only as
  a ``secretKeyRef``; its value never appears in the manifest.
- neither: the pod gets the account name (and ``AZURE_CLIENT_ID`` when configured) and
  authenticates as the node's managed identity. That identity is shared by every pod on the
  node, which is why workload identity is the recommended set-up ('ascend azure doctor' says so).

The runner needs nothing Azure-specific: fsspec and adlfs read these variables themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ascend_azure.checks import check_pod_access

if TYPE_CHECKING:
    from ascend.config import AscendConfig

USE_LABEL = "azure.workload.identity/use"
CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"


def _set_env(container: dict[str, Any], name: str, entry: dict[str, Any]) -> None:
    env = container.setdefault("env", [])
    env[:] = [item for item in env if item.get("name") != name]
    env.append({"name": name, **entry})


def configure_pod(config: AscendConfig, manifest: dict[str, Any]) -> None:
    """Adjust the Job ``manifest`` in place so its pod can read and write the job store."""
    template = manifest["spec"]["template"]
    pod = template["spec"]
    containers = pod["containers"]
    client_id = config.get("azure.client_id")
    secret = config.get("azure.connection_string_secret")
    account = config.get("azure.storage_account")

    check_pod_access(config)
    if config.get("azure.workload_identity"):
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels[USE_LABEL] = "true"
        annotations = template["metadata"].setdefault("annotations", {})
        annotations[CLIENT_ID_ANNOTATION] = client_id
        pod["serviceAccountName"] = config.get("azure.service_account") or "ascend-jobs"

    for container in containers:
        if secret:
            name, key = secret.split("/", 1)
            _set_env(
                container,
                "AZURE_STORAGE_CONNECTION_STRING",
                {"valueFrom": {"secretKeyRef": {"name": name, "key": key}}},
            )
        elif account:
            _set_env(container, "AZURE_STORAGE_ACCOUNT_NAME", {"value": account})
            # adlfs before 2026.4 defaulted to anonymous access, which never tries an identity
            _set_env(container, "AZURE_STORAGE_ANON", {"value": "false"})
        if client_id:
            _set_env(container, "AZURE_CLIENT_ID", {"value": client_id})
