"""`import ascend` with no backend, in fresh interpreters: the guard, its message, its cost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# `pip install ascend` without the azure extra: the Azure plugin is installed but adlfs and the
# Azure SDKs are not (see the directory's sitecustomize).
WITHOUT_AZURE = Path(__file__).resolve().parent / "without_azure_extra"
ASCEND_SCRIPT = Path(sys.executable).parent / "ascend"
HEAVY = ("kubernetes", "fsspec", "cloudpickle", "azure", "adlfs", "docker", "click", "rich")


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASCEND_")}
    env.update(
        ASCEND_CONFIG_DIR=str(tmp_path / "user-config"),
        PYTHONPATH=f"{WITHOUT_AZURE}{os.pathsep}{REPO}",
        HOME=str(tmp_path / "home"),
    )
    env.update(extra)
    return env


def run(args: list[str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    return subprocess.run(
        args,
        cwd=workdir,
        env=clean_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_import_without_backend_raises_no_backend_error(tmp_path: Path) -> None:
    code = (
        "try:\n    import ascend\nexcept ImportError as e:\n    print(type(e).__name__); print(e)\n"
    )
    result = run([sys.executable, "-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "NoBackendError"
    assert lines[1] == "No cloud backend installed. Install one with: pip install ascend[azure]"
    rest = "\n".join(lines[2:])
    assert "ASCEND_CLOUD_PROVIDER=local" in rest
    assert "ASCEND_CLOUD_PROVIDER=kubernetes" in rest
    assert "ascend plugins" in rest


def test_the_guard_imports_no_sdk(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "try:\n    import ascend\nexcept ImportError:\n    pass\n"
        f"print([m for m in sys.modules if m.split('.')[0] in {HEAVY!r}])\n"
    )
    result = run([sys.executable, "-c", code], tmp_path)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_import_with_provider_selected_by_env_loads_nothing_heavy(tmp_path: Path) -> None:
    code = f"import sys, ascend\nprint([m for m in sys.modules if m.split('.')[0] in {HEAVY!r}])\n"
    result = run([sys.executable, "-c", code], tmp_path, ASCEND_CLOUD_PROVIDER="kubernetes")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_import_with_provider_selected_in_project_file(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / ".ascend.yaml").write_text("cloud_provider: kubernetes\n")
    result = run([sys.executable, "-c", "import ascend; print('ok')"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_import_with_a_provider_plugin_installed(tmp_path: Path) -> None:
    from .fakedist import ENTRY_POINT_PLUGIN, install_distribution

    site = install_distribution(
        tmp_path / "site", "acme-ascend", "1.2.3", "acme", "acme_ascend_ep", ENTRY_POINT_PLUGIN
    )
    result = run(
        [sys.executable, "-c", "import ascend; print(ascend.get_backend().name)"],
        tmp_path,
        PYTHONPATH=os.pathsep.join(map(str, (WITHOUT_AZURE, site, REPO))),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "acmecloud"


def test_import_with_only_broken_plugins_still_raises_no_backend(tmp_path: Path) -> None:
    from .fakedist import BROKEN_ENTRY_POINT_PLUGIN, install_distribution

    site = install_distribution(
        tmp_path / "site",
        "acme-broken",
        "0.9",
        "broken",
        "acme_broken_ep",
        BROKEN_ENTRY_POINT_PLUGIN,
    )
    code = "try:\n    import ascend\nexcept ImportError as e:\n    print(type(e).__name__)\n"
    result = run(
        [sys.executable, "-c", code],
        tmp_path,
        PYTHONPATH=os.pathsep.join(map(str, (WITHOUT_AZURE, site, REPO))),
    )
    assert result.stdout.strip() == "NoBackendError"
    assert "could not import plugin 'broken' (acme-broken 0.9)" in result.stderr


@pytest.fixture
def ascend_script() -> Path:
    if not ASCEND_SCRIPT.exists():
        pytest.fail(f"the console script {ASCEND_SCRIPT} is missing: pip install -e . first")
    return ASCEND_SCRIPT


def test_cli_help_works_without_backend_and_prints_guidance(tmp_path: Path, ascend_script) -> None:
    result = run([str(ascend_script), "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert (
        "No cloud backend installed. Install one with: pip install ascend[azure]" in result.stdout
    )
    assert "plugins" in result.stdout


def test_cli_version_works_without_backend(tmp_path: Path, ascend_script) -> None:
    from ascend import __version__

    result = run([str(ascend_script), "--version"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ascend, version {__version__}"


def test_cli_plugins_works_without_backend(tmp_path: Path, ascend_script) -> None:
    result = run([str(ascend_script), "plugins", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["problem"].startswith("No cloud backend installed.")
    assert {p["name"] for p in report["plugins"]} >= {"core", "kubernetes"}
    human = run([str(ascend_script), "plugins"], tmp_path)
    assert human.returncode == 0
    assert "Traceback" not in human.stdout + human.stderr
    assert "No cloud backend installed" in human.stdout


def test_python_dash_m_ascend_works_without_backend(tmp_path: Path) -> None:
    result = run([sys.executable, "-m", "ascend", "--version"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ascend, version")


def test_azure_plugin_without_its_extra_reports_itself_unavailable(
    tmp_path: Path, ascend_script
) -> None:
    result = run([str(ascend_script), "plugins", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    azure = [p for p in report["providers"] if p["name"] == "azure"]
    assert azure, report["providers"]
    assert "adlfs" in azure[0]["unavailable"]
    assert azure[0]["fix"] == "pip install ascend[azure]"
    assert report["problem"].startswith(
        "No cloud backend installed. Install one with: pip install ascend[azure]"
    )


def test_azure_plugin_with_its_extra_is_selected_automatically(tmp_path: Path) -> None:
    # The dev environment has the extra: with nothing selected, Azure is the only provider.
    code = "import sys, ascend\nprint(ascend.get_backend().name)\n"
    result = run(
        [sys.executable, "-c", code],
        tmp_path,
        PYTHONPATH=str(REPO),
        ASCEND_AZURE_STORAGE_ACCOUNT="ascenddata",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "azure"


def test_the_human_listing_keeps_the_extra_in_the_install_command(
    tmp_path: Path, ascend_script
) -> None:
    result = run([str(ascend_script), "plugins"], tmp_path, COLUMNS="200")
    assert result.returncode == 0, result.stderr
    assert "(fix: pip install" in result.stdout and "ascend[azure])" in result.stdout
    assert "Install one with: pip install ascend[azure]" in result.stdout
