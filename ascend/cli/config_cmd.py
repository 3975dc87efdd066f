"""``ascend config show|validate``: every value with its origin, and a checker for CI.

Nothing shown here reveals a secret: values go through :func:`ascend.config.shown_value`
(``secret`` settings masked whole, secret-looking keys masked inside ``storage_options`` and
other mappings, URLs without their credentials).
"""

from __future__ import annotations

import warnings
from typing import Any

import click

from ascend.cli.output import console, print_json, table
from ascend.errors import AscendError


@click.group("config")
def config() -> None:
    """Show or check the configuration (.ascend.yaml, user config, ASCEND_* variables)."""


def _load() -> Any:
    from ascend.config import AscendConfig

    return AscendConfig.load(strict=False)


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def show(as_json: bool) -> None:
    """Print each configuration value, where it came from (file, env, default) and its owner."""
    from ascend.config import shown_value

    cfg = _load()
    entries = []
    for key in sorted(cfg.settings):
        setting, plugin = cfg.settings[key]
        entries.append(
            {
                "key": key,
                "value": shown_value(setting, cfg.get(key)),
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
        "provider_problem": _scrub(cfg, cfg.provider_error) if cfg.provider_error else None,
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


def _scrub(cfg: Any, error: object) -> str:
    """The text of ``error`` without any secret value of ``cfg`` (or URL credentials)."""
    from ascend.secrets import scrub

    return scrub(str(error), cfg.secret_values())


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
        except AscendError as error:  # a plugin's message may quote a value
            click.echo(f"error: {_scrub(cfg, error)}", err=True)
            failed = True
    if failed:
        raise click.exceptions.Exit(1)
    files = ", ".join(str(p) for p in cfg.files) or "no config file"
    click.echo(f"ok: configuration is valid ({files}; cloud_provider={cfg.cloud_provider})")
