"""Which image a call runs: the runtime image of the registry the plugins answer, an explicit
``base_image``, or the content-addressed image for the call's requirements (built once).

One truth: every image reference comes from ``backend.registry.image_ref(...)`` (or is the
user's explicit choice), never from a setting read on the side.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from ascend.images.lock import IndexOptions, resolve
from ascend.images.progress import Progress
from ascend.images.spec import (
    ENV_REPOSITORY,
    RUNTIME_REPOSITORY,
    ImageSpec,
    spec_prefix_is_runtime,
)

if TYPE_CHECKING:
    from ascend.backend import CloudBackend

SPEC_TTL = 600.0  # seconds a resolved spec is reused in this process
_specs: dict[tuple[Any, ...], tuple[float, ImageSpec]] = {}
_lock = threading.Lock()


def client_python() -> str:
    return ".".join(str(part) for part in sys.version_info[:3])


def runtime_image(backend: CloudBackend) -> str:
    """``images.runtime`` when set, else ``<registry>/ascend-runtime:py<X.Y>`` of the registry
    the ``ascend_registry_url`` / ``ascend_registry`` hooks answer."""
    configured = backend.config.get("images.runtime")
    if configured:
        return str(configured)
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    return backend.registry.image_ref(RUNTIME_REPOSITORY, f"py{minor}")


def spec_for(
    backend: CloudBackend,
    base_image: str,
    requirements: tuple[str, ...],
    *,
    repository: str = ENV_REPOSITORY,
    progress: Progress | None = None,
) -> ImageSpec:
    """Resolve ``requirements`` on ``base_image`` into a spec (cached for ``SPEC_TTL``)."""
    import cloudpickle

    from ascend._version import __version__
    from ascend.images.build import check_python, open_base

    progress = progress or Progress(enabled=False)
    index = IndexOptions.from_config(backend.config)
    key = (id(backend), base_image, requirements, repository, index)
    now = time.monotonic()
    with _lock:
        cached = _specs.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    with progress.step(f"read base image {base_image}"):
        base = open_base(base_image, backend.registry)
        check_python(base, client_python())
    runner: tuple[str, ...] = () if base.has_runner else ("fsspec>=2024.2",)
    if spec_prefix_is_runtime(repository):
        runner += ("uv>=0.5",)  # the runtime image doubles as the cluster builder's
    pinned = (f"cloudpickle=={cloudpickle.__version__}",)
    described = ", ".join(requirements) or "the runner"
    with progress.step(f"resolve {described}"):
        lock = resolve(
            tuple(requirements) + (pinned if not base.has_runner else ()) + runner,
            client_python(),
            index,
            constraints=pinned,
        )
    spec = ImageSpec(
        base_image=base_image,
        base_digest=base.digest,
        python_version=client_python(),
        lock=lock,
        ascend_version=__version__,
        cloudpickle_version=cloudpickle.__version__,
        repository=repository,
        with_runner=not base.has_runner,
    )
    with _lock:
        _specs[key] = (now + SPEC_TTL, spec)
    return spec


def image_for_call(
    backend: CloudBackend,
    requirements: tuple[str, ...],
    base_image: str | None,
    progress: Progress,
) -> str:
    """The image a call with these needs runs; builds it when the registry lacks it."""
    base = base_image or runtime_image(backend)
    if not requirements:
        return base
    spec = spec_for(backend, base, requirements, progress=progress)
    registry = backend.registry
    if registry.image_exists(spec.repository, spec.tag):
        return registry.image_ref(spec.repository, spec.tag)
    return backend.image_builder.build(spec, progress)


def clear_cache() -> None:
    with _lock:
        _specs.clear()
