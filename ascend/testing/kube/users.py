"""Set up a user's namespace on an emulator the way a cluster admin does on a real cluster."""

from __future__ import annotations

from typing import Any


def set_up_namespace(emulator: Any, namespace: str, subject: str | None = None) -> list[str]:
    """Run ``ascend admin add-user``'s namespace set-up (namespace, service account, Role,
    RoleBinding, signing key) against ``emulator``; returns what was created."""
    from ascend.kubernetes.admin import ensure_namespace

    user = namespace.removeprefix("ascend-users-").removeprefix("ascend-projects-")
    return ensure_namespace(emulator.api_client(), namespace, subject=subject or user)
