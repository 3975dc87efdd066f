"""The import guard's cheap probe: it says "yes" only for a usable provider plugin, and hands
every other case to the full check (which raises NoBackendError and reports broken plugins)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from ascend.plugins.probe import usable_provider_installed

from .fakedist import BROKEN_ENTRY_POINT_PLUGIN, install_distribution

PROVIDER_PLUGIN = """
from ascend import Provider, hookimpl

@hookimpl
def ascend_providers():
    return [Provider("acmecloud", builtin={builtin}, unavailable={unavailable})]
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A site directory that is the only one on sys.path (ascend is already imported; a
    checkout may hold an ascend.egg-info with the Azure entry point)."""
    directory = tmp_path / "site"
    directory.mkdir()
    monkeypatch.setattr(sys, "path", [str(directory), *_stdlib()])
    return directory


def _stdlib() -> list[str]:
    # the interpreter's own directories only: other tests put temporary sites on sys.path
    return [p for p in sys.path if p.startswith(sys.base_prefix) and "site-packages" not in p]


def install(site: Path, source: str, reference: str | None = None) -> str:
    module = f"probe_{uuid.uuid4().hex[:8]}"
    install_distribution(site, f"dist-{module}", "1.0", "acme", module, source)
    if reference is not None:
        info = next(site.glob("*.dist-info"))
        (info / "entry_points.txt").write_text(f"[ascend]\nacme = {reference}\n")
    return module


def test_an_available_plugin_provider_is_enough(site: Path) -> None:
    install(site, PROVIDER_PLUGIN.format(builtin=False, unavailable=None))
    assert usable_provider_installed({}) is True


@pytest.mark.parametrize(("builtin", "unavailable"), [(False, "'missing adlfs'"), (True, None)])
def test_unavailable_or_builtin_providers_go_to_the_full_check(
    site: Path, builtin: bool, unavailable: str | None
) -> None:
    install(site, PROVIDER_PLUGIN.format(builtin=builtin, unavailable=unavailable))
    assert usable_provider_installed({}) is None


def test_nothing_installed_goes_to_the_full_check(site: Path) -> None:
    assert usable_provider_installed({}) is None


def test_a_broken_plugin_goes_to_the_full_check_which_reports_it(site: Path) -> None:
    install(site, BROKEN_ENTRY_POINT_PLUGIN)
    assert usable_provider_installed({}) is None


def test_an_object_reference_goes_to_the_full_check_unimported(site: Path) -> None:
    module = install(site, "raise AssertionError('must not be imported')\n", "pkg.mod:plugin")
    assert usable_provider_installed({}) is None
    assert module not in sys.modules


@pytest.mark.parametrize(
    "switch", ["ASCEND_PLUGINS", "ASCEND_DISABLED_PLUGINS", "ASCEND_DISABLE_PLUGIN_AUTOLOAD"]
)
def test_plugin_switches_go_to_the_full_check(site: Path, switch: str) -> None:
    install(site, PROVIDER_PLUGIN.format(builtin=False, unavailable=None))
    assert usable_provider_installed({switch: "azure"}) is None
