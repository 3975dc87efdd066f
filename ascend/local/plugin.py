"""Hooks of the ``local`` provider (answers only when ``cloud_provider: local``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ascend.plugins.markers import hookimpl
from ascend.plugins.types import Provider, Setting

if TYPE_CHECKING:
    from ascend.compute import ComputeBackend
    from ascend.config import AscendConfig
    from ascend.storage.base import CloudStorage

NAME = "local"


def default_storage_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("ascend", appauthor=False)) / "jobs"


def _check_dir(value: str) -> None:
    if "://" in value:
        raise ValueError("expected a directory path, not a URL")


@hookimpl
def ascend_providers() -> Iterable[Provider]:
    return [
        Provider(NAME, summary="runs each call as a local process; no cloud needed", builtin=True)
    ]


@hookimpl
def ascend_settings() -> Iterable[Setting]:
    return [
        Setting(
            "local.storage_dir",
            str,
            help="directory where the local provider keeps jobs (default: the user cache "
            "directory, e.g. ~/.cache/ascend/jobs)",
            validate=_check_dir,
            fix="write a directory path such as ~/ascend-jobs",
        )
    ]


def _storage_dir(config: AscendConfig) -> Path:
    configured = config.get("local.storage_dir")
    return Path(configured).expanduser().resolve() if configured else default_storage_dir()


@hookimpl
def ascend_storage(config: AscendConfig) -> CloudStorage | None:
    if config.cloud_provider != NAME:
        return None
    from ascend.storage.local_files import LocalFileStorage

    directory = _storage_dir(config)
    directory.mkdir(parents=True, exist_ok=True)
    return LocalFileStorage(str(directory))


@hookimpl
def ascend_compute(config: AscendConfig) -> ComputeBackend | None:
    if config.cloud_provider != NAME:
        return None
    from ascend.images.lock import IndexOptions
    from ascend.local.compute import LocalCompute

    return LocalCompute(
        index=IndexOptions.from_config(config),
        build_timeout=float(config.get("images.build_timeout", 1800.0)),
    )
