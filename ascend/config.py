"""Configuration: ``.ascend.yaml`` files, ``ASCEND_*`` overrides, and plugin-declared settings.

Precedence, highest first: values passed in code, ``ASCEND_<KEY>`` environment variables, the
project file (``.ascend.yaml`` found upward from the working directory), the user file
(``config.yaml`` in the user's config directory), then each setting's declared default. Every
value remembers where it came from (``ascend config show``).

Keys are declared by plugins through ``ascend_settings`` (the core declares its own the same
way), so each value is converted and validated by the plugin that owns it. A dotted key
(``azure.storage_account``) is a nested mapping in YAML and ``ASCEND_AZURE_STORAGE_ACCOUNT`` in
the environment.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ascend import secrets
from ascend.errors import ConfigError, ConfigProblem, NoBackendError, ProviderError

if TYPE_CHECKING:
    from ascend.plugins.manager import AscendPluginManager
    from ascend.plugins.types import Setting

PROJECT_FILE = ".ascend.yaml"
USER_FILE = "config.yaml"
# ASCEND_* variables that steer Ascend itself rather than set a configuration key.
CONTROL_ENV_VARS = frozenset(
    {
        "ASCEND_PLUGINS",
        "ASCEND_DISABLE_PLUGIN_AUTOLOAD",
        "ASCEND_DISABLED_PLUGINS",
        "ASCEND_STRICT_PLUGINS",
        "ASCEND_SKIP_BACKEND_CHECK",
        "ASCEND_CONFIG_DIR",
        "ASCEND_REQUIRE_SERVICES",
        "ASCEND_QUIET",  # no status lines while calls wait (ascend.console)
    }
)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Origin(NamedTuple):
    """Where a value came from: ``default``, ``file``, ``env``, ``code`` or ``auto``."""

    kind: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


def user_config_dir(env: Mapping[str, str] | None = None) -> Path:
    """The directory of the user-level config file (``ASCEND_CONFIG_DIR`` overrides it)."""
    env = os.environ if env is None else env
    if env.get("ASCEND_CONFIG_DIR"):
        return Path(env["ASCEND_CONFIG_DIR"])
    import platformdirs

    return Path(platformdirs.user_config_dir("ascend", appauthor=False))


def find_project_file(start: Path | None = None) -> Path | None:
    """The nearest ``.ascend.yaml`` in ``start`` or any parent directory."""
    directory = (start or Path.cwd()).resolve()
    for candidate in (directory, *directory.parents):
        path = candidate / PROJECT_FILE
        if path.is_file():
            return path
    return None


def config_files(cwd: Path | None = None, env: Mapping[str, str] | None = None) -> list[Path]:
    """The config files that apply, lowest precedence first."""
    files = []
    user_file = user_config_dir(env) / USER_FILE
    if user_file.is_file():
        files.append(user_file)
    project = find_project_file(cwd)
    if project is not None and project.resolve() != user_file.resolve():
        files.append(project)
    return files


_SELECTS_PROVIDER = re.compile(r"^cloud_provider[ \t]*:[ \t]*[^\s#]", re.MULTILINE)


def provider_selected_in_files(
    cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> bool:
    """Whether a config file selects ``cloud_provider`` (a fast check for ``import ascend``).

    A line scan instead of a YAML parse keeps yaml out of the import; whether the value is
    valid is checked when the configuration is loaded.
    """

    def selects(path: Path | None) -> bool:
        try:
            return path is not None and bool(
                _SELECTS_PROVIDER.search(path.read_text(encoding="utf-8-sig"))
            )
        except (OSError, ValueError):  # unreadable: the full loader reports it
            return False

    # The user directory is resolved only when the project file does not decide.
    return selects(find_project_file(cwd)) or selects(user_config_dir(env) / USER_FILE)


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse one config file; a syntax error or a non-mapping is a ``ConfigError``."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(
            f"{where}: not valid YAML: {getattr(error, 'problem', error)}",
            fix="fix the syntax; 'ascend config validate' re-checks the file",
        ) from error
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {error.start}: {error.reason})",
            fix="save the file as UTF-8",
        ) from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of keys to values, not {type(data).__name__}",
            fix="write 'key: value' lines, for example 'cloud_provider: local'",
        )
    return data


def flatten(
    data: Mapping[str, Any], settings: Mapping[str, Any], prefix: str = ""
) -> dict[str, Any]:
    """Turn nested YAML sections into dotted keys, stopping at settings of type ``dict``."""
    flat: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = f"{prefix}{raw_key}"
        declared = settings.get(key)
        if isinstance(value, dict) and declared is None:
            nested = flatten(value, settings, prefix=key + ".")
            flat.update(nested if nested else {key: value})
        else:
            flat[key] = value
    return flat


def convert(setting: Setting, value: Any, from_env: bool) -> Any:
    """Convert ``value`` to the setting's type; raise ``ValueError(reason)`` when it cannot be."""
    kind = setting.type
    if value is None:
        return None
    if from_env and isinstance(value, str):
        text = value.strip()
        if kind is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError("expected a boolean (true/false, 1/0, yes/no, on/off)")
        if kind is int:
            try:
                return int(text)
            except ValueError:
                raise ValueError("expected a whole number") from None
        if kind is float:
            try:
                return float(text)
            except ValueError:
                raise ValueError("expected a number") from None
        if kind is list:
            return [part.strip() for part in text.split(",") if part.strip()]
        if kind is dict:
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"expected a JSON object ({error.msg})") from None
            if not isinstance(parsed, dict):
                raise ValueError("expected a JSON object")
            return parsed
        return text
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is list and isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"expected {kind.__name__}, got {type(value).__name__}")
    if isinstance(value, list) and not all(isinstance(item, str) for item in value):
        raise ValueError("expected a list of strings")
    return value


class AscendConfig:
    """A loaded configuration: values by key, where each came from, and the declared settings.

    Plugins read values with ``config.get("acme.region")``; the core keys are also attributes
    (``config.cloud_provider``, ``config.storage_url``, ``config.registry_url``).
    ``cloud_provider`` is already resolved: the explicit setting, or the only provider plugin
    installed; it is ``None`` when nothing can be selected (``provider_error`` says why).
    """

    def __init__(
        self,
        values: Mapping[str, Any],
        origins: Mapping[str, Origin],
        settings: Mapping[str, tuple[Setting, str]],
        files: list[Path] | None = None,
        problems: list[ConfigProblem] | None = None,
        warnings: list[str] | None = None,
        provider_error: Exception | None = None,
    ) -> None:
        self._values = dict(values)
        self._origins = dict(origins)
        self.settings = dict(settings)
        self.files = list(files or [])
        self.problems = list(problems or [])
        self.warnings = list(warnings or [])
        self.provider_error = provider_error

    # -- access ------------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        value = self._values.get(key)
        return default if value is None else value

    def __getitem__(self, key: str) -> Any:
        if key not in self.settings and key not in self._values:
            raise KeyError(key)
        return self._values.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._values and self._values[key] is not None

    def origin(self, key: str) -> Origin:
        return self._origins.get(key, Origin("default"))

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    @property
    def cloud_provider(self) -> str | None:
        value = self._values.get("cloud_provider")
        return value if isinstance(value, str) else None

    @property
    def storage_url(self) -> str | None:
        value = self._values.get("storage_url")
        return value if isinstance(value, str) else None

    @property
    def registry_url(self) -> str | None:
        value = self._values.get("registry_url")
        return value if isinstance(value, str) else None

    def secret_values(self) -> list[str]:
        """The text of every value :func:`shown_value` hides: ``secret`` settings and the
        secret-looking entries of mappings such as ``storage_options``. Pass it to
        :func:`ascend.secrets.scrub` before showing a message that may quote one."""
        found: list[str] = []
        for key, (setting, _) in self.settings.items():
            found.extend(_secrets_in(setting, self._values.get(key)))
        return found

    def fingerprint(self) -> str:
        """A stable digest of the values, used to cache backends per configuration."""
        return json.dumps(self._values, sort_keys=True, default=repr)

    def raise_for_problems(self) -> None:
        if self.problems:
            raise ConfigError("Invalid Ascend configuration:", problems=self.problems)

    def __repr__(self) -> str:
        return f"AscendConfig(cloud_provider={self.cloud_provider!r}, files={self.files})"

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
        pm: AscendPluginManager | None = None,
        strict: bool = True,
    ) -> AscendConfig:
        """Load files, environment and ``overrides``; validate; resolve the provider.

        With ``strict`` (the default) an invalid value raises :class:`ConfigError` listing every
        problem; otherwise problems are kept on ``config.problems`` (``ascend config show``).
        """
        from ascend.plugins.manager import get_plugin_manager

        env = os.environ if env is None else env
        pm = pm or get_plugin_manager()
        settings = pm.settings()
        values: dict[str, Any] = {}
        origins: dict[str, Origin] = {}
        problems: list[ConfigProblem] = []
        warnings: list[str] = []

        for key, (setting, _) in settings.items():
            values[key] = setting.default
            origins[key] = Origin("default")

        files = config_files(cwd, env)
        for path in files:
            for key, value in flatten(read_yaml(path), settings).items():
                if key not in settings:
                    if value is None and _declares_section(key, settings):
                        continue  # an empty section of an installed plugin
                    warnings.append(_unknown_key_warning(key, str(path), settings))
                    continue
                if settings[key][0].secret and value is not None:
                    warnings.append(
                        f"{path}: {key} is a secret; files get committed and shared, so set "
                        f"it as {settings[key][0].env_var} instead"
                    )
                cls._assign(
                    settings[key][0],
                    key,
                    value,
                    Origin("file", str(path)),
                    values,
                    origins,
                    problems,
                    from_env=False,
                )

        for var, value in env.items():
            if not var.startswith("ASCEND_") or var in CONTROL_ENV_VARS:
                continue
            if not value.strip():
                continue  # an empty variable counts as unset
            env_key = _env_key(var, settings)
            if env_key is None:
                if not var.startswith("ASCEND_TEST"):
                    warnings.append(_unknown_env_warning(var, settings))
                continue
            cls._assign(
                settings[env_key][0],
                env_key,
                value,
                Origin("env", var),
                values,
                origins,
                problems,
                from_env=True,
            )

        for key, value in (overrides or {}).items():
            if key not in settings:
                raise ConfigError(
                    f"unknown configuration key {key!r}{_suggest(key, settings)}",
                    fix="'ascend config show' lists every key",
                )
            cls._assign(
                settings[key][0],
                key,
                value,
                Origin("code"),
                values,
                origins,
                problems,
                from_env=False,
            )

        provider_error: Exception | None = None
        try:
            name, origin = resolve_provider(values.get("cloud_provider"), pm)
            if name is not None and values.get("cloud_provider") is None:
                values["cloud_provider"] = name
                origins["cloud_provider"] = origin
        except (NoBackendError, ProviderError) as error:
            provider_error = error

        config = cls(values, origins, settings, files, problems, warnings, provider_error)
        if strict:
            config.raise_for_problems()
        return config

    @staticmethod
    def _assign(
        setting: Setting,
        key: str,
        raw: Any,
        origin: Origin,
        values: dict[str, Any],
        origins: dict[str, Origin],
        problems: list[ConfigProblem],
        *,
        from_env: bool,
    ) -> None:
        source = str(origin.detail or origin.kind)
        try:
            value = convert(setting, raw, from_env)
            if value is not None and setting.choices is not None and value not in setting.choices:
                raise ValueError("must be one of " + ", ".join(map(repr, setting.choices)))
            if value is not None and setting.validate is not None:
                setting.validate(value)
        except ValueError as error:
            fix = setting.fix
            if fix is None and setting.help:
                fix = f"{key} is {setting.help}"
            # Neither the value nor a validator's message may echo a secret.
            message = secrets.scrub(str(error), _secrets_in(setting, raw))
            problems.append(ConfigProblem(key, shown_value(setting, raw), source, message, fix))
            return
        values[key] = value
        origins[key] = origin


def shown_value(setting: Setting, value: Any) -> Any:
    """``value`` as Ascend may show it (``ascend config show``, configuration errors).

    A ``secret`` setting is :data:`ascend.secrets.MASK`; in a mapping (``storage_options``)
    the values of secret-looking keys are masked at any depth; URLs lose their credentials and
    query strings. A mapping still in JSON text (an ``ASCEND_*`` variable) is masked the same
    way, or whole when it cannot be parsed and mentions a secret-looking name.
    """
    if value is None:
        return None
    if setting.secret:
        return secrets.MASK
    if isinstance(value, Mapping):
        return secrets.mask_mapping(value)
    if isinstance(value, (list, tuple)):
        return [secrets.mask_text(item) if isinstance(item, str) else item for item in value]
    if isinstance(value, str):
        if setting.type is dict:
            parsed = _json_object(value)
            if parsed is None:
                return secrets.MASK if secrets.looks_secret(value) else secrets.mask_text(value)
            masked = secrets.mask_mapping(parsed)
            return value if masked == parsed else json.dumps(masked)
        return secrets.mask_text(value)
    return value


def _secrets_in(setting: Setting, value: Any) -> list[str]:
    """The parts of ``value`` that :func:`shown_value` hides, as text."""
    if value is None:
        return []
    if setting.secret:
        return [str(value)]
    if isinstance(value, str) and setting.type is dict:
        parsed = _json_object(value)
        if parsed is None:
            return [value] if secrets.looks_secret(value) else []
        value = parsed
    return secrets.secret_values(value) if isinstance(value, Mapping) else []


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def resolve_provider(selected: str | None, pm: AscendPluginManager) -> tuple[str | None, Origin]:
    """The provider to use: the one selected, else the only non-built-in one installed.

    Raises :class:`NoBackendError` when nothing is installed or selected, and
    :class:`ProviderError` when the selection is unknown, unusable or ambiguous.
    """
    providers = pm.providers()
    if selected:
        if selected not in providers:
            known = ", ".join(sorted(providers)) or "none"
            raise ProviderError(
                f"cloud_provider {selected!r} is not installed (installed providers: {known})"
                + _suggest(selected, providers),
                fix="install the plugin that provides it, or select one of the installed providers",
            )
        provider, _ = providers[selected]
        if not provider.available:
            raise ProviderError(
                f"cloud_provider {selected!r} is installed but cannot run: {provider.unavailable}",
                fix=provider.fix,
            )
        return selected, Origin("selected")
    candidates = {
        name: (provider, plugin)
        for name, (provider, plugin) in providers.items()
        if not provider.builtin and provider.available
    }
    if len(candidates) == 1:
        name, (_, plugin) = next(iter(candidates.items()))
        return name, Origin("auto", f"the only provider installed, from plugin {plugin!r}")
    if not candidates:
        raise NoBackendError()
    listing = ", ".join(
        f"{name} (plugin {plugin!r}, {pm.distribution_label(plugin)})"
        for name, (_, plugin) in sorted(candidates.items())
    )
    raise ProviderError(
        f"Several cloud providers are installed and none is selected: {listing}",
        fix="select one with 'cloud_provider: NAME' in .ascend.yaml or ASCEND_CLOUD_PROVIDER=NAME",
    )


def _env_key(var: str, settings: Mapping[str, tuple[Setting, str]]) -> str | None:
    for key, (setting, _) in settings.items():
        if setting.env_var == var:
            return key
    return None


def _suggest(key: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _declares_section(section: str, settings: Mapping[str, Any]) -> bool:
    return any(name.startswith(section + ".") for name in settings)


def _unknown_key_warning(key: str, source: str, settings: Mapping[str, Any]) -> str:
    section = key.split(".")[0]
    owner = ""
    if "." in key and not _declares_section(section, settings):
        owner = f" (no installed plugin declares the section {section!r})"
    return f"{source}: unknown key {key!r}{owner}{_suggest(key, settings) or ''}; it is ignored"


def _unknown_env_warning(var: str, settings: Mapping[str, tuple[Setting, str]]) -> str:
    names = {s.env_var: key for key, (s, _) in settings.items()} | {v: v for v in CONTROL_ENV_VARS}
    close = difflib.get_close_matches(var, list(names), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"environment: unknown variable {var}{hint}; it is ignored"


def load_config(**kwargs: Any) -> AscendConfig:
    """Load the configuration that applies here (see :meth:`AscendConfig.load`)."""
    return AscendConfig.load(**kwargs)
