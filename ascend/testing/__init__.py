"""Helpers for testing Ascend plugins (and Ascend itself).

- :func:`make_plugin_manager`: an isolated plugin manager with chosen plugins registered.
- :mod:`ascend.testing.storage_contract`: ``StorageContract``, the tests every storage passes.
- :mod:`ascend.testing.pytest_plugin`: fixtures; opt in with
  ``pytest_plugins = ["ascend.testing.pytest_plugin"]``.
"""

from __future__ import annotations

from collections.abc import Mapping

from ascend.plugins.manager import AscendPluginManager


def make_plugin_manager(
    *plugins: object,
    env: Mapping[str, str] | None = None,
    autoload: bool = False,
    strict: bool = True,
) -> AscendPluginManager:
    """A fresh manager: built-ins, then (with ``autoload``) entry points, then ``plugins``.

    ``env`` stands in for the environment variables that steer discovery (``ASCEND_PLUGINS``,
    ``ASCEND_DISABLED_PLUGINS``...); by default none are read. ``strict`` makes any plugin
    failure raise, which is what a plugin's own tests want.
    """
    environment = dict(env or {})
    if not autoload:
        environment["ASCEND_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return AscendPluginManager(strict=strict).load(env=environment, extra_plugins=plugins)


__all__ = ["make_plugin_manager"]
