"""End to end with ``cloud_provider: azure``: Blob storage on Azurite, compute on the Kubernetes
API emulator and on the real control plane (``[emulator]``/``[real]``, tests/kube_clusters.py):
the official client, real Jobs, pods run as local processes by the real runner.

The caller reaches Azurite with a connection string; the pod gets it only through a
``secretKeyRef``, as a production pod would get it from a Secret.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from ascend import ascend

from .. import services
from ..kube_clusters import ClusterUnderTest

SECRET = "ascend-storage"

pytestmark = pytest.mark.timeout(120)


@ascend(timeout=60, stream_logs=False)
def square(x: int) -> int:
    print(f"squaring {x}")
    return x * x


class QuotaExceeded(Exception):
    pass


@ascend(timeout=60, stream_logs=False)
def over_quota(amount: int) -> None:
    raise QuotaExceeded(f"{amount} is over the quota")


@pytest.fixture
def azure_kube(
    kube_cluster: ClusterUnderTest,
    ascend_pm: Any,
    register_plugin: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> ClusterUnderTest:
    import ascend_azure.plugin

    connection_string = services.require("azurite")
    register_plugin(ascend_azure.plugin, "azure")
    emulator = kube_cluster
    for name, value in {
        "ASCEND_CLOUD_PROVIDER": "azure",
        "ASCEND_AZURE_CONTAINER": f"e2e-{uuid.uuid4().hex[:12]}",
        "ASCEND_AZURE_CONNECTION_STRING": connection_string,
        "ASCEND_AZURE_CONNECTION_STRING_SECRET": f"{SECRET}/connection-string",
        "ASCEND_KUBERNETES_KUBECONFIG": str(emulator.kubeconfig),
        "ASCEND_IMAGES_RUNTIME": "ascend-runtime:dev",
        "ASCEND_USERNAME": emulator.user,
    }.items():
        monkeypatch.setenv(name, value)
    emulator.set_up()
    from kubernetes import client

    client.CoreV1Api(emulator.api_client()).create_namespaced_secret(
        emulator.namespace,
        {
            "metadata": {"name": SECRET},
            "stringData": {"connection-string": connection_string},
        },
    )
    from ascend import get_backend

    get_backend().storage.ensure_container()
    return emulator


def test_a_call_runs_on_the_cluster_with_azure_storage(azure_kube: ClusterUnderTest) -> None:
    from ascend import get_backend

    backend = get_backend()
    assert backend.name == "azure"
    handle = square.submit(7)
    assert handle.result(timeout=60) == 49
    assert handle.logs() == "squaring 7\n"
    assert handle.metadata()["status"] == "succeeded"
    assert backend.answered_by["ascend_storage"] == "azure"
    prefix = f"users/{azure_kube.user}/jobs/{handle.job_id}/"
    stored = backend.storage.list(prefix)
    assert f"{prefix}result.pkl" in stored and f"{prefix}package.pkl" in stored
    for name in ("package.pkl", "result.pkl"):  # both directions signed, bound to the job
        header = _header(backend.storage.read(prefix + name))
        assert header["mac"] == "hmac-sha256" and header["job_id"] == handle.job_id


def _header(envelope: bytes) -> dict[str, object]:
    import json

    from ascend import wire

    start = len(wire.MAGIC) + 4
    length = int.from_bytes(envelope[len(wire.MAGIC) : start], "big")
    return dict(json.loads(envelope[start : start + length]))


def test_a_remote_exception_comes_back_with_its_type(azure_kube: ClusterUnderTest) -> None:
    with pytest.raises(QuotaExceeded, match="12 is over the quota") as caught:
        over_quota(12)
    assert any("Remote traceback" in note for note in caught.value.__notes__)


def test_the_connection_string_reaches_the_pod_only_as_a_secret_reference(
    azure_kube: ClusterUnderTest,
) -> None:
    from kubernetes import client

    from ascend import get_backend

    handle = square.submit(3)
    assert handle.result(timeout=60) == 9
    jobs = client.BatchV1Api(azure_kube.api_client()).list_namespaced_job(azure_kube.namespace)
    manifest = json.dumps(azure_kube.api_client().sanitize_for_serialization(jobs))
    assert get_backend().config.get("azure.connection_string") not in manifest
    assert "AccountKey" not in manifest
    env = {
        item.name: item for job in jobs.items for item in job.spec.template.spec.containers[0].env
    }
    reference = env["AZURE_STORAGE_CONNECTION_STRING"].value_from.secret_key_ref
    assert (reference.name, reference.key) == (SECRET, "connection-string")


def test_the_jobs_commands_read_the_record_from_blob_storage(
    azure_kube: ClusterUnderTest, ascend_cli: Any
) -> None:
    handle = square.submit(4)
    assert handle.result(timeout=60) == 16
    listed = ascend_cli("jobs", "list", "--json")
    assert listed.exit_code == 0, listed.output
    records = {record["job_id"]: record for record in json.loads(listed.output)}
    assert records[handle.job_id]["status"] == "succeeded"
    logs = ascend_cli("jobs", "logs", handle.job_id)
    assert logs.exit_code == 0 and "squaring 4" in logs.output


# -- one registry truth: the image on the Job is the registry the hooks answer -----------------


def _job_image(kube: ClusterUnderTest, job_id: str) -> str:
    """The image on the Job manifest the cluster received."""
    from kubernetes import client

    from ascend.kubernetes.manifest import job_name

    job = client.BatchV1Api(kube.api_client()).read_namespaced_job(job_name(job_id), kube.namespace)
    (container,) = job.spec.template.spec.containers
    return str(container.image)


@pytest.mark.parametrize("in_house", [False, True])
def test_the_job_runs_the_image_of_the_registry_the_hooks_answer(
    azure_kube: ClusterUnderTest,
    register_plugin: Any,
    monkeypatch: pytest.MonkeyPatch,
    in_house: bool,
) -> None:
    import sys

    from ascend.backend import clear_backend_cache

    monkeypatch.delenv("ASCEND_IMAGES_RUNTIME")
    monkeypatch.setenv("ASCEND_AZURE_REGISTRY", "myacr")
    if in_house:
        from tests.plugins import acme_registry

        register_plugin(acme_registry, "acme-registry")
        monkeypatch.setenv("ASCEND_ACME_REGISTRY_HOST", "registry.acme.internal")
    clear_backend_cache()
    handle = square.submit(3)
    try:
        image = _job_image(azure_kube, handle.job_id)
    finally:
        handle.cancel()
    host = "registry.acme.internal" if in_house else "myacr.azurecr.io"
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert image == f"{host}/ascend-runtime:py{minor}"
    assert handle.metadata()["image"] == image
