"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and an approximation of
Kubernetes' strategic merge patch (lists with a known merge key merge element by element;
``$patch: delete|replace`` and ``$deleteFromPrimitiveList`` are honoured; other directives
are dropped). Server-side apply is not supported (415).
"""

from __future__ import annotations

from typing import Any

from ascend.testing.kube.errors import ApiError, bad_request
from ascend.testing.kube.util import clone

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"

#: list field -> merge key, from the Kubernetes API's ``patchMergeKey`` markers.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "secrets": "name",
}
#: lists of primitives merged as sets.
SET_LISTS = {"finalizers"}


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return clone(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return clone(patch)
    if patch.get("$patch") == "replace":
        return {k: clone(v) for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [x for x in result.get(name) or [] if x not in (value or [])]
            continue
        if key.startswith("$"):
            continue
        current = result.get(key)
        if value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
            result.pop(key, None)
        elif isinstance(value, list) and key in MERGE_KEYS and isinstance(current, list):
            result[key] = _merge_list(current, value, MERGE_KEYS[key])
        elif isinstance(value, list) and key in SET_LISTS and isinstance(current, list):
            result[key] = current + [v for v in value if v not in current]
        elif isinstance(value, list):
            result[key] = [
                {k: v for k, v in item.items() if not k.startswith("$")}
                if isinstance(item, dict)
                else item
                for item in clone(value)
            ]
        else:
            result[key] = strategic_merge_patch(current, value)
    return result


def _merge_list(current: list[Any], patch: list[Any], key: str) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [clone(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    result = list(current)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            result.append(clone(item))
            continue
        index = next(
            (
                i
                for i, old in enumerate(result)
                if isinstance(old, dict) and old.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(strategic_merge_patch({}, item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


# -- JSON patch --------------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    node = doc
    for part in parts[:-1]:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise ApiError(422, f"the server rejected our request: missing path {path!r}") from None
    return node


def json_patch(doc: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise bad_request("a JSON patch must be a list of operations")
    doc = clone(doc)
    for op in operations:
        kind, path = op.get("op"), op.get("path", "")
        if kind in ("move", "copy"):
            value = _get(doc, _pointer(op.get("from", "")), op.get("from", ""))
            if kind == "move":
                doc = _remove(doc, _pointer(op["from"]), op["from"])
            doc = _add(doc, _pointer(path), path, clone(value))
        elif kind == "add":
            doc = _add(doc, _pointer(path), path, clone(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, _pointer(path), path)
        elif kind == "replace":
            doc = _remove(doc, _pointer(path), path)
            doc = _add(doc, _pointer(path), path, clone(op.get("value")))
        elif kind == "test":
            if _get(doc, _pointer(path), path) != op.get("value"):
                raise ApiError(422, f"the server rejected our request: test failed at {path!r}")
        else:
            raise bad_request(f"unknown JSON patch operation {kind!r}")
    return doc


def _get(doc: Any, parts: list[str], path: str) -> Any:
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    try:
        return parent[int(parts[-1])] if isinstance(parent, list) else parent[parts[-1]]
    except (KeyError, IndexError, ValueError, TypeError):
        raise ApiError(422, f"the server rejected our request: missing path {path!r}") from None


def _add(doc: Any, parts: list[str], path: str, value: Any) -> Any:
    if not parts:
        return value
    parent = _parent(doc, parts, path)
    if isinstance(parent, list):
        index = len(parent) if parts[-1] == "-" else int(parts[-1])
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[parts[-1]] = value
    else:
        raise ApiError(422, f"the server rejected our request: cannot add at {path!r}")
    return doc


def _remove(doc: Any, parts: list[str], path: str) -> Any:
    _get(doc, parts, path)
    parent = _parent(doc, parts, path)
    if isinstance(parent, list):
        del parent[int(parts[-1])]
    else:
        del parent[parts[-1]]
    return doc


def apply_patch(content_type: str, target: Any, body: Any) -> Any:
    kind = content_type.split(";")[0].strip().lower()
    if kind == MERGE:
        return merge_patch(target, body)
    if kind == STRATEGIC:
        return strategic_merge_patch(target, body)
    if kind == JSON_PATCH:
        return json_patch(target, body)
    raise ApiError(
        415,
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{JSON_PATCH}, {MERGE}, {STRATEGIC} (the emulator has no server-side apply; got {kind!r})",
        "UnsupportedMediaType",
    )
