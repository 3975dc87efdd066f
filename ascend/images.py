"""Runtime images: the content-addressed spec, and the builder interface.

An image is named by a hash of everything that decides its contents (base image, Python
version, cloudpickle version, normalized requirements), so a second call with the same spec
finds the image and builds nothing.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ascend.errors import ImageBuildError

if TYPE_CHECKING:
    from ascend.registry import ContainerRegistry

DEFAULT_REPOSITORY = "ascend-runtime"


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


@dataclass(frozen=True)
class ImageSpec:
    """Everything that decides the contents of a runtime image."""

    base_image: str
    python_version: str
    cloudpickle_version: str
    requirements: tuple[str, ...] = ()
    repository: str = DEFAULT_REPOSITORY
    gpu: bool = False
    extra: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def create(
        cls,
        *,
        base_image: str,
        python_version: str,
        cloudpickle_version: str,
        requirements: Iterable[str] = (),
        repository: str = DEFAULT_REPOSITORY,
        gpu: bool = False,
    ) -> ImageSpec:
        normalized = tuple(sorted({normalize_requirement(r) for r in requirements}))
        return cls(base_image, python_version, cloudpickle_version, normalized, repository, gpu)

    @property
    def digest(self) -> str:
        payload = json.dumps(
            {
                "base_image": self.base_image,
                "python": self.python_version,
                "cloudpickle": self.cloudpickle_version,
                "requirements": list(self.requirements),
                "gpu": self.gpu,
                "extra": [list(item) for item in self.extra],
            },
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    @property
    def tag(self) -> str:
        """``py3.11-<16 hex digits>``: readable, content-addressed, valid as a tag."""
        minor = ".".join(self.python_version.split(".")[:2])
        return f"py{minor}-{self.digest[:16]}"


class ImageBuilder(ABC):
    """Builds runtime images; ``get_or_build`` skips the build when the tag already exists."""

    @abstractmethod
    def build(self, spec: ImageSpec) -> str:
        """Build and push ``spec``; return the full image reference."""

    def get_or_build(self, spec: ImageSpec, registry: ContainerRegistry) -> str:
        if registry.image_exists(spec.repository, spec.tag):
            return registry.image_ref(spec.repository, spec.tag)
        return self.build(spec)
