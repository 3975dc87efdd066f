"""``ascend azure doctor`` against real parts: Azurite, the Kubernetes emulator, a real OCI
registry and the fake ARM endpoint (for credentials and node pools)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from ascend.testing.kube import KubeEmulator
from ascend.testing.kube.users import set_up_namespace
from ascend_azure.doctor import FAIL, OK, SKIP, WARN, run_checks

from .. import services
from .conftest import CLUSTER, GROUP, SUBSCRIPTION, seed_cluster

USER = "alice"
NAMESPACE = f"ascend-users-{USER}"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def setup(
    make_kube_emulator: Any,
    fake_arm: Any,
    ascend_pm: Any,
    register_plugin: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """A complete Azure set-up: every check has something real to talk to."""
    import ascend_azure.plugin
    from ascend_azure import pools
    from ascend_azure.credentials import override_credential

    connection_string = services.require("azurite")
    registry = services.require("registry")
    register_plugin(ascend_azure.plugin, "azure")
    kube: KubeEmulator = make_kube_emulator()
    set_up_namespace(kube, NAMESPACE)
    from kubernetes import client

    client.CoreV1Api(kube.api_client()).create_namespaced_secret(
        NAMESPACE,
        {"metadata": {"name": "ascend-storage"}, "stringData": {"connection-string": "x"}},
    )
    seed_cluster(
        fake_arm, pools=[("system", "Standard_D4s_v5"), ("nc4ast4v3", "Standard_NC4as_T4_v3")]
    )
    container = f"doctor-{uuid.uuid4().hex[:12]}"
    env = {
        "ASCEND_CLOUD_PROVIDER": "azure",
        "ASCEND_AZURE_CONTAINER": container,
        "ASCEND_AZURE_CONNECTION_STRING": connection_string,
        "ASCEND_AZURE_CONNECTION_STRING_SECRET": "ascend-storage/connection-string",
        "ASCEND_AZURE_REGISTRY": registry.split("://")[-1],
        "ASCEND_AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
        "ASCEND_AZURE_RESOURCE_GROUP": GROUP,
        "ASCEND_AZURE_CLUSTER": CLUSTER,
        "ASCEND_AZURE_ARM_ENDPOINT": fake_arm.url,
        "ASCEND_KUBERNETES_KUBECONFIG": str(kube.kubeconfig),
        "ASCEND_USERNAME": USER,
        # the CLI builds its ARM client without a test seam: requests' CA bundle variable
        "REQUESTS_CA_BUNDLE": str(fake_arm.ca_file),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pools.clear_cache()
    from ascend import get_backend

    get_backend().storage.ensure_container()
    with override_credential(fake_arm.credential, fake_arm.async_credential):
        yield {"arm": fake_arm, "kube": kube}
    pools.clear_cache()


def by_name(checks: list[Any]) -> dict[str, Any]:
    return {check.name: check for check in checks}


def test_a_complete_setup_passes_every_check(setup: dict[str, Any]) -> None:
    from ascend import get_backend

    checks = by_name(run_checks(get_backend(), connection_verify=str(setup["arm"].ca_file)))
    assert checks["credentials"].status == OK
    assert checks["credentials"].detail == "signed in as dev@example.com"
    assert checks["storage"].status == OK and "wrote, read and deleted" in checks["storage"].detail
    # the registry answers; the runtime image was never pushed there, which is a warning
    assert checks["registry"].status == WARN
    assert "ascend-runtime:py" in checks["registry"].detail
    assert "Dockerfile.runtime" in checks["registry"].fix
    assert checks["cluster"].status == OK and NAMESPACE in checks["cluster"].detail
    assert checks["node pools"].status == OK
    # only pools named as the catalog names them make node types usable ("system" does not)
    assert checks["node pools"].detail.endswith("node types available: gpu-t4")
    assert checks["pod identity"].status == WARN
    assert "workload identity" in checks["pod identity"].fix
    # the storage probe leaves nothing behind
    assert get_backend().storage.list("doctor") == []


def test_the_cli_reports_and_exits_zero_when_nothing_fails(
    setup: dict[str, Any], ascend_cli: Any
) -> None:
    result = ascend_cli("azure", "doctor", "--json")
    assert result.exit_code == 0, result.output
    statuses = {check["name"]: check["status"] for check in json.loads(result.output)}
    assert FAIL not in statuses.values()
    assert statuses["node pools"] == OK
    human = ascend_cli("azure", "doctor")
    assert "✓ storage" in human.output and "fix:" in human.output
    assert "0 failed" in human.output.splitlines()[-1]


def test_each_broken_part_fails_with_its_fix_and_exit_code_one(
    setup: dict[str, Any], ascend_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube: KubeEmulator = setup["kube"]
    monkeypatch.setenv(
        "ASCEND_AZURE_CONNECTION_STRING",
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;",
    )
    monkeypatch.setenv("ASCEND_USERNAME", "bob")  # no namespace for bob
    setup["arm"].fail("GET", r"managedClusters/", 403, "AuthorizationFailed", "no access")
    result = ascend_cli("azure", "doctor", "--json")
    assert result.exit_code == 1
    checks = {check["name"]: check for check in json.loads(result.output)}
    assert checks["storage"]["status"] == FAIL and checks["storage"]["fix"]
    assert "127.0.0.1:9 is unreachable" in checks["storage"]["detail"]
    assert checks["cluster"]["status"] == FAIL
    assert "ascend admin add-user" in checks["cluster"]["fix"]
    assert checks["node pools"]["status"] == FAIL
    assert "az role assignment create" in checks["node pools"]["fix"]
    assert kube.requests.total > 0


def test_unconfigured_parts_are_skipped_with_how_to_configure_them(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ascend import get_backend

    for name in ("SUBSCRIPTION_ID", "RESOURCE_GROUP", "CLUSTER", "REGISTRY"):
        monkeypatch.delenv(f"ASCEND_AZURE_{name}")
    checks = by_name(run_checks(get_backend()))
    assert checks["credentials"].status == SKIP
    assert checks["registry"].status == SKIP and "azure.registry" in checks["registry"].fix
    assert checks["node pools"].status == SKIP
    assert "ascend azure init" in checks["node pools"].fix


def test_doctor_refuses_another_provider(
    ascend_pm: Any,
    register_plugin: Any,
    ascend_cli: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    import ascend_azure.plugin

    register_plugin(ascend_azure.plugin, "azure")
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "local")
    monkeypatch.setenv("ASCEND_LOCAL_STORAGE_DIR", str(tmp_path))
    result = ascend_cli("azure", "doctor")
    assert result.exit_code != 0
    assert "cloud_provider: azure" in result.output


def test_pod_identity_checks_the_secret_and_the_service_account_in_the_cluster(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernetes import client

    from ascend import get_backend
    from ascend_azure.doctor import check_pod_identity

    core = client.CoreV1Api(setup["kube"].api_client())
    monkeypatch.setenv("ASCEND_AZURE_CONNECTION_STRING_SECRET", "missing/connection-string")
    check = check_pod_identity(get_backend())
    assert check.status == FAIL and "missing does not exist" in check.detail
    assert "kubectl create secret generic missing" in check.fix

    client_id = "11111111-2222-3333-4444-555555555555"
    monkeypatch.setenv("ASCEND_AZURE_WORKLOAD_IDENTITY", "true")
    monkeypatch.setenv("ASCEND_AZURE_CLIENT_ID", client_id)
    check = check_pod_identity(get_backend())
    assert check.status == FAIL and "ascend-jobs does not exist" in check.detail
    assert "kubectl create serviceaccount ascend-jobs" in check.fix
    assert f"--subject system:serviceaccount:{NAMESPACE}:ascend-jobs" in check.fix

    core.create_namespaced_service_account(
        NAMESPACE,
        {
            "metadata": {
                "name": "ascend-jobs",
                "annotations": {"azure.workload.identity/client-id": client_id},
            }
        },
    )
    check = check_pod_identity(get_backend())
    assert check.status == OK and client_id in check.detail


def test_the_registry_check_looks_at_the_image_jobs_run_with_an_in_house_registry(
    setup: dict[str, Any], register_plugin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from ascend.backend import clear_backend_cache
    from ascend.images.choose import runtime_image
    from tests.plugins import acme_registry

    from ..image_helpers import push_python_base
    from ..registry_proxy import counting_proxy

    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    upstream = services.require("registry")
    with counting_proxy(upstream, f"test-doctor/{uuid.uuid4().hex[:12]}") as (in_house, seen):
        push_python_base(in_house, repository="ascend-runtime", tag=f"py{minor}")
        register_plugin(acme_registry, "acme-registry")
        monkeypatch.setenv("ASCEND_ACME_REGISTRY_HOST", in_house)
        clear_backend_cache()
        from ascend import get_backend

        backend = get_backend()
        seen.clear()
        checks = by_name(run_checks(backend, connection_verify=str(setup["arm"].ca_file)))
        expected = f"{in_house}/ascend-runtime:py{minor}"
        assert runtime_image(backend) == expected  # what every Job runs
        assert checks["registry"].status == OK
        assert checks["registry"].detail == f"reachable; runtime image {expected} exists"
        assert ("HEAD", f"/v2/ascend-runtime/manifests/py{minor}") in seen.requests
