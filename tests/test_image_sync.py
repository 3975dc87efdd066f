"""``requirements="local"``: what the call imports, pinned to the versions installed here."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from packaging.version import Version

from ascend.decorator import ascend as remote
from ascend.images.sync import _installed_from_a_directory, local_requirements


def uses_numpy(values: list[float]) -> float:
    return float(np.mean(values))


def calls_a_helper(values: list[float]) -> float:
    return uses_numpy(values) * 2


def only_stdlib() -> str:
    import json as inner

    return inner.dumps({})


def test_globals_are_pinned_to_the_installed_versions() -> None:
    pins = local_requirements(uses_numpy, ([1.0],), {})
    assert pins == (f"numpy=={metadata.version('numpy')}",)


def test_helpers_of_the_same_module_are_followed() -> None:
    assert f"numpy=={metadata.version('numpy')}" in local_requirements(calls_a_helper, (), {})


def test_argument_types_count_and_the_runner_and_stdlib_do_not() -> None:
    pins = local_requirements(only_stdlib, (Version("1.0"),), {"x": json})
    assert pins == (f"packaging=={metadata.version('packaging')}",)


def test_a_distribution_installed_from_a_directory_travels_by_value(tmp_path: Path) -> None:
    info = tmp_path / "mine-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mine\nVersion: 1.0\n")
    (info / "direct_url.json").write_text(
        json.dumps({"url": "file:///home/me/mine", "dir_info": {"editable": True}})
    )
    assert _installed_from_a_directory(metadata.PathDistribution(info))
    (info / "direct_url.json").write_text(json.dumps({"url": "https://example.com/mine.whl"}))
    assert not _installed_from_a_directory(metadata.PathDistribution(info))


def test_local_is_accepted_by_the_decorator_and_recorded_with_the_job(
    ascend_pm: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "local")
    monkeypatch.setenv("ASCEND_LOCAL_STORAGE_DIR", str(tmp_path / "jobs"))
    synced = remote(requirements="local", stream_logs=False)(uses_numpy)
    handle = synced.submit([1.0, 3.0])
    assert handle.result(timeout=60) == 2.0
    assert handle.metadata()["requirements"] == [f"numpy=={metadata.version('numpy')}"]
