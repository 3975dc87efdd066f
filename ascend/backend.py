"""``get_backend()``: the ``CloudBackend`` facade assembled from the plugins' backend hooks.

Each part (storage, registry, image builder, compute) is resolved on first use, so asking for
storage never imports a Kubernetes client. Core code uses this facade and never calls hooks.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from ascend.compute import ComputeBackend
from ascend.errors import BackendNotAvailableError, PluginError
from ascend.images import ImageBuilder, ImageSpec
from ascend.registry import ContainerRegistry
from ascend.storage.base import CloudStorage

if TYPE_CHECKING:
    from ascend.config import AscendConfig
    from ascend.images.progress import Progress
    from ascend.plugins.manager import AscendPluginManager


T = TypeVar("T")


class part(Generic[T]):  # lowercase: used like functools.cached_property
    """A backend part built once, on first use, even when threads ask at the same moment.

    ``functools.cached_property`` has no lock since Python 3.12, so two threads could build
    two compute clients (or run a plugin's hook twice).
    """

    def __init__(self, build: Callable[[Any], T]) -> None:
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, instance: None, owner: type) -> part[T]: ...

    @overload
    def __get__(self, instance: object, owner: type) -> T: ...

    def __get__(self, instance: object | None, owner: type) -> part[T] | T:
        if instance is None:
            return self
        cache = instance.__dict__
        if self.name not in cache:
            with cache["_parts_lock"]:
                if self.name not in cache:
                    cache[self.name] = self.build(instance)
        value: T = cache[self.name]
        return value


class ConfigWarning(UserWarning):
    """A configuration oddity that does not stop Ascend (an unknown key, say)."""


class HookImageBuilder(ImageBuilder):
    """Builds images by asking the ``ascend_build_image`` hook."""

    def __init__(self, backend: CloudBackend) -> None:
        self._backend = backend

    def build(self, spec: ImageSpec, progress: Progress | None = None) -> str:
        from ascend.images.progress import Progress

        image, plugin = self._backend._pm.call_first(
            "ascend_build_image",
            config=self._backend.config,
            spec=spec,
            registry=self._backend.registry,
            progress=progress or Progress(enabled=False),
            backend=self._backend,
        )
        if image is None:
            raise BackendNotAvailableError(
                f"no installed plugin can build images for provider {self._backend.name!r}",
                fix="install a plugin with an image builder, or pass a prebuilt base_image",
            )
        if not isinstance(image, str):
            raise PluginError(
                f"plugin {plugin!r} returned {image!r} from ascend_build_image; expected the "
                "image reference as a string",
                plugin=plugin,
            )
        self._backend.answered_by["ascend_build_image"] = plugin
        return image


class CloudBackend:
    """The parts of one provider: ``storage``, ``registry``, ``image_builder``, ``compute``.

    ``answered_by`` maps each backend hook resolved so far to the plugin that answered it.
    """

    def __init__(self, name: str, config: AscendConfig, pm: AscendPluginManager) -> None:
        self.name = name
        self.config = config
        self._pm = pm
        self.answered_by: dict[str, str | None] = {}
        self._parts_lock = threading.RLock()  # a part may build another (registry -> url)

    def __repr__(self) -> str:
        return f"CloudBackend(name={self.name!r})"

    def _answer(self, hook: str, expected: type, what: str, fix: str, **kwargs: Any) -> Any:
        result, plugin = self._pm.call_first(hook, config=self.config, **kwargs)
        self.answered_by[hook] = plugin
        if result is None:
            raise BackendNotAvailableError(
                f"nothing provides {what} for provider {self.name!r}", fix=fix
            )
        if not isinstance(result, expected):
            raise PluginError(
                f"plugin {plugin!r} returned {type(result).__name__} from {hook}; expected "
                f"{expected.__name__}",
                plugin=plugin,
                fix="report this to the plugin's author",
            )
        return result

    @part
    def storage(self) -> CloudStorage:
        storage: CloudStorage = self._answer(
            "ascend_storage",
            CloudStorage,
            "storage",
            "set storage_url (an fsspec URL such as s3://bucket/ascend) or install the "
            "provider's plugin",
        )
        return storage

    @part
    def registry(self) -> ContainerRegistry:
        url: str = self._answer(
            "ascend_registry_url",
            str,
            "a container registry",
            "set registry_url: host[:port] in .ascend.yaml or ASCEND_REGISTRY_URL",
        )
        registry: ContainerRegistry = self._answer(
            "ascend_registry",
            ContainerRegistry,
            f"a client for registry {url}",
            "install a plugin that knows this registry",
            url=url,
        )
        return registry

    @part
    def image_builder(self) -> ImageBuilder:
        return HookImageBuilder(self)

    @part
    def compute(self) -> ComputeBackend:
        compute: ComputeBackend = self._answer(
            "ascend_compute",
            ComputeBackend,
            "compute",
            "install a plugin that provides compute for this provider",
        )
        return compute

    def validate_job(self, request: Any) -> None:
        """Let every plugin refuse ``request`` before anything is uploaded
        (``ascend_validate_job``)."""
        self._pm.hook.ascend_validate_job(config=self.config, request=request)

    def describe(self) -> dict[str, dict[str, str | None]]:
        """Which plugin answers each backend hook, or the error that stops it (no side effects
        beyond building the parts)."""
        report: dict[str, dict[str, str | None]] = {}
        for hook, attribute in (
            ("ascend_storage", "storage"),
            ("ascend_registry_url", "registry"),
            ("ascend_compute", "compute"),
        ):
            try:
                getattr(self, attribute)
                error = None
            except Exception as exc:  # shown to the user, not swallowed
                error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            report[hook] = {"plugin": self.answered_by.get(hook), "error": error}
            if hook == "ascend_registry_url" and "ascend_registry" in self.answered_by:
                report["ascend_registry"] = {
                    "plugin": self.answered_by.get("ascend_registry"),
                    "error": error,
                }
        builders = self._pm.implementers("ascend_build_image")
        report["ascend_build_image"] = {
            "plugin": builders[0] if builders else None,
            "error": None if builders else "no plugin implements ascend_build_image",
        }
        return report


_cache: dict[tuple[int, str], CloudBackend] = {}
_cache_lock = threading.Lock()
_configured: set[tuple[int, str]] = set()


def get_backend(
    config: AscendConfig | None = None, *, pm: AscendPluginManager | None = None
) -> CloudBackend:
    """The backend for ``config`` (by default the configuration that applies here).

    Backends are cached per plugin manager and configuration values, so changing directory or
    configuration gives a new backend, and a repeated call costs a dictionary lookup.

    :raises NoBackendError: no provider is installed and none is selected.
    :raises ProviderError: the selected provider is unknown, unusable or ambiguous.
    :raises ConfigError: a configuration value is invalid.
    """
    from ascend.config import load_config
    from ascend.plugins.manager import get_plugin_manager

    pm = pm or get_plugin_manager()
    if config is None:
        config = load_config(pm=pm)
    if config.provider_error is not None:
        raise config.provider_error
    config.raise_for_problems()
    key = (id(pm), config.fingerprint())
    with _cache_lock:
        backend = _cache.get(key)
        if backend is not None:
            return backend
        for message in config.warnings:
            warnings.warn(message, ConfigWarning, stacklevel=2)
        if key not in _configured:
            pm.configure(config)
            _configured.add(key)
        assert config.cloud_provider is not None
        backend = CloudBackend(config.cloud_provider, config, pm)
        _cache[key] = backend
        return backend


def clear_backend_cache() -> None:
    """Forget cached backends (tests, or after changing plugins in a running process)."""
    with _cache_lock:
        _cache.clear()
        _configured.clear()
