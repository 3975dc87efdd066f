"""The hook contract is complete, documented, and shaped as the plugin docs promise."""

from __future__ import annotations

import inspect

import pytest

import ascend
from ascend.plugins import hookspecs

FIRSTRESULT = {
    "ascend_storage",
    "ascend_registry_url",
    "ascend_registry",
    "ascend_build_image",
    "ascend_compute",
}
HISTORIC = {"ascend_addhooks", "ascend_configure"}
EVERY_PLUGIN = {
    "ascend_job_manifest",
    "ascend_validate_job",
}  # every implementation is called, results ignored
COLLECTING = {"ascend_cli_commands", "ascend_settings", "ascend_providers", "ascend_node_types"}
SPECS = {
    name: function
    for name, function in vars(hookspecs).items()
    if name.startswith("ascend_") and callable(function)
}


def spec_options(function):
    return function.ascend_spec


def test_every_required_hook_exists() -> None:
    assert set(SPECS) == FIRSTRESULT | HISTORIC | COLLECTING | EVERY_PLUGIN


@pytest.mark.parametrize("name", sorted(FIRSTRESULT))
def test_backend_hooks_are_firstresult(name: str) -> None:
    assert spec_options(SPECS[name])["firstresult"] is True
    assert spec_options(SPECS[name])["historic"] is False


@pytest.mark.parametrize("name", sorted(HISTORIC))
def test_bootstrap_hooks_are_historic(name: str) -> None:
    assert spec_options(SPECS[name])["historic"] is True


@pytest.mark.parametrize("name", sorted(COLLECTING))
def test_collecting_hooks_gather_every_answer(name: str) -> None:
    assert spec_options(SPECS[name])["firstresult"] is False


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_spec_is_documented(name: str) -> None:
    function = SPECS[name]
    doc = inspect.getdoc(function) or ""
    assert len(doc.splitlines()[0]) > 10, "a one-line summary first"
    for parameter in inspect.signature(function).parameters:
        assert f":param {parameter}:" in doc, f"{name} documents {parameter}"
    assert "**Example:**" in doc and "@hookimpl" in doc
    assert "versionadded" in doc
    if name in FIRSTRESULT:
        assert "None" in doc and "first non-``None``" in doc
    if name in COLLECTING:
        assert ":return:" in doc or "collected" in doc


def test_parameter_names_are_the_public_ones() -> None:
    signatures = {name: list(inspect.signature(f).parameters) for name, f in SPECS.items()}
    assert signatures["ascend_storage"] == ["config"]
    assert signatures["ascend_registry_url"] == ["config"]
    assert signatures["ascend_build_image"] == ["config", "spec", "registry", "progress", "backend"]
    assert signatures["ascend_compute"] == ["config"]
    assert signatures["ascend_cli_commands"] == []
    assert signatures["ascend_settings"] == []
    assert signatures["ascend_configure"] == ["config"]
    assert signatures["ascend_addhooks"] == ["pluginmanager"]


def test_markers_are_public() -> None:
    from ascend.plugins.markers import hookimpl, hookspec

    assert ascend.hookimpl is hookimpl
    assert ascend.hookspec is hookspec
    assert hookimpl.project_name == hookspec.project_name == "ascend"


def test_public_api_is_importable_from_the_package() -> None:
    required = [
        "hookimpl",
        "hookspec",
        "get_backend",
        "CloudBackend",
        "CloudStorage",
        "ContainerRegistry",
        "ImageBuilder",
        "ImageSpec",
        "ComputeBackend",
        "AscendConfig",
        "NoBackendError",
        "AscendError",
        "ConfigError",
        "PluginError",
        "StorageError",
        "RegistryError",
        "ImageBuildError",
        "ComputeError",
        "BackendNotAvailableError",
    ]
    for name in required:
        assert name in ascend.__all__
        assert getattr(ascend, name) is not None
    assert issubclass(ascend.NoBackendError, ImportError)
    assert issubclass(ascend.NoBackendError, ascend.AscendError)
    for name in ascend.__all__:
        if name.endswith("Error"):
            assert issubclass(getattr(ascend, name), ascend.AscendError), name


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ascend.nope
