"""Ascend: run a Python function on Kubernetes with one decorator.

Importing ``ascend`` is cheap: the public names below load on first use, and no cloud SDK,
``kubernetes``, ``fsspec`` or ``cloudpickle`` is imported here. The one thing done at import is
the backend check: with no provider plugin installed and none selected, ``import ascend``
raises :class:`NoBackendError` saying how to install or select one.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

from ascend._version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time these load lazily
    from ascend.backend import CloudBackend, get_backend
    from ascend.compute import ComputeBackend, JobRequest
    from ascend.config import AscendConfig, load_config
    from ascend.decorator import RemoteFunction, ascend
    from ascend.errors import (
        AscendError,
        BackendNotAvailableError,
        ClusterForbiddenError,
        ClusterUnreachableError,
        CommandClashError,
        ComputeError,
        ConfigError,
        ConfigProblem,
        GitDirtyError,
        GitError,
        ImageBuildError,
        ImageNotFoundError,
        ImagePullError,
        IntegrityError,
        InvalidJobIdError,
        InvalidStoragePathError,
        JobCancelledError,
        JobError,
        JobEvictedError,
        JobFailedError,
        JobTimeoutError,
        NoBackendError,
        OutOfMemoryError,
        PluginError,
        PluginHookError,
        ProviderError,
        RegistryError,
        RemoteError,
        SerializationError,
        StorageError,
        StorageExistsError,
        StorageNotFoundError,
        UnschedulableError,
        VersionMismatchError,
    )
    from ascend.images import ImageBuilder, ImageSpec
    from ascend.plugins.markers import hookimpl, hookspec
    from ascend.plugins.types import NodeType, Provider, Setting
    from ascend.registry import ContainerRegistry, OCIRegistry
    from ascend.runtime import JobHandle, attach
    from ascend.storage.base import CloudStorage
    from ascend.storage.fsspec_storage import FsspecStorage

_EXPORTS = {
    "ascend": "ascend.decorator",
    "RemoteFunction": "ascend.decorator",
    "attach": "ascend.runtime",
    "JobHandle": "ascend.runtime",
    "NodeType": "ascend.plugins.types",
    "hookimpl": "ascend.plugins.markers",
    "hookspec": "ascend.plugins.markers",
    "Setting": "ascend.plugins.types",
    "Provider": "ascend.plugins.types",
    "get_backend": "ascend.backend",
    "CloudBackend": "ascend.backend",
    "AscendConfig": "ascend.config",
    "load_config": "ascend.config",
    "CloudStorage": "ascend.storage.base",
    "FsspecStorage": "ascend.storage.fsspec_storage",
    "ContainerRegistry": "ascend.registry",
    "OCIRegistry": "ascend.registry",
    "ImageBuilder": "ascend.images",
    "ImageSpec": "ascend.images",
    "ComputeBackend": "ascend.compute",
    "JobRequest": "ascend.compute",
    **{
        name: "ascend.errors"
        for name in (
            "AscendError",
            "BackendNotAvailableError",
            "ClusterForbiddenError",
            "ClusterUnreachableError",
            "CommandClashError",
            "ComputeError",
            "ConfigError",
            "ConfigProblem",
            "ImageBuildError",
            "ImageNotFoundError",
            "InvalidStoragePathError",
            "NoBackendError",
            "PluginError",
            "PluginHookError",
            "ProviderError",
            "RegistryError",
            "StorageError",
            "StorageExistsError",
            "StorageNotFoundError",
            "InvalidJobIdError",
            "GitError",
            "GitDirtyError",
            "SerializationError",
            "IntegrityError",
            "VersionMismatchError",
            "JobError",
            "JobTimeoutError",
            "OutOfMemoryError",
            "JobCancelledError",
            "JobFailedError",
            "ImagePullError",
            "UnschedulableError",
            "JobEvictedError",
            "RemoteError",
        )
    },
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ascend' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


def _invoked_as_tool() -> bool:
    """Whether this interpreter runs Ascend's own entry points (CLI or in-pod runner).

    Those must work without a backend: the CLI prints the guidance itself, and the runner
    needs no provider at all.
    """
    argv: list[str] = list(getattr(sys, "orig_argv", ()))
    for index, arg in enumerate(argv):
        module = None
        if arg == "-m" and index + 1 < len(argv):
            module = argv[index + 1]
        elif arg.startswith("-") and not arg.startswith("--") and "m" in arg[1:]:
            # clustered flags: -Im ascend, -um ascend, -mascend
            flags, _, rest = arg[1:].partition("m")
            if flags.isalpha() or not flags:
                module = rest or (argv[index + 1] if index + 1 < len(argv) else "")
        if module is not None:
            return module == "ascend" or module.startswith("ascend.")
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return script in ("ascend", "ascend.exe", "ascend-script.py")


def _check_backend() -> None:
    """Raise NoBackendError when no provider is installed and none is selected (no SDK import)."""
    if os.environ.get("ASCEND_CLOUD_PROVIDER", "").strip():
        return
    from ascend.config import provider_selected_in_files, resolve_provider
    from ascend.errors import AscendError, NoBackendError

    if provider_selected_in_files():
        return
    from ascend.plugins.probe import usable_provider_installed

    if usable_provider_installed():
        return  # which one, or whether several clash, is decided at first use
    try:
        from ascend.plugins.manager import get_plugin_manager

        resolve_provider(None, get_plugin_manager())
    except NoBackendError:
        raise
    except AscendError:
        return  # other problems (ambiguous providers, bad YAML) surface at first use


_skip_check = os.environ.get("ASCEND_SKIP_BACKEND_CHECK", "").strip().lower() in (
    "1",
    "true",
    "yes",
)
if not _skip_check and not _invoked_as_tool():
    _check_backend()
