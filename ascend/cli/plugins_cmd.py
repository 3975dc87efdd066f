"""``ascend plugins``: what is installed, what failed, and who answers each backend hook."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from ascend.cli.output import console, print_json, table
from ascend.errors import AscendError


def plugins_report() -> dict[str, Any]:
    """Everything ``ascend plugins`` shows, as data (also the ``--json`` output)."""
    from ascend.backend import get_backend
    from ascend.config import AscendConfig
    from ascend.plugins.manager import get_plugin_manager
    from ascend.secrets import scrub

    pm = get_plugin_manager()
    config: AscendConfig | None = None
    report: dict[str, Any] = {
        "plugins": [asdict(info) for info in pm.plugin_infos()],
        "providers": [],
        "cloud_provider": None,
        "backend": {},
        "problem": None,
    }
    try:
        report["providers"] = [
            {
                "name": name,
                "plugin": plugin,
                "builtin": provider.builtin,
                "available": provider.available,
                "unavailable": provider.unavailable,
                "fix": provider.fix,
                "summary": provider.summary,
            }
            for name, (provider, plugin) in sorted(pm.providers().items())
        ]
        config = AscendConfig.load(pm=pm, strict=False)
        report["cloud_provider"] = config.cloud_provider
        backend = get_backend(config, pm=pm)
        report["backend"] = backend.describe()
    except AscendError as error:
        report["problem"] = str(error)
    # A plugin's error may quote a configuration value: never a secret one.
    hidden = config.secret_values() if config is not None else []
    if report["problem"]:
        report["problem"] = scrub(report["problem"], hidden)
    for answer in report["backend"].values():
        if answer.get("error"):
            answer["error"] = scrub(answer["error"], hidden)
    return report


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def plugins(as_json: bool) -> None:
    """List installed plugins and which plugin answers each backend hook.

    Each plugin shows its distribution, version, status (active, blocked, or failed with the
    error) and the hooks it implements. The backend section resolves the current
    configuration's provider and names the plugin behind storage, registry and compute.
    """
    report = plugins_report()
    if as_json:
        print_json(report)
        return
    out = console()
    rows = [
        [
            p["name"],
            p["distribution"] or "-",
            p["version"] or "-",
            p["status"],
            p["source"],
            ", ".join(h.removeprefix("ascend_") for h in p["hooks"]) or "-",
        ]
        for p in report["plugins"]
    ]
    out.print(
        table("Plugins", ["name", "distribution", "version", "status", "source", "hooks"], rows)
    )
    if report["providers"]:
        provider_rows = [
            [
                p["name"],
                p["plugin"],
                "built-in" if p["builtin"] else "plugin",
                "yes" if p["available"] else f"no: {p['unavailable']} (fix: {p['fix']})",
                p["summary"],
            ]
            for p in report["providers"]
        ]
        out.print(
            table("Providers", ["name", "plugin", "kind", "usable", "summary"], provider_rows)
        )
    if report["problem"]:
        out.print("\n[bold]Backend:[/bold] not available")
        out.print(report["problem"], markup=False)
        return
    out.print(f"\n[bold]Backend for cloud_provider = {report['cloud_provider']}[/bold]")
    backend_rows = [
        [hook, answer.get("plugin") or "-", answer.get("error") or "ok"]
        for hook, answer in report["backend"].items()
    ]
    out.print(table(None, ["hook", "answered by", "status"], backend_rows))
