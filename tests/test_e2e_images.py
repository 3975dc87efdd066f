"""End to end on the emulator with the real local registry: ``@ascend(requirements=[...])``
builds an image once (the builder pod runs as a local process and pushes a real layer), the
job's pod pulls it for real and sees only what the image holds, and a second call builds
nothing. Requirements resolve from the tests' wheelhouse: no internet."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from ascend import ImagePullError, ascend
from ascend.images.progress import Progress
from ascend.images.spec import RUNTIME_REPOSITORY
from ascend.testing.kube import DEV_RUNTIME_IMAGE, KubeEmulator

from . import services
from .image_helpers import push_python_base
from .registry_proxy import Seen, counting_proxy

USER = "alice"
NAMESPACE = f"ascend-users-{USER}"
MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"

pytestmark = [pytest.mark.timeout(240), pytest.mark.service("registry")]


@pytest.fixture
def cluster(offline_cluster: Any) -> Any:
    """An emulator, a counting proxy in front of the registry (the registry Ascend and the
    kubelet both use), and a runtime image built by ``build-runtime``'s code path."""
    upstream = services.require("registry")
    namespace = f"test-e2e-images/{uuid.uuid4().hex[:12]}"  # its own ascend-runtime:pyX.Y
    with counting_proxy(upstream, namespace) as (registry, seen):
        kube = offline_cluster(registry, ASCEND_IMAGES_BUILDER_IMAGE=DEV_RUNTIME_IMAGE)
        base = push_python_base(registry, repository="library/python")
        from ascend import get_backend
        from ascend.images.build import retag
        from ascend.images.choose import runtime_image, spec_for

        backend = get_backend()
        runtime = spec_for(backend, base, (), repository=RUNTIME_REPOSITORY)
        built = backend.image_builder.build(runtime, Progress(enabled=False))
        retag(backend.registry, RUNTIME_REPOSITORY, built.rsplit(":", 1)[1], f"py{MINOR}")
        assert runtime_image(backend) == f"{registry}/{RUNTIME_REPOSITORY}:py{MINOR}"
        yield kube, registry, seen


def _builder_jobs(kube: KubeEmulator) -> list[str]:
    from kubernetes import client

    jobs = client.BatchV1Api(kube.api_client()).list_namespaced_job(NAMESPACE).items
    return sorted(j.metadata.name for j in jobs if j.metadata.name.startswith("ascend-build-"))


def test_requirements_build_once_and_the_pod_sees_only_its_image(
    cluster: tuple[KubeEmulator, str, Seen],
) -> None:
    kube, _, seen = cluster

    @ascend(requirements=["ascend-demo-needs"], stream_logs=False, timeout=60)
    def shout_from_the_image() -> dict[str, Any]:
        import importlib.util

        import ascend_demo_needs  # type: ignore[import-not-found]

        return {
            "shout": ascend_demo_needs.shout("pod"),
            "file": ascend_demo_needs.__file__,
            "pytest": importlib.util.find_spec("pytest") is not None,
        }

    first = shout_from_the_image()
    assert first["shout"] == "HELLO POD FROM TINY 2.0"
    assert "/opt/ascend/packages/ascend_demo_needs/" in first["file"]
    assert not first["pytest"]  # the test environment's site-packages are not in the image
    builds = _builder_jobs(kube)
    assert len(builds) == 2  # the runtime image's, and this one's

    seen.clear()
    second = shout_from_the_image()
    assert second == first
    assert _builder_jobs(kube) == builds  # nothing built
    pushes = [r for r in seen.requests if r[0] in ("POST", "PUT", "PATCH", "DELETE")]
    assert pushes == []
    checks = [r for r in seen.requests if r[0] == "HEAD" and "/ascend-env/manifests/" in r[1]]
    assert len(checks) == 1  # the reuse decision: one registry request


def test_an_image_missing_from_the_registry_is_an_image_pull_error(
    cluster: tuple[KubeEmulator, str, Seen],
) -> None:
    _, registry, _ = cluster

    @ascend(base_image=f"{registry}/ascend-runtime:never-{uuid.uuid4().hex[:6]}", timeout=60)
    def nothing() -> None:
        return None

    with pytest.raises(ImagePullError) as caught:
        nothing()
    assert "never-" in str(caught.value)


def test_a_requirement_that_does_not_resolve_fails_in_seconds_and_reaches_nothing(
    cluster: tuple[KubeEmulator, str, Seen], tmp_path: Path
) -> None:
    import time

    from ascend import ImageBuildError

    kube, _, seen = cluster

    @ascend(requirements=["ascend-demo-conflict", "ascend-demo-tiny>=1"], timeout=60)
    def never() -> None:
        return None

    seen.clear()
    jobs_before = _builder_jobs(kube)
    start = time.monotonic()
    with pytest.raises(ImageBuildError) as caught:
        never()
    assert time.monotonic() - start < 10
    assert "ascend-demo-conflict" in caught.value.message
    assert _builder_jobs(kube) == jobs_before
    from kubernetes import client

    jobs = client.BatchV1Api(kube.api_client()).list_namespaced_job(NAMESPACE).items
    assert all(j.metadata.name.startswith("ascend-build-") for j in jobs)  # no job for the call
    assert not [r for r in seen.requests if r[0] in ("POST", "PUT")]  # nothing pushed
    assert not list((tmp_path / "store").rglob("package.pkl"))  # nothing uploaded
