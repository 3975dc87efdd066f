"""The built-in ``kubernetes`` provider: any cluster plus any fsspec storage.

Storage comes from ``storage_url`` and the registry from ``registry_url`` (the core's generic
defaults); this plugin declares the provider and checks that storage is configured.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ascend.errors import ConfigError
from ascend.plugins.markers import hookimpl
from ascend.plugins.types import Provider

if TYPE_CHECKING:
    from ascend.config import AscendConfig

NAME = "kubernetes"


@hookimpl
def ascend_providers() -> Iterable[Provider]:
    return [
        Provider(
            NAME,
            summary="any Kubernetes cluster, with storage at any fsspec URL (storage_url)",
            builtin=True,
        )
    ]


@hookimpl
def ascend_configure(config: AscendConfig) -> None:
    if config.cloud_provider == NAME and not config.storage_url:
        raise ConfigError(
            "cloud_provider 'kubernetes' needs storage_url, the fsspec URL where jobs are stored",
            fix="set storage_url: s3://bucket/ascend in .ascend.yaml, or ASCEND_STORAGE_URL",
        )
