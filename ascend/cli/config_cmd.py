"""``ascend config show|validate``: every value with its origin, and a checker for CI."""

from __future__ import annotations

import warnings
from typing import Any

import click

from ascend.cli.output import console, print_json, table
from ascend.errors import AscendError

MASK = "********"


@click.group("config")
def config() -> None:
    """Show or check the configuration (.ascend.yaml, user config, ASCEND_* variables)."""


def _load() -> Any:
    from ascend.config import AscendConfig

    return AscendConfig.load(strict=False)


def _display(value: Any, secret: bool) -> Any:
    if value is None:
        return None
    return MASK if secret else value


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def show(as_json: bool) -> None:
    """Print each configuration value, where it came from (file, env, default) and its owner."""
    cfg = _load()
    entries = []
    for key in sorted(cfg.settings):
        setting, plugin = cfg.settings[key]
        entries.append(
            {
                "key": key,
                "value": _display(cfg.get(key), setting.secret),
                "origin": str(cfg.origin(key)),
                "plugin": plugin,
                "env_var": setting.env_var,
                "help": setting.help,
            }
        )
    data = {
        "files": [str(path) for path in cfg.files],
        "values": entries,
        "problems": [str(problem) for problem in cfg.problems],
        "warnings": cfg.warnings,
        "provider_problem": str(cfg.provider_error) if cfg.provider_error else None,
    }
    if as_json:
        print_json(data)
        return
    out = console()
    files = ", ".join(data["files"]) or "none found (defaults and environment only)"
    out.print(f"Config files: {files}")
    rows = [
        [e["key"], "-" if e["value"] is None else str(e["value"]), e["origin"], e["plugin"]]
        for e in entries
    ]
    out.print(table(None, ["key", "value", "origin", "declared by"], rows))
    for line in data["warnings"]:
        click.echo(f"warning: {line}", err=True)
    for line in data["problems"]:
        click.echo(f"error: {line}", err=True)
    if data["provider_problem"]:
        click.echo(f"note: {data['provider_problem']}", err=True)


@config.command("validate")
def validate() -> None:
    """Check the configuration; exit 1 and list every problem when something is wrong.

    Problems are invalid values, an unknown or unusable cloud_provider, and anything a plugin
    rejects when configured. Unknown keys are reported as warnings.
    """
    from ascend.backend import get_backend

    try:
        cfg = _load()
    except AscendError as error:
        click.echo(f"error: {error}", err=True)
        raise click.exceptions.Exit(1) from None
    for line in cfg.warnings:
        click.echo(f"warning: {line}", err=True)
    failed = False
    for problem in cfg.problems:
        click.echo(f"error: {problem}", err=True)
        failed = True
    if not failed:
        try:
            with warnings.catch_warnings():  # already printed above
                warnings.simplefilter("ignore")
                get_backend(cfg)
        except AscendError as error:
            click.echo(f"error: {error}", err=True)
            failed = True
    if failed:
        raise click.exceptions.Exit(1)
    files = ", ".join(str(p) for p in cfg.files) or "no config file"
    click.echo(f"ok: configuration is valid ({files}; cloud_provider={cfg.cloud_provider})")
