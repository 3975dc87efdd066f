"""Runtime images: the content-addressed spec, the lock, a daemonless build, and the choice of
the image each call runs.

Light on purpose: importing it imports none of the build machinery.
"""

from ascend.images.spec import (
    DEFAULT_REPOSITORY,
    ENV_REPOSITORY,
    PACKAGES_PREFIX,
    RUNTIME_PREFIX,
    RUNTIME_REPOSITORY,
    ImageBuilder,
    ImageSpec,
    normalize_requirement,
    normalize_requirements,
)

__all__ = [
    "DEFAULT_REPOSITORY",
    "ENV_REPOSITORY",
    "PACKAGES_PREFIX",
    "RUNTIME_PREFIX",
    "RUNTIME_REPOSITORY",
    "ImageBuilder",
    "ImageSpec",
    "normalize_requirement",
    "normalize_requirements",
]
