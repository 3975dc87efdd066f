"""The resource types the emulator serves: names, kinds, scopes and verbs (discovery's view)."""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    categories: tuple[str, ...] = ()
    #: subresource name -> (verbs, kind, group, version) as discovery lists them
    subresources: dict[str, tuple[tuple[str, ...], str, str, str]] = field(default_factory=dict)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def qualified(self) -> str:
        """``jobs.batch``: how messages name this resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


_STATUS = (("get", "patch", "update"), "", "", "")

RESOURCES: tuple[Resource, ...] = (
    Resource(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        namespaced=False,
        short_names=("ns",),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
        subresources={"status": _STATUS},
    ),
    Resource(
        "",
        "v1",
        "nodes",
        "node",
        "Node",
        namespaced=False,
        short_names=("no",),
        subresources={"status": _STATUS},
    ),
    Resource(
        "",
        "v1",
        "pods",
        "pod",
        "Pod",
        short_names=("po",),
        categories=("all",),
        subresources={
            "status": _STATUS,
            "log": (("get",), "Pod", "", ""),
            "eviction": (("create",), "Eviction", "policy", "v1"),
        },
    ),
    Resource("", "v1", "events", "event", "Event", short_names=("ev",)),
    Resource("", "v1", "secrets", "secret", "Secret"),
    Resource("", "v1", "configmaps", "configmap", "ConfigMap", short_names=("cm",)),
    Resource("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", short_names=("sa",)),
    Resource(
        "",
        "v1",
        "resourcequotas",
        "resourcequota",
        "ResourceQuota",
        short_names=("quota",),
        subresources={"status": _STATUS},
    ),
    Resource(
        "batch",
        "v1",
        "jobs",
        "job",
        "Job",
        categories=("all",),
        subresources={"status": _STATUS},
    ),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "role", "Role"),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding"),
    Resource(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        namespaced=False,
    ),
    Resource(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        namespaced=False,
    ),
)

BY_PLURAL: dict[str, Resource] = {r.plural: r for r in RESOURCES}
BY_KIND: dict[str, Resource] = {r.kind: r for r in RESOURCES}
GROUP_VERSIONS: tuple[str, ...] = tuple(dict.fromkeys(r.api_version for r in RESOURCES))


def lookup(group: str, version: str, plural: str) -> Resource | None:
    resource = BY_PLURAL.get(plural)
    if resource is None or resource.group != group or resource.version != version:
        return None
    return resource


def in_group_version(api_version: str) -> list[Resource]:
    return [r for r in RESOURCES if r.api_version == api_version]
