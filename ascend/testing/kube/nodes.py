"""Node objects as a kubelet registers them, and taints in kubectl's syntax (shared by the
emulator's nodes and the process kubelet that joins a real cluster)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ascend.testing.kube.util import Obj

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def parse_taint(taint: str | Mapping[str, Any]) -> Obj:
    """``key=value:Effect`` or ``key:Effect`` (kubectl taint syntax), or a taint mapping."""
    if isinstance(taint, Mapping):
        result = dict(taint)
    else:
        spec, _, effect = taint.rpartition(":")
        if not spec:
            raise ValueError(f"taint {taint!r}: expected key=value:Effect")
        key, _, value = spec.partition("=")
        result = {"key": key, "effect": effect}
        if value:
            result["value"] = value
    if result.get("effect") not in TAINT_EFFECTS:
        raise ValueError(f"taint {taint!r}: the effect must be one of {', '.join(TAINT_EFFECTS)}")
    return result


def node_object(
    name: str,
    cpu: str,
    memory: str,
    gpu: int,
    extra_labels: Mapping[str, str],
    taints: list[Obj],
    *,
    kubelet_version: str = "v1.30.0",
    kubelet_port: int | None = None,
) -> Obj:
    """A ready Node whose capacity and allocatable are ``cpu``, ``memory`` and ``gpu``."""
    capacity = {
        "cpu": str(cpu),
        "memory": str(memory),
        "pods": "110",
        "ephemeral-storage": "100Gi",
    }
    if gpu:
        capacity["nvidia.com/gpu"] = str(gpu)
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        **extra_labels,
    }
    node: Obj = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints} if taints else {},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "",
                "containerRuntimeVersion": "ascend-emulator://1.0",
                "kernelVersion": os.uname().release,
                "kubeProxyVersion": kubelet_version,
                "kubeletVersion": kubelet_version,
                "machineID": "",
                "operatingSystem": "linux",
                "osImage": "local processes (ascend Kubernetes emulator)",
                "systemUUID": "",
            },
        },
    }
    if kubelet_port is not None:
        node["status"]["daemonEndpoints"] = {"kubeletEndpoint": {"Port": kubelet_port}}
    return node
