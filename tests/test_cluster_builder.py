"""The cluster builder: an image build as a Kubernetes Job on the emulator (the builder pod is a
local process running ``python -m ascend.build``), pushing a real layer to the real registry."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from ascend.errors import ImageBuildError
from ascend.images.lock import Lock
from ascend.images.progress import Progress
from ascend.images.spec import RUNTIME_REPOSITORY, ImageSpec
from ascend.kubernetes.builder import builder_job_name
from ascend.testing.kube import KubeEmulator

from . import services
from .image_helpers import push_python_base

USER = "alice"
NAMESPACE = f"ascend-users-{USER}"
DEV_RUNTIME_IMAGE = "ascend-runtime:dev"  # preloaded on the emulator's node: this checkout

pytestmark = [pytest.mark.timeout(180), pytest.mark.service("registry")]


@pytest.fixture
def cluster(offline_cluster: Any) -> tuple[KubeEmulator, str]:
    registry = services.require("registry")
    return offline_cluster(registry, ASCEND_IMAGES_BUILDER_IMAGE=DEV_RUNTIME_IMAGE), registry


def _jobs(kube: KubeEmulator) -> list[str]:
    from kubernetes import client

    jobs = client.BatchV1Api(kube.api_client()).list_namespaced_job(NAMESPACE).items
    return [job.metadata.name for job in jobs]


def test_the_runtime_image_builds_in_a_job_and_two_callers_share_it(
    cluster: tuple[KubeEmulator, str],
) -> None:
    from ascend import get_backend
    from ascend.images.build import RUNNER_LABEL, env_dict
    from ascend.images.choose import spec_for

    kube, registry = cluster
    base = push_python_base(registry, repository=f"test/python-{uuid.uuid4().hex[:8]}")
    backend = get_backend()
    spec = spec_for(
        backend, base, (), repository=f"test-{uuid.uuid4().hex[:6]}/{RUNTIME_REPOSITORY}"
    )
    assert spec.with_runner and dict(spec.lock.pins).keys() == {"cloudpickle", "fsspec", "uv"}
    images: list[str] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            images.append(backend.image_builder.build(spec, Progress(enabled=False)))
        except BaseException as error:
            errors.append(error)

    callers = [threading.Thread(target=build) for _ in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(150)
    assert not errors, errors
    assert images == [f"{registry}/{spec.repository}:{spec.tag}"] * 2
    assert _jobs(kube) == [builder_job_name(spec.tag)]  # one Job served both
    import json

    client = backend.registry
    manifest = client.manifest(spec.repository, spec.tag).json()
    config = json.loads(client.blob(spec.repository, manifest["config"]["digest"]))
    assert config["config"]["Labels"][RUNNER_LABEL]
    assert env_dict(config)["PYTHONPATH"] == "/opt/ascend/runtime"
    assert config["config"]["Entrypoint"] == ["python", "-m", "ascend.runner"]


def test_a_failing_install_in_the_builder_names_the_package_and_its_last_lines(
    cluster: tuple[KubeEmulator, str],
) -> None:
    from ascend import get_backend
    from ascend.images.build import open_base

    _, registry = cluster
    base = push_python_base(registry, repository=f"test/python-{uuid.uuid4().hex[:8]}")
    backend = get_backend()
    opened = open_base(base, backend.registry)
    tampered = Lock(
        ("ascend-demo-tiny",), "ascend-demo-tiny==1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"
    )
    spec = ImageSpec(
        base_image=base,
        base_digest=opened.digest,
        python_version=opened.python_version,
        lock=tampered,
        ascend_version="0.1.0",
        cloudpickle_version="3.1.1",
        repository=f"test/env-{uuid.uuid4().hex[:8]}",
    )
    with pytest.raises(ImageBuildError) as caught:
        backend.image_builder.build(spec, Progress(enabled=False))
    message = caught.value.message
    assert builder_job_name(spec.tag) in message
    assert "ascend-demo-tiny==1.0" in message
    assert "last lines:" in message
    assert not backend.registry.image_exists(spec.repository, spec.tag)


def _docker_config(host: str, user: str, password: str) -> bytes:
    import base64
    import json

    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {host: {"auth": auth}}}).encode()


def test_the_builder_pushes_with_the_registry_secret_and_says_so_without_it(
    offline_cluster: Any,
    auth_credentials: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import base64

    from kubernetes import client

    from ascend import get_backend
    from ascend.images.choose import spec_for

    registry = services.require("registry")
    private = services.require("auth-registry")
    config = tmp_path / "docker"  # the client's own login, as `docker login` leaves it
    config.mkdir()
    (config / "config.json").write_bytes(_docker_config(private, *auth_credentials))
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    run = uuid.uuid4().hex[:8]  # a base of its own, so no earlier run's image is found
    base = push_python_base(registry, repository=f"test/python-{run}", env={"RUN": run})
    kube = offline_cluster(private, ASCEND_IMAGES_BUILDER_IMAGE=DEV_RUNTIME_IMAGE)
    backend = get_backend()
    spec = spec_for(backend, base, ("ascend-demo-tiny==1.0",))
    with pytest.raises(ImageBuildError) as caught:  # no secret: the pod cannot push
        backend.image_builder.build(spec, Progress(enabled=False))
    assert "kubernetes.registry_secret" in (caught.value.fix or "")

    client.CoreV1Api(kube.api_client()).create_namespaced_secret(
        NAMESPACE,
        {
            "metadata": {"name": "push-creds"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {
                ".dockerconfigjson": base64.b64encode(
                    _docker_config(private, *auth_credentials)
                ).decode()
            },
        },
    )
    monkeypatch.setenv("ASCEND_KUBERNETES_REGISTRY_SECRET", "push-creds")
    from ascend.backend import clear_backend_cache

    clear_backend_cache()
    backend = get_backend()
    client.BatchV1Api(kube.api_client()).delete_namespaced_job(
        builder_job_name(spec.tag), NAMESPACE, propagation_policy="Background"
    )
    image = backend.image_builder.build(spec, Progress(enabled=False))
    assert image == f"{private}/{spec.repository}:{spec.tag}"
    assert backend.registry.image_exists(spec.repository, spec.tag)
