"""Fail fast when nothing can ever fit (issue 10, point 4), against the Kubernetes emulator.

A request larger than every node's allocatable resources is an ``UnschedulableError`` at
submit, naming the largest node, before any Job is created or anything uploaded; a request
that could fit later (a busy node, a pool that may grow, nodes that cannot be listed) is
created and waits as before.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ascend import NodeType, UnschedulableError, ascend, hookimpl
from ascend.kubernetes.capacity import NodeLister
from ascend.testing.kube import KubeEmulator
from ascend.testing.kube.users import set_up_namespace

USER = "alice"
NAMESPACE = f"ascend-users-{USER}"
NODE = "ascend-emulator-node"  # the emulator's own node: 4 cpu, 8Gi, no GPU
NODES_PATH = "/api/v1/nodes"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def kube(
    make_kube_emulator: Any, ascend_pm: Any, monkeypatch: pytest.MonkeyPatch, store: Path
) -> KubeEmulator:
    emulator = make_kube_emulator()
    for name, value in {
        "ASCEND_CLOUD_PROVIDER": "kubernetes",
        "ASCEND_STORAGE_URL": f"file://{store}",
        "ASCEND_KUBERNETES_KUBECONFIG": str(emulator.kubeconfig),
        "ASCEND_IMAGES_RUNTIME": "ascend-runtime:dev",
        "ASCEND_USERNAME": USER,
        "ASCEND_KUBERNETES_PENDING_TIMEOUT": "300",  # what failing fast saves
    }.items():
        monkeypatch.setenv(name, value)
    set_up_namespace(emulator, NAMESPACE)
    return emulator


class Catalog:
    """Node types whose pools the tests give nodes (or none)."""

    @hookimpl
    def ascend_node_types(self) -> list[NodeType]:
        return [
            NodeType("small", node_selector=(("pool", "small"),)),
            NodeType("mixed", node_selector=(("pool", "mixed"),)),
            NodeType("late", node_selector=(("pool", "late"),)),  # scaled to zero
            NodeType(
                "gpu-x2",
                gpus=2,
                node_selector=(("pool", "gpu"),),
                tolerations=(
                    (("key", "nvidia.com/gpu"), ("operator", "Exists"), ("effect", "NoSchedule")),
                ),
            ),
        ]


@pytest.fixture
def catalog(kube: KubeEmulator, register_plugin: Any) -> KubeEmulator:
    register_plugin(Catalog(), "capacity-catalog")
    return kube


@ascend(memory="16Gi", timeout=60, stream_logs=False)
def needs_16gi() -> str:
    return "ran"


@ascend(cpu="16", timeout=60, stream_logs=False)
def needs_16_cpus() -> str:
    return "ran"


@ascend(timeout=60, stream_logs=False)
def small() -> str:
    return "ran"


def jobs(kube: KubeEmulator) -> list[str]:
    from kubernetes import client

    listed = client.BatchV1Api(kube.api_client()).list_namespaced_job(NAMESPACE)
    return [job.metadata.name for job in listed.items]


def stored_files(store: Path) -> list[Path]:
    return [path for path in store.rglob("*") if path.is_file()] if store.exists() else []


def refused(fn: Any) -> UnschedulableError:
    """The error submitting ``fn`` raises at once (well within pending_timeout)."""
    started = time.monotonic()
    try:
        handle = fn.submit()
    except UnschedulableError as error:
        assert time.monotonic() - started < 10
        return error
    handle.cancel()
    raise AssertionError(f"job {handle.job_id} was submitted: the request was not refused")


def wait_for_pod(kube: KubeEmulator, job_id: str, *, unschedulable: bool = False) -> Any:
    """The job's pod, once it exists (and, with ``unschedulable``, once the scheduler has
    said it does not fit now)."""
    from kubernetes import client

    core = client.CoreV1Api(kube.api_client())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name=ascend-{job_id}")
        for pod in pods.items:
            conditions = pod.status.conditions or []
            if not unschedulable or any(
                c.type == "PodScheduled" and c.status == "False" for c in conditions
            ):
                return pod
        time.sleep(0.05)
    raise AssertionError(f"the pod of job {job_id} never appeared (unschedulable={unschedulable})")


# -- refused at once ----------------------------------------------------------------------------


def test_more_memory_than_any_node_fails_at_once_naming_the_largest_node(
    kube: KubeEmulator, store: Path
) -> None:
    kube.requests.reset()
    started = time.monotonic()
    with pytest.raises(UnschedulableError) as caught:
        needs_16gi()  # the plain call: it would wait pending_timeout (300 s) before
    assert time.monotonic() - started < 10
    error = caught.value
    assert f"the largest node by memory, {NODE}, has 4 cpu, 8Gi memory allocatable" in str(error)
    assert "asks for 1 cpu, 16Gi memory" in str(error)
    assert error.evidence["reason"] == "TooLargeForAnyNode"
    assert error.evidence["largest_node"] == NODE
    assert error.evidence["allocatable"]["memory"] == "8Gi"
    assert error.evidence["requested"] == {"cpu": "1", "memory": "16Gi"}
    assert error.evidence["short_of"] == ["memory"]
    assert error.fix is not None and "memory='8Gi'" in error.fix
    assert error.job_id
    # nothing reached the cluster or the storage
    assert jobs(kube) == []
    assert kube.requests.matching("POST") == 0
    assert stored_files(store) == []
    assert kube.requests.matching("GET", NODES_PATH) == 1


def test_more_cpu_than_any_node_names_cpu(kube: KubeEmulator, store: Path) -> None:
    error = refused(needs_16_cpus)
    assert "asks for more cpu than any node can ever give it" in str(error)
    assert f"the largest node by cpu, {NODE}, has 4 cpu" in str(error)
    assert error.evidence["allocatable"]["cpu"] == "4"
    assert error.fix is not None and "cpu='4'" in error.fix
    assert jobs(kube) == [] and stored_files(store) == []


def test_allocatable_counts_not_capacity(kube: KubeEmulator) -> None:
    """A node whose kubelet reserves part of it offers pods only its allocatable."""
    from kubernetes import client

    client.CoreV1Api(kube.api_client()).patch_node_status(
        NODE, {"status": {"capacity": {"memory": "16Gi"}, "allocatable": {"memory": "7864320Ki"}}}
    )
    error = refused(needs_16gi)
    assert "7.5Gi memory allocatable" in str(error)
    assert error.fix is not None and "memory='7.5Gi'" in error.fix


def test_more_gpus_than_any_node_of_the_node_type(catalog: KubeEmulator) -> None:
    kube = catalog
    kube.add_node(
        "gpu-1",
        cpu="8",
        memory="32Gi",
        gpu=1,
        labels={"pool": "gpu"},
        taints=["nvidia.com/gpu=present:NoSchedule"],  # tolerated by the node type
    )
    kube.add_node("gpu-elsewhere", cpu="8", memory="32Gi", gpu=4, labels={"pool": "other"})

    @ascend(node_type="gpu-x2", timeout=60, stream_logs=False)
    def train() -> str:
        return "ran"

    error = refused(train)
    text = str(error)
    assert "asks for more GPUs than any node of node_type 'gpu-x2' (pool=gpu)" in text
    assert "the largest node by GPUs, gpu-1, has 8 cpu, 32Gi memory, 1 GPU allocatable" in text
    assert error.evidence["largest_node"] == "gpu-1"
    assert error.evidence["allocatable"]["nvidia.com/gpu"] == "1"
    assert error.evidence["requested"]["nvidia.com/gpu"] == "2"
    assert error.fix is not None and "pick a node_type with at most 1 GPU," in error.fix
    assert jobs(kube) == []


def test_a_node_type_whose_nodes_are_too_small_names_its_largest_node(
    catalog: KubeEmulator,
) -> None:
    kube = catalog  # the emulator's own node (8Gi) has no pool label
    kube.add_node("small-1", cpu="2", memory="4Gi", labels={"pool": "small"})
    kube.add_node("small-2", cpu="2", memory="6Gi", labels={"pool": "small"})

    @ascend(node_type="small", memory="7Gi", timeout=60, stream_logs=False)
    def fits_elsewhere_only() -> str:
        return "ran"

    error = refused(fits_elsewhere_only)
    text = str(error)
    assert "than any node of node_type 'small' (pool=small)" in text
    assert "the largest node by memory, small-2, has 2 cpu, 6Gi memory allocatable" in text
    assert NODE not in text
    assert error.evidence["largest_node"] == "small-2"
    assert error.fix is not None and "memory='6Gi'" in error.fix
    assert "bigger nodes than 'small'" in error.fix
    assert jobs(kube) == []


def test_no_single_node_with_all_of_it_names_the_closest(catalog: KubeEmulator) -> None:
    kube = catalog
    kube.add_node("wide", cpu="8", memory="4Gi", labels={"pool": "mixed"})
    kube.add_node("tall", cpu="2", memory="16Gi", labels={"pool": "mixed"})

    @ascend(node_type="mixed", cpu="6", memory="8Gi", timeout=60, stream_logs=False)
    def both() -> str:
        return "ran"

    error = refused(both)
    assert "asks for more than any single node of node_type 'mixed'" in str(error)
    assert "the closest, wide, has 8 cpu, 4Gi memory allocatable (too little memory)" in str(error)
    assert error.evidence["short_of"] == ["memory"]
    assert jobs(kube) == []


def test_a_cordoned_node_does_not_count(kube: KubeEmulator) -> None:
    kube.add_node("big-cordoned", cpu="32", memory="64Gi", unschedulable=True)
    error = refused(needs_16gi)
    assert error.evidence["largest_node"] == NODE
    assert "big-cordoned" not in str(error)
    assert jobs(kube) == []


def test_a_node_tainted_against_the_pod_does_not_count(kube: KubeEmulator) -> None:
    kube.add_node("big-infra", cpu="32", memory="64Gi", taints=["dedicated=infra:NoSchedule"])
    error = refused(needs_16gi)
    assert error.evidence["largest_node"] == NODE
    assert jobs(kube) == []


# -- proceeds: it may fit later, or the cluster cannot tell --------------------------------------


def test_a_bigger_node_lets_the_call_proceed(kube: KubeEmulator) -> None:
    kube.add_node("big", cpu="32", memory="64Gi")  # no kubelet: the pod stays Pending there
    handle = needs_16gi.submit()
    try:
        assert jobs(kube) == [f"ascend-{handle.job_id}"]
    finally:
        handle.cancel()


def test_a_request_that_fits_a_busy_node_is_created_and_waits(kube: KubeEmulator) -> None:
    @ascend(cpu="3", timeout=60, stream_logs=False)
    def occupy() -> None:
        time.sleep(60)

    @ascend(cpu="2", timeout=60, stream_logs=False)
    def later() -> str:
        return "ran"

    busy = occupy.submit()
    waiting = None
    try:
        wait_for_pod(kube, busy.job_id)
        deadline = time.monotonic() + 30
        while not kube.running_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        waiting = later.submit()  # 2 of 4 cpu, 3 taken: fits the node, not what is free now
        pod = wait_for_pod(kube, waiting.job_id, unschedulable=True)
        scheduled = [c for c in pod.status.conditions if c.type == "PodScheduled"]
        assert "Insufficient cpu" in scheduled[0].message
        assert f"ascend-{waiting.job_id}" in jobs(kube)
        assert not waiting.done()  # waiting for the cpu, up to pending_timeout (300 s)
    finally:
        for handle in (waiting, busy):
            if handle is not None:
                handle.cancel()


def test_nodes_that_cannot_be_listed_let_the_call_proceed(
    kube: KubeEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    kube.forbid("list", "nodes")  # a user set up before add-user granted read on nodes
    kube.requests.reset()
    with caplog.at_level(logging.DEBUG, logger="ascend.kubernetes.capacity"):
        handle = needs_16gi.submit()
    try:
        assert kube.requests.matching("GET", NODES_PATH) == 1  # asked, and was refused
        assert jobs(kube) == [f"ascend-{handle.job_id}"]
        assert "cannot list nodes: HTTP 403 Forbidden" in caplog.text
    finally:
        handle.cancel()


def test_the_emulator_refuses_a_forbidden_list_with_a_real_status(kube: KubeEmulator) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    kube.forbid("list", "nodes")
    core = client.CoreV1Api(kube.api_client())
    with pytest.raises(ApiException) as caught:
        core.list_node()
    assert caught.value.status == 403
    assert '"reason":"Forbidden"' in caught.value.body.replace(" ", "")
    assert 'cannot list resource \\"nodes\\" in API group \\"\\" at the cluster scope' in (
        caught.value.body
    )
    assert core.read_node(NODE).metadata.name == NODE  # only what was forbidden
    kube.allow("list", "nodes")
    assert len(core.list_node().items) == 1


def test_a_node_type_with_no_node_yet_proceeds(catalog: KubeEmulator) -> None:
    kube = catalog

    @ascend(node_type="late", memory="16Gi", timeout=60, stream_logs=False)
    def on_late_pool() -> str:
        return "ran"

    handle = on_late_pool.submit()  # the pool may grow (scale from zero)
    try:
        assert jobs(kube) == [f"ascend-{handle.job_id}"]
    finally:
        handle.cancel()


def test_the_check_can_be_turned_off(kube: KubeEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASCEND_KUBERNETES_CAPACITY_CHECK", "false")
    kube.requests.reset()
    handle = needs_16gi.submit()
    try:
        assert jobs(kube) == [f"ascend-{handle.job_id}"]
        assert kube.requests.matching("GET", NODES_PATH) == 0
    finally:
        handle.cancel()


# -- one LIST for a burst -----------------------------------------------------------------------


def test_two_submits_in_a_row_cost_one_node_list(kube: KubeEmulator) -> None:
    kube.requests.reset()
    handles = [small.submit(), small.submit()]
    try:
        assert kube.requests.matching("GET", NODES_PATH) == 1
        assert len(jobs(kube)) == 2
        with pytest.raises(UnschedulableError):  # the cached list still judges
            needs_16gi()
        assert kube.requests.matching("GET", NODES_PATH) == 1
    finally:
        for handle in handles:
            handle.cancel()


def test_the_node_list_is_kept_30_seconds_and_shared_by_concurrent_callers(
    kube: KubeEmulator,
) -> None:
    from kubernetes import client

    now = [1000.0]
    lister = NodeLister(lambda: client.CoreV1Api(kube.api_client()), clock=lambda: now[0])
    kube.requests.reset()
    threads = [threading.Thread(target=lister.nodes, args=({},)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert kube.requests.matching("GET", NODES_PATH) == 1
    now[0] += 29
    assert [n["metadata"]["name"] for n in lister.nodes({}) or []] == [NODE]
    assert kube.requests.matching("GET", NODES_PATH) == 1
    now[0] += 2  # past 30 s: listed again
    lister.nodes({})
    assert kube.requests.matching("GET", NODES_PATH) == 2
    kube.forbid("list", "nodes")
    now[0] += 31
    assert lister.nodes({}) is None  # refused: no verdict...
    assert lister.nodes({}) is None  # ...and no LIST per call either
    assert kube.requests.matching("GET", NODES_PATH) == 3


# -- ascend admin add-user grants read on nodes --------------------------------------------------


def test_add_user_grants_read_on_nodes_once(kube: KubeEmulator, ascend_cli: Any) -> None:
    from kubernetes import client

    rbac = client.RbacAuthorizationV1Api(kube.api_client())
    first = ascend_cli("admin", "add-user", "carol")
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == (
        "ascend-users-carol: created namespace, service account, role, role binding, "
        "signing key"
    )
    assert first.stderr.strip() == (
        "cluster: created cluster role ascend-node-reader, cluster role binding "
        "ascend-node-reader-ascend-users-carol (read on nodes)"
    )
    role = rbac.read_cluster_role("ascend-node-reader")
    assert [(r.api_groups, r.resources, sorted(r.verbs)) for r in role.rules] == [
        ([""], ["nodes"], ["get", "list", "watch"])
    ]
    binding = rbac.read_cluster_role_binding("ascend-node-reader-ascend-users-carol")
    assert binding.role_ref.kind == "ClusterRole"
    assert binding.role_ref.name == "ascend-node-reader"
    assert {(s.kind, s.name, s.namespace) for s in binding.subjects} == {
        ("User", "carol", None),
        ("ServiceAccount", "ascend", "ascend-users-carol"),
    }

    again = ascend_cli("admin", "add-user", "carol")
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == "ascend-users-carol: already set up, nothing to do"
    assert again.stderr == ""

    other = ascend_cli("admin", "add-user", "dave")  # the cluster role exists already
    assert other.stderr.strip() == (
        "cluster: created cluster role binding ascend-node-reader-ascend-users-dave (read on nodes)"
    )
    names = [b.metadata.name for b in rbac.list_cluster_role_binding().items]
    assert sorted(names) == [
        "ascend-node-reader-ascend-users-carol",
        "ascend-node-reader-ascend-users-dave",
    ]
    assert len(rbac.list_cluster_role().items) == 1


def test_add_user_help_says_it_grants_read_on_nodes(ascend_cli: Any) -> None:
    shown = ascend_cli("admin", "add-user", "--help")
    assert "ascend-node-reader" in shown.output
