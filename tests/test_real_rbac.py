"""Real RBAC on the real control plane: after ``ascend admin add-user``, a person authenticated as
themselves (a client certificate from the cluster's CertificateSigningRequest API, not the
admin) runs, watches, reads and cancels jobs in their namespace, and is refused elsewhere with
an error that names the refused permission, says why, and who can fix it.

The emulator has no authentication; its refusals (``forbid``) are covered at the end.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from ascend import ClusterForbiddenError, JobCancelledError, ascend
from ascend.testing.kube.real import RealCluster

from .test_e2e_kubernetes import DEV_RUNTIME_IMAGE

pytestmark = pytest.mark.timeout(120)


@ascend(timeout=60)
def greet(name: str) -> str:
    print(f"hello {name}", flush=True)
    return f"hi {name}"


@ascend(timeout=60, stream_logs=False)
def linger(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


class People:
    """Users of one test (unique names), their kubeconfigs, and the admin's CLI."""

    def __init__(self, cluster: RealCluster, tmp_path: Path, ascend_cli: Any, monkeypatch: Any):
        self.cluster = cluster
        self.tmp_path = tmp_path
        self.cli = ascend_cli
        self.monkeypatch = monkeypatch
        self.suffix = uuid.uuid4().hex[:4]
        self.created: list[str] = []

    def name(self, person: str) -> str:
        return f"{person}-{self.suffix}"

    def add_user(self, person: str) -> str:
        """``ascend admin add-user`` run by the cluster admin; returns the namespace."""
        self.as_admin()
        result = self.cli("admin", "add-user", self.name(person))
        assert result.exit_code == 0, result.output
        namespace = f"ascend-users-{self.name(person)}"
        self.created.append(namespace)
        return namespace

    def as_admin(self) -> None:
        self._configure(self.cluster.kubeconfig, "admin")

    def act_as(self, person: str, namespace: str | None = None) -> None:
        """Ascend configured the way ``person`` has it: their own certificate, their name."""
        path = self.tmp_path / f"{person}.kubeconfig"
        if not path.exists():
            self.cluster.user_kubeconfig(self.name(person), path)
        self._configure(path, self.name(person), namespace)

    def _configure(self, kubeconfig: Path, user: str, namespace: str | None = None) -> None:
        from ascend.backend import clear_backend_cache

        patch = self.monkeypatch
        patch.setenv("ASCEND_CLOUD_PROVIDER", "kubernetes")
        patch.setenv("ASCEND_STORAGE_URL", f"file://{self.tmp_path}/store")
        patch.setenv("ASCEND_KUBERNETES_KUBECONFIG", str(kubeconfig))
        patch.setenv("ASCEND_IMAGES_RUNTIME", DEV_RUNTIME_IMAGE)
        patch.setenv("ASCEND_USERNAME", user)
        if namespace:
            patch.setenv("ASCEND_KUBERNETES_NAMESPACE", namespace)
        else:
            patch.delenv("ASCEND_KUBERNETES_NAMESPACE", raising=False)
        clear_backend_cache()

    def remove(self) -> None:
        from kubernetes import client

        core = client.CoreV1Api(self.cluster.api_client())
        for namespace in self.created:
            try:
                core.delete_namespace(namespace)
            except client.ApiException as error:
                if error.status != 404:
                    raise


@pytest.fixture
def people(
    real_kube_cluster: RealCluster,
    ascend_pm: Any,
    ascend_cli: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    group = People(real_kube_cluster, tmp_path, ascend_cli, monkeypatch)
    yield group
    group.remove()


def test_a_person_runs_watches_reads_and_cancels_in_their_namespace(
    people: People, capfd: pytest.CaptureFixture[str]
) -> None:
    namespace = people.add_user("alice")
    people.act_as("alice")
    from ascend import get_backend

    assert greet("alice") == "hi alice"  # submit, watch, stream the pod's log
    assert "hello alice" in capfd.readouterr().out
    handle = linger.submit(60)
    deadline = time.monotonic() + 30
    while handle.status() != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    handle.cancel()
    with pytest.raises(JobCancelledError):
        handle.result(timeout=30)
    assert handle.metadata()["compute"]["handle"].startswith(f"{namespace}/")
    # it was alice, not the admin: the cluster says so
    from ascend.kubernetes.access import who_am_i

    assert who_am_i(get_backend().compute._api()) == people.name("alice")


def test_another_persons_namespace_is_refused_naming_the_permission_and_the_way_in(
    people: People,
) -> None:
    people.add_user("alice")
    bobs = people.add_user("bob")
    people.act_as("alice", namespace=bobs)
    alice = people.name("alice")
    with pytest.raises(ClusterForbiddenError) as caught:
        greet("bob")
    error = caught.value
    assert error.namespace == bobs and error.user == alice
    assert error.permission == "get secrets"  # the signing key is the first thing read
    assert f"namespace {bobs!r} is not yours" in str(error)
    assert f"use your own namespace (ascend-users-{alice})" in (error.fix or "")
    assert (
        f"kubectl -n {bobs} create rolebinding ascend-{alice} --role=ascend-job-runner "
        f"--user={alice}" in (error.fix or "")
    )
    assert "add-user bob" not in str(error)  # bob is set up; alice's rights are the problem


def test_a_person_not_set_up_yet_is_told_the_command_that_sets_them_up(people: People) -> None:
    people.act_as("carol")
    carol = people.name("carol")
    with pytest.raises(ClusterForbiddenError) as caught:
        greet("carol")
    assert f"namespace 'ascend-users-{carol}' is not set up for you yet" in str(caught.value)
    assert caught.value.fix == f"ask a cluster admin to run: ascend admin add-user {carol}"


def test_a_role_missing_one_right_is_named_and_add_user_restores_it(people: People) -> None:
    from kubernetes import client

    namespace = people.add_user("dave")
    rbac = client.RbacAuthorizationV1Api(people.cluster.api_client())
    role = rbac.read_namespaced_role("ascend-job-runner", namespace)
    for rule in role.rules:  # an older role: jobs may be created but not deleted
        if "jobs" in rule.resources:
            rule.verbs = [v for v in rule.verbs if v != "delete"]
    rbac.replace_namespaced_role("ascend-job-runner", namespace, role)
    people.act_as("dave")
    handle = linger.submit(30)
    with pytest.raises(ClusterForbiddenError) as caught:
        handle.cancel()
    assert caught.value.permission == "delete jobs.batch"
    assert "your role there lacks this right" in str(caught.value)
    assert caught.value.fix == (
        f"ask a cluster admin to run: ascend admin add-user {people.name('dave')} "
        "(it restores the role ascend-job-runner)"
    )
    people.as_admin()
    rbac.delete_namespaced_role("ascend-job-runner", namespace)
    assert people.cli("admin", "add-user", people.name("dave")).exit_code == 0
    people.act_as("dave")
    from ascend import attach

    attach(handle.job_id).cancel()  # restored: the same person may cancel now
    with pytest.raises(JobCancelledError):
        attach(handle.job_id).result(timeout=30)


def test_on_a_cluster_that_cannot_review_rights_the_error_still_names_the_permission(
    make_kube_emulator: Any, ascend_pm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The emulator answers no SelfSubjectReview or SelfSubjectRulesReview, as an old API
    server would not: the refused permission and both likely fixes are still given."""
    from .test_e2e_kubernetes import configure

    emulator = make_kube_emulator()
    configure(monkeypatch, emulator, f"file://{tmp_path}/store")
    emulator.forbid("create", "jobs")
    with pytest.raises(ClusterForbiddenError) as caught:
        greet("x")
    error = caught.value
    assert (error.permission, error.user) == ("create jobs.batch", "system:anonymous")
    assert str(error).startswith(
        "the cluster refused to create the job in namespace 'ascend-users-alice': you "
        "('system:anonymous') may not create jobs.batch there: either the namespace is not set "
        "up for you yet, or it is someone else's"
    )
    assert error.fix == (
        "for your own namespace, ask a cluster admin to run: ascend admin add-user alice; for "
        "another's, ask a cluster admin to grant you ('system:anonymous') ascend-job-runner there"
    )
