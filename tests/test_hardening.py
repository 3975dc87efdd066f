"""Failure modes found in review: each one pinned by a test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from ascend import ConfigError, RegistryError, ascend, hookimpl
from ascend.config import AscendConfig, provider_selected_in_files
from ascend.registry import OCIRegistry

from .httpserve import serving

REPO = Path(__file__).resolve().parents[1]


# -- registry challenges --------------------------------------------------------------------


class _Challenging(BaseHTTPRequestHandler):
    challenge = ""
    seen: list[str] = []

    def do_HEAD(self) -> None:
        if self.headers.get("Authorization") == "Bearer t0k":
            self.send_response(200)
        else:
            self.send_response(401)
            self.send_header(
                "WWW-Authenticate", self.challenge.format(port=self.server.server_address[1])
            )
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        ok = query.get("account") == "me" and query.get("service") == "reg"
        body = json.dumps({"token": "t0k"} if ok else {}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def challenging() -> Iterator[type[_Challenging]]:
    handler = type("Handler", (_Challenging,), {"seen": []})
    with serving(handler) as port:
        handler.address = f"127.0.0.1:{port}"  # type: ignore[attr-defined]
        yield handler


def test_bearer_realm_with_a_query_string(challenging: Any) -> None:
    challenging.challenge = 'Bearer realm="http://127.0.0.1:{port}/token?account=me",service="reg"'
    registry = OCIRegistry(challenging.address, credentials=("u", "p"), timeout=5)
    assert registry.image_exists("x", "v1") is True
    assert challenging.seen[0].startswith("/token?account=me&")


def test_unsupported_challenge_says_so(challenging: Any) -> None:
    challenging.challenge = "Negotiate"
    with pytest.raises(RegistryError, match="'negotiate' authentication"):
        OCIRegistry(challenging.address, credentials=("u", "p"), timeout=5).image_exists("x", "v1")


# -- config files ---------------------------------------------------------------------------


def test_config_file_that_is_not_utf8_is_a_config_error(ascend_pm: Any, ascend_env: Path) -> None:
    (ascend_env / ".ascend.yaml").write_bytes(b"# caf\xe9\ncloud_provider: local\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        AscendConfig.load(pm=ascend_pm)
    assert provider_selected_in_files(ascend_env) is False  # the loader reports it, not import


def test_config_file_with_a_byte_order_mark(ascend_pm: Any, ascend_env: Path) -> None:
    (ascend_env / ".ascend.yaml").write_text("\ufeffcloud_provider: local\n", encoding="utf-8")
    assert provider_selected_in_files(ascend_env) is True
    assert AscendConfig.load(pm=ascend_pm).cloud_provider == "local"


# -- command line ---------------------------------------------------------------------------


class _BrokenCommands:
    @hookimpl
    def ascend_cli_commands(self) -> Any:
        raise RuntimeError("commands cannot be built")


class _GoodCommands:
    @hookimpl
    def ascend_cli_commands(self) -> Any:
        import click

        @click.command()
        def hello() -> bool:
            click.echo("hi")
            return True  # a return value is not an exit code

        return [hello]


def test_a_broken_plugin_does_not_hide_other_plugins_commands(
    ascend_pm: Any, register_plugin: Any, capsys: Any
) -> None:
    from ascend.cli import main

    ascend_pm.strict = False
    register_plugin(_GoodCommands(), "good")
    register_plugin(_BrokenCommands(), "broken")
    assert main(["hello"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "hi\n"
    assert "'broken'" in captured.err and "commands cannot be built" in captured.err


def test_clustered_interpreter_flags_still_run_the_cli(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASCEND_")}
    env.update(ASCEND_CONFIG_DIR=str(tmp_path), PYTHONPATH=str(REPO))
    for flags in (["-Im"], ["-um"], ["-B", "-m"]):
        result = subprocess.run(
            [sys.executable, *flags, "ascend", "--version"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        # -I ignores PYTHONPATH: that case is only meaningful where ascend is installed
        if flags == ["-Im"] and result.returncode != 0 and "No module named" in result.stderr:
            continue
        assert result.returncode == 0, (flags, result.stderr)
        assert result.stdout.startswith("ascend, version")


# -- decorator options ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        ({"requirements": 5}, "requirements"),
        ({"env": [("A", "b")]}, "env"),
        ({"cpu": "1e999999999999"}, "cpu"),
        ({"node_type": ["x"]}, "node_type"),
        ({"base_image": "py\tthon"}, "base_image"),
        ({"retries": -1}, "retries"),
    ],
)
def test_bad_options_are_config_errors_naming_the_parameter(
    options: dict[str, Any], parameter: str
) -> None:
    with pytest.raises(ConfigError, match=rf"@ascend\({parameter}="):
        ascend(**options)


def test_a_requirements_generator_is_read_once() -> None:
    remote = ascend(requirements=(r for r in ["NumPy>=1.26", "pandas"]))(len)
    assert remote.options.requirements == ("numpy>=1.26", "pandas")
