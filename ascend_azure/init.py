"""``ascend azure init``: find the cluster, storage account and registry; write ``.ascend.yaml``.

Why it never guesses: the previous generation took the first storage account and the first
registry of the resource group, whichever they were, so two projects sharing a group could
silently write jobs to the wrong account. Here exactly one candidate is used as is; several
are offered as a numbered choice when someone is there to answer (``choose``), and are
otherwise an error that lists them and names the option that picks one. None is an error
that points at ``ascend azure bootstrap``, which exists.

``discover`` asks Azure Resource Manager; ``write_project_file`` merges the result into the
file (other keys are kept) and replaces it atomically, so an interrupted write never leaves a
half-written configuration.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ascend.config import PROJECT_FILE, read_yaml
from ascend.errors import ConfigError
from ascend_azure import PROVIDER
from ascend_azure.bootstrap import (
    TAGS,
    Arm,
    admin_sdk,
    arm_errors,
    get_cluster,
    status_of,
)
from ascend_azure.settings import DEFAULT_CONTAINER, check_container

__all__ = [
    "SETTING_KEYS",
    "Candidate",
    "Chooser",
    "Discovery",
    "WriteResult",
    "discover",
    "pick",
    "project_file",
    "project_provider",
    "provider_conflict",
    "write_project_file",
]

SETTING_KEYS = (
    "subscription_id",
    "resource_group",
    "cluster",
    "storage_account",
    "container",
    "registry",
)
"""The ``azure.*`` keys init writes, in the order they are written."""


@dataclass(frozen=True)
class Candidate:
    """A storage account or registry found in the resource group."""

    name: str
    location: str = ""
    managed: bool = False  # tagged managed-by=ascend (made by 'ascend azure bootstrap')

    def describe(self) -> str:
        details = [self.location] if self.location else []
        if self.managed:
            details.append("managed-by=ascend")
        return f"{self.name} ({', '.join(details)})" if details else self.name


Chooser = Callable[[str, str, list[Candidate]], str]
"""``choose(kind, option, candidates)`` -> the chosen name; asks a person."""


@dataclass
class Discovery:
    """What ``discover`` found: the ``azure.*`` values, and notes worth telling the user."""

    subscription_id: str
    resource_group: str
    cluster: str
    storage_account: str
    container: str
    registry: str
    notes: list[str] = field(default_factory=list)

    def settings(self) -> dict[str, str]:
        return {key: getattr(self, key) for key in SETTING_KEYS}


def _candidate(resource: Any) -> Candidate:
    tags = getattr(resource, "tags", None) or {}
    managed = all(tags.get(key) == value for key, value in TAGS.items())
    return Candidate(str(resource.name), str(getattr(resource, "location", "") or ""), managed)


def pick(
    kind: str,
    option: str,
    candidates: list[Candidate],
    *,
    explicit: str | None,
    resource_group: str,
    choose: Chooser | None,
) -> str:
    """The one candidate to use: the explicit one, the only one, or the one a person picks."""
    listing = ", ".join(c.describe() for c in candidates) or "none"
    if explicit:
        for candidate in candidates:
            if candidate.name.lower() == explicit.lower():
                return candidate.name
        raise ConfigError(
            f"{option} {explicit!r}: no {kind} of that name in resource group "
            f"{resource_group!r} (it has: {listing})",
            fix=f"pass one of those names with {option}, or create it with "
            f"'ascend azure bootstrap -g {resource_group} {option} {explicit}'",
        )
    if not candidates:
        raise ConfigError(
            f"resource group {resource_group!r} has no {kind}",
            fix=f"create one with: ascend azure bootstrap -g {shlex.quote(resource_group)}",
        )
    if len(candidates) == 1:
        return candidates[0].name
    if choose is None:
        raise ConfigError(
            f"resource group {resource_group!r} has {len(candidates)} {kind}s: {listing}; "
            "Ascend does not pick one for you",
            fix=f"choose with {option} NAME",
        )
    chosen = choose(kind, option, candidates)
    return pick(
        kind, option, candidates, explicit=chosen, resource_group=resource_group, choose=None
    )


def discover(
    arm: Arm,
    resource_group: str,
    cluster: str,
    *,
    storage_account: str | None = None,
    registry: str | None = None,
    container: str = DEFAULT_CONTAINER,
    choose: Chooser | None = None,
) -> Discovery:
    """Read the cluster, then choose the group's storage account and registry.

    ``choose`` is called when a group has several candidates and no option picked one; without
    it that is an error listing them.
    """
    try:
        check_container(container)
    except ValueError as error:
        raise ConfigError(
            f"--container {container!r}: {error}", fix="pass a name such as ascend-data"
        ) from None
    with admin_sdk():
        from azure.mgmt.containerregistry import ContainerRegistryManagementClient
        from azure.mgmt.storage import StorageManagementClient

    found_cluster = get_cluster(arm, resource_group, cluster)
    storage = arm.client(StorageManagementClient)
    registries = arm.client(ContainerRegistryManagementClient)
    with arm_errors(arm, f"list the storage accounts of resource group {resource_group!r}"):
        accounts = [
            _candidate(a) for a in storage.storage_accounts.list_by_resource_group(resource_group)
        ]
    with arm_errors(arm, f"list the container registries of resource group {resource_group!r}"):
        acrs = [_candidate(r) for r in registries.registries.list_by_resource_group(resource_group)]
    account = pick(
        "storage account",
        "--storage-account",
        sorted(accounts, key=lambda c: c.name),
        explicit=storage_account,
        resource_group=resource_group,
        choose=choose,
    )
    acr = pick(
        "container registry",
        "--registry",
        sorted(acrs, key=lambda c: c.name),
        explicit=registry.lower().removesuffix(".azurecr.io") if registry else None,
        resource_group=resource_group,
        choose=choose,
    )
    discovery = Discovery(
        arm.subscription_id, resource_group, str(found_cluster.name), account, container, acr
    )
    note = _container_note(arm, storage, resource_group, account, container)
    if note:
        discovery.notes.append(note)
    return discovery


def _container_note(arm: Arm, client: Any, group: str, account: str, container: str) -> str | None:
    """A note when the blob container is missing (jobs cannot be stored until it exists)."""
    from azure.core.exceptions import AzureError, HttpResponseError

    try:
        client.blob_containers.get(group, account, container)
    except HttpResponseError as error:
        if status_of(error) == 404:
            create = shlex.join(
                ["az", "storage", "container", "create", "--account-name", account,
                 "-n", container, "--auth-mode", "login"]
            )  # fmt: skip
            return (
                f"blob container {container!r} does not exist in storage account {account!r} "
                f"yet; create it with: {create}"
            )
        return f"could not check blob container {container!r} ({status_of(error)})"
    except AzureError:
        return None
    return None


# -- .ascend.yaml -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteResult:
    """The file written, the ``azure.*`` values set, and what else happened to the file."""

    path: Path
    values: dict[str, str]
    created: bool
    previous_provider: str | None = None
    comments_dropped: bool = False


def project_provider(path: Path) -> str | None:
    """The ``cloud_provider`` the file at ``path`` selects, if it exists and selects one."""
    if not path.is_file():
        return None
    value = read_yaml(path).get("cloud_provider")
    return str(value) if value else None


def provider_conflict(path: Path, previous: str) -> ConfigError:
    """The error for a file that selects another provider, which init will not replace unasked."""
    return ConfigError(
        f"{path} selects cloud_provider {previous!r}; init would change it to 'azure'",
        fix="confirm with --yes, or run init in another directory (--path)",
    )


_COMMENT = re.compile(r"(^|\s)#", re.MULTILINE)


def write_project_file(
    path: Path, settings: Mapping[str, str], *, replace_provider: bool = False
) -> WriteResult:
    """Merge ``cloud_provider: azure`` and the ``azure`` section into ``path``, atomically.

    Other keys (and other ``azure.*`` keys) are kept. A different ``cloud_provider`` is replaced
    only with ``replace_provider``. Comments do not survive the YAML round trip
    (``comments_dropped`` says there were some).
    """
    import yaml

    target = path.resolve() if path.is_symlink() else path
    exists = target.is_file()
    data = read_yaml(target) if exists else {}
    previous = data.get("cloud_provider")
    if previous and previous != PROVIDER and not replace_provider:
        raise provider_conflict(target, str(previous))
    section = data.get("azure")
    azure: dict[str, Any] = dict(section) if isinstance(section, dict) else {}
    for key in settings:
        data.pop(f"azure.{key}", None)  # a flat 'azure.key: value' line would shadow the section
    azure.update(settings)
    merged: dict[str, Any] = {} if "cloud_provider" in data else {"cloud_provider": PROVIDER}
    merged.update(data)
    merged["cloud_provider"] = PROVIDER
    merged["azure"] = azure
    text = yaml.safe_dump(merged, sort_keys=False, default_flow_style=False, allow_unicode=True)
    original = target.read_text(encoding="utf-8-sig") if exists else ""
    _replace(target, text)
    return WriteResult(
        target,
        dict(settings),
        created=not exists,
        previous_provider=str(previous) if previous and previous != PROVIDER else None,
        comments_dropped=bool(_COMMENT.search(original)),
    )


def _replace(target: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``target``, then rename it over ``target``."""
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o644
    descriptor, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def project_file(directory: Path | None = None) -> Path:
    """``.ascend.yaml`` in ``directory`` (default: the working directory), which must exist."""
    base = directory if directory is not None else Path.cwd()
    if not base.is_dir():
        raise ConfigError(
            f"--path {str(base)!r} is not a directory", fix="create it, or pass another --path"
        )
    return base / PROJECT_FILE
