"""The core's own plugin: its configuration keys and the generic (``trylast``) backends.

The defaults answer only when configured (``storage_url``, ``registry_url``), so any plugin
that answers the same hook replaces them, and they replace nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ascend.plugins.markers import hookimpl
from ascend.plugins.types import Setting

if TYPE_CHECKING:
    from ascend.config import AscendConfig
    from ascend.registry import ContainerRegistry
    from ascend.storage.base import CloudStorage


def _check_storage_url(value: str) -> None:
    if "://" not in value and not value.startswith("/"):
        raise ValueError("expected an fsspec URL with a scheme, or an absolute path")


def _check_registry_url(value: str) -> None:
    host = value.split("://", 1)[-1]
    if not host or "/" in host.rstrip("/") or " " in host:
        raise ValueError("expected host[:port], optionally with http:// or https://")


@hookimpl
def ascend_settings() -> Iterable[Setting]:
    return [
        Setting(
            "cloud_provider",
            str,
            help="the provider that runs jobs (local, kubernetes, or a plugin's, e.g. azure)",
            fix="pick one of the providers listed by 'ascend plugins'",
        ),
        Setting(
            "storage_url",
            str,
            help="fsspec URL of the job store, e.g. s3://bucket/ascend, az://ascend-data, "
            "file:///srv/ascend",
            validate=_check_storage_url,
            fix="write a URL such as s3://bucket/ascend or file:///absolute/path",
        ),
        Setting(
            "storage_options",
            dict,
            default={},
            help="options passed to the fsspec filesystem (endpoint_url, anon, ...)",
        ),
        Setting(
            "username",
            str,
            help="your name in job ids and storage paths (default: your login name)",
        ),
        Setting(
            "project",
            str,
            default="default",
            help="project name recorded with jobs (project=True uses the git repository's)",
        ),
        Setting(
            "git_check",
            bool,
            default=False,
            help="refuse to run from a git tree with uncommitted changes",
        ),
        Setting(
            "registry_url",
            str,
            help="container registry for runtime images, host[:port]",
            validate=_check_registry_url,
            fix="write host[:port], for example registry.example.com or http://127.0.0.1:5000",
        ),
    ]


@hookimpl(trylast=True)
def ascend_storage(config: AscendConfig) -> CloudStorage | None:
    if not config.storage_url:
        return None
    from ascend.storage.local_files import storage_from_url

    return storage_from_url(config.storage_url, **config.get("storage_options", {}))


@hookimpl(trylast=True)
def ascend_registry_url(config: AscendConfig) -> str | None:
    return config.registry_url


@hookimpl(trylast=True)
def ascend_registry(config: AscendConfig, url: str) -> ContainerRegistry | None:
    from ascend.registry import OCIRegistry

    return OCIRegistry(url)
