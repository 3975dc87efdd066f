"""The Job manifest for one call, as plain camelCase dicts (what the API and the schema use).

Pure functions, no client import: the manifest is tested against the Kubernetes 1.30 schema
and plugins adjust it through the ``ascend_job_manifest`` hook.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ascend.job_ids import JOB_NAME_PREFIX

if TYPE_CHECKING:
    from ascend.compute import JobRequest
    from ascend.plugins.types import NodeType

MANAGED_BY = "app.kubernetes.io/managed-by"
JOB_ID_LABEL = "ascend.io/job-id"
USER_LABEL = "ascend.io/user"
PROJECT_LABEL = "ascend.io/project"
CONTAINER = "runner"
# Runner exit codes that retries must not re-run: integrity, version mismatch, deadline.
NOT_RETRIED_EXIT_CODES = (3, 4, 7)
POD_START_ALLOWANCE = 600  # seconds to pull the image (CUDA images are several GB) and start
RUNNER_COMMAND = ["python", "-m", "ascend.runner"]
GPU_RESOURCE = "nvidia.com/gpu"
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]")


def job_name(job_id: str) -> str:
    return JOB_NAME_PREFIX + job_id


def label_value(text: str) -> str:
    """A valid label value (at most 63 characters of [A-Za-z0-9._-], alphanumeric ends)."""
    value = _LABEL_VALUE.sub("-", text)[:63].strip("-_.")
    return value or "none"


def signing_env() -> list[dict[str, Any]]:
    """The user's signing keys, only ever by reference to their Secret (never in the manifest).
    Optional: a pod without them is refused by its runner with a clear error, and builder Jobs,
    which sign nothing, do not need them."""
    from ascend import signing

    return [
        {
            "name": variable,
            "valueFrom": {
                "secretKeyRef": {"name": signing.SECRET_NAME, "key": key, "optional": True}
            },
        }
        for variable, key in (
            (signing.KEY_ENV, SECRET_CURRENT),
            (signing.PREVIOUS_ENV, SECRET_PREVIOUS),
        )
    ]


SECRET_CURRENT = "current"  # the Secret's keys
SECRET_PREVIOUS = "previous"


def build_job(
    request: JobRequest,
    *,
    namespace: str,
    image: str,
    node_type: NodeType | None = None,
    ttl_seconds: int | None = None,
    env: dict[str, str] | None = None,
    secret_env: dict[str, tuple[str, str]] | None = None,
    service_account: str | None = None,
    start_allowance: int = 0,
) -> dict[str, Any]:
    """The Job for ``request``. ``secret_env`` maps variable -> (secret name, key).

    ``start_allowance``: seconds the pod may spend before the function starts (waiting for a
    node, pulling the image). ``activeDeadlineSeconds`` counts them, while the runner applies
    ``timeout`` from the function's start itself, so the Job's deadline is only a backstop.
    """
    labels = {
        MANAGED_BY: "ascend",
        JOB_ID_LABEL: label_value(request.job_id),
        USER_LABEL: label_value(request.labels.get("user", "default")),
        PROJECT_LABEL: label_value(request.labels.get("project", "default")),
    }
    container_env: list[dict[str, Any]] = [
        {"name": "ASCEND_JOB_ID", "value": request.job_id},
        {"name": "ASCEND_PACKAGE_URI", "value": request.package_uri},
        {"name": "ASCEND_RESULT_URI", "value": request.result_uri},
        {"name": "ASCEND_TIMEOUT", "value": str(request.timeout)},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    for name, value in sorted({**(env or {}), **request.env}.items()):
        container_env.append({"name": name, "value": value})
    for name, (secret, key) in sorted((secret_env or {}).items()):
        container_env.append(
            {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        )
    container_env.extend(signing_env())

    cpu = request.cpu
    memory = request.memory
    gpus = node_type.gpus if node_type is not None else 0
    resources: dict[str, dict[str, str]] = {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu, "memory": memory},
    }
    if gpus:
        resources["requests"][GPU_RESOURCE] = str(gpus)
        resources["limits"][GPU_RESOURCE] = str(gpus)

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": CONTAINER,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": list(RUNNER_COMMAND),
                "env": container_env,
                "resources": resources,
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "readOnlyRootFilesystem": False,
                },
                "volumeMounts": [
                    {"name": "dshm", "mountPath": "/dev/shm"},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            }
        ],
        "volumes": [
            {"name": "dshm", "emptyDir": {"medium": "Memory"}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    if node_type is not None:
        if node_type.node_selector:
            pod_spec["nodeSelector"] = dict(node_type.node_selector)
        if node_type.tolerations:
            pod_spec["tolerations"] = [dict(t) for t in node_type.tolerations]

    # The pod's own deadline starts when a node has accepted it, so it leaves out the wait for
    # a node and stops an overrun even if the runner's watchdog could not.
    pod_spec["activeDeadlineSeconds"] = request.timeout + POD_START_ALLOWANCE
    job_spec: dict[str, Any] = {
        "backoffLimit": request.retries,
        "activeDeadlineSeconds": request.timeout + start_allowance,
        "completions": 1,
        "parallelism": 1,
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
    }
    if ttl_seconds is not None:
        job_spec["ttlSecondsAfterFinished"] = ttl_seconds
    disruption = {"onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    if request.retries:
        # Retries are for the user's failures; a preempted or evicted pod is not their fault,
        # and an overrun or a refused package would only fail the same way again.
        job_spec["podFailurePolicy"] = {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": CONTAINER,
                        "operator": "In",
                        "values": list(NOT_RETRIED_EXIT_CODES),
                    },
                },
                {"action": "Ignore", **disruption},
            ]
        }
    else:
        # Without retries a disruption ends the Job as any failure does, but the Job's Failed
        # condition then names it (reason PodFailurePolicy, "DisruptionTarget" in the
        # message): an evicted pod is deleted at once, and this stays the evidence.
        job_spec["podFailurePolicy"] = {"rules": [{"action": "FailJob", **disruption}]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(request.job_id), "namespace": namespace, "labels": labels},
        "spec": job_spec,
    }
