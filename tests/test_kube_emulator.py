"""The Kubernetes API emulator, driven by the official client and by the real kubectl.

Every wait is a watch (or a bounded poll of a process) with a timeout; nothing sleeps to
synchronise. Each test gets its own emulator (``kube_emulator`` / ``make_kube_emulator``),
whose node has the images these tests name preloaded; the pull tests push their own images
to the local registry (tests/oci_push.py).
"""

from __future__ import annotations

import base64
import io
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from ascend.testing.kube import DEV_RUNTIME_IMAGE, KubeEmulator
from tests import services

from .oci_push import corrupting_proxy, push_image, token_proxy
from .registry_proxy import counting_proxy

KUBECTL = shutil.which("kubectl")
NS = "test"
RUNTIME_ELSEWHERE = "registry.example.com/team/ascend-runtime:py3.11"
PRELOADED = (DEV_RUNTIME_IMAGE, "busybox:1.36", RUNTIME_ELSEWHERE)


@dataclass
class Kube:
    emu: KubeEmulator
    core: Any
    batch: Any
    ns: str


def connect(emu: KubeEmulator) -> Kube:
    assert emu.kubeconfig is not None
    config.load_kube_config(config_file=str(emu.kubeconfig))
    core = client.CoreV1Api()
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    except ApiException as error:  # the same emulator connected twice
        assert error.status == 409
    return Kube(emu, core, client.BatchV1Api(), NS)


@pytest.fixture
def kube(make_kube_emulator: Callable[..., KubeEmulator]) -> Iterator[Kube]:
    emulator = make_kube_emulator(preloaded_images=PRELOADED)
    yield connect(emulator)
    assert emulator.errors == []


@pytest.fixture
def make_kube(make_kube_emulator: Callable[..., KubeEmulator]) -> Callable[..., Kube]:
    def make(**options: Any) -> Kube:
        options.setdefault("preloaded_images", PRELOADED)
        return connect(make_kube_emulator(**options))

    return make


# -- helpers ---------------------------------------------------------------------------------


def job_manifest(
    name: str,
    command: list[str],
    *,
    image: str = "busybox:1.36",
    backoff_limit: int = 0,
    resources: dict[str, Any] | None = None,
    env: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image, "command": command}
    if resources:
        container["resources"] = resources
    if env:
        container["env"] = env
    pod_spec = spec.pop("pod_spec", {})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container], **pod_spec}},
            **spec,
        },
    }


def pod_manifest(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox:1.36", "command": command}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def wait_for(
    lister: Callable[..., Any],
    ns: str | None,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: int = 10,
    **selectors: Any,
) -> Any:
    """The first watched object (current ones first) for which ``predicate(event)`` holds."""
    stream = watch.Watch()
    args = (ns,) if ns is not None else ()
    for event in stream.stream(lister, *args, timeout_seconds=timeout, **selectors):
        if predicate(event):
            stream.stop()
            return event["object"]
    raise AssertionError(f"timed out after {timeout}s waiting on {lister.__name__}")


def wait_deleted(lister: Callable[..., Any], ns: str, timeout: int = 10, **selectors: Any) -> None:
    """Until no object matches: list, then watch from the list's version for the deletions."""
    listing = lister(ns, **selectors)
    remaining = {item.metadata.name for item in listing.items}
    if not remaining:
        return
    stream = watch.Watch()
    version = listing.metadata.resource_version
    for event in stream.stream(
        lister, ns, resource_version=version, timeout_seconds=timeout, **selectors
    ):
        if event["type"] == "DELETED":
            remaining.discard(event["object"].metadata.name)
        if not remaining:
            stream.stop()
            return
    raise AssertionError(f"still there after {timeout}s: {sorted(remaining)}")


def job_condition(obj: Any, kind: str) -> Any:
    for cond in (obj.status.conditions or []) if obj.status else []:
        if cond.type == kind and cond.status == "True":
            return cond
    return None


def wait_job(kube: Kube, name: str, kind: str, timeout: int = 10) -> Any:
    return wait_for(
        kube.batch.list_namespaced_job,
        kube.ns,
        lambda e: job_condition(e["object"], kind) is not None,
        timeout,
        field_selector=f"metadata.name={name}",
    )


def wait_pod(
    kube: Kube, predicate: Callable[[Any], bool], timeout: int = 10, **selectors: Any
) -> Any:
    return wait_for(
        kube.core.list_namespaced_pod,
        kube.ns,
        lambda e: e["type"] != "DELETED" and predicate(e["object"]),
        timeout,
        **selectors,
    )


def running(pod: Any) -> bool:
    return pod.status.phase == "Running"


def pid_of(pod: Any) -> int:
    return int(pod.status.container_statuses[0].container_id.split("://")[1])


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still alive after {timeout}s"
        time.sleep(0.02)


def events_for(kube: Kube, name: str) -> list[Any]:
    items = kube.core.list_namespaced_event(
        kube.ns, field_selector=f"involvedObject.name={name}"
    ).items
    return sorted(items, key=lambda e: int(e.metadata.resource_version))


def error_body(error: ApiException) -> dict[str, Any]:
    return json.loads(error.body)


def log_of(kube: Kube, pod: str, **options: Any) -> str:
    response = kube.core.read_namespaced_pod_log(pod, kube.ns, _preload_content=False, **options)
    return response.data.decode()


# -- discovery, CRUD, validation, selectors ----------------------------------------------------


def test_discovery(kube: Kube) -> None:
    assert client.VersionApi().get_code().git_version.startswith("v1.")
    assert client.CoreApi().get_api_versions().versions == ["v1"]
    groups = {g.name for g in client.ApisApi().get_api_versions().groups}
    assert {"batch", "rbac.authorization.k8s.io"} <= groups
    core = {r.name: r for r in kube.core.get_api_resources().resources}
    for name in (
        "pods",
        "events",
        "namespaces",
        "secrets",
        "configmaps",
        "serviceaccounts",
        "resourcequotas",
        "nodes",
        "pods/log",
        "pods/eviction",
    ):
        assert name in core, name
    assert core["pods"].short_names == ["po"] and core["pods"].namespaced
    assert not core["namespaces"].namespaced
    assert "watch" in core["pods"].verbs and "deletecollection" in core["pods"].verbs
    batch = {r.name: r for r in kube.batch.get_api_resources().resources}
    assert batch["jobs"].kind == "Job"
    rbac = {r.name for r in client.RbacAuthorizationV1Api().get_api_resources().resources}
    assert {"roles", "rolebindings"} <= rbac
    for path in ("/healthz", "/readyz"):
        assert urllib.request.urlopen(kube.emu.url + path, timeout=5).read() == b"ok"
    nodes = kube.core.list_node().items
    assert len(nodes) == 1 and nodes[0].status.allocatable["cpu"] == "4"


def test_crud_and_status_objects(kube: Kube) -> None:
    core, ns = kube.core, kube.ns
    made = core.create_namespaced_config_map(
        ns, {"metadata": {"name": "cfg", "labels": {"a": "1"}}, "data": {"k": "v"}}
    )
    meta = made.metadata
    assert meta.uid and meta.resource_version and meta.creation_timestamp and meta.namespace == ns
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "cfg"}})
    body = error_body(exists.value)
    assert exists.value.status == 409
    assert body["kind"] == "Status" and body["reason"] == "AlreadyExists"
    assert body["message"] == 'configmaps "cfg" already exists' and body["details"]["name"] == "cfg"
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("nope", ns)
    assert missing.value.status == 404 and error_body(missing.value)["reason"] == "NotFound"
    with pytest.raises(ApiException) as no_ns:
        core.create_namespaced_secret("nowhere", {"metadata": {"name": "s"}})
    assert no_ns.value.status == 404
    assert error_body(no_ns.value)["message"] == 'namespaces "nowhere" not found'

    patched = core.patch_namespaced_config_map("cfg", ns, {"data": {"k2": "v2"}})
    assert patched.data == {"k": "v", "k2": "v2"}
    assert int(patched.metadata.resource_version) > int(meta.resource_version)
    made.data = {"only": "this"}
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map("cfg", ns, made)  # made has the old resourceVersion
    assert stale.value.status == 409 and error_body(stale.value)["reason"] == "Conflict"
    patched.data = {"only": "this"}
    assert core.replace_namespaced_config_map("cfg", ns, patched).data == {"only": "this"}

    generated = core.create_namespaced_secret(
        ns, {"metadata": {"generateName": "tok-"}, "stringData": {"TOKEN": "x"}}
    )
    assert generated.metadata.name.startswith("tok-") and len(generated.metadata.name) == 9
    assert generated.data == {"TOKEN": "eA=="} and generated.type == "Opaque"
    core.create_namespaced_service_account(ns, {"metadata": {"name": "runner"}})
    core.create_namespaced_resource_quota(
        ns, {"metadata": {"name": "q"}, "spec": {"hard": {"nvidia.com/gpu": "1"}}}
    )
    rbac = client.RbacAuthorizationV1Api()
    rbac.create_namespaced_role(
        ns,
        {
            "metadata": {"name": "r"},
            "rules": [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "rb"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": ns}],
        },
    )
    assert [sa.metadata.name for sa in core.list_namespaced_service_account(ns).items] == [
        "default",
        "runner",
    ]
    assert rbac.read_namespaced_role_binding("rb", ns).role_ref.name == "r"
    status = core.delete_namespaced_config_map("cfg", ns)
    assert status.status == "Success"
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("cfg", ns)
    listing = core.list_namespaced_secret(ns)
    assert int(listing.metadata.resource_version) >= int(generated.metadata.resource_version)


def test_schema_invalid_job_is_422(kube: Kube) -> None:
    manifest = job_manifest("typo", ["true"])
    manifest["spec"]["backofLimit"] = 3
    with pytest.raises(ApiException) as invalid:
        kube.batch.create_namespaced_job(kube.ns, manifest)
    body = error_body(invalid.value)
    assert invalid.value.status == 422 and body["reason"] == "Invalid"
    assert (
        "backofLimit" in body["message"]
        and body["details"]["causes"][0]["field"] == "spec.backofLimit"
    )
    always = job_manifest("always", ["true"])
    always["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    with pytest.raises(ApiException) as policy:
        kube.batch.create_namespaced_job(kube.ns, always)
    assert policy.value.status == 422 and "restartPolicy" in error_body(policy.value)["message"]
    assert kube.batch.list_namespaced_job(kube.ns).items == []


def test_label_and_field_selectors(kube: Kube) -> None:
    core, ns = kube.core, kube.ns
    for name, labels in (
        ("one", {"a": "1", "b": "x"}),
        ("two", {"a": "2"}),
        ("three", {"a": "3", "b": "y"}),
    ):
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels}})

    def names(**selectors: str) -> set[str]:
        return {c.metadata.name for c in core.list_namespaced_config_map(ns, **selectors).items}

    assert names(label_selector="a=1") == {"one"}
    assert names(label_selector="a!=1") == {"two", "three"}
    assert names(label_selector="a in (1,2)") == {"one", "two"}
    assert names(label_selector="a notin (1,2)") == {"three"}
    assert names(label_selector="b") == {"one", "three"}
    assert names(label_selector="!b") == {"two"}
    assert names(label_selector="a in (1,3),b=y") == {"three"}
    assert names(field_selector="metadata.name=two") == {"two"}
    assert names(field_selector="metadata.name!=two") == {"one", "three"}
    for reason, kind in (("Pinged", "ConfigMap"), ("Ponged", "Secret")):
        core.create_namespaced_event(
            ns,
            {
                "metadata": {"generateName": "ev-"},
                "involvedObject": {"kind": kind, "name": "one", "namespace": ns},
                "reason": reason,
                "message": "hi",
                "type": "Normal",
            },
        )
    reasons = {
        e.reason
        for e in core.list_namespaced_event(
            ns, field_selector="involvedObject.name=one,involvedObject.kind=Secret"
        ).items
    }
    assert reasons == {"Ponged"}
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_config_map(ns, field_selector="data.k=v")
    assert bad.value.status == 400


# -- jobs ----------------------------------------------------------------------------------------


def test_job_success_logs_and_events(kube: Kube) -> None:
    kube.batch.create_namespaced_job(
        kube.ns, job_manifest("hello", ["sh", "-c", "echo hello; echo err >&2"])
    )
    job = wait_job(kube, "hello", "Complete")
    assert job.status.succeeded == 1 and job.status.completion_time and job.status.start_time
    pod = kube.core.list_namespaced_pod(kube.ns, label_selector="job-name=hello").items[0]
    assert pod.status.phase == "Succeeded"
    assert pod.metadata.labels["batch.kubernetes.io/job-name"] == "hello"
    assert pod.metadata.labels["controller-uid"] == job.metadata.uid
    owner = pod.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
        "Job",
        "hello",
        job.metadata.uid,
        True,
    )
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    assert sorted(log_of(kube, pod.metadata.name).splitlines()) == ["err", "hello"]
    assert kube.core.read_namespaced_pod_log(pod.metadata.name, kube.ns, tail_lines=1) in (
        "hello\n",
        "err\n",
    )
    assert [e.reason for e in events_for(kube, pod.metadata.name)] == [
        "Scheduled",
        "Pulled",
        "Created",
        "Started",
    ]
    assert [e.reason for e in events_for(kube, "hello")] == ["SuccessfulCreate", "Completed"]


def test_the_job_controller_batches_pod_updates(make_kube: Callable[..., Kube]) -> None:
    """As the real controller's SyncJobBatchPeriod: the pod ends, and the Job says Complete
    only once the period has passed."""
    kube = make_kube(job_batch_period=3.0)
    kube.batch.create_namespaced_job(kube.ns, job_manifest("batched", ["true"]))
    deadline = time.monotonic() + 30
    while True:
        pods = kube.core.list_namespaced_pod(kube.ns, label_selector="job-name=batched").items
        if pods and pods[0].status.phase == "Succeeded":
            break
        assert time.monotonic() < deadline, "the pod never succeeded"
        time.sleep(0.05)
    job = kube.batch.read_namespaced_job("batched", kube.ns)
    assert not any(c.type == "Complete" for c in job.status.conditions or [])
    assert wait_job(kube, "batched", "Complete").status.succeeded == 1


def test_job_failure_exit_code(kube: Kube) -> None:
    kube.batch.create_namespaced_job(
        kube.ns, job_manifest("fail", ["sh", "-c", "echo boom; exit 3"])
    )
    job = wait_job(kube, "fail", "Failed")
    assert job_condition(job, "Failed").reason == "BackoffLimitExceeded"
    assert job.status.failed == 1 and job.status.completion_time is None
    pod = kube.core.list_namespaced_pod(kube.ns, label_selector="job-name=fail").items[0]
    terminated = pod.status.container_statuses[0].state.terminated
    assert pod.status.phase == "Failed" and (terminated.exit_code, terminated.reason) == (
        3,
        "Error",
    )
    assert "BackoffLimitExceeded" in [e.reason for e in events_for(kube, "fail")]


def test_backoff_limit_retries(kube: Kube) -> None:
    kube.batch.create_namespaced_job(
        kube.ns, job_manifest("retry", ["sh", "-c", "exit 1"], backoff_limit=2)
    )
    job = wait_job(kube, "retry", "Failed")
    assert job.status.failed == 3
    assert len(kube.core.list_namespaced_pod(kube.ns, label_selector="job-name=retry").items) == 3


def test_pod_failure_policy_fail_job_on_exit_code(kube: Kube) -> None:
    manifest = job_manifest(
        "fatal",
        ["sh", "-c", "exit 42"],
        backoff_limit=5,
        podFailurePolicy={
            "rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]
        },
    )
    kube.batch.create_namespaced_job(kube.ns, manifest)
    job = wait_job(kube, "fatal", "Failed")
    failed = job_condition(job, "Failed")
    assert failed.reason == "PodFailurePolicy" and "exit code 42" in failed.message
    assert len(kube.core.list_namespaced_pod(kube.ns, label_selector="job-name=fatal").items) == 1


def test_indexed_job(kube: Kube) -> None:
    manifest = job_manifest(
        "idx",
        ["sh", "-c", "echo index=$JOB_COMPLETION_INDEX"],
        completions=3,
        parallelism=3,
        completionMode="Indexed",
    )
    kube.batch.create_namespaced_job(kube.ns, manifest)
    job = wait_job(kube, "idx", "Complete")
    assert job.status.succeeded == 3 and job.status.completed_indexes == "0-2"
    pods = kube.core.list_namespaced_pod(kube.ns, label_selector="job-name=idx").items
    seen = {}
    for pod in pods:
        index = pod.metadata.annotations["batch.kubernetes.io/job-completion-index"]
        assert pod.metadata.labels["batch.kubernetes.io/job-completion-index"] == index
        assert pod.metadata.name.startswith(f"idx-{index}-")
        seen[index] = log_of(kube, pod.metadata.name)
    assert seen == {str(i): f"index={i}\n" for i in range(3)}


def test_active_deadline_kills_the_process(kube: Kube) -> None:
    kube.batch.create_namespaced_job(
        kube.ns, job_manifest("slow", ["sleep", "30"], activeDeadlineSeconds=1)
    )
    pod = wait_pod(kube, running, label_selector="job-name=slow")
    pid = pid_of(pod)  # (under load the 1 s deadline may already have killed it: no alive())
    started = time.monotonic()
    job = wait_job(kube, "slow", "Failed")
    assert job_condition(job, "Failed").reason == "DeadlineExceeded"
    assert time.monotonic() - started < 5
    wait_gone(pid)
    assert "DeadlineExceeded" in [e.reason for e in events_for(kube, "slow")]


def test_ttl_after_finished_deletes_job_and_pods(kube: Kube) -> None:
    kube.batch.create_namespaced_job(
        kube.ns, job_manifest("brief", ["true"], ttlSecondsAfterFinished=1)
    )
    wait_job(kube, "brief", "Complete")
    wait_deleted(kube.batch.list_namespaced_job, kube.ns, field_selector="metadata.name=brief")
    wait_deleted(kube.core.list_namespaced_pod, kube.ns, label_selector="job-name=brief")
    assert kube.batch.list_namespaced_job(kube.ns).items == []


def test_delete_job_background_kills_pod_process(kube: Kube) -> None:
    kube.batch.create_namespaced_job(kube.ns, job_manifest("doomed", ["sleep", "30"]))
    pod = wait_pod(kube, running, label_selector="job-name=doomed")
    pid = pid_of(pod)
    kube.batch.delete_namespaced_job("doomed", kube.ns, propagation_policy="Background")
    wait_deleted(kube.core.list_namespaced_pod, kube.ns, label_selector="job-name=doomed")
    wait_gone(pid)
    assert kube.emu.running_pids() == []


def test_delete_job_orphan_keeps_pod(kube: Kube) -> None:
    kube.batch.create_namespaced_job(kube.ns, job_manifest("orphan", ["sleep", "30"]))
    pod = wait_pod(kube, running, label_selector="job-name=orphan")
    kube.batch.delete_namespaced_job("orphan", kube.ns, propagation_policy="Orphan")
    kept = kube.core.read_namespaced_pod(pod.metadata.name, kube.ns)
    assert kept.status.phase == "Running" and not kept.metadata.owner_references
    kube.core.delete_namespaced_pod(pod.metadata.name, kube.ns, grace_period_seconds=0)
    wait_gone(pid_of(pod))


# -- watch ---------------------------------------------------------------------------------------


def test_watch_streams_and_resumes(kube: Kube) -> None:
    core, ns = kube.core, kube.ns
    seen: list[tuple[str, str, str]] = []
    listing = core.list_namespaced_config_map(ns)

    def watcher() -> None:
        stream = watch.Watch()
        for event in stream.stream(
            core.list_namespaced_config_map,
            ns,
            resource_version=listing.metadata.resource_version,
            timeout_seconds=10,
            label_selector="w=1",
        ):
            obj = event["object"]
            seen.append((event["type"], obj.metadata.name, obj.metadata.resource_version))
            if event["type"] == "DELETED":
                stream.stop()

    thread = threading.Thread(target=watcher)
    thread.start()
    core.create_namespaced_config_map(ns, {"metadata": {"name": "w", "labels": {"w": "1"}}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "other"}})  # filtered out
    core.patch_namespaced_config_map("w", ns, {"data": {"x": "1"}})
    core.delete_namespaced_config_map("w", ns)
    thread.join(10)
    assert [(kind, name) for kind, name, _ in seen] == [
        ("ADDED", "w"),
        ("MODIFIED", "w"),
        ("DELETED", "w"),
    ]
    versions = [int(version) for _, _, version in seen]
    assert versions == sorted(versions)

    # resume after the ADDED event: only what came later
    resumed = []
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_config_map,
        ns,
        resource_version=seen[0][2],
        timeout_seconds=2,
        label_selector="w=1",
    ):
        resumed.append((event["type"], event["object"].metadata.name))
        if len(resumed) == 2:
            stream.stop()
    assert resumed == [("MODIFIED", "w"), ("DELETED", "w")]

    # without a resourceVersion, a watch starts with the current objects
    first = next(iter(watch.Watch().stream(core.list_namespaced_config_map, ns, timeout_seconds=1)))
    assert (first["type"], first["object"].metadata.name) == ("ADDED", "other")


def test_watch_timeout_closes_stream(kube: Kube) -> None:
    started = time.monotonic()
    events = list(watch.Watch().stream(kube.core.list_namespaced_pod, kube.ns, timeout_seconds=1))
    assert events == [] and 0.9 < time.monotonic() - started < 3


def test_watch_expired_resource_version_is_410(make_kube: Callable[..., Kube]) -> None:
    kube = make_kube(watch_history=5)
    for number in range(10):
        kube.core.create_namespaced_config_map(kube.ns, {"metadata": {"name": f"c{number}"}})
    raw = urllib.request.urlopen(
        f"{kube.emu.url}/api/v1/namespaces/{kube.ns}/configmaps?watch=True&resourceVersion=1",
        timeout=5,
    )
    event = json.loads(raw.readline())
    assert (
        event["type"] == "ERROR"
        and event["object"]["code"] == 410
        and event["object"]["reason"] == "Expired"
    )
    with pytest.raises(ApiException) as gone:
        for _ in watch.Watch().stream(
            kube.core.list_namespaced_config_map, kube.ns, resource_version="1"
        ):
            pass
    assert gone.value.status == 410


# -- logs ----------------------------------------------------------------------------------------


def test_log_follow_streams_before_exit(kube: Kube) -> None:
    kube.core.create_namespaced_pod(
        kube.ns, pod_manifest("talker", ["sh", "-c", "echo first; sleep 1; echo second"])
    )
    with pytest.raises(ApiException) as early:  # usually still ContainerCreating; never a 500
        kube.core.read_namespaced_pod_log("talker", kube.ns, container="nope")
    assert early.value.status == 400
    wait_pod(kube, running, field_selector="metadata.name=talker")
    response = kube.core.read_namespaced_pod_log(
        "talker", kube.ns, follow=True, timestamps=True, _preload_content=False
    )
    lines = []
    for line in watch.watch.iter_resp_lines(response):
        lines.append(line)
        if len(lines) == 1:
            assert kube.core.read_namespaced_pod("talker", kube.ns).status.phase == "Running"
    stamp, _, text = lines[0].partition(" ")
    assert text == "first" and stamp.endswith("Z") and "T" in stamp
    assert [line.partition(" ")[2] for line in lines] == ["first", "second"]
    wait_pod(kube, lambda p: p.status.phase == "Succeeded", field_selector="metadata.name=talker")


def test_stdout_and_stderr_lines_never_run_together(kube: Kube) -> None:
    """A container interleaving unterminated writes on stdout with lines on stderr, and
    leaving both streams unterminated at exit: each log line comes from one stream only."""
    script = (
        "import os, time\n"
        "for i in range(30):\n"
        "    os.write(1, b'out-%d ' % i)\n"
        "    os.write(2, b'err-%d\\n' % i)\n"
        "    if i % 10 == 9:\n"
        "        time.sleep(0.02)\n"
        "os.write(1, b'\\n')\n"
        "os.write(1, b'tail-out')\n"
        "os.write(2, b'tail-err')\n"
    )
    kube.core.create_namespaced_pod(
        kube.ns, pod_manifest("interleaver", [sys.executable, "-c", script])
    )
    wait_pod(
        kube, lambda p: p.status.phase == "Succeeded", field_selector="metadata.name=interleaver"
    )
    lines = log_of(kube, "interleaver").splitlines()
    for line in lines:
        assert not ("out" in line and "err" in line), lines
    assert " ".join(f"out-{i}" for i in range(30)) + " " in lines
    assert [line for line in lines if line.startswith("err-")] == [f"err-{i}" for i in range(30)]
    assert "tail-out" in lines and "tail-err" in lines


def test_log_of_waiting_container_is_400(kube: Kube) -> None:
    kube.core.create_namespaced_pod(
        kube.ns,
        pod_manifest(
            "waiting",
            ["true"],
            container={
                "env": [
                    {"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}
                ]
            },
        ),
    )
    wait_pod(
        kube,
        lambda p: (
            bool(p.status.container_statuses)
            and p.status.container_statuses[0].state.waiting.reason == "CreateContainerConfigError"
        ),
        field_selector="metadata.name=waiting",
    )
    with pytest.raises(ApiException) as waiting:
        kube.core.read_namespaced_pod_log("waiting", kube.ns)
    assert waiting.value.status == 400
    assert (
        error_body(waiting.value)["message"]
        == 'container "main" in pod "waiting" is waiting to start: CreateContainerConfigError'
    )


# -- kubelet: memory, env, images, runtime ---------------------------------------------------------


def test_oom_killed(kube: Kube) -> None:
    hog = [sys.executable, "-c", "import time; x = b'1' * (300 * 1024 * 1024); time.sleep(10)"]
    kube.batch.create_namespaced_job(
        kube.ns, job_manifest("hog", hog, resources={"limits": {"memory": "100Mi"}})
    )
    job = wait_job(kube, "hog", "Failed")
    assert job_condition(job, "Failed").reason == "BackoffLimitExceeded"
    pod = kube.core.list_namespaced_pod(kube.ns, label_selector="job-name=hog").items[0]
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137)


def test_secret_env_and_missing_secret(kube: Kube) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}]
    kube.core.create_namespaced_pod(
        kube.ns, pod_manifest("early", ["sh", "-c", "echo $TOKEN"], container={"env": env})
    )
    pod = wait_pod(
        kube,
        lambda p: (
            bool(p.status.container_statuses)
            and p.status.container_statuses[0].state.waiting is not None
            and p.status.container_statuses[0].state.waiting.reason == "CreateContainerConfigError"
        ),
        field_selector="metadata.name=early",
    )
    assert pod.status.container_statuses[0].state.waiting.message == 'secret "creds" not found'
    kube.core.create_namespaced_secret(
        kube.ns, {"metadata": {"name": "creds"}, "stringData": {"token": "s3cret"}}
    )
    wait_pod(kube, lambda p: p.status.phase == "Succeeded", field_selector="metadata.name=early")
    assert log_of(kube, "early") == "s3cret\n"
    kube.core.create_namespaced_config_map(
        kube.ns, {"metadata": {"name": "settings"}, "data": {"mode": "fast"}}
    )
    env = [
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "BOTH", "value": "$(MODE)-$(ME)"},
    ]
    kube.core.create_namespaced_pod(
        kube.ns, pod_manifest("later", ["sh", "-c", "echo $BOTH"], container={"env": env})
    )
    wait_pod(kube, lambda p: p.status.phase == "Succeeded", field_selector="metadata.name=later")
    assert log_of(kube, "later") == "fast-later\n"


def test_runtime_image_runs_the_runner_from_this_checkout(kube: Kube) -> None:
    manifest = job_manifest("runner", [], image=RUNTIME_ELSEWHERE)
    del manifest["spec"]["template"]["spec"]["containers"][0]["command"]
    kube.batch.create_namespaced_job(kube.ns, manifest)
    wait_job(kube, "runner", "Failed", timeout=20)
    pod = kube.core.list_namespaced_pod(kube.ns, label_selector="job-name=runner").items[0]
    assert pod.status.container_statuses[0].state.terminated.exit_code == 2  # EXIT_USAGE
    assert "ASCEND_PACKAGE_URI and ASCEND_RESULT_URI must be set" in log_of(kube, pod.metadata.name)


def test_runtime_image_runs_a_real_package(kube: Kube, tmp_path: Path) -> None:
    """The Job shape the Kubernetes provider builds, end to end through this checkout's runner."""
    from ascend import wire

    with open(tmp_path / "package.bin", "wb") as target:
        wire.dump_package(target, pow, (2, 10), {})
    env = [
        {"name": "ASCEND_PACKAGE_URI", "value": f"file://{tmp_path}/package.bin"},
        {"name": "ASCEND_RESULT_URI", "value": f"file://{tmp_path}/result.bin"},
        {"name": "ASCEND_TIMEOUT", "value": "60"},
        {"name": "ASCEND_ALLOW_UNSIGNED", "value": "1"},  # a package made by hand
    ]
    manifest = job_manifest(
        "ascend-call",
        ["python", "-m", "ascend.runner"],
        image=DEV_RUNTIME_IMAGE,
        env=env,
        resources={
            "requests": {"cpu": "1", "memory": "512Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        activeDeadlineSeconds=60,
        podFailurePolicy={
            "rules": [
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                }
            ]
        },
        pod_spec={
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    )
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    kube.batch.create_namespaced_job(kube.ns, manifest)
    wait_job(kube, "ascend-call", "Complete", timeout=30)
    with open(tmp_path / "result.bin", "rb") as result:
        assert wire.load_outcome(result, wire.verify(result, "result")) == ("result", 1024)


def test_registry_image_pull_errors(make_kube: Callable[..., Kube]) -> None:
    registry = services.require("registry")
    kube = make_kube()
    image = f"{registry}/ascend/never-pushed:v{os.getpid()}"
    kube.core.create_namespaced_pod(
        kube.ns,
        {
            **pod_manifest("pull", ["true"]),
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": image, "command": ["true"]}],
            },
        },
    )
    reasons: list[str] = []

    def waiting(pod: Any) -> bool:
        statuses = pod.status.container_statuses or []
        reason = (
            statuses[0].state.waiting.reason if statuses and statuses[0].state.waiting else None
        )
        if reason and (not reasons or reasons[-1] != reason):
            reasons.append(reason)
        return reason == "ImagePullBackOff"

    pod = wait_pod(kube, waiting, field_selector="metadata.name=pull")
    assert reasons[-2:] == ["ErrImagePull", "ImagePullBackOff"]
    assert pod.status.phase == "Pending"
    events = events_for(kube, "pull")
    failed = [e.message for e in events if e.reason == "Failed"]
    assert any(
        m.startswith(f'Failed to pull image "{image}"') and m.endswith("not found") for m in failed
    )
    assert "BackOff" in [e.reason for e in events]


# -- images: pulled for real from loopback registries --------------------------------------------

HOST_PYTHON = platform.python_version()
SHOW_X = ["python", "-c", "import hello_layer; print(hello_layer.X)"]


def push_hello(registry: str, python_version: str = HOST_PYTHON, **options: Any) -> Any:
    """A python:X.Y-like image whose one layer holds ``/opt/pkgs/hello_layer.py``."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHON_VERSION": python_version,
        "PYTHONPATH": "/opt/pkgs",
    }
    files = {"opt/pkgs/hello_layer.py": b"X = 'from the layer'\n"}
    repository = f"emulator/hello-{uuid.uuid4().hex[:8]}"
    return push_image(registry, repository, "v1", files, env, **options)


def start_pod(kube: Kube, name: str, image: str, command: list[str] | None, **extra: Any) -> None:
    container: dict[str, Any] = {"name": "main", "image": image, **extra.pop("container", {})}
    if command is not None:
        container["command"] = command
    kube.core.create_namespaced_pod(
        kube.ns,
        {
            "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "containers": [container], **extra},
        },
    )


def run_pod(kube: Kube, name: str, image: str, command: list[str] | None, **extra: Any) -> Any:
    """Create the pod and return it once it has succeeded or failed."""
    start_pod(kube, name, image, command, **extra)
    return wait_pod(
        kube,
        lambda p: p.status.phase in ("Succeeded", "Failed"),
        timeout=20,
        field_selector=f"metadata.name={name}",
    )


def waiting_in(kube: Kube, name: str, reason: str) -> Any:
    """The pod's container's waiting state once its reason is ``reason``."""

    def waits(pod: Any) -> bool:
        statuses = pod.status.container_statuses or []
        state = statuses[0].state.waiting if statuses else None
        return state is not None and state.reason == reason

    pod = wait_pod(kube, waits, field_selector=f"metadata.name={name}")
    assert pod.status.phase == "Pending"
    return pod.status.container_statuses[0].state.waiting


@pytest.mark.service("registry")
def test_a_pulled_image_runs_its_own_layers_and_nothing_else(
    make_kube: Callable[..., Kube],
) -> None:
    registry = services.require("registry")
    kube = make_kube()
    pushed = push_hello(registry, cmd=SHOW_X, working_dir="/opt/pkgs")

    own = run_pod(kube, "own-cmd", pushed.reference, None)  # the image's Cmd
    assert own.status.phase == "Succeeded"
    assert log_of(kube, "own-cmd") == "from the layer\n"
    repository = pushed.reference.rsplit(":", 1)[0]
    assert own.status.container_statuses[0].image_id == f"{repository}@{pushed.manifest_digest}"
    pulled = [e.message for e in events_for(kube, "own-cmd") if e.reason == "Pulled"]
    assert len(pulled) == 1 and pulled[0].startswith(
        f'Successfully pulled image "{pushed.reference}"'
    )
    assert pulled[0].endswith(f"Image size: {pushed.size} bytes.")

    where = [
        "python3",
        "-c",
        "import os, hello_layer; print(hello_layer.X, os.path.isfile('hello_layer.py'))",
    ]
    assert run_pod(kube, "cwd", pushed.reference, where).status.phase == "Succeeded"
    assert log_of(kube, "cwd") == "from the layer True\n"  # WorkingDir is the image's /opt/pkgs
    pulled = [e.message for e in events_for(kube, "cwd") if e.reason == "Pulled"]
    assert pulled == [f'Container image "{pushed.reference}" already present on machine']

    venv = run_pod(kube, "venv", pushed.reference, ["python", "-c", "import pytest"])
    assert venv.status.phase == "Failed"
    assert "ModuleNotFoundError: No module named 'pytest'" in log_of(kube, "venv")

    host_tool = run_pod(kube, "host-tool", pushed.reference, ["sh", "-c", "true"])
    terminated = host_tool.status.container_statuses[0].state.terminated
    assert host_tool.status.phase == "Failed" and terminated.reason == "StartError"
    assert 'exec: "sh": executable file not found in $PATH' in terminated.message


@pytest.mark.service("registry")
def test_a_second_pod_of_an_image_downloads_no_blob(make_kube: Callable[..., Kube]) -> None:
    registry = services.require("registry")
    pushed = push_hello(registry)
    kube = make_kube()
    with counting_proxy(registry) as (proxy, seen):
        image = pushed.reference.replace(registry, proxy, 1)
        assert run_pod(kube, "first", image, SHOW_X).status.phase == "Succeeded"
        assert seen.count("GET", "/manifests/") == 1 and seen.count("GET", "/blobs/") == 2
        seen.clear()
        assert run_pod(kube, "second", image, SHOW_X).status.phase == "Succeeded"
        assert seen.requests == []  # IfNotPresent: the node has it
        always = {"container": {"imagePullPolicy": "Always"}}
        assert run_pod(kube, "always", image, SHOW_X, **always).status.phase == "Succeeded"
        assert seen.count("GET", "/manifests/") == 1 and seen.count("GET", "/blobs/") == 0
    assert log_of(kube, "always") == "from the layer\n"


@pytest.mark.service("registry")
def test_a_blob_that_does_not_match_its_digest_fails_the_pull(
    make_kube: Callable[..., Kube],
) -> None:
    registry = services.require("registry")
    pushed = push_hello(registry)
    kube = make_kube()
    with corrupting_proxy(registry, {pushed.layer_digest}) as proxy:
        start_pod(kube, "corrupt", pushed.reference.replace(registry, proxy, 1), SHOW_X)
        waiting = waiting_in(kube, "corrupt", "ErrImagePull")
    assert "unexpected commit digest" in waiting.message
    assert f"expected {pushed.layer_digest}" in waiting.message


@pytest.mark.service("registry")
def test_a_python_version_mismatch_fails_to_start_naming_both(
    make_kube: Callable[..., Kube],
) -> None:
    registry = services.require("registry")
    other = f"{sys.version_info.major}.{sys.version_info.minor + 1}.0"
    pushed = push_hello(registry, python_version=other)
    kube = make_kube()
    pod = run_pod(kube, "mismatch", pushed.reference, SHOW_X)
    terminated = pod.status.container_statuses[0].state.terminated
    assert pod.status.phase == "Failed" and terminated.reason == "StartError"
    assert other in terminated.message and HOST_PYTHON in terminated.message


@pytest.mark.service("registry")
def test_pull_secrets_open_an_authenticated_registry(
    make_kube: Callable[..., Kube], auth_credentials: tuple[str, str]
) -> None:
    registry = services.require("auth-registry")
    pushed = push_hello(registry, credentials=auth_credentials)
    kube = make_kube()
    start_pod(kube, "anonymous", pushed.reference, SHOW_X)
    assert "authorization failed" in waiting_in(kube, "anonymous", "ErrImagePull").message
    user, password = auth_credentials
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    kube.core.create_namespaced_secret(
        kube.ns,
        {
            "metadata": {"name": "pull"},
            "type": "kubernetes.io/dockerconfigjson",
            "stringData": {".dockerconfigjson": json.dumps({"auths": {registry: {"auth": auth}}})},
        },
    )
    pod = run_pod(
        kube, "with-secret", pushed.reference, SHOW_X, imagePullSecrets=[{"name": "pull"}]
    )
    assert pod.status.phase == "Succeeded" and log_of(kube, "with-secret") == "from the layer\n"


@pytest.mark.service("registry")
def test_a_bearer_token_challenge_is_answered_with_the_pull_secret(
    make_kube: Callable[..., Kube],
) -> None:
    registry = services.require("registry")
    pushed = push_hello(registry)
    kube = make_kube()
    with token_proxy(registry, ("robot", "pa55")) as (proxy, issued):
        image = pushed.reference.replace(registry, proxy, 1)
        start_pod(kube, "no-token", image, SHOW_X)
        assert "authorization failed" in waiting_in(kube, "no-token", "ErrImagePull").message
        auth = base64.b64encode(b"robot:pa55").decode()
        config = {"auths": {proxy: {"auth": auth}}}
        kube.core.create_namespaced_secret(
            kube.ns,
            {
                "metadata": {"name": "robot"},
                "type": "kubernetes.io/dockerconfigjson",
                "stringData": {".dockerconfigjson": json.dumps(config)},
            },
        )
        pod = run_pod(kube, "token", image, SHOW_X, imagePullSecrets=[{"name": "robot"}])
        assert pod.status.phase == "Succeeded" and log_of(kube, "token") == "from the layer\n"
        assert issued["tokens"] == 1  # one token served the manifest and both blobs


def test_images_off_the_nodes_network_fail_to_pull(make_kube: Callable[..., Kube]) -> None:
    kube = make_kube(preloaded_images=["busybox:1.36"])  # exactly that: no dev runtime
    for name, image, host in (
        ("hub", "python:3.11-slim", "registry-1.docker.io"),
        ("dev", DEV_RUNTIME_IMAGE, "registry-1.docker.io"),
        ("elsewhere", "ghcr.io/org/tool:1", "ghcr.io"),
    ):
        start_pod(kube, name, image, ["true"])
        waiting = waiting_in(kube, name, "ErrImagePull")
        assert f"dial tcp: lookup {host}: no such host" in waiting.message
    assert (
        'image "docker.io/library/python:3.11-slim"'
        in waiting_in(kube, "hub", "ErrImagePull").message
    )
    waiting_in(kube, "hub", "ImagePullBackOff")
    assert (
        run_pod(kube, "loaded", "docker.io/library/busybox:1.36", ["true"]).status.phase
        == "Succeeded"
    )


def test_never_pull_policy_for_an_absent_image(make_kube: Callable[..., Kube]) -> None:
    kube = make_kube()
    image = "127.0.0.1:9/absent/image:v1"
    start_pod(kube, "never", image, ["true"], container={"imagePullPolicy": "Never"})
    waiting = waiting_in(kube, "never", "ErrImageNeverPull")
    assert waiting.message == f'Container image "{image}" is not present with pull policy of Never'


def _tar(path: Path, members: list[tuple[str, str, str]]) -> Path:
    """A plain tar of (kind, name, content-or-link-target) members."""
    with tarfile.open(path, "w") as tar:
        for kind, name, value in members:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind in ("symlink", "hardlink"):
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = value
                tar.addfile(info)
            else:
                info.size, info.mode = len(value), 0o4755
                tar.addfile(info, io.BytesIO(value.encode()))
    return path


def test_layers_apply_whiteouts_and_never_write_outside_the_root(tmp_path: Path) -> None:
    from ascend.testing.kube import layers

    plain = "application/vnd.oci.image.layer.v1.tar"
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    lower = _tar(
        tmp_path / "lower.tar",
        [
            ("file", "etc/keep", "k"),
            ("file", "etc/gone", "g"),
            ("file", "var/cache/old", "o"),
            ("dir", "outside", ""),
            ("symlink", "abs", "/etc"),
            ("symlink", "usr/lib/up", "../../../../outside"),
            ("hardlink", "etc/again", "etc/keep"),
        ],
    )
    layers.unpack(lower, plain, root)
    assert os.path.realpath(root / "abs") == os.path.realpath(root / "etc")
    assert os.path.realpath(root / "usr/lib/up") == os.path.realpath(root / "outside")
    assert (root / "etc/again").read_text() == "k"
    assert (root / "etc/keep").stat().st_mode & 0o7000 == 0  # no set-id bits
    upper = _tar(
        tmp_path / "upper.tar",
        [
            ("file", "etc/.wh.gone", ""),
            ("file", "var/cache/.wh..wh..opq", ""),
            ("file", "var/cache/new", "n"),
            ("file", "abs/through-link", "t"),
            ("file", "usr/lib/up/escaped", "e"),
        ],
    )
    layers.unpack(upper, plain, root)
    assert sorted(os.listdir(root / "etc")) == ["again", "keep", "through-link"]
    assert os.listdir(root / "var/cache") == ["new"]
    assert (root / "outside/escaped").read_text() == "e"
    assert os.listdir(outside) == []
    (tmp_path / "secret").write_text("s")
    for bad in (
        [("file", "../evil", "x")],
        [("file", "/evil", "x")],
        [("hardlink", "h", "../secret")],
    ):
        with pytest.raises(layers.LayerError):
            layers.unpack(_tar(tmp_path / "bad.tar", bad), plain, root)
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["bad.tar", "lower.tar", "outside", "root", "secret", "upper.tar"]
    )


# -- scheduling ----------------------------------------------------------------------------------


def failed_scheduling(kube: Kube, name: str) -> str:
    pod = wait_pod(
        kube,
        lambda p: any(
            c.type == "PodScheduled" and c.reason == "Unschedulable"
            for c in p.status.conditions or []
        ),
        field_selector=f"metadata.name={name}",
    )
    assert pod.status.phase == "Pending" and not pod.spec.node_name
    messages = [e.message for e in events_for(kube, name) if e.reason == "FailedScheduling"]
    assert messages and messages[0].startswith("0/1 nodes are available: ")
    return str(messages[0])


def test_unschedulable_gpu_then_rescheduled_when_freed(make_kube: Callable[..., Kube]) -> None:
    kube = make_kube(cpu="1", gpu=0)
    gpu = {"container": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}}
    kube.core.create_namespaced_pod(kube.ns, pod_manifest("gpu", ["true"], **gpu))
    assert "1 Insufficient nvidia.com/gpu." in failed_scheduling(kube, "gpu")
    cpu = {"container": {"resources": {"requests": {"cpu": "1"}}}}
    kube.core.create_namespaced_pod(kube.ns, pod_manifest("first", ["sleep", "30"], **cpu))
    first = wait_pod(kube, running, field_selector="metadata.name=first")
    kube.core.create_namespaced_pod(kube.ns, pod_manifest("second", ["true"], **cpu))
    assert "1 Insufficient cpu" in failed_scheduling(kube, "second")
    kube.core.delete_namespaced_pod("first", kube.ns)
    wait_gone(pid_of(first))
    wait_pod(kube, lambda p: p.status.phase == "Succeeded", field_selector="metadata.name=second")
    assert "Scheduled" in [e.reason for e in events_for(kube, "second")]


def test_node_selector_and_taints(make_kube: Callable[..., Kube]) -> None:
    kube = make_kube(node_labels={"pool": "cpu"}, taints=["gpu=true:NoSchedule"])
    toleration = [{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]
    kube.core.create_namespaced_pod(kube.ns, pod_manifest("untolerated", ["true"]))
    assert "1 node(s) had untolerated taint {gpu: true}." in failed_scheduling(kube, "untolerated")
    kube.core.create_namespaced_pod(
        kube.ns,
        pod_manifest("elsewhere", ["true"], nodeSelector={"pool": "gpu"}, tolerations=toleration),
    )
    assert "1 node(s) didn't match Pod's node affinity/selector." in failed_scheduling(
        kube, "elsewhere"
    )
    kube.core.create_namespaced_pod(
        kube.ns,
        pod_manifest("fits", ["true"], nodeSelector={"pool": "cpu"}, tolerations=toleration),
    )
    pod = wait_pod(
        kube, lambda p: p.status.phase == "Succeeded", field_selector="metadata.name=fits"
    )
    assert pod.spec.node_name == kube.core.list_node().items[0].metadata.name


# -- eviction ----------------------------------------------------------------------------------


def test_eviction_is_a_disruption_ignored_by_pod_failure_policy(kube: Kube) -> None:
    manifest = job_manifest(
        "evictee",
        ["sleep", "30"],
        backoff_limit=0,
        podFailurePolicy={
            "rules": [
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                }
            ]
        },
    )
    kube.batch.create_namespaced_job(kube.ns, manifest)
    pod = wait_pod(kube, running, label_selector="job-name=evictee")
    name, pid = pod.metadata.name, pid_of(pod)
    kube.core.create_namespaced_pod_eviction(
        name,
        kube.ns,
        {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": kube.ns},
        },
    )
    # as the real API server does: the condition, then a graceful delete the kubelet carries out
    evicted = wait_pod(
        kube,
        lambda p: p.metadata.deletion_timestamp is not None,
        field_selector=f"metadata.name={name}",
    )
    wait_gone(pid)
    disruption = next(c for c in evicted.status.conditions if c.type == "DisruptionTarget")
    assert (disruption.status, disruption.reason) == ("True", "EvictionByEvictionAPI")
    replacement = wait_pod(
        kube, lambda p: p.metadata.name != name and running(p), label_selector="job-name=evictee"
    )
    job = kube.batch.read_namespaced_job("evictee", kube.ns)
    assert not job.status.failed and job_condition(job, "Failed") is None
    kube.batch.delete_namespaced_job("evictee", kube.ns, propagation_policy="Foreground")
    wait_gone(pid_of(replacement))


# -- kubectl, CLI, counter, shutdown -------------------------------------------------------------


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_get_logs_delete(kube: Kube, tmp_path: Path) -> None:
    kube.batch.create_namespaced_job(
        kube.ns, job_manifest("kubectl-job", ["sh", "-c", "echo via kubectl"])
    )
    wait_job(kube, "kubectl-job", "Complete")

    def kubectl(*args: str) -> str:
        command = [
            str(KUBECTL),
            "--kubeconfig",
            str(kube.emu.kubeconfig),
            "--cache-dir",
            str(tmp_path / "cache"),
            *args,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    listing = kubectl("get", "jobs", "-n", kube.ns)
    assert "kubectl-job" in listing and "Complete" in listing and "1/1" in listing
    pod = (
        kube.core.list_namespaced_pod(kube.ns, label_selector="job-name=kubectl-job")
        .items[0]
        .metadata.name
    )
    assert pod in kubectl("get", "pods", "-n", kube.ns)
    assert kubectl("logs", "-n", kube.ns, pod) == "via kubectl\n"
    assert "SuccessfulCreate" in kubectl("get", "events", "-n", kube.ns)
    assert "jobs" in kubectl("api-resources")
    manifest = tmp_path / "job.json"
    manifest.write_text(json.dumps(job_manifest("from-file", ["true"])))
    assert "created" in kubectl("create", "-n", kube.ns, "-f", str(manifest))
    assert "deleted" in kubectl("delete", "job", "kubectl-job", "-n", kube.ns)
    assert [j.metadata.name for j in kube.batch.list_namespaced_job(kube.ns).items] == ["from-file"]


def test_cli_serve(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    env = {**os.environ, "ASCEND_SKIP_BACKEND_CHECK": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ascend.testing.kube",
            "serve",
            "--port",
            "0",
            "--kubeconfig",
            str(path),
            "--gpu",
            "2",
            "--taint",
            "gpu=true:NoSchedule",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        api = config.new_client_from_config(config_file=str(path))
        node = client.CoreV1Api(api).list_node().items[0]
        assert node.status.allocatable["nvidia.com/gpu"] == "2" and node.spec.taints[0].key == "gpu"
        assert api.configuration.host == url
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_api_serves_100_concurrent_clients(kube: Kube) -> None:
    """A hundred clients connecting at once are all served (the listen backlog holds them;
    socketserver's default of 5 dropped or reset the rest)."""
    import http.client

    clients = 100
    barrier = threading.Barrier(clients)
    answers: list[Any] = []

    def get() -> None:
        barrier.wait()
        connection = http.client.HTTPConnection("127.0.0.1", kube.emu.port, timeout=3)
        try:
            connection.request("GET", f"/api/v1/namespaces/{kube.ns}/pods")
            response = connection.getresponse()
            answers.append((response.status, json.loads(response.read())["kind"]))
        except Exception as error:  # reported by the assertion below
            answers.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=get) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == [(200, "PodList")] * clients


def test_request_counter(kube: Kube) -> None:
    counter = kube.emu.requests
    counter.reset()
    kube.core.list_namespaced_pod(kube.ns)
    kube.core.list_namespaced_pod(kube.ns)
    kube.batch.list_namespaced_job(kube.ns)
    assert counter.total == 3
    assert counter.snapshot()[("GET", f"/api/v1/namespaces/{kube.ns}/pods")] == 2
    assert counter.matching("GET", "/jobs") == 1
    served = json.loads(urllib.request.urlopen(kube.emu.url + "/debug/requests", timeout=5).read())
    assert served["total"] == 3
    request = urllib.request.Request(kube.emu.url + "/debug/requests", method="DELETE")
    urllib.request.urlopen(request, timeout=5).read()
    assert counter.total == 0


def test_stop_kills_pods_and_leaves_no_threads(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    emu = KubeEmulator(preloaded_images=PRELOADED).start()
    emu.write_kubeconfig(tmp_path / "kubeconfig")
    kube = connect(emu)
    kube.core.create_namespaced_pod(kube.ns, pod_manifest("lingering", ["sleep", "30"]))
    pid = pid_of(wait_pod(kube, running, field_selector="metadata.name=lingering"))
    assert emu.image_dir is not None and emu.image_dir.is_dir()
    emu.stop()
    wait_gone(pid, 2)
    assert not emu.image_dir.exists()
    leftovers = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leftovers == []
