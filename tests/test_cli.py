"""The command line: plugin commands, clashes, and `ascend plugins`."""

from __future__ import annotations

import json

import pytest

import tests.plugins.acme_registry as acme_registry
import tests.plugins.config_cli as config_cli
import tests.plugins.hello_cli as hello_cli
import tests.plugins.hello_cli_twin as hello_cli_twin
from ascend.cli import main
from ascend.errors import CommandClashError
from tests.plugins.providers import ProviderPlugin


def test_plugin_command_is_added_and_runs(ascend_cli, register_plugin) -> None:
    register_plugin(hello_cli, "hello-plugin")
    result = ascend_cli("hello", "say", "ada")
    assert result.exit_code == 0
    assert result.stdout == "hello, ada\n"
    listing = ascend_cli("--help")
    assert "hello" in listing.stdout
    assert "Greetings from the hello plugin." in listing.stdout


def test_two_plugins_with_one_command_name_is_an_error_naming_both(
    ascend_pm, ascend_cli, register_plugin
) -> None:
    ascend_pm.strict = False
    register_plugin(hello_cli, "hello-plugin")
    register_plugin(hello_cli_twin, "hello-twin")
    result = ascend_cli("hello")
    assert result.exit_code != 0
    assert "'hello-plugin'" in result.stderr
    assert "'hello-twin'" in result.stderr
    assert "ASCEND_DISABLED_PLUGINS" in result.stderr
    helped = ascend_cli("--help")
    assert "error: command 'hello' is provided by several plugins" in helped.stdout


def test_plugin_command_shadowing_a_builtin_is_refused_and_builtin_kept(
    ascend_pm, ascend_cli, register_plugin
) -> None:
    ascend_pm.strict = False
    register_plugin(config_cli, "shadow")
    result = ascend_cli("config", "show", "--json")
    assert result.exit_code == 0
    assert "plugin config" not in result.stdout
    json.loads(result.stdout)
    helped = ascend_cli("--help")
    assert "plugin 'shadow'" in helped.stdout
    assert "built-in ascend command" in helped.stdout


def test_clash_is_fatal_in_strict_mode(ascend_pm, register_plugin) -> None:
    from ascend.cli import cli

    ascend_pm.strict = True
    register_plugin(hello_cli, "hello-plugin")
    register_plugin(hello_cli_twin, "hello-twin")
    with pytest.raises(CommandClashError) as caught:
        cli.list_commands(None)
    assert "hello-plugin" in str(caught.value) and "hello-twin" in str(caught.value)


def test_plugins_json_lists_plugins_and_answers(ascend_cli, register_plugin, monkeypatch) -> None:
    register_plugin(ProviderPlugin("acme"), "acme-cloud")
    register_plugin(acme_registry, "inhouse-registry")
    monkeypatch.setenv("ASCEND_ACME_REGISTRY_HOST", "registry.inhouse:443")
    result = ascend_cli("plugins", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    by_name = {p["name"]: p for p in report["plugins"]}
    assert by_name["core"]["distribution"] == "ascend"
    assert by_name["core"]["status"] == "active"
    assert "ascend_registry_url" in by_name["inhouse-registry"]["hooks"]
    assert report["cloud_provider"] == "acme"
    assert report["backend"]["ascend_storage"]["plugin"] == "acme-cloud"
    assert report["backend"]["ascend_registry_url"]["plugin"] == "inhouse-registry"
    # acme brings no compute, so the built-in Kubernetes compute (trylast) answers
    assert report["backend"]["ascend_compute"] == {"plugin": "kubernetes-compute", "error": None}
    assert [p["name"] for p in report["providers"]] == ["acme", "kubernetes", "local"]


def test_plugins_human_output_names_the_answering_plugin(
    ascend_cli, register_plugin, monkeypatch
) -> None:
    register_plugin(ProviderPlugin("acme"), "acme-cloud")
    result = ascend_cli("plugins", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    storage_line = next(line for line in result.stdout.splitlines() if "ascend_storage" in line)
    assert "acme-cloud" in storage_line


def test_plugins_shows_a_failed_plugin(ascend_pm, ascend_cli, capsys) -> None:
    ascend_pm.strict = False
    ascend_pm.load(
        env={"ASCEND_DISABLE_PLUGIN_AUTOLOAD": "1", "ASCEND_PLUGINS": "tests.plugins.broken_import"}
    )
    report = json.loads(ascend_cli("plugins", "--json").stdout)
    failed = next(p for p in report["plugins"] if p["name"] == "tests.plugins.broken_import")
    assert failed["status"].startswith("failed: ModuleNotFoundError")


def test_main_turns_ascend_errors_into_a_message_and_exit_1(
    ascend_pm, ascend_env, capsys, monkeypatch
) -> None:
    (ascend_env / ".ascend.yaml").write_text("cloud_provider: [not, a, string]\n")
    code = main(["config", "validate"])
    captured = capsys.readouterr()
    assert code == 1
    assert "cloud_provider" in captured.err
    assert "Traceback" not in captured.err


def test_unknown_command_is_a_usage_error(ascend_pm, capsys) -> None:
    assert main(["no-such-command"]) == 2
    assert "No such command 'no-such-command'" in capsys.readouterr().err
