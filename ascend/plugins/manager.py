"""Plugin discovery, ordering and error attribution: the only place that talks to pluggy.

Discovery order (documented for plugin authors in CONTRIBUTING.md):

1. built-in plugins (``BUILTIN_PLUGINS``), registered first so that LIFO puts them last;
2. entry points of group ``ascend``, unless ``ASCEND_DISABLE_PLUGIN_AUTOLOAD=1``;
3. ``ASCEND_PLUGINS``: comma-separated entry-point names or dotted module paths (always honoured);
4. plugins passed in code (tests, embedding);
5. ``check_pending()``: an implementation of an unknown hook (a misspelling) is an error
   naming the plugin.

``ASCEND_DISABLED_PLUGINS`` blocks plugins by entry-point or distribution name. A plugin that
fails at any step is reported once on stderr with its name, distribution and error, then left
out; ``ASCEND_STRICT_PLUGINS=1`` makes such failures fatal.

Core code never calls ``pm.hook`` itself: it uses the typed accessors here, which attribute
answers and exceptions to the plugin that produced them.
"""

from __future__ import annotations

import contextvars
import difflib
import functools
import importlib
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

from ascend.errors import AscendError, CommandClashError, PluginError, PluginHookError
from ascend.plugins import hookspecs
from ascend.plugins.markers import PROJECT_NAME
from ascend.plugins.types import NodeType, Provider, Setting

if TYPE_CHECKING:
    from importlib.metadata import Distribution, EntryPoint

R = TypeVar("R")
ENTRY_POINT_GROUP = PROJECT_NAME
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("core", "ascend.plugins.core"),
    ("local", "ascend.local.plugin"),
    ("kubernetes", "ascend.providers.kubernetes"),
    ("kubernetes-compute", "ascend.kubernetes.plugin"),
)
# Built-ins that cannot be disabled: without them nothing else can be configured.
ESSENTIAL_PLUGINS = frozenset({"core"})

# Hooks whose single answer makes up the backend; shown by `ascend plugins`.
BACKEND_HOOKS = (
    "ascend_storage",
    "ascend_registry_url",
    "ascend_registry",
    "ascend_build_image",
    "ascend_compute",
)

_TRUE = {"1", "true", "yes", "on"}


def env_flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in _TRUE


def _split_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@dataclass
class PluginFailure:
    """A plugin that could not be used, and why."""

    name: str
    distribution: str | None
    version: str | None
    stage: str  # "import", "register", "validate", "call"
    error: BaseException

    @property
    def dist_label(self) -> str:
        if not self.distribution:
            return "no distribution"
        return f"{self.distribution} {self.version}" if self.version else self.distribution

    def message(self) -> str:
        return (
            f"ascend: could not {self.stage} plugin {self.name!r} ({self.dist_label}): "
            f"{type(self.error).__name__}: {self.error}"
        )


@dataclass
class PluginInfo:
    """What ``ascend plugins`` shows for one plugin."""

    name: str
    distribution: str | None
    version: str | None
    status: str  # "active", "blocked" or "failed: ..."
    source: str  # "builtin", "entry point", "ASCEND_PLUGINS", "code"
    module: str | None
    hooks: list[str] = field(default_factory=list)


# The plugin names that returned a non-None answer during the current hook call.
_answers: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "ascend_hook_answers", default=None
)


class AscendPluginManager(pluggy.PluginManager):
    """A pluggy manager with Ascend's discovery rules, failure isolation and typed accessors."""

    def __init__(self, *, strict: bool = False, stderr: Any = None) -> None:
        super().__init__(PROJECT_NAME)
        self.strict = strict
        self._stderr = stderr
        self.failed_plugins: list[PluginFailure] = []
        self._sources: dict[str, str] = {}
        self._dists: dict[str, tuple[str | None, str | None]] = {}
        self._reported: set[str] = set()
        # Collected records (settings, providers, node types) per hook, until plugins change:
        # every configuration load asks for them, and plugins do not change between calls.
        self._records: dict[str, Any] = {}
        self.add_hookspecs(hookspecs)
        self.hook.ascend_addhooks.call_historic(kwargs={"pluginmanager": self})

    # -- registration ------------------------------------------------------------------------

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin``; registering the same object twice is a no-op, not an error."""
        if self.is_registered(plugin):
            return self.get_name(plugin)
        self._records.clear()
        plugin_name = super().register(plugin, name)
        if plugin_name is None:  # blocked
            return None
        for caller in self.get_hookcallers(plugin) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and not (impl.wrapper or impl.hookwrapper):
                    # HookImpl.function is typed Final, but pluggy calls whatever it holds; wrapping it is
                    # how answers and errors get the plugin's name (covered by tests, pluggy<2).
                    impl.function = self._attributed(  # type: ignore[misc]
                        impl.function, caller.name, plugin_name
                    )
        return plugin_name

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        self._records.clear()
        return super().unregister(plugin, name)

    def get_canonical_name(self, plugin: object) -> str:
        name = getattr(plugin, "__name__", None)
        return name if isinstance(name, str) else type(plugin).__name__

    def _attributed(
        self, function: Callable[..., Any], hook: str, plugin: str
    ) -> Callable[..., Any]:
        """Wrap an implementation so its answers and its exceptions carry the plugin's name."""

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = function(*args, **kwargs)
            except AscendError as error:
                # Deliberate errors keep their type (callers catch them) and gain the source.
                if not getattr(error, "_ascend_plugin_noted", False):
                    error.add_note(f"raised by ascend plugin {self._label(plugin)} in {hook}")
                    error._ascend_plugin_noted = True  # type: ignore[attr-defined]
                raise
            except Exception as error:
                dist, version = self._dists.get(plugin, (None, None))
                raise PluginHookError(
                    plugin=plugin,
                    distribution=f"{dist} {version}" if dist and version else dist,
                    hook=hook,
                    error=error,
                ) from error
            answers = _answers.get()
            if result is not None and answers is not None:
                answers.append(plugin)
            return result

        return call

    def _label(self, plugin: str) -> str:
        dist, version = self._dists.get(plugin, (None, None))
        if dist:
            return f"{plugin!r} ({dist} {version})" if version else f"{plugin!r} ({dist})"
        return repr(plugin)

    def _report(self, failure: PluginFailure) -> None:
        """Record a failed plugin, say so once on stderr, and raise when strict."""
        self.failed_plugins.append(failure)
        if self.strict:
            raise PluginError(
                failure.message(),
                plugin=failure.name,
                distribution=failure.distribution,
                fix="fix or uninstall the plugin; unset ASCEND_STRICT_PLUGINS to carry on without it",
            ) from failure.error
        if failure.name not in self._reported:
            self._reported.add(failure.name)
            stream = self._stderr or sys.stderr
            print(
                failure.message()
                + f" -- carrying on without it (ASCEND_DISABLED_PLUGINS={failure.name} hides this)",
                file=stream,
            )

    def _safe_register(
        self, plugin: object, name: str, source: str, dist: tuple[str | None, str | None]
    ) -> None:
        self._sources[name] = source
        self._dists[name] = dist
        try:
            self.register(plugin, name)
        except Exception as error:
            self._unregister_quietly(plugin)
            self._report(PluginFailure(name, dist[0], dist[1], "register", error))

    def _unregister_quietly(self, plugin: object) -> None:
        try:
            if self.is_registered(plugin):
                self.unregister(plugin)
        except Exception:  # pragma: no cover - pluggy keeps state consistent; best effort
            pass

    # -- discovery ---------------------------------------------------------------------------

    def load(
        self, env: Mapping[str, str] | None = None, extra_plugins: Iterable[object] = ()
    ) -> AscendPluginManager:
        """Run discovery in the documented order. Returns ``self``."""
        env = os.environ if env is None else env
        blocked = set(_split_list(env.get("ASCEND_DISABLED_PLUGINS", "")))
        for name in blocked - ESSENTIAL_PLUGINS:
            self.set_blocked(name)

        for name, module_path in BUILTIN_PLUGINS:
            if name in blocked and name not in ESSENTIAL_PLUGINS:
                continue
            self._load_module(name, module_path, "builtin", (PROJECT_NAME, _own_version()))

        entry_points = _entry_points()
        if not env_flag(env, "ASCEND_DISABLE_PLUGIN_AUTOLOAD"):
            for ep in entry_points:
                self._load_entry_point(ep, blocked, "entry point")

        by_name = {ep.name: ep for ep in entry_points}
        for token in _split_list(env.get("ASCEND_PLUGINS", "")):
            if token in by_name:
                self._load_entry_point(by_name[token], blocked, "ASCEND_PLUGINS")
            elif token not in blocked and not self.is_blocked(token):
                self._load_module(token, token, "ASCEND_PLUGINS", None)

        for plugin in extra_plugins:
            name = self.get_canonical_name(plugin)
            self._safe_register(plugin, name, "code", (None, None))

        self.check_all_pending()
        return self

    def _load_module(
        self, name: str, module_path: str, source: str, dist: tuple[str | None, str | None] | None
    ) -> None:
        if self.has_plugin(name):
            return
        try:
            module = importlib.import_module(module_path)
        except Exception as error:
            d = dist or (None, None)
            self._report(PluginFailure(name, d[0], d[1], "import", error))
            return
        self._safe_register(module, name, source, dist or _distribution_of(module_path))

    def _load_entry_point(self, ep: EntryPoint, blocked: set[str], source: str) -> None:
        dist_name, dist_version = _dist_of_entry_point(ep)
        if ep.name in blocked or (dist_name and dist_name in blocked) or self.is_blocked(ep.name):
            self.set_blocked(ep.name)
            self._sources.setdefault(ep.name, source)
            self._dists.setdefault(ep.name, (dist_name, dist_version))
            return
        if self.has_plugin(ep.name):
            return
        try:
            plugin = ep.load()
        except Exception as error:
            self._report(PluginFailure(ep.name, dist_name, dist_version, "import", error))
            return
        self._safe_register(plugin, ep.name, source, (dist_name, dist_version))

    def check_all_pending(self) -> None:
        """Run ``check_pending`` until clean, dropping (or, strict, raising on) bad plugins."""
        while True:
            try:
                self.check_pending()
                return
            except pluggy.PluginValidationError as error:
                plugin = error.plugin
                name = self.get_name(plugin) or self.get_canonical_name(plugin)
                dist, version = self._dists.get(name, (None, None))
                failure = PluginFailure(
                    name,
                    dist,
                    version,
                    "validate",
                    PluginError(self._unknown_hooks_message(plugin, error), plugin=name),
                )
                self._unregister_quietly(plugin)
                self._report(failure)

    def _unknown_hooks_message(self, plugin: object, error: Exception) -> str:
        known = [
            name
            for name in dir(self.hook)
            if name.startswith(PROJECT_NAME + "_") and getattr(self.hook, name).spec is not None
        ]
        unknown = [
            caller.name
            for caller in self.get_hookcallers(plugin) or []
            if caller.spec is None
            and any(
                not impl.optionalhook for impl in caller.get_hookimpls() if impl.plugin is plugin
            )
        ]
        if not unknown:
            return str(error)
        parts = []
        for hook in unknown:
            close = difflib.get_close_matches(hook, known, n=1)
            parts.append(f"{hook!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        return "implements unknown hook " + ", ".join(parts)

    # -- typed accessors ---------------------------------------------------------------------

    def call_first(self, hook_name: str, **kwargs: Any) -> tuple[Any, str | None]:
        """Call a firstresult hook; return ``(answer, name of the plugin that answered)``."""
        token = _answers.set([])
        try:
            result = getattr(self.hook, hook_name)(**kwargs)
            answered = _answers.get() or []
        finally:
            _answers.reset(token)
        return result, (answered[-1] if answered and result is not None else None)

    def collect(self, hook_name: str, **kwargs: Any) -> list[tuple[Any, str]]:
        """Call a collecting hook; return every item with the plugin that contributed it."""
        items: list[tuple[Any, str]] = []
        hook = getattr(self.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):
            if impl.wrapper or impl.hookwrapper:
                continue
            args = [kwargs[name] for name in impl.argnames]
            try:
                contributed = list(impl.function(*args) or ())
            except PluginHookError as error:
                if self.strict:
                    raise
                # one broken plugin must not take everyone else's contributions down
                dist, version = self._dists.get(impl.plugin_name, (None, None))
                self._report(PluginFailure(impl.plugin_name, dist, version, "call", error.error))
                continue
            items.extend((item, impl.plugin_name) for item in contributed)
        return items

    def named_records(
        self, hook_name: str, record_type: type[R], what: str
    ) -> dict[str, tuple[R, str]]:
        """Records from a collecting hook by ``name``; a wrong type or a name declared twice is
        an error naming the plugins."""
        if hook_name in self._records:
            return dict(self._records[hook_name])
        found: dict[str, tuple[R, str]] = {}
        for record, plugin in self.collect(hook_name):
            if not isinstance(record, record_type):
                raise PluginError(
                    f"plugin {self._label(plugin)} returned {record!r} from {hook_name}; "
                    f"expected ascend.{record_type.__name__} records",
                    plugin=plugin,
                )
            name = getattr(record, "name", None)
            if not isinstance(name, str):  # pragma: no cover - every record type has a name
                raise TypeError(f"{record_type.__name__} records need a name")
            if name in found:
                other = found[name][1]
                raise PluginError(
                    f"{what} {name!r} is declared by both {self._label(other)} and "
                    f"{self._label(plugin)}",
                    plugin=plugin,
                    fix=f"disable one with ASCEND_DISABLED_PLUGINS={plugin}",
                )
            found[name] = (record, plugin)
        self._records[hook_name] = dict(found)
        return found

    def providers(self) -> dict[str, tuple[Provider, str]]:
        """Every declared provider by name, with the plugin that declared it."""
        return self.named_records("ascend_providers", Provider, "provider")

    def node_types(self) -> dict[str, tuple[NodeType, str]]:
        """The node-type catalog, by name, with the plugin that declared each type."""
        return self.named_records("ascend_node_types", NodeType, "node type")

    def settings(self) -> dict[str, tuple[Setting, str]]:
        """Every declared setting by key, with the plugin that declared it."""
        from ascend.config import CONTROL_ENV_VARS

        if "ascend_settings" in self._records:
            return dict(self._records["ascend_settings"])

        found: dict[str, tuple[Setting, str]] = {}
        env_vars: dict[str, str] = {}
        for setting, plugin in self.collect("ascend_settings"):
            if not isinstance(setting, Setting):
                raise PluginError(
                    f"plugin {self._label(plugin)} returned {setting!r} from ascend_settings; "
                    "expected ascend.Setting records",
                    plugin=plugin,
                )
            clash = found.get(setting.name) or (
                found.get(env_vars[setting.env_var]) if setting.env_var in env_vars else None
            )
            if clash is not None:
                raise PluginError(
                    f"setting {setting.name!r} of {self._label(plugin)} clashes with "
                    f"{clash[0].name!r} of {self._label(clash[1])}",
                    plugin=plugin,
                    fix=f"rename the setting, prefixed with the plugin name ('{plugin}.')",
                )
            if setting.env_var in CONTROL_ENV_VARS:
                raise PluginError(
                    f"setting {setting.name!r} of {self._label(plugin)} would be set by "
                    f"{setting.env_var}, which steers Ascend itself",
                    plugin=plugin,
                    fix=f"rename the setting, prefixed with the plugin name ('{plugin}.')",
                )
            found[setting.name] = (setting, plugin)
            env_vars[setting.env_var] = setting.name
        self._records["ascend_settings"] = dict(found)
        return found

    def cli_commands(self) -> tuple[dict[str, tuple[Any, str]], list[CommandClashError]]:
        """Plugin CLI commands by name, and the clashes between plugins (neither side kept)."""
        commands: dict[str, tuple[Any, str]] = {}
        clashes: dict[str, list[str]] = {}
        for command, plugin in self.collect("ascend_cli_commands"):
            name = getattr(command, "name", None)
            if not name:
                raise PluginError(
                    f"plugin {self._label(plugin)} returned {command!r} from ascend_cli_commands; "
                    "expected click commands",
                    plugin=plugin,
                )
            if name in commands or name in clashes:
                clashes.setdefault(name, [commands.pop(name)[1]] if name in commands else [])
                clashes[name].append(plugin)
                continue
            commands[name] = (command, plugin)
        errors = [
            CommandClashError(
                f"command {name!r} is provided by several plugins: "
                + " and ".join(self._label(p) for p in plugins),
                command=name,
                plugin=plugins[-1],
                fix="disable all but one with ASCEND_DISABLED_PLUGINS=" + ",".join(plugins[1:]),
            )
            for name, plugins in clashes.items()
        ]
        return commands, errors

    def implementers(self, hook_name: str) -> list[str]:
        """Names of the plugins implementing ``hook_name``, in call order (first asked first)."""
        hook = getattr(self.hook, hook_name)
        return [
            impl.plugin_name
            for impl in reversed(hook.get_hookimpls())
            if not (impl.wrapper or impl.hookwrapper)
        ]

    def adjust_job_manifest(self, **kwargs: Any) -> None:
        """Let every plugin adjust a Job manifest in place (``ascend_job_manifest``)."""
        self.hook.ascend_job_manifest(**kwargs)

    def configure(self, config: Any) -> None:
        """Tell every plugin, including ones registered later, about a loaded configuration."""
        self.hook.ascend_configure.call_historic(kwargs={"config": config})

    # -- introspection -----------------------------------------------------------------------

    def plugin_infos(self) -> list[PluginInfo]:
        """Every plugin known to this manager, active, blocked or failed."""
        infos: list[PluginInfo] = []
        seen: set[str] = set()
        for name, plugin in self.list_name_plugin():
            if plugin is None:  # blocked
                continue
            seen.add(name)
            dist, version = self._dists.get(name, (None, None))
            hooks = sorted(c.name for c in self.get_hookcallers(plugin) or [])
            infos.append(
                PluginInfo(
                    name=name,
                    distribution=dist,
                    version=version,
                    status="active",
                    source=self._sources.get(name, "code"),
                    module=getattr(plugin, "__name__", type(plugin).__module__),
                    hooks=hooks,
                )
            )
        for name, _ in self.list_name_plugin():
            if name not in seen and self.is_blocked(name):
                seen.add(name)
                dist, version = self._dists.get(name, (None, None))
                infos.append(
                    PluginInfo(name, dist, version, "blocked", self._sources.get(name, ""), None)
                )
        for failure in self.failed_plugins:
            if failure.name in seen:
                continue
            seen.add(failure.name)
            infos.append(
                PluginInfo(
                    name=failure.name,
                    distribution=failure.distribution,
                    version=failure.version,
                    status=f"failed: {type(failure.error).__name__}: {failure.error}",
                    source=self._sources.get(failure.name, ""),
                    module=None,
                )
            )
        return infos

    def distribution_label(self, plugin: str) -> str:
        dist, version = self._dists.get(plugin, (None, None))
        return f"{dist} {version}" if dist and version else (dist or "-")


def _own_version() -> str:
    from ascend._version import __version__

    return __version__


def _entry_points() -> list[EntryPoint]:
    from importlib.metadata import entry_points

    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _dist_of_entry_point(ep: EntryPoint) -> tuple[str | None, str | None]:
    dist: Distribution | None = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def _distribution_of(module_path: str) -> tuple[str | None, str | None]:
    """The installed distribution that ships ``module_path``'s top-level package, if any."""
    from importlib.metadata import packages_distributions, version

    top = module_path.split(".")[0]
    names = packages_distributions().get(top) or []
    if not names:
        return None, None
    try:
        return names[0], version(names[0])
    except Exception:
        return names[0], None


_override: AscendPluginManager | None = None
_build_lock = threading.RLock()


@functools.cache
def _default_plugin_manager() -> AscendPluginManager:
    strict = env_flag(os.environ, "ASCEND_STRICT_PLUGINS")
    return AscendPluginManager(strict=strict).load()


def get_plugin_manager() -> AscendPluginManager:
    """The process-wide plugin manager, built from the environment on first use.

    Tests and embedders swap it with :func:`use_plugin_manager`, or rebuild it after changing
    the environment with :func:`reset_plugin_manager`.
    """
    if _override is not None:
        return _override
    with _build_lock:  # two threads using Ascend for the first time build one manager
        return _default_plugin_manager()


def use_plugin_manager(pm: AscendPluginManager | None) -> AscendPluginManager | None:
    """Make ``pm`` the process-wide manager (``None`` restores the default); returns the old one."""
    global _override
    previous, _override = _override, pm
    return previous


def reset_plugin_manager() -> None:
    """Forget the default manager so the next use rediscovers plugins."""
    _default_plugin_manager.cache_clear()
