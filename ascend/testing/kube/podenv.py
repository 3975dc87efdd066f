"""What a container process gets: its environment (``value``, ``valueFrom`` secret, config
map, field and resource references, ``envFrom``, ``$(VAR)`` expansion) and, for a preloaded
image, its argv.

A preloaded image has no files here: its command runs on the host, and the Ascend runtime
(``python -m ascend.runner``, or an ``ascend-runtime`` image without a command) is this
interpreter with this checkout importable, which is what ``ascend-runtime:dev`` stands for.
Pulled images run from their own files instead (:mod:`ascend.testing.kube.image_run`).
"""

from __future__ import annotations

import base64
import os
import re
import sys
from decimal import ROUND_CEILING, Decimal
from pathlib import Path

from ascend.testing.kube.images import is_runtime_image
from ascend.testing.kube.store import ObjectStore
from ascend.testing.kube.util import Obj, deep, quantity

PROJECT_ROOT = str(Path(__file__).resolve().parents[3])
_PYTHON = re.compile(r"^(.*/)?python(3(\.\d+)?)?$")
_REFERENCE = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


class ConfigError(Exception):
    """The container cannot be configured yet (CreateContainerConfigError)."""


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known names are replaced, ``$$`` escapes ``$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, text)


def _lookup(store: ObjectStore, kind: str, namespace: str, ref: Obj) -> Obj | None:
    plural = "secrets" if kind == "Secret" else "configmaps"
    found = store.try_get(plural, namespace, ref.get("name", ""))
    if found is None and not ref.get("optional"):
        label = "secret" if kind == "Secret" else "configmap"
        raise ConfigError(f'{label} "{ref.get("name", "")}" not found')
    return found


def _data(obj: Obj, kind: str) -> dict[str, str]:
    if kind == "Secret":
        return {
            k: base64.b64decode(v).decode(errors="replace")
            for k, v in (obj.get("data") or {}).items()
        }
    values = dict(obj.get("data") or {})
    for key, value in (obj.get("binaryData") or {}).items():
        values[key] = base64.b64decode(value).decode(errors="replace")
    return values


def _key_ref(store: ObjectStore, kind: str, pod: Obj, ref: Obj) -> str | None:
    namespace = pod["metadata"]["namespace"]
    found = _lookup(store, kind, namespace, ref)
    if found is None:
        return None
    data = _data(found, kind)
    key = ref.get("key", "")
    if key not in data:
        if ref.get("optional"):
            return None
        raise ConfigError(f"couldn't find key {key} in {kind} {namespace}/{ref.get('name', '')}")
    return data[key]


def _field_ref(pod: Obj, path: str) -> str:
    meta = pod["metadata"]
    match = re.match(r"^metadata\.(labels|annotations)\['(.*)'\]$", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    values = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": deep(pod, "spec", "nodeName"),
        "spec.serviceAccountName": deep(pod, "spec", "serviceAccountName"),
        "status.hostIP": "127.0.0.1",
        "status.hostIPs": "127.0.0.1",
        "status.podIP": "127.0.0.1",
        "status.podIPs": "127.0.0.1",
    }
    return str(values.get(path) or "")


def _resource_ref(container: Obj, ref: Obj, node: Obj | None) -> str:
    kind, _, name = str(ref.get("resource", "")).partition(".")
    value = deep(container, "resources", kind, name)
    if value is None:
        value = deep(node or {}, "status", "allocatable", name, default="0")
    divisor = quantity(ref.get("divisor") or "1") or Decimal(1)
    return str(int((quantity(value) / divisor).to_integral_value(ROUND_CEILING)))


def container_env(
    store: ObjectStore, pod: Obj, container: Obj, base: dict[str, str], node: Obj | None = None
) -> dict[str, str]:
    """The environment ``container`` starts with; raises ConfigError like the kubelet."""
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, field in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            if field in source:
                found = _lookup(store, kind, pod["metadata"]["namespace"], source[field])
                if found is not None:
                    env.update({prefix + k: v for k, v in _data(found, kind).items()})
    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" not in item:
            env[name] = expand(str(item.get("value", "")), env)
            continue
        source = item["valueFrom"]
        value: str | None
        if "secretKeyRef" in source:
            value = _key_ref(store, "Secret", pod, source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            value = _key_ref(store, "ConfigMap", pod, source["configMapKeyRef"])
        elif "fieldRef" in source:
            value = _field_ref(pod, source["fieldRef"].get("fieldPath", ""))
        elif "resourceFieldRef" in source:
            value = _resource_ref(container, source["resourceFieldRef"], node)
        else:
            value = None
        if value is not None:
            env[name] = value
    return env


def runs_runner(container: Obj) -> bool:
    """A preloaded Ascend runtime image, or ``python -m ascend.runner`` in a preloaded image."""
    argv = list(container.get("command") or []) + list(container.get("args") or [])
    if is_runtime_image(str(container.get("image", ""))):
        return True
    return len(argv) >= 3 and bool(_PYTHON.match(argv[0])) and argv[1:3] == ["-m", "ascend.runner"]


def container_argv(container: Obj, env: dict[str, str]) -> list[str] | None:
    """What to execute, or None when only the image's entrypoint (unknown here) could say."""
    command = [expand(str(c), env) for c in container.get("command") or []]
    args = [expand(str(a), env) for a in container.get("args") or []]
    runner = runs_runner(container)
    if runner and not command:
        command = ["python", "-m", "ascend.runner"]
    argv = command + args
    if not argv:
        return None
    if runner and _PYTHON.match(argv[0]):
        argv[0] = sys.executable
    return argv


def runtime_env(env: dict[str, str]) -> dict[str, str]:
    """What the preloaded development runtime provides: this interpreter first on PATH, this
    checkout importable, unbuffered output."""
    result = dict(env)
    result["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    existing = env.get("PYTHONPATH")
    result["PYTHONPATH"] = os.pathsep.join([PROJECT_ROOT, existing] if existing else [PROJECT_ROOT])
    result.setdefault("PYTHONUNBUFFERED", "1")
    result.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return result


def write_secret_volume(store: ObjectStore, namespace: str, source: Obj, target: str) -> None:
    """A Secret volume's files (all keys, or ``items`` with their paths), as the kubelet
    projects them; a missing Secret is a ConfigError unless the volume is optional."""
    secret = _lookup(
        store,
        "Secret",
        namespace,
        {"name": source.get("secretName", ""), "optional": source.get("optional")},
    )
    if secret is None:
        return
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    items = source.get("items") or [{"key": key, "path": key} for key in data]
    for item in items:
        if item["key"] not in data:
            raise ConfigError(
                f"couldn't find key {item['key']} in Secret {namespace}/{source.get('secretName')}"
            )
        path = os.path.normpath(os.path.join(target, item["path"]))
        if not path.startswith(target + os.sep):
            raise ConfigError(f"secret volume path {item['path']!r} leaves its volume")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data[item["key"]])


def map_mounted(value: str, mounted: dict[str, str]) -> str:
    """An env value naming a path under a volume's mountPath, as the path here."""
    for mount_path, local in mounted.items():
        if value == mount_path or value.startswith(mount_path + "/"):
            return local + value[len(mount_path) :]
    return value
