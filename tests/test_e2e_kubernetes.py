"""End to end on the generic `kubernetes` provider, against the Kubernetes API emulator and the
real control plane (``[emulator]`` and ``[real]``, see tests/kube_clusters.py).

Every call creates a real Job through the official client; the node's kubelet (the emulator's,
or the process kubelet joined to the real API server) runs the pod as a local process running
the real runner. Storage is file:// and, with moto, s3://.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from ascend import (
    ImagePullError,
    JobCancelledError,
    JobTimeoutError,
    OutOfMemoryError,
    UnschedulableError,
    ascend,
    attach,
)
from ascend import hookimpl as ascend_hookimpl
from ascend.plugins.types import NodeType
from ascend.testing.kube import KubeEmulator

from . import services
from .kube_clusters import ClusterUnderTest

REPO = Path(__file__).resolve().parents[1]
DEV_RUNTIME_IMAGE = "ascend-runtime:dev"  # preloaded on the node: this checkout
USER = "alice"  # the user on an emulator (a fresh one per test)
NAMESPACE = f"ascend-users-{USER}"

pytestmark = pytest.mark.timeout(120)


def configure(
    monkeypatch: pytest.MonkeyPatch,
    kube: ClusterUnderTest | KubeEmulator,
    storage_url: str,
    *,
    set_up: bool = True,
    **extra: str,
) -> None:
    """Point Ascend at the cluster as the test's user (on a bare emulator: ``alice``);
    ``set_up``: as ``ascend admin add-user`` would have (namespace, role, signing key)."""
    if isinstance(kube, KubeEmulator):
        kube = emulated(kube)
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "kubernetes")
    monkeypatch.setenv("ASCEND_STORAGE_URL", storage_url)
    monkeypatch.setenv("ASCEND_KUBERNETES_KUBECONFIG", str(kube.kubeconfig))
    monkeypatch.setenv("ASCEND_IMAGES_RUNTIME", DEV_RUNTIME_IMAGE)
    monkeypatch.setenv("ASCEND_USERNAME", kube.user)
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    if set_up:
        kube.set_up()


@pytest.fixture
def kube(
    kube_cluster: ClusterUnderTest, ascend_pm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> ClusterUnderTest:
    configure(monkeypatch, kube_cluster, f"file://{tmp_path}/store")
    return kube_cluster


def emulated(emulator: KubeEmulator) -> ClusterUnderTest:
    return ClusterUnderTest(emulator, USER)


@ascend(timeout=60, stream_logs=False)
def double(x: int) -> int:
    print(f"doubling {x}")
    return 2 * x


@ascend(timeout=60, stream_logs=False)
def refuse(value: str) -> None:
    raise ValueError(f"bad value {value}")


@ascend(timeout=60, memory="100Mi", stream_logs=False)
def hog() -> int:
    blocks = [bytearray(50 * 1024 * 1024) for _ in range(8)]
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])
    return len(blocks)


@ascend(timeout=2, stream_logs=False)
def overrun() -> None:
    time.sleep(30)


@ascend(timeout=60, stream_logs=False)
def nap(seconds: float) -> str:
    time.sleep(seconds)
    return "rested"


@ascend(timeout=60, memory="64Gi", stream_logs=False)
def too_big() -> None:
    return None


def test_success_and_records(kube: ClusterUnderTest, tmp_path: Path) -> None:
    kube.requests.reset()
    handle = double.submit(21)
    assert handle.result(timeout=60) == 42
    assert handle.logs() == "doubling 21\n"
    record = handle.metadata()
    assert record["status"] == "succeeded"
    assert record["compute"]["handle"] == f"{kube.namespace}/ascend-{handle.job_id}"
    assert kube.requests.total <= 8


def test_user_exception_comes_back_with_its_type(kube: ClusterUnderTest) -> None:
    with pytest.raises(ValueError, match="bad value x") as caught:
        refuse("x")
    assert any("Remote traceback" in note for note in caught.value.__notes__)


def test_out_of_memory_is_oomkilled_with_the_limit(kube: ClusterUnderTest) -> None:
    handle = hog.submit()
    with pytest.raises(OutOfMemoryError) as caught:
        handle.result(timeout=60)
    assert "100Mi" in str(caught.value)
    assert caught.value.evidence["reason"] == "OOMKilled"
    assert handle.metadata()["status"] == "failed"
    assert handle.metadata()["failure"]["reason"] == "OOMKilled"


def test_deadline_is_a_timeout_error(kube: ClusterUnderTest) -> None:
    started = time.monotonic()
    handle = overrun.submit()
    with pytest.raises(JobTimeoutError):
        handle.result(timeout=60)
    assert time.monotonic() - started < 20
    assert kube.running_pids() == []
    record = handle.metadata()
    assert record["status"] == "failed"
    assert record["failure"]["reason"] == "DeadlineExceeded"


def test_unschedulable_fails_after_pending_timeout_with_the_schedulers_message(
    kube: ClusterUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASCEND_KUBERNETES_PENDING_TIMEOUT", "2")
    # as on a cluster whose bigger pool may grow from zero: no refusal at submit (test_capacity)
    monkeypatch.setenv("ASCEND_KUBERNETES_CAPACITY_CHECK", "false")
    started = time.monotonic()
    handle = too_big.submit()
    with pytest.raises(UnschedulableError) as caught:
        handle.result(timeout=60)
    assert time.monotonic() - started < 15
    assert "Insufficient memory" in str(caught.value)
    assert any("FailedScheduling" in e for e in caught.value.evidence["events"])
    assert handle.metadata()["failure"]["reason"] == "Unschedulable"


def test_missing_image_fails_fast_with_the_image_named(
    kube_cluster: ClusterUnderTest, ascend_pm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    registry = services.require("registry")
    configure(
        monkeypatch,
        kube_cluster,
        f"file://{tmp_path}/store",
        ASCEND_IMAGES_RUNTIME=f"{registry}/ascend-runtime:missing-{uuid.uuid4().hex[:8]}",
    )
    started = time.monotonic()
    with pytest.raises(ImagePullError) as caught:
        double(1)
    assert time.monotonic() - started < 15
    assert "missing-" in str(caught.value)
    assert caught.value.evidence["reason"] in ("ErrImagePull", "ImagePullBackOff")


def test_cancel_deletes_the_job_and_its_pod(kube: ClusterUnderTest) -> None:
    handle = nap.submit(60)
    deadline = time.monotonic() + 20
    while not kube.running_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kube.running_pids()
    handle.cancel()
    with pytest.raises(JobCancelledError):
        handle.result(timeout=30)
    deadline = time.monotonic() + 10
    while kube.running_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kube.running_pids() == []
    assert handle.status() == "cancelled"


def test_killed_caller_then_attach(kube: ClusterUnderTest, tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(
        textwrap.dedent("""
        import time
        from ascend import ascend

        @ascend(timeout=60, stream_logs=False)
        def slow():
            time.sleep(2)
            return 42

        handle = slow.submit()
        print(handle.job_id, flush=True)
        time.sleep(60)
    """)
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    client = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True
    )
    assert client.stdout is not None
    job_id = client.stdout.readline().strip()
    client.send_signal(signal.SIGKILL)
    client.wait(10)
    handle = attach(job_id)
    assert handle.result(timeout=60) == 42
    assert handle.status() == "succeeded"


def test_live_logs_reach_the_caller_while_the_job_runs(
    kube: ClusterUnderTest, tmp_path: Path
) -> None:
    script = tmp_path / "client.py"
    script.write_text(
        textwrap.dedent("""
        import time
        from ascend import ascend

        @ascend(timeout=60)
        def chatty():
            print("line 1", flush=True)
            time.sleep(1.5)
            print("line 2", flush=True)
            return "done"

        print("result", chatty(), flush=True)
    """)
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    client = subprocess.Popen(
        [sys.executable, "-u", str(script)], env=env, stdout=subprocess.PIPE, text=True
    )
    assert client.stdout is not None
    arrivals = {}
    for line in client.stdout:
        arrivals[line.strip()] = time.monotonic()
    assert client.wait(30) == 0
    assert arrivals["line 2"] - arrivals["line 1"] > 0.8
    assert "result done" in arrivals


def test_kubectl_lists_the_job(kube: ClusterUnderTest) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    handle = double.submit(2)
    assert handle.result(timeout=60) == 4
    listed = subprocess.run(
        [
            kubectl,
            "--kubeconfig",
            str(kube.kubeconfig),
            "get",
            "jobs",
            "-n",
            kube.namespace,
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    names = [item["metadata"]["name"] for item in json.loads(listed.stdout)["items"]]
    assert f"ascend-{handle.job_id}" in names


def test_missing_namespace_names_the_command_that_creates_it(
    kube_cluster: ClusterUnderTest, ascend_pm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ascend import ComputeError

    configure(monkeypatch, kube_cluster, f"file://{tmp_path}/store", set_up=False)
    with pytest.raises(ComputeError) as caught:
        double(1)
    assert kube_cluster.namespace in str(caught.value)
    assert f"ascend admin add-user {kube_cluster.user}" in str(caught.value)


def test_s3_storage_through_moto(
    kube_cluster: ClusterUnderTest, ascend_pm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = services.require("moto")
    pytest.importorskip("s3fs")
    from kubernetes import client

    emulator = kube_cluster
    bucket = f"ascend-e2e-{uuid.uuid4().hex[:10]}"
    configure(
        monkeypatch,
        emulator,
        f"s3://{bucket}/jobs",
        ASCEND_STORAGE_OPTIONS=json.dumps(
            {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
        ),
        ASCEND_KUBERNETES_ENV=json.dumps({"AWS_ENDPOINT_URL_S3": endpoint}),
        ASCEND_KUBERNETES_SECRET_ENV=json.dumps(
            {"AWS_ACCESS_KEY_ID": "s3/key", "AWS_SECRET_ACCESS_KEY": "s3/secret"}
        ),
    )
    client.CoreV1Api(emulator.api_client()).create_namespaced_secret(
        emulator.namespace,
        {"metadata": {"name": "s3"}, "stringData": {"key": "testing", "secret": "testing"}},
    )
    from ascend import get_backend

    get_backend().storage.ensure_container()
    assert double(5) == 10
    with pytest.raises(ValueError, match="bad value s3"):
        refuse("s3")


def test_eviction_is_reported_as_such(kube: ClusterUnderTest) -> None:
    from kubernetes import client

    from ascend import JobEvictedError

    handle = nap.submit(30)
    core = client.CoreV1Api(kube.api_client())
    deadline = time.monotonic() + 20
    pods: list[Any] = []
    while not kube.running_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    pods = core.list_namespaced_pod(
        kube.namespace, label_selector=f"job-name=ascend-{handle.job_id}"
    ).items
    assert pods
    core.create_namespaced_pod_eviction(
        pods[0].metadata.name,
        kube.namespace,
        {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pods[0].metadata.name, "namespace": kube.namespace},
        },
    )
    with pytest.raises(JobEvictedError) as caught:
        handle.result(timeout=30)
    assert "evicted" in str(caught.value)
    assert handle.metadata()["status"] == "failed"


@pytest.mark.emulator_only("a watch history of 5 changes")
def test_an_expired_watch_resumes_from_a_fresh_list(
    make_kube_emulator: Any, ascend_pm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With a tiny watch history and short watches, the waiter's resumption hits 410 Gone and
    must list again instead of failing or hanging."""
    from kubernetes import client

    import ascend.kubernetes.compute as kube_compute

    monkeypatch.setattr(kube_compute, "WATCH_SECONDS", 1)
    emulator = emulated(make_kube_emulator(watch_history=5))
    configure(monkeypatch, emulator, f"file://{tmp_path}/store")
    import threading

    handle = nap.submit(4)
    core = client.CoreV1Api(emulator.api_client())

    def churn() -> None:  # push the waiter's resourceVersion out of the history meanwhile
        for index in range(40):
            core.create_namespaced_config_map(
                emulator.namespace,
                {"metadata": {"name": f"churn-{index}"}, "data": {"i": str(index)}},
            )
            time.sleep(0.05)

    churner = threading.Thread(target=churn)
    churner.start()
    assert handle.result(timeout=60) == "rested"
    churner.join(30)
    from ascend import get_backend

    assert get_backend().compute.expired_watches >= 1


def test_admin_add_user_is_idempotent_and_grants_what_jobs_need(
    kube_cluster: ClusterUnderTest,
    ascend_pm: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    ascend_cli: Any,
) -> None:
    from kubernetes import client

    emulator = kube_cluster
    configure(monkeypatch, emulator, f"file://{tmp_path}/store", set_up=False)
    person = f"Carol.{emulator.user}"  # a name with a dot, made a valid namespace name
    namespace = f"ascend-users-carol-{emulator.user}"
    first = ascend_cli("admin", "add-user", person)
    assert first.exit_code == 0, first.stderr
    assert first.stdout.strip() == (
        f"{namespace}: created namespace, service account, role, role binding, signing key"
    )
    again = ascend_cli("admin", "add-user", person)
    assert again.stdout.strip() == f"{namespace}: already set up, nothing to do"
    rbac = client.RbacAuthorizationV1Api(emulator.api_client())
    role = rbac.read_namespaced_role("ascend-job-runner", namespace)
    rules = {(tuple(r.api_groups), tuple(r.resources)): set(r.verbs) for r in role.rules}
    assert rules[(("batch",), ("jobs",))] >= {"create", "get", "list", "watch", "delete"}
    assert rules[(("",), ("pods", "pods/log", "events"))] == {"get", "list", "watch"}
    assert rules[(("",), ("secrets",))] == {"get"}  # one Secret, by name: the signing key
    (secret_rule,) = [r for r in role.rules if r.resources == ["secrets"]]
    assert secret_rule.resource_names == ["ascend-signing-key"]
    key = client.CoreV1Api(emulator.api_client()).read_namespaced_secret(
        "ascend-signing-key", namespace
    )
    assert set(key.data) == {"current", "previous"}
    binding = rbac.read_namespaced_role_binding("ascend-job-runner", namespace)
    assert {s.kind for s in binding.subjects} == {"ServiceAccount", "User"}
    project = ascend_cli("admin", "add-user", "--project", f"fraud-{emulator.user}")
    assert project.stdout.startswith(f"ascend-projects-fraud-{emulator.user}: created namespace")


def test_project_jobs_run_in_the_project_namespace(
    kube: ClusterUnderTest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    project = f"fraud-{kube.user}"
    repo = tmp_path / project
    repo.mkdir()
    for command in (
        ["git", "init", "-q"],
        ["git", "remote", "add", "origin", f"git@example.com:org/{project}.git"],
    ):
        subprocess.run(command, cwd=repo, check=True)
    monkeypatch.chdir(repo)
    kube.set_up(f"ascend-projects-{project}")

    @ascend(timeout=60, project=True, stream_logs=False)
    def in_project() -> str:
        return "ok"

    handle = in_project.submit()
    assert handle.result(timeout=60) == "ok"
    assert handle.metadata()["compute"]["handle"].startswith(f"ascend-projects-{project}/")
    assert handle.metadata()["project"] == project


@ascend(timeout=60, memory="100Mi", stream_logs=False)
def talk_then_hog() -> int:
    print("about to allocate", flush=True)
    blocks = [bytearray(50 * 1024 * 1024) for _ in range(8)]
    return len(blocks)


def test_logs_of_a_killed_runner_are_saved_from_the_cluster(kube: ClusterUnderTest) -> None:
    handle = talk_then_hog.submit()
    with pytest.raises(OutOfMemoryError):
        handle.result(timeout=60)
    assert "about to allocate" in handle.logs()


def test_finished_job_gets_the_short_ttl_once_logs_are_saved(kube: ClusterUnderTest) -> None:
    from kubernetes import client

    handle = double.submit(3)
    assert handle.result(timeout=60) == 6
    job = client.BatchV1Api(kube.api_client()).read_namespaced_job(
        f"ascend-{handle.job_id}", kube.namespace
    )
    assert job.spec.ttl_seconds_after_finished == 300


@ascend(timeout=60, stream_logs=False)
def vanish() -> None:
    print("leaving without a word", flush=True)
    time.sleep(0.3)  # output written in the very instant of a hard exit can be lost
    os._exit(3)


def test_container_exiting_without_a_result_gives_exit_code_and_last_lines(
    kube: ClusterUnderTest,
) -> None:
    from ascend import JobFailedError

    handle = vanish.submit()
    with pytest.raises(JobFailedError) as caught:
        handle.result(timeout=60)
    assert caught.value.evidence["exit_code"] == 3
    assert "leaving without a word" in "\n".join(caught.value.evidence["last_log_lines"])
    assert handle.metadata()["status"] == "failed"


def test_retries_survive_an_oom_kill_of_the_first_attempt(
    kube: ClusterUnderTest, tmp_path: Path
) -> None:
    marker = tmp_path / "first-attempt"

    @ascend(timeout=60, memory="100Mi", retries=1, stream_logs=False)
    def flaky(path: str) -> str:
        if not os.path.exists(path):
            open(path, "w").close()
            hog = [bytearray(50 * 1024 * 1024) for _ in range(8)]
            return str(len(hog))
        return "second attempt"

    handle = flaky.submit(str(marker))
    assert handle.result(timeout=60) == "second attempt"
    assert handle.status() == "succeeded"


def test_done_and_cancel_of_a_finished_job(kube: ClusterUnderTest) -> None:
    from kubernetes import client

    handle = nap.submit(1)
    assert handle.done() is False
    assert handle.result(timeout=60) == "rested"
    assert handle.done() is True
    handle.cancel()  # finished: nothing to do
    assert handle.status() == "succeeded"
    job = client.BatchV1Api(kube.api_client()).read_namespaced_job(
        f"ascend-{handle.job_id}", kube.namespace
    )
    assert job.metadata.name == f"ascend-{handle.job_id}"  # not deleted by the late cancel


# -- nodes the cluster autoscaler is still adding ----------------------------------------------


class LatePool:
    """A node type whose pool has no node yet (an AKS GPU pool scaled to zero)."""

    @ascend_hookimpl
    def ascend_node_types(self):
        return [NodeType("late", node_selector=(("pool", "late"),))]


def _pending_pod(kube: ClusterUnderTest, job_id: str, namespace: str | None = None) -> str:
    from kubernetes import client

    namespace = namespace or kube.namespace
    core = client.CoreV1Api(kube.api_client())
    for _ in range(200):
        pods = core.list_namespaced_pod(namespace, label_selector=f"job-name=ascend-{job_id}")
        if pods.items:
            return str(pods.items[0].metadata.name)
        time.sleep(0.05)
    raise AssertionError("the job's pod never appeared")


def _autoscaler_says(
    kube: ClusterUnderTest, pod: str, reason: str, message: str, namespace: str | None = None
) -> None:
    from kubernetes import client

    namespace = namespace or kube.namespace
    client.CoreV1Api(kube.api_client()).create_namespaced_event(
        namespace,
        {
            "metadata": {"name": f"{pod}.{uuid.uuid4().hex[:8]}"},
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": namespace},
            "reason": reason,
            "message": message,
            "type": "Normal",
            "source": {"component": "cluster-autoscaler"},
        },
    )


@contextlib.contextmanager
def _node_joins_after(kube: ClusterUnderTest, seconds: float) -> Any:
    """A node of the late pool joins ``seconds`` into the block (the autoscaler's new node)."""
    from kubernetes import client

    def join() -> None:
        time.sleep(seconds)
        client.CoreV1Api(kube.api_client()).patch_node(
            kube.node_name, {"metadata": {"labels": {"pool": "late"}}}
        )

    joiner = threading.Thread(target=join)
    joiner.start()
    try:
        yield
    finally:
        joiner.join()


@pytest.fixture
def late_pool(kube: ClusterUnderTest, register_plugin: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    register_plugin(LatePool(), "late-pool")
    monkeypatch.setenv("ASCEND_KUBERNETES_PENDING_TIMEOUT", "1")
    monkeypatch.setenv("ASCEND_KUBERNETES_SCALE_UP_TIMEOUT", "60")

    @ascend(timeout=60, stream_logs=False, node_type="late")
    def on_late_node() -> str:
        return "ran on the new node"

    return on_late_node


@pytest.mark.emulator_only("labels the node as the autoscaler's new one")
def test_a_pod_waits_past_pending_timeout_while_the_autoscaler_adds_a_node(
    kube: ClusterUnderTest, late_pool: Any
) -> None:
    from kubernetes import client

    handle = late_pool.submit()
    pod = _pending_pod(kube, handle.job_id)
    _autoscaler_says(kube, pod, "TriggeredScaleUp", "pod triggered scale-up: [{aks-late 0->1}]")

    started = time.monotonic()
    with _node_joins_after(kube, 3.0):  # well after pending_timeout, while result() waits
        assert handle.result(timeout=60) == "ran on the new node"
    assert time.monotonic() - started > 2.5
    job = client.BatchV1Api(kube.api_client()).read_namespaced_job(
        f"ascend-{handle.job_id}", kube.namespace
    )
    # the Job's own deadline leaves room for the wait and the image pull
    assert job.spec.active_deadline_seconds > 60 + 60


@pytest.mark.emulator_only("labels the node as the autoscaler's new one")
def test_an_autoscaler_that_cannot_help_fails_at_pending_timeout(
    kube: ClusterUnderTest, late_pool: Any
) -> None:
    handle = late_pool.submit()
    pod = _pending_pod(kube, handle.job_id)
    _autoscaler_says(kube, pod, "NotTriggerScaleUp", "pod didn't trigger scale-up: no pool")
    with pytest.raises(UnschedulableError) as caught:
        handle.result(timeout=60)
    assert any("NotTriggerScaleUp" in event for event in caught.value.evidence["events"])


@ascend(timeout=2, retries=2, stream_logs=False)
def overrun_with_retries() -> None:
    time.sleep(30)


def test_an_overrun_is_a_timeout_and_is_not_retried(kube: ClusterUnderTest) -> None:
    from kubernetes import client

    handle = overrun_with_retries.submit()
    with pytest.raises(JobTimeoutError):
        handle.result(timeout=60)
    pods = client.CoreV1Api(kube.api_client()).list_namespaced_pod(
        kube.namespace, label_selector=f"job-name=ascend-{handle.job_id}"
    )
    codes = [
        s.state.terminated.exit_code
        for p in pods.items
        for s in p.status.container_statuses or []
        if s.state.terminated
    ]
    assert len(pods.items) == 1, codes  # the same overrun again would only cost more


@pytest.mark.emulator_only("labels the node as the autoscaler's new one")
def test_scale_up_is_seen_for_long_job_names_whose_pod_names_are_cut(
    kube: ClusterUnderTest, late_pool: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the API server cuts a generateName base to 58 characters: pod names then do not start
    # with the Job's name, and events must be matched through the pods' job-name label
    monkeypatch.setenv("ASCEND_USERNAME", "christopher1")
    monkeypatch.setenv("ASCEND_PROJECT", "data-pipelines2")
    namespace = "ascend-users-christopher1"
    kube.set_up(namespace)
    handle = late_pool.submit()
    job_name = f"ascend-{handle.job_id}"
    assert len(job_name) > 58
    pod = _pending_pod(kube, handle.job_id, namespace)
    assert not pod.startswith(job_name + "-")
    _autoscaler_says(
        kube, pod, "TriggeredScaleUp", "pod triggered scale-up: [{aks-late 0->1}]", namespace
    )
    with _node_joins_after(kube, 3.0):
        assert handle.result(timeout=60) == "ran on the new node"


def test_the_in_house_registry_names_the_jobs_image_on_the_generic_provider(
    kube: ClusterUnderTest, register_plugin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernetes import client

    from ascend.backend import clear_backend_cache
    from tests.plugins import acme_registry

    register_plugin(acme_registry, "acme-registry")
    monkeypatch.delenv("ASCEND_IMAGES_RUNTIME")
    monkeypatch.setenv("ASCEND_REGISTRY_URL", "registry.example.com")  # the core's default
    monkeypatch.setenv("ASCEND_ACME_REGISTRY_HOST", "registry.acme.internal")
    clear_backend_cache()
    from ascend.kubernetes.manifest import job_name

    handle = double.submit(2)
    try:
        job = client.BatchV1Api(kube.api_client()).read_namespaced_job(
            job_name(handle.job_id), kube.namespace
        )
    finally:
        handle.cancel()
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    images = [c.image for c in job.spec.template.spec.containers]
    assert images == [f"registry.acme.internal/ascend-runtime:py{minor}"]


def test_no_registry_and_no_runtime_image_is_a_clear_error(
    kube: ClusterUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ascend import BackendNotAvailableError
    from ascend.backend import clear_backend_cache

    monkeypatch.delenv("ASCEND_IMAGES_RUNTIME")
    clear_backend_cache()
    with pytest.raises(BackendNotAvailableError, match="registry") as caught:
        double(1)
    assert "registry_url" in (caught.value.fix or "")


@pytest.mark.emulator_only("the Job controller's Complete held off for 30 s")
def test_a_result_comes_back_without_waiting_for_the_jobs_complete(
    make_kube_emulator: Any, ascend_pm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A real Job controller says Complete about a second after the pod ends (it batches pod
    updates); the pod's Succeeded and the runner's signed result already say everything."""
    emulator = emulated(make_kube_emulator(job_batch_period=30.0))  # Complete 30 s after the pod
    configure(monkeypatch, emulator, f"file://{tmp_path}/store")
    handle = double.submit(4)
    # a wait for Complete would still be waiting after 20 s (TimeoutError): nothing else
    # touches the Job while the call waits
    assert handle.result(timeout=20) == 8
    assert handle.metadata()["status"] == "succeeded"
    # done before the controller says so: neither this handle nor another one cancels it now
    assert handle.done() and attach(handle.job_id).done()
    handle.cancel()
    attach(handle.job_id).cancel()
    from kubernetes import client

    job = client.BatchV1Api(emulator.api_client()).read_namespaced_job(
        f"ascend-{handle.job_id}", emulator.namespace
    )
    assert job.metadata.deletion_timestamp is None
    assert handle.status() == "succeeded"
