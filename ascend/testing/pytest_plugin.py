"""Pytest fixtures for plugin authors. Opt in from a conftest.py::

    pytest_plugins = ["ascend.testing.pytest_plugin"]

- ``ascend_env``: an environment with no ``ASCEND_*`` variables, a private user config
  directory and a temporary working directory, so the developer's own config never leaks in.
- ``ascend_pm``: a fresh plugin manager (built-ins only) installed as the process-wide one.
- ``register_plugin``: registers a plugin object on ``ascend_pm`` for one test.
- ``ascend_cli``: runs the ``ascend`` command line in-process against ``ascend_pm``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ascend.plugins.manager import AscendPluginManager, use_plugin_manager
from ascend.testing import make_plugin_manager


@pytest.fixture
def ascend_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Isolate Ascend from the developer's environment; returns the working directory."""
    for name in list(os.environ):
        if name.startswith("ASCEND_") and not name.startswith("ASCEND_TEST"):
            monkeypatch.delenv(name)
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.setenv("ASCEND_CONFIG_DIR", str(tmp_path / "user-config"))
    monkeypatch.chdir(workdir)
    from ascend.backend import clear_backend_cache

    clear_backend_cache()
    yield workdir
    clear_backend_cache()


@pytest.fixture
def ascend_pm(ascend_env: Path) -> Iterator[AscendPluginManager]:
    """A fresh manager with the built-in plugins, used by everything Ascend does in the test."""
    pm = make_plugin_manager()
    previous = use_plugin_manager(pm)
    yield pm
    use_plugin_manager(previous)


@pytest.fixture
def register_plugin(ascend_pm: AscendPluginManager) -> Iterator[Callable[..., str]]:
    """``register_plugin(obj, name=None)`` registers a plugin until the test ends."""
    registered: list[object] = []

    def register(plugin: object, name: str | None = None) -> str:
        result = ascend_pm.register(plugin, name)
        assert result is not None, f"plugin {name or plugin!r} is blocked"
        ascend_pm.check_all_pending()
        registered.append(plugin)
        return result

    yield register
    for plugin in registered:
        if ascend_pm.is_registered(plugin):
            ascend_pm.unregister(plugin)


@pytest.fixture
def ascend_cli(ascend_pm: AscendPluginManager) -> Callable[..., Any]:
    """``ascend_cli("plugins", "--json")`` runs the CLI and returns click's ``Result``."""
    from click.testing import CliRunner

    from ascend.cli import cli

    def run(*args: str, **kwargs: Any) -> Any:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False, **kwargs)

    return run
