"""``ascend config show [--json]`` and ``ascend config validate`` against real config files."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from ascend.plugins.markers import hookimpl
from ascend.plugins.types import Setting


def _check_token(value: str) -> None:
    if len(value) < 12:
        raise ValueError("the token is too short")


class AcmePlugin:
    @hookimpl
    def ascend_settings(self) -> list[Setting]:
        return [
            Setting("acme.region", str, default="eu-1", help="ACME region"),
            Setting(
                "acme.token",
                str,
                secret=True,
                validate=_check_token,
                fix="create a token in the ACME console",
            ),
        ]


@pytest.fixture
def acme(register_plugin: Any) -> None:
    register_plugin(AcmePlugin(), name="acme")


@pytest.fixture
def project_file(ascend_env: Path) -> Path:
    return ascend_env / ".ascend.yaml"


@pytest.fixture
def user_file(ascend_env: Path) -> Path:
    path = Path(os.environ["ASCEND_CONFIG_DIR"]) / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def show_json(ascend_cli: Any) -> dict[str, Any]:
    result = ascend_cli("config", "show", "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# -- config show --json -------------------------------------------------------------------------


EXPECTED_KEYS = (
    "acme.region",
    "acme.token",
    "cloud_provider",
    "registry_url",
    "storage_options",
    "username",
    "project",
    "git_check",
    "local.storage_dir",
    "kubernetes.pending_timeout",
    "storage_url",
)


def test_show_json_lists_every_declared_key_with_origin_plugin_and_env_var(
    acme, ascend_pm, ascend_cli, project_file, monkeypatch
):
    project_file.write_text("cloud_provider: kubernetes\nstorage_url: s3://bucket/ascend\n")
    monkeypatch.setenv("ASCEND_ACME_REGION", "us-2")
    data = show_json(ascend_cli)
    entries = {e["key"]: e for e in data["values"]}
    assert list(entries) == sorted(entries)
    summary = {
        key: (e["value"], e["origin"], e["plugin"], e["env_var"]) for key, e in entries.items()
    }
    # every declared key is shown; the ones this test sets or owns are checked exactly
    assert set(summary) == set(ascend_pm.settings())
    assert {key: summary[key] for key in EXPECTED_KEYS} == {
        "acme.region": ("us-2", "env: ASCEND_ACME_REGION", "acme", "ASCEND_ACME_REGION"),
        "acme.token": (None, "default", "acme", "ASCEND_ACME_TOKEN"),
        "cloud_provider": (
            "kubernetes",
            f"file: {project_file}",
            "core",
            "ASCEND_CLOUD_PROVIDER",
        ),
        "registry_url": (None, "default", "core", "ASCEND_REGISTRY_URL"),
        "storage_options": ({}, "default", "core", "ASCEND_STORAGE_OPTIONS"),
        "username": (None, "default", "core", "ASCEND_USERNAME"),
        "project": ("default", "default", "core", "ASCEND_PROJECT"),
        "git_check": (False, "default", "core", "ASCEND_GIT_CHECK"),
        "local.storage_dir": (None, "default", "local", "ASCEND_LOCAL_STORAGE_DIR"),
        "kubernetes.pending_timeout": (
            300.0,
            "default",
            "kubernetes-compute",
            "ASCEND_KUBERNETES_PENDING_TIMEOUT",
        ),
        "storage_url": (
            "s3://bucket/ascend",
            f"file: {project_file}",
            "core",
            "ASCEND_STORAGE_URL",
        ),
    }
    assert entries["acme.region"]["help"] == "ACME region"
    assert data["files"] == [str(project_file)]
    assert data["problems"] == []
    assert data["provider_problem"] is None


def test_show_json_lists_files_lowest_precedence_first(ascend_cli, user_file, project_file):
    user_file.write_text("registry_url: user.example.com\n")
    project_file.write_text("registry_url: project.example.com\n")
    data = show_json(ascend_cli)
    assert data["files"] == [str(user_file), str(project_file)]
    [registry] = [e for e in data["values"] if e["key"] == "registry_url"]
    assert registry["value"] == "project.example.com"


def test_show_json_masks_secret_value(acme, ascend_cli, monkeypatch):
    monkeypatch.setenv("ASCEND_ACME_TOKEN", "tok-1234567890-secret")
    result = ascend_cli("config", "show", "--json")
    assert result.exit_code == 0
    assert "tok-1234567890-secret" not in result.output
    [token] = [e for e in json.loads(result.stdout)["values"] if e["key"] == "acme.token"]
    assert token["value"] == "********"
    assert token["origin"] == "env: ASCEND_ACME_TOKEN"


def test_show_json_reports_problems_warnings_and_provider_problem(ascend_cli, project_file):
    project_file.write_text("storage_url: bucket/ascend\nstorage_ulr: s3://b/a\n")
    data = show_json(ascend_cli)
    assert data["problems"] == [
        f"{project_file}: storage_url = 'bucket/ascend': expected an fsspec URL with a scheme, "
        "or an absolute path (fix: write a URL such as s3://bucket/ascend or "
        "file:///absolute/path)"
    ]
    assert data["warnings"] == [
        f"{project_file}: unknown key 'storage_ulr'; did you mean 'storage_url'?; it is ignored"
    ]
    assert data["provider_problem"].startswith("No cloud backend installed.")


def test_show_json_does_not_reveal_invalid_secret(acme, ascend_cli, monkeypatch):
    monkeypatch.setenv("ASCEND_ACME_TOKEN", "hunter2")
    result = ascend_cli("config", "show", "--json")
    assert result.exit_code == 0
    [problem] = json.loads(result.stdout)["problems"]
    assert "the token is too short" in problem
    assert "hunter2" not in result.output


# -- config show (human) ------------------------------------------------------------------------


def test_show_human_output_has_key_value_and_origin(ascend_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("ASCEND_REGISTRY_URL", "registry.example.com")
    result = ascend_cli("config", "show")
    assert result.exit_code == 0
    assert "Config files: none found (defaults and environment only)" in result.stdout
    [row] = [line for line in result.stdout.splitlines() if "registry_url" in line]
    assert "registry.example.com" in row
    assert "env: ASCEND_REGISTRY_URL" in row
    assert "core" in row


def test_show_human_output_puts_warnings_on_stderr(ascend_cli, monkeypatch):
    monkeypatch.setenv("ASCEND_STORAGE_ULR", "s3://bucket/ascend")
    result = ascend_cli("config", "show")
    assert result.exit_code == 0
    assert (
        "warning: environment: unknown variable ASCEND_STORAGE_ULR; did you mean "
        "ASCEND_STORAGE_URL?" in result.stderr
    )
    assert "ASCEND_STORAGE_ULR" not in result.stdout


# -- config validate ----------------------------------------------------------------------------


def test_validate_ok_for_kubernetes_with_storage_url(ascend_cli, project_file):
    project_file.write_text("cloud_provider: kubernetes\nstorage_url: s3://bucket/ascend\n")
    result = ascend_cli("config", "validate")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"ok: configuration is valid ({project_file}; cloud_provider=kubernetes)"
    )
    assert result.stderr == ""


def test_validate_fails_on_invalid_value(ascend_cli, project_file):
    project_file.write_text("cloud_provider: kubernetes\nstorage_url: bucket/ascend\n")
    result = ascend_cli("config", "validate")
    assert result.exit_code == 1
    assert (
        f"error: {project_file}: storage_url = 'bucket/ascend': expected an fsspec URL"
        in result.stderr
    )
    assert "ok:" not in result.stdout


def test_validate_fails_for_kubernetes_without_storage_url(ascend_cli, project_file):
    project_file.write_text("cloud_provider: kubernetes\n")
    result = ascend_cli("config", "validate")
    assert result.exit_code == 1
    assert (
        "error: cloud_provider 'kubernetes' needs storage_url, the fsspec URL where jobs are "
        "stored" in result.stderr
    )
    assert "fix: set storage_url: s3://bucket/ascend in .ascend.yaml" in result.stderr
    assert "ok:" not in result.stdout


def test_validate_fails_for_unknown_provider(ascend_cli, monkeypatch):
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "azrue")
    result = ascend_cli("config", "validate")
    assert result.exit_code == 1
    assert (
        "error: cloud_provider 'azrue' is not installed (installed providers: kubernetes, local)"
        in result.stderr
    )


def test_validate_fails_on_yaml_syntax_error(ascend_cli, project_file):
    project_file.write_text("cloud_provider: kubernetes\nstorage_url: : s3://bucket\n")
    result = ascend_cli("config", "validate")
    assert result.exit_code == 1
    assert f"error: {project_file}:2:14: not valid YAML" in result.stderr


@pytest.mark.filterwarnings("ignore::ascend.backend.ConfigWarning")
def test_validate_warns_on_unknown_key_but_passes(ascend_cli, project_file):
    project_file.write_text(
        "cloud_provider: kubernetes\nstorage_url: s3://bucket/ascend\nregistry_ulr: r.example\n"
    )
    result = ascend_cli("config", "validate")
    assert result.exit_code == 0
    assert (
        f"warning: {project_file}: unknown key 'registry_ulr'; did you mean 'registry_url'?"
        in result.stderr
    )
    assert result.stdout.startswith("ok: configuration is valid")


def test_validate_reports_each_warning_once(ascend_cli, project_file):
    project_file.write_text(
        "cloud_provider: kubernetes\nstorage_url: s3://bucket/ascend\nregistry_ulr: r.example\n"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = ascend_cli("config", "validate")
    assert result.exit_code == 0
    assert result.stderr.count("unknown key 'registry_ulr'") == 1
    assert [str(w.message) for w in caught] == []
