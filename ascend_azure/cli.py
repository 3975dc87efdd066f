"""``ascend azure``: create resources (bootstrap), write ``.ascend.yaml`` (init), check (doctor).

Each command imports its module, and that module its SDKs, only when it runs, so ``ascend
--help`` stays fast and works without the ``azure`` extra.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ascend.config import AscendConfig
    from ascend_azure.bootstrap import Step
    from ascend_azure.init import Candidate

MARKS = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]", "skip": "[dim]-[/]"}


@click.group(
    "azure",
    help="Set up and check Ascend on Azure.\n\n"
    "Once per resource group, someone allowed to create resources runs 'bootstrap' "
    "(storage account, container, registry, roles). In each project, run 'init' to find "
    "them and write .ascend.yaml. Run 'doctor' whenever something does not work: it checks "
    "each part and says how to fix it.\n\n"
    "bootstrap and init need: pip install 'ascend[azure-admin]'",
)
def azure() -> None:
    pass


@azure.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(as_json: bool) -> None:
    """Check credentials, storage (write and read), registry, cluster and node pools.

    Each check passes, warns, fails or is skipped, and says how to fix what is wrong. Exits 1
    when a check fails.
    """
    from rich.markup import escape

    from ascend.backend import get_backend
    from ascend.cli.output import console, print_json
    from ascend_azure.doctor import FAIL, run_checks

    backend = get_backend()
    if backend.name != "azure":
        raise click.ClickException(
            f"the selected provider is {backend.name!r}; the doctor checks Azure set-ups "
            "(cloud_provider: azure)"
        )
    checks = run_checks(backend)
    if as_json:
        print_json([check.as_dict() for check in checks])
    else:
        out = console()
        for check in checks:
            out.print(f"{MARKS[check.status]} [bold]{check.name}[/]: {escape(check.detail)}")
            if check.fix and check.status != "ok":
                out.print(f"    fix: {check.fix}", markup=False)
        counts = {status: sum(c.status == status for c in checks) for status in MARKS}
        out.print(
            f"\n{counts['ok']} ok, {counts['warn']} warnings, {counts['fail']} failed, "
            f"{counts['skip']} skipped"
        )
    if any(check.status == FAIL for check in checks):
        raise SystemExit(1)


def stdin_is_interactive() -> bool:
    """Whether someone can answer a prompt (tests replace this to drive the prompts)."""
    stdin = sys.stdin
    return stdin is not None and stdin.isatty()


def _load_config(directory: Path | None = None) -> AscendConfig:
    from ascend.config import AscendConfig

    # not strict: a half-written .ascend.yaml must not stop the commands that write it
    return AscendConfig.load(cwd=directory, strict=False)


STEP_MARKS = {
    "created": "[green]+[/]",
    "exists": "[green]✓[/]",
    "warning": "[yellow]![/]",
    "failed": "[red]✗[/]",
}


@azure.command("bootstrap")
@click.option(
    "-g", "--resource-group", required=True, help="Resource group to work in; it must exist."
)
@click.option(
    "--subscription",
    metavar="ID",
    help="Subscription id (default: azure.subscription_id, then AZURE_SUBSCRIPTION_ID).",
)
@click.option("-l", "--location", help="Region of new resources (default: the group's).")
@click.option(
    "--storage-account",
    metavar="NAME",
    help="Storage account to create or keep (default: 'ascend' + 8 hex digits derived from "
    "subscription and group).",
)
@click.option(
    "--container", default="ascend-data", show_default=True, help="Blob container for jobs."
)
@click.option(
    "--registry",
    metavar="NAME",
    help="Container registry to create or keep (default: the same derived name).",
)
@click.option(
    "--cluster",
    metavar="NAME",
    help="AKS cluster in the group whose kubelet identity may pull images (AcrPull).",
)
@click.option(
    "--assignee",
    metavar="OBJECT_ID",
    help="Object id that gets data access (default: the signed-in user or service principal).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the steps as JSON.")
def bootstrap(
    resource_group: str,
    subscription: str | None,
    location: str | None,
    storage_account: str | None,
    container: str,
    registry: str | None,
    cluster: str | None,
    assignee: str | None,
    as_json: bool,
) -> None:
    """Create what Ascend needs in a resource group; what exists is kept.

    A storage account (StorageV2, https only, TLS 1.2, no public blob access) and its blob
    container, a container registry (Basic, admin user off), and roles: Storage Blob Data
    Contributor and AcrPush for you, AcrPull for the kubelet identity of --cluster. Safe to run
    again. A role you may not assign is a warning with the 'az' command for an owner to run.
    Exits 1 when a step fails.
    """
    from ascend.errors import AscendError
    from ascend_azure.bootstrap import BootstrapError, arm_for, resolve_subscription
    from ascend_azure.bootstrap import bootstrap as run_bootstrap

    try:
        config = _load_config()
        arm = arm_for(config, resolve_subscription(subscription, config))
        result = run_bootstrap(
            arm,
            resource_group,
            location=location,
            storage_account=storage_account,
            container=container,
            registry=registry,
            cluster=cluster,
            assignee=assignee,
        )
    except BootstrapError as error:
        _print_steps(error.steps, as_json, failure=error)
        if as_json:
            raise SystemExit(1) from None
        raise click.ClickException(str(error)) from None
    except AscendError as error:
        if as_json:
            _print_steps([], as_json, failure=error)
            raise SystemExit(1) from None
        raise click.ClickException(str(error)) from None
    _print_steps(result.steps, as_json)
    if as_json:
        return
    click.echo("\nFor .ascend.yaml:")
    click.echo("  cloud_provider: azure\n  azure:")
    for key, value in result.settings.items():
        click.echo(f"    {key}: {value}")
    command = [
        "ascend", "azure", "init", "-g", resource_group, "--cluster", cluster or "CLUSTER",
        "--subscription", result.settings["subscription_id"],
        "--storage-account", result.settings["storage_account"],
        "--registry", result.settings["registry"],
    ]  # fmt: skip
    if container != "ascend-data":
        command += ["--container", container]
    click.echo("or write them with: " + shlex.join(command).replace("CLUSTER", "<cluster>"))
    if result.warnings:
        click.echo(f"\n{len(result.warnings)} warning(s): see the lines marked '!'.")


def _print_steps(steps: list[Step], as_json: bool, failure: Exception | None = None) -> None:
    rows = [step.as_dict() for step in steps]
    if as_json:
        from ascend.cli.output import print_json

        if failure is not None:
            rows.append(
                {"resource": "bootstrap", "name": "", "action": "failed", "detail": str(failure)}
            )
        print_json(rows)
        return
    from rich.markup import escape

    from ascend.cli.output import console

    out = console()
    for step in steps:
        mark = STEP_MARKS.get(step.action, "-")
        line = f"{mark} {escape(step.resource)} [bold]{escape(step.name)}[/]: {step.action}"
        if step.action == "warning":
            out.print(line)
            click.echo(f"    {step.detail}")  # unwrapped, so the command can be copied
        else:
            out.print(line + (f" ({escape(step.detail)})" if step.detail else ""))


@azure.command("init")
@click.option("-g", "--resource-group", required=True, help="Resource group of the cluster.")
@click.option("--cluster", required=True, metavar="NAME", help="AKS cluster that runs the jobs.")
@click.option(
    "--subscription",
    metavar="ID",
    help="Subscription id (default: azure.subscription_id, then AZURE_SUBSCRIPTION_ID).",
)
@click.option(
    "--storage-account", metavar="NAME", help="Storage account, when the group has several."
)
@click.option("--registry", metavar="NAME", help="Container registry, when the group has several.")
@click.option(
    "--container",
    metavar="NAME",
    help="Blob container for jobs (default: azure.container, else ascend-data).",
)
@click.option("-y", "--yes", is_flag=True, help="Replace another cloud_provider without asking.")
@click.option("--no-input", is_flag=True, help="Never prompt; fail where a choice is needed.")
@click.option(
    "--path",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write .ascend.yaml in (default: the current one).",
)
def init(
    resource_group: str,
    cluster: str,
    subscription: str | None,
    storage_account: str | None,
    registry: str | None,
    container: str | None,
    yes: bool,
    no_input: bool,
    path: Path | None,
) -> None:
    """Find the cluster, storage account and registry of a group; write .ascend.yaml.

    One storage account (or registry) in the group is used as is; with several you are asked
    to choose (or pass --storage-account / --registry; with --no-input it is an error). Other
    keys already in .ascend.yaml are kept. Run 'ascend azure bootstrap' first when the group
    has none.
    """
    from ascend.errors import AscendError
    from ascend_azure.bootstrap import arm_for, resolve_subscription
    from ascend_azure.init import (
        discover,
        project_file,
        project_provider,
        provider_conflict,
        write_project_file,
    )

    interactive = not no_input and stdin_is_interactive()
    try:
        target = project_file(path)
        config = _load_config(target.parent)
        previous = project_provider(target)
        replace = yes or not previous or previous == "azure"
        if not replace and interactive:
            replace = click.confirm(
                f"{target} selects cloud_provider {previous!r}; switch it to 'azure'?",
                default=False,
            )
            if not replace:
                raise click.ClickException(f"{target} was left unchanged")
        if not replace:
            raise provider_conflict(target, str(previous))
        arm = arm_for(config, resolve_subscription(subscription, config))
        found = discover(
            arm,
            resource_group,
            cluster,
            storage_account=storage_account,
            registry=registry,
            container=container or config.get("azure.container") or "ascend-data",
            choose=_choose if interactive else None,
        )
        written = write_project_file(target, found.settings(), replace_provider=replace)
    except AscendError as error:
        raise click.ClickException(str(error)) from None
    action = "created" if written.created else "updated"
    click.echo(f"{action} {written.path}:")
    click.echo("  cloud_provider: azure")
    for key, value in written.values.items():
        click.echo(f"  azure.{key}: {value}")
    if written.previous_provider:
        click.echo(f"note: cloud_provider was {written.previous_provider!r}")
    if written.comments_dropped:
        click.echo("note: the comments the file had were not kept")
    for note in found.notes:
        click.echo(f"note: {note}")
    click.echo("next: ascend azure doctor")


def _choose(kind: str, option: str, candidates: list[Candidate]) -> str:
    click.echo(f"The resource group has {len(candidates)} {kind}s:")
    for number, candidate in enumerate(candidates, 1):
        click.echo(f"  {number}. {candidate.describe()}")
    number = click.prompt(
        f"Which {kind}? (next time: {option} NAME)", type=click.IntRange(1, len(candidates))
    )
    return candidates[int(number) - 1].name
