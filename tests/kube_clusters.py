"""One suite, two clusters: the ``kube_cluster`` fixture runs a test against the Kubernetes API
emulator and against the real control plane (``bash .ci/services.sh start kube``) with a
process kubelet as its node.

- A test that takes ``kube_cluster`` (or a fixture built on it) runs twice, ``[emulator]`` and
  ``[real]``. ``@pytest.mark.emulator_only("why")`` keeps it to the emulator, for what only
  the emulator can do (add nodes, hold the Job controller, forbid a verb).
- On the real cluster each test owns a fresh user and namespace, removed afterwards, so tests
  never see each other's Jobs; on the emulator (a fresh one per test) the user is ``alice``.
- Without the kube service the ``[real]`` runs skip with the command that starts it; with
  ``ASCEND_REQUIRE_SERVICES=1`` (CI) they fail.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ascend.testing.kube import KubeEmulator
from ascend.testing.kube.real import RealCluster
from ascend.testing.kube.users import set_up_namespace

from . import services

KINDS = ("emulator", "real")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "emulator_only(reason): run only against the Kubernetes API emulator"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cluster_kind" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("emulator_only")
        metafunc.parametrize("cluster_kind", ("emulator",) if only else KINDS)


class ClusterUnderTest:
    """One test's cluster: the emulator or the real one, with the user and namespace the test
    owns. Attributes it does not define come from the cluster itself."""

    def __init__(self, cluster: KubeEmulator | RealCluster, user: str) -> None:
        self.cluster = cluster
        self.user = user
        self.kind = cluster.kind

    @property
    def namespace(self) -> str:
        return f"ascend-users-{self.user}"

    @property
    def real(self) -> bool:
        return self.kind == "real"

    def running_pids(self) -> list[int]:
        """Container processes of this test's namespace that are alive now."""
        return self.cluster.running_pids(self.namespace)

    def set_up(self, namespace: str | None = None) -> list[str]:
        """``ascend admin add-user``'s set-up of ``namespace`` (default: the test's own)."""
        return set_up_namespace(self.cluster, namespace or self.namespace)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cluster, name)


@pytest.fixture(scope="session")
def real_kube_cluster() -> Iterator[RealCluster]:
    """The real control plane with this process's kubelet joined (started once)."""
    services.require("kube")
    cluster = RealCluster.from_environment()
    assert cluster is not None, "the kube service is reachable but its environment is incomplete"
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def kube_cluster(
    cluster_kind: str, make_kube_emulator: Callable[..., KubeEmulator], request: Any
) -> Iterator[ClusterUnderTest]:
    if cluster_kind == "emulator":
        yield ClusterUnderTest(make_kube_emulator(), "alice")
        return
    real: RealCluster = request.getfixturevalue("real_kube_cluster")
    # short: Ascend cuts user and project names to 12 characters in job ids and namespaces
    under_test = ClusterUnderTest(real, f"t{uuid.uuid4().hex[:5]}")
    yield under_test
    _remove_namespaces(real, under_test)


def _remove_namespaces(real: RealCluster, under_test: ClusterUnderTest) -> None:
    """Delete the test's namespaces and wait (15 s at most) until none of their pods runs, so
    the next test finds the node's capacity free."""
    from kubernetes import client

    core = client.CoreV1Api(real.api_client())
    owned = [
        ns.metadata.name
        for ns in core.list_namespace().items
        if under_test.user in ns.metadata.name and not ns.metadata.deletion_timestamp
    ]
    for name in owned:
        try:
            core.delete_namespace(name)
        except client.ApiException as error:
            if error.status != 404:
                raise
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(real.running_pids(name) for name in owned):
        time.sleep(0.1)
