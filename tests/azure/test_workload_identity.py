"""Job pods reach Blob storage without keys: what the Azure plugin adds to each Job."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ascend.compute import JobRequest
from ascend.config import AscendConfig
from ascend.errors import ConfigError
from ascend.kubernetes.manifest import build_job
from ascend_azure.workload_identity import CLIENT_ID_ANNOTATION, USE_LABEL, configure_pod

kubernetes_validate = pytest.importorskip("kubernetes_validate")

CLIENT_ID = "11111111-2222-3333-4444-555555555555"
CONNECTION_STRING = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0;"


@pytest.fixture
def load(ascend_pm: Any, register_plugin: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    import ascend_azure.plugin

    register_plugin(ascend_azure.plugin, "azure")

    def load_with(**env: str) -> AscendConfig:
        monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "azure")
        for name, value in env.items():
            monkeypatch.setenv(f"ASCEND_AZURE_{name.upper()}", value)
        config = AscendConfig.load(pm=ascend_pm)
        config.raise_for_problems()
        return config

    return load_with


def job() -> dict[str, Any]:
    request = JobRequest(
        job_id="20261128-170000000-abcd--alice--default",
        package_uri="az://ascend-data/users/alice/jobs/x/package.pkl",
        result_uri="az://ascend-data/users/alice/jobs/x/result.pkl",
    )
    return build_job(request, namespace="ascend-users-alice", image="myacr.azurecr.io/rt:py3.11")


def env_of(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item for item in container["env"]}


def test_workload_identity_adds_service_account_label_and_client_id(load: Any) -> None:
    config = load(
        storage_account="ascenddata",
        workload_identity="true",
        client_id=CLIENT_ID,
        service_account="ascend-jobs",
    )
    manifest = job()
    configure_pod(config, manifest)
    template = manifest["spec"]["template"]
    assert template["metadata"]["labels"][USE_LABEL] == "true"
    assert template["metadata"]["annotations"][CLIENT_ID_ANNOTATION] == CLIENT_ID
    assert template["spec"]["serviceAccountName"] == "ascend-jobs"
    env = env_of(manifest)
    assert env["AZURE_CLIENT_ID"] == {"name": "AZURE_CLIENT_ID", "value": CLIENT_ID}
    assert env["AZURE_STORAGE_ACCOUNT_NAME"]["value"] == "ascenddata"
    assert "AZURE_STORAGE_CONNECTION_STRING" not in env
    kubernetes_validate.validate(manifest, "1.30.0", strict=True)


def test_connection_string_travels_only_as_a_secret_reference(load: Any) -> None:
    config = load(
        connection_string=CONNECTION_STRING,
        connection_string_secret="ascend-storage/connection-string",
    )
    manifest = job()
    configure_pod(config, manifest)
    assert CONNECTION_STRING not in json.dumps(manifest)
    assert "AccountKey" not in json.dumps(manifest)
    reference = env_of(manifest)["AZURE_STORAGE_CONNECTION_STRING"]["valueFrom"]
    assert reference == {"secretKeyRef": {"name": "ascend-storage", "key": "connection-string"}}
    kubernetes_validate.validate(manifest, "1.30.0", strict=True)


def test_a_connection_string_without_a_secret_is_refused_with_the_fix(load: Any) -> None:
    config = load(connection_string=CONNECTION_STRING)
    with pytest.raises(ConfigError) as caught:
        configure_pod(config, job())
    assert "azure.connection_string_secret" in str(caught.value)
    assert "kubectl create secret generic" in str(caught.value)


def test_node_identity_fallback_passes_the_account_and_client_id(load: Any) -> None:
    config = load(storage_account="ascenddata", client_id=CLIENT_ID)
    manifest = job()
    configure_pod(config, manifest)
    env = env_of(manifest)
    assert env["AZURE_STORAGE_ACCOUNT_NAME"]["value"] == "ascenddata"
    assert env["AZURE_CLIENT_ID"]["value"] == CLIENT_ID
    assert USE_LABEL not in manifest["spec"]["template"]["metadata"].get("labels", {})


def test_workload_identity_without_a_client_id_is_refused(load: Any) -> None:
    config = load(storage_account="ascenddata", workload_identity="true")
    with pytest.raises(ConfigError) as caught:
        configure_pod(config, job())
    assert "azure.client_id" in str(caught.value)


def test_the_hook_changes_only_azure_jobs(
    load: Any, ascend_pm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ascend_azure.plugin

    config = load(storage_account="ascenddata", workload_identity="true", client_id=CLIENT_ID)
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "kubernetes")
    monkeypatch.setenv("ASCEND_STORAGE_URL", "s3://bucket/x")
    other = AscendConfig.load(pm=ascend_pm)
    assert config.cloud_provider == "azure" and other.cloud_provider == "kubernetes"
    manifest = job()
    before = json.dumps(manifest, sort_keys=True)
    ascend_azure.plugin.ascend_job_manifest(config=other, request=None, manifest=manifest)
    assert json.dumps(manifest, sort_keys=True) == before


def test_selecting_azure_without_storage_fails_at_first_use_naming_the_setting(
    load: Any,
) -> None:
    from ascend import get_backend

    config = load()
    with pytest.raises(ConfigError) as caught:
        get_backend(config)
    assert "azure.storage_account" in str(caught.value)
    assert "ascend azure init" in str(caught.value)


def test_a_call_that_pods_could_not_serve_is_refused_before_upload(load: Any) -> None:
    import ascend_azure.plugin

    config = load(connection_string=CONNECTION_STRING)
    request = JobRequest(job_id="x", package_uri="az://c/p", result_uri="az://c/r")
    with pytest.raises(ConfigError) as caught:
        ascend_azure.plugin.ascend_validate_job(config=config, request=request)
    assert "azure.connection_string_secret" in str(caught.value)


def test_pods_using_an_identity_never_fall_back_to_anonymous_access(load: Any) -> None:
    config = load(storage_account="ascenddata")
    manifest = job()
    configure_pod(config, manifest)
    assert env_of(manifest)["AZURE_STORAGE_ANON"]["value"] == "false"
