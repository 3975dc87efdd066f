"""A plugin can replace the image builder, and what it answers is what the Job runs."""

from __future__ import annotations

import sys
import uuid
from typing import Any

import pytest

from ascend import ascend, hookimpl
from ascend.testing.kube import KubeEmulator

from . import services
from .image_helpers import push_python_base

USER = "alice"
NAMESPACE = f"ascend-users-{USER}"

pytestmark = [pytest.mark.timeout(120), pytest.mark.service("registry")]


class FarmBuilder:
    """An in-house build farm: it records what it was asked and answers with its image."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    @hookimpl(tryfirst=True)
    def ascend_build_image(self, spec: Any, registry: Any) -> str:
        self.asked.append(spec)
        return registry.image_ref(spec.repository, spec.tag)


@ascend(requirements=["ascend-demo-tiny==1.0"], stream_logs=False, timeout=60)
def needs_tiny() -> str:
    import ascend_demo_tiny  # type: ignore[import-not-found]

    return str(ascend_demo_tiny.VERSION)


def test_a_plugin_builder_replaces_the_core_and_its_image_is_on_the_job(
    offline_cluster: Any, register_plugin: Any
) -> None:
    from kubernetes import client

    from ascend.kubernetes.manifest import job_name

    registry = services.require("registry")
    base = push_python_base(registry, repository=f"test/python-{uuid.uuid4().hex[:8]}")
    kube: KubeEmulator = offline_cluster(registry, ASCEND_IMAGES_RUNTIME=base)
    farm = FarmBuilder()
    register_plugin(farm, "acme-farm")
    handle = needs_tiny.submit()
    try:
        job = client.BatchV1Api(kube.api_client()).read_namespaced_job(
            job_name(handle.job_id), NAMESPACE
        )
    finally:
        handle.cancel()
    (spec,) = farm.asked
    assert dict(spec.lock.pins)["ascend-demo-tiny"] == "1.0"
    assert spec.base_image == base and spec.with_runner  # a plain python base gets the runner
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    expected = f"{registry}/ascend-env:py{minor}-{spec.digest[:20]}"
    assert [c.image for c in job.spec.template.spec.containers] == [expected]
    assert handle.metadata()["image"] == expected
    from ascend import get_backend

    assert get_backend().answered_by["ascend_build_image"] == "acme-farm"


class CudaPool:
    def __init__(self, base: str) -> None:
        self.base = base

    @hookimpl
    def ascend_node_types(self) -> list[Any]:
        from ascend.plugins.types import NodeType

        return [NodeType("gpu-test", gpus=0, base_image=self.base, summary="a CUDA base")]


def test_a_node_types_base_image_is_what_requirements_build_on_unless_one_is_given(
    offline_cluster: Any, register_plugin: Any
) -> None:
    registry = services.require("registry")
    cuda = push_python_base(registry, repository=f"test/cuda-{uuid.uuid4().hex[:8]}")
    other = push_python_base(registry, repository=f"test/other-{uuid.uuid4().hex[:8]}")
    offline_cluster(registry)
    farm = FarmBuilder()
    register_plugin(farm, "acme-farm")
    register_plugin(CudaPool(cuda), "acme-cuda")

    def tiny() -> None:
        return None

    for base_image, expected in ((None, cuda), (other, other)):
        remote = ascend(
            requirements=["ascend-demo-tiny"], node_type="gpu-test", base_image=base_image
        )(tiny)
        remote.submit().cancel()
        assert farm.asked[-1].base_image == expected
