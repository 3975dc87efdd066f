"""Discovery documents (``/version``, ``/api``, ``/apis``, resource lists) and a minimal
OpenAPI v3 index: enough for kubectl to find every resource, and to learn that the server
validates fields itself (``fieldValidation``), so ``kubectl create`` needs no client-side
schema. Aggregated discovery is not offered; clients fall back to the classic documents.
"""

from __future__ import annotations

import hashlib
import json

from ascend.testing.kube.resources import GROUP_VERSIONS, RESOURCES, in_group_version
from ascend.testing.kube.util import Obj

VERSION: Obj = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-04-17T00:00:00Z",
    "goVersion": "go1.22.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _address(host: str) -> list[Obj]:
    return [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]


def core_versions(host: str) -> Obj:
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": _address(host)}


def _groups() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for resource in RESOURCES:
        if resource.group:
            versions = groups.setdefault(resource.group, [])
            if resource.version not in versions:
                versions.append(resource.version)
    return groups


def api_group(name: str) -> Obj | None:
    versions = _groups().get(name)
    if versions is None:
        return None
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": entries,
        "preferredVersion": entries[0],
    }


def group_list() -> Obj:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {k: v for k, v in (api_group(name) or {}).items() if k not in ("kind", "apiVersion")}
            for name in _groups()
        ],
    }


def resource_list(group_version: str) -> Obj | None:
    if group_version not in GROUP_VERSIONS:
        return None
    entries: list[Obj] = []
    for resource in in_group_version(group_version):
        entry: Obj = {
            "name": resource.plural,
            "singularName": resource.singular,
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": list(resource.verbs),
            "storageVersionHash": hashlib.sha256(resource.kind.encode()).hexdigest()[:11],
        }
        if resource.short_names:
            entry["shortNames"] = list(resource.short_names)
        if resource.categories:
            entry["categories"] = list(resource.categories)
        entries.append(entry)
        for sub, (verbs, kind, group, version) in resource.subresources.items():
            sub_entry: Obj = {
                "name": f"{resource.plural}/{sub}",
                "singularName": "",
                "namespaced": resource.namespaced,
                "kind": kind or resource.kind,
                "verbs": list(verbs),
            }
            if group:
                sub_entry["group"] = group
                sub_entry["version"] = version
            entries.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }


# -- OpenAPI v3 --------------------------------------------------------------------------------


def _openapi_path(group_version: str) -> str:
    return "api/v1" if group_version == "v1" else f"apis/{group_version}"


def openapi_document(path: str) -> Obj | None:
    """``/openapi/v3/<path>``: each resource's create and patch operations, tagged with its
    group-version-kind and declaring the ``fieldValidation`` query parameter."""
    group_version = next((gv for gv in GROUP_VERSIONS if _openapi_path(gv) == path), None)
    if group_version is None:
        return None
    parameter = {
        "name": "fieldValidation",
        "in": "query",
        "schema": {"type": "string", "uniqueItems": True},
    }
    paths: Obj = {}
    for resource in in_group_version(group_version):
        gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
        base = (
            f"/{path}/namespaces/{{namespace}}/{resource.plural}"
            if resource.namespaced
            else f"/{path}/{resource.plural}"
        )
        response = {"200": {"description": "OK"}}
        operation = {
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [parameter],
            "responses": response,
        }
        paths[base] = {
            "post": {
                **operation,
                "x-kubernetes-action": "post",
                "operationId": f"create{resource.kind}",
            }
        }
        paths[f"{base}/{{name}}"] = {
            "patch": {
                **operation,
                "x-kubernetes-action": "patch",
                "operationId": f"patch{resource.kind}",
            },
            "put": {
                **operation,
                "x-kubernetes-action": "put",
                "operationId": f"replace{resource.kind}",
            },
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (ascend emulator)", "version": VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }


def openapi_index() -> Obj:
    index: Obj = {}
    for group_version in GROUP_VERSIONS:
        path = _openapi_path(group_version)
        digest = hashlib.sha256(
            json.dumps(openapi_document(path), sort_keys=True).encode()
        ).hexdigest()
        index[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest.upper()[:128]}"}
    return {"paths": index}
