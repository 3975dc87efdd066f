"""The emulator against the real control plane, object by object: the same Job (the one Ascend
sends) is created and run on both, and what each API server stores and reports is compared.

A difference here is a place where the emulator would let Ascend pass a test that a real
cluster fails (or the reverse); fix the emulator, or the code, when one appears.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ascend.kubernetes.manifest import build_job
from ascend.testing.kube import KubeEmulator
from ascend.testing.kube.real import RealCluster

from .test_kube_manifest import request

pytestmark = pytest.mark.timeout(120)

# Differ by nature (names, uids, times, the node's own details), not by behaviour.
IGNORED = (
    "uid",
    "Time",
    "time",
    "resourceVersion",
    "creationTimestamp",
    "managedFields",
    "name",
    "nodeName",
)


def _flat(obj: Any, path: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(_flat(value, f"{path}.{key}"))
        return out
    if isinstance(obj, list):
        out = {}
        for index, value in enumerate(obj):
            out.update(_flat(value, f"{path}[{index}]"))
        return out
    return {path: obj}


def _differences(emulated: Any, real: Any) -> list[str]:
    left, right = _flat(emulated), _flat(real)
    return [
        f"{key}: emulator {left.get(key)!r}, real {right.get(key)!r}"
        for key in sorted(set(left) | set(right))
        if left.get(key) != right.get(key) and not any(word in key for word in IGNORED)
    ]


def _run(api_client: Any, namespace: str, command: list[str]) -> dict[str, Any]:
    """Create the namespace and Ascend's Job running ``command``; wait for the Job to finish;
    return the Job (as stored at creation and at the end) and its pod, as raw JSON."""
    from kubernetes import client

    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    core.create_namespace({"metadata": {"name": namespace}})
    manifest = build_job(request(), namespace=namespace, image="ascend-runtime:dev")
    manifest["spec"]["template"]["spec"]["containers"][0]["command"] = command
    manifest["spec"]["template"]["spec"]["containers"][0].pop("args", None)
    name = manifest["metadata"]["name"]
    created = json.loads(
        batch.create_namespaced_job(namespace, manifest, _preload_content=False).data
    )
    deadline = time.monotonic() + 60
    while True:
        job = json.loads(batch.read_namespaced_job(name, namespace, _preload_content=False).data)
        types = {c["type"] for c in job["status"].get("conditions") or [] if c["status"] == "True"}
        if types & {"Complete", "Failed"}:
            break
        assert time.monotonic() < deadline, f"job {name} did not finish: {job['status']}"
        time.sleep(0.1)
    pods = json.loads(
        core.list_namespaced_pod(
            namespace, label_selector=f"job-name={name}", _preload_content=False
        ).data
    )["items"]
    return {"created": created, "finished": job, "pods": pods}


@pytest.fixture
def both(
    make_kube_emulator: Callable[..., KubeEmulator], real_kube_cluster: RealCluster
) -> Iterator[Callable[[list[str]], tuple[dict[str, Any], dict[str, Any]]]]:
    namespaces: list[str] = []

    def run(command: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
        namespace = f"parity-{uuid.uuid4().hex[:6]}"
        namespaces.append(namespace)
        emulated = _run(make_kube_emulator().api_client(), namespace, command)
        real = _run(real_kube_cluster.api_client(), namespace, command)
        return emulated, real

    yield run
    from kubernetes import client

    core = client.CoreV1Api(real_kube_cluster.api_client())
    for namespace in namespaces:
        core.delete_namespace(namespace)


def test_the_job_ascend_sends_is_stored_alike(both: Any) -> None:
    emulated, real = both(["python", "-c", "print('ok')"])
    # the defaults each server fills in, pod-only fields kept out of the template included
    assert _differences(emulated["created"]["spec"], real["created"]["spec"]) == []
    assert _differences(emulated["created"]["metadata"], real["created"]["metadata"]) == []


def test_a_finished_job_reports_alike(both: Any) -> None:
    emulated, real = both(["python", "-c", "print('ok')"])

    def conditions(job: dict[str, Any]) -> list[tuple[str, str, str]]:
        return [(c["type"], c["status"], c.get("reason", "")) for c in job["status"]["conditions"]]

    # SuccessCriteriaMet (CompletionsReached) comes before Complete, as in Kubernetes 1.31+
    assert conditions(emulated["finished"]) == conditions(real["finished"])
    assert set(emulated["finished"]["status"]) == set(real["finished"]["status"])
    for field in ("active", "succeeded", "failed", "ready", "terminating"):
        assert emulated["finished"]["status"].get(field) == real["finished"]["status"].get(field)


def test_a_failing_job_reports_alike(both: Any) -> None:
    emulated, real = both(["python", "-c", "raise SystemExit(1)"])
    for job in (emulated["finished"], real["finished"]):
        job["status"].pop("startTime", None)
    assert [
        (c["type"], c["reason"], c["message"]) for c in emulated["finished"]["status"]["conditions"]
    ] == [(c["type"], c["reason"], c["message"]) for c in real["finished"]["status"]["conditions"]]


def test_the_pod_of_the_job_is_specified_alike(both: Any) -> None:
    emulated, real = both(["python", "-c", "print('ok')"])
    (emulated_pod,) = emulated["pods"]
    (real_pod,) = real["pods"]
    # the service-account token volume the real ServiceAccount admission adds is not
    # emulated (Ascend's pods do not mount it: automountServiceAccountToken is false)
    differences = _differences(emulated_pod["spec"], real_pod["spec"])
    assert differences == []
