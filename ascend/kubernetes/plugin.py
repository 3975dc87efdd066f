"""Hooks of the built-in Kubernetes compute (``trylast``: any provider may bring its own)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ascend.plugins.markers import hookimpl
from ascend.plugins.types import Setting

if TYPE_CHECKING:
    from ascend.compute import ComputeBackend
    from ascend.config import AscendConfig


def _check_secret_env(value: dict[str, Any]) -> None:
    for name, ref in value.items():
        if not isinstance(ref, str) or ref.count("/") != 1 or not all(ref.split("/")):
            raise ValueError(f"{name}: expected 'secret-name/key', got {ref!r}")


def _check_positive(value: float) -> None:
    if value <= 0:
        raise ValueError(f"expected a number of seconds above 0, got {value!r}")


@hookimpl
def ascend_settings() -> Iterable[Setting]:
    return [
        Setting(
            "kubernetes.kubeconfig",
            str,
            help="kubeconfig file (default: KUBECONFIG or "
            "~/.kube/config; in a pod, the in-cluster config)",
        ),
        Setting("kubernetes.context", str, help="kubeconfig context (default: the current one)"),
        Setting(
            "kubernetes.namespace",
            str,
            help="namespace for jobs (default: "
            "ascend-users-<username>, or ascend-projects-<project> with project=True)",
        ),
        Setting(
            "kubernetes.pending_timeout",
            float,
            default=300.0,
            help="seconds a pod may wait for a node before the call fails as unschedulable",
        ),
        Setting(
            "kubernetes.scale_up_timeout",
            float,
            default=900.0,
            help="seconds a pod may wait for a node while the cluster autoscaler adds one "
            "(TriggeredScaleUp); GPU pools that scale from zero take 5-10 minutes",
        ),
        Setting(
            "kubernetes.lost_contact_timeout",
            float,
            default=120.0,
            help="seconds a waiting call keeps reconnecting to an unreachable cluster before it "
            "raises ClusterUnreachableError (the job itself keeps running)",
            validate=_check_positive,
            fix="give a positive number of seconds",
        ),
        Setting(
            "kubernetes.capacity_check",
            bool,
            default=True,
            help="refuse at once a request larger than every node's allocatable resources "
            "(needs read on nodes); turn off for scale-from-zero pools with bigger nodes that "
            "are not declared as node types",
        ),
        Setting(
            "kubernetes.ttl_seconds",
            int,
            default=300,
            help="seconds a finished Job stays in the cluster once its logs are saved",
        ),
        Setting(
            "kubernetes.env",
            dict,
            default={},
            help="extra environment for every job's pod (not for secrets)",
        ),
        Setting(
            "kubernetes.secret_env",
            dict,
            default={},
            help="environment from Secrets: {VARIABLE: 'secret-name/key'}",
            validate=_check_secret_env,
            fix="write each value as 'secret-name/key'",
        ),
        Setting(
            "kubernetes.registry_secret",
            str,
            help="docker-config Secret (type kubernetes.io/dockerconfigjson) the cluster "
            "builder pushes images with",
        ),
        Setting(
            "kubernetes.service_account",
            str,
            help="service account for job pods (default: the namespace's default)",
        ),
    ]


@hookimpl(trylast=True)
def ascend_compute(config: AscendConfig) -> ComputeBackend | None:
    if config.cloud_provider == "local":
        return None
    from ascend.kubernetes.compute import KubernetesCompute, KubernetesSettings
    from ascend.plugins.manager import get_plugin_manager

    settings = KubernetesSettings(
        kubeconfig=config.get("kubernetes.kubeconfig"),
        context=config.get("kubernetes.context"),
        namespace=config.get("kubernetes.namespace") or "",
        pending_timeout=float(config.get("kubernetes.pending_timeout", 300.0)),
        scale_up_timeout=float(config.get("kubernetes.scale_up_timeout", 900.0)),
        lost_contact_timeout=float(config.get("kubernetes.lost_contact_timeout", 120.0)),
        ttl_seconds=int(config.get("kubernetes.ttl_seconds", 300)),
        env={str(k): str(v) for k, v in config.get("kubernetes.env", {}).items()},
        secret_env={
            str(k): tuple(str(v).split("/", 1))  # type: ignore[misc]
            for k, v in config.get("kubernetes.secret_env", {}).items()
        },
        service_account=config.get("kubernetes.service_account"),
        capacity_check=bool(config.get("kubernetes.capacity_check", True)),
    )
    pm = get_plugin_manager()

    def adjust(request: Any, manifest: dict[str, Any]) -> None:
        pm.adjust_job_manifest(config=config, request=request, manifest=manifest)

    return KubernetesCompute(
        settings, manifest_hook=adjust, node_types={n: t for n, (t, _) in pm.node_types().items()}
    )
