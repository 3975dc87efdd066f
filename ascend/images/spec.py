"""What decides an image's contents, and the content-addressed tag derived from it.

The tag is a hash of the base image's digest, the Python minor version, the resolved lock and
the runner's ascend and cloudpickle versions: the same needs give the same tag on any machine,
so a second call (or a second user) finds the image and builds nothing.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from ascend.errors import ImageBuildError

if TYPE_CHECKING:
    from ascend.images.lock import Lock
    from ascend.images.progress import Progress
    from ascend.registry import ContainerRegistry

RUNTIME_REPOSITORY = "ascend-runtime"
ENV_REPOSITORY = "ascend-env"
DEFAULT_REPOSITORY = ENV_REPOSITORY
PACKAGES_PREFIX = "/opt/ascend/packages"  # where a requirements layer installs
RUNTIME_PREFIX = "/opt/ascend/runtime"  # where the runtime layer puts the runner


def normalize_requirement(requirement: str) -> str:
    """Canonical form of a pip requirement, so equal requirements hash equally.

    Parsed with ``packaging`` (pip's own parser): the project name becomes its PEP 503 form
    (lowercase, runs of ``-_.`` as ``-``), specifiers and markers are re-written in one
    spelling. URL requirements (``name @ https://...``) keep their URL.
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        parsed = Requirement(requirement)
    except (InvalidRequirement, TypeError) as error:
        raise ImageBuildError(
            f"requirement {requirement!r} is not a pip requirement: {error}",
            fix="write requirements as pip does, for example 'numpy>=1.26'",
        ) from None
    parsed.name = canonicalize_name(parsed.name)
    return str(parsed)


def normalize_requirements(requirements: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Sorted, de-duplicated canonical requirements (order and spelling do not matter)."""
    return tuple(sorted({normalize_requirement(r) for r in requirements}))


def spec_prefix_is_runtime(repository: str) -> bool:
    """A runtime image lives in a repository named ``ascend-runtime`` (``team/ascend-runtime``
    too): its layer holds the runner, apart from any packages built on it later."""
    return repository.rsplit("/", 1)[-1] == RUNTIME_REPOSITORY


def python_minor(version: str) -> str:
    """``3.11.9`` -> ``3.11``."""
    return ".".join(version.split(".")[:2])


@dataclass(frozen=True)
class ImageSpec:
    """Everything that decides the contents of an image built on ``base_image``.

    ``with_runner``: the base has no Ascend runner, so the layer brings it (the lock then
    holds cloudpickle and fsspec too). The runtime image is the spec whose repository is
    ``ascend-runtime``: its layer goes to ``/opt/ascend/runtime``, every other one to
    ``/opt/ascend/packages``.
    """

    base_image: str
    base_digest: str
    python_version: str
    lock: Lock
    ascend_version: str
    cloudpickle_version: str
    repository: str = ENV_REPOSITORY
    with_runner: bool = False  # the base has no runner: the layer brings ascend's own

    @property
    def prefix(self) -> str:
        """Where the layer installs: the runtime image keeps its runner apart from packages."""
        return RUNTIME_PREFIX if spec_prefix_is_runtime(self.repository) else PACKAGES_PREFIX

    @property
    def requirements(self) -> tuple[str, ...]:
        return self.lock.requirements

    def to_json(self) -> dict[str, Any]:
        """Plain data, for the cluster builder's pod."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["lock"] = {"requirements": list(self.lock.requirements), "text": self.lock.text}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageSpec:
        from ascend.images.lock import Lock

        values = dict(data)
        lock = values.pop("lock")
        return cls(lock=Lock(tuple(lock["requirements"]), lock["text"]), **values)

    @property
    def digest(self) -> str:
        payload = json.dumps(
            {
                "base_digest": self.base_digest,
                "python": python_minor(self.python_version),
                "lock": self.lock.content_key(),
                "ascend": self.ascend_version,
                "cloudpickle": self.cloudpickle_version,
                "with_runner": self.with_runner,
            },
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    @property
    def tag(self) -> str:
        """``py3.11-<20 hex digits>``: readable, content-addressed, valid as a tag."""
        return f"py{python_minor(self.python_version)}-{self.digest[:20]}"


class ImageBuilder(ABC):
    """Builds images; ``get_or_build`` skips the build when the tag already exists."""

    @abstractmethod
    def build(self, spec: ImageSpec, progress: Progress | None = None) -> str:
        """Build and push ``spec``; return the full image reference."""

    def get_or_build(self, spec: ImageSpec, registry: ContainerRegistry) -> str:
        """One registry request when the image exists; a build only when it does not."""
        if registry.image_exists(spec.repository, spec.tag):
            return registry.image_ref(spec.repository, spec.tag)
        return self.build(spec)
