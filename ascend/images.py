"""Runtime images: the content-addressed spec, and the builder interface.

An image is named by a hash of everything that decides its contents (base image, Python
version, cloudpickle version, normalized requirements), so a second call with the same spec
finds the image and builds nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ascend.errors import ImageBuildError

if TYPE_CHECKING:
    from ascend.registry import ContainerRegistry

DEFAULT_REPOSITORY = "ascend-runtime"
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(.*)$")


def normalize_requirement(requirement: str) -> str:
    """Canonical form of a pip requirement, so equal requirements hash equally.

    The project name is lowercased with runs of ``-_.`` turned into ``-`` (PEP 503); spaces
    are dropped from the version part.
    """
    match = _NAME.match(requirement)
    if not match or not requirement.strip():
        raise ImageBuildError(
            f"requirement {requirement!r} is not a pip requirement",
            fix="write requirements as pip does, for example 'numpy>=1.26'",
        )
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    rest = "".join(match.group(2).split())
    return name + rest


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
