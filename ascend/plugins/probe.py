"""A cheap answer to "is a usable provider plugin installed?" for ``import ascend``.

The full answer builds the plugin manager, which imports ``importlib.metadata`` (about 40 ms
before it reads anything) and loads every plugin. ``import ascend`` only needs to know that
some installed plugin offers an available provider, so this reads the ``[ascend]`` section of
the ``entry_points.txt`` files on ``sys.path`` directly and asks those plugin modules for
their providers. It only ever answers "yes"; every other case (nothing found, an unusual
entry point, a plugin switch in the environment, any error) returns ``None`` and the caller
runs the full check, which also produces the exact error and the reports.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, Mapping

GROUP = "[ascend]"
_SWITCHES = ("ASCEND_PLUGINS", "ASCEND_DISABLED_PLUGINS", "ASCEND_DISABLE_PLUGIN_AUTOLOAD")


def _entry_point_files() -> Iterator[str]:
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as listing:
                names = [item.name for item in listing]
        except OSError:
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                yield os.path.join(entry or ".", name, "entry_points.txt")


def _ascend_entry_points(path: str) -> list[str]:
    """Object references in the ``[ascend]`` section of one ``entry_points.txt``."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return []
    if GROUP not in text:
        return []
    found: list[str] = []
    inside = False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            inside = line == GROUP
        elif inside and "=" in line and not line.startswith(("#", ";")):
            found.append(line.split("=", 1)[1].strip())
    return found


def usable_provider_installed(env: Mapping[str, str] | None = None) -> bool | None:
    """``True`` when an installed plugin offers an available non-built-in provider; ``None``
    when this cannot tell cheaply (the caller then runs the full check)."""
    env = os.environ if env is None else env
    if any(env.get(name, "").strip() for name in _SWITCHES):
        return None
    try:
        for path in _entry_point_files():
            for reference in _ascend_entry_points(path):
                if ":" in reference or "[" in reference:
                    return None  # an object inside a module, or extras: the full check
                module = importlib.import_module(reference)
                providers = getattr(module, "ascend_providers", None)
                if providers is None:
                    continue
                for provider in providers() or ():
                    if not provider.builtin and provider.available:
                        return True
    except Exception:  # a broken plugin is the full check's to report
        return None
    return None
