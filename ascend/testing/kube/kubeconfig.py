"""A kubeconfig for the emulator: one cluster, one user (no credentials), one context."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

CONTEXT = "ascend-emulator"


def kubeconfig(url: str, namespace: str | None = None) -> dict[str, object]:
    context: dict[str, object] = {"cluster": CONTEXT, "user": CONTEXT}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT, "user": {}}],
        "contexts": [{"name": CONTEXT, "context": context}],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write(path: str | os.PathLike[str], url: str, namespace: str | None = None) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(kubeconfig(url, namespace), sort_keys=False)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(text)
    os.chmod(temporary, 0o600)
    os.replace(temporary, target)
    return target
