"""Deletion with the API server's semantics: graceful pod deletion, ``propagationPolicy``
(Orphan, Background, Foreground) through ownerReferences, and namespace termination.

Like the real batch/v1 API, deleting a Job without a propagationPolicy ORPHANS its pods
(and the response carries the same Warning header); kubectl sends Background.
"""

from __future__ import annotations

from ascend.testing.kube import errors
from ascend.testing.kube.resources import BY_KIND, RESOURCES
from ascend.testing.kube.store import Change, Store
from ascend.testing.kube.util import Obj, deep

ORPHAN_WARNING = (
    '299 - "child pods are preserved by default when jobs are deleted; set '
    "propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress "
    'this warning"'
)
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


def default_policy(resource: str) -> str:
    return "Orphan" if resource == "jobs" else "Background"


def _runs_on_node(pod: Obj) -> bool:
    return bool(deep(pod, "spec", "nodeName")) and deep(pod, "status", "phase") not in (
        "Succeeded",
        "Failed",
    )


class GarbageCollector:
    def __init__(self, store: Store) -> None:
        self.store = store

    def dependents(self, uid: str, namespace: str) -> list[tuple[str, Obj]]:
        found = []
        for resource in RESOURCES:
            if not resource.namespaced:
                continue
            items, _ = self.store.list(
                resource.plural,
                namespace,
                lambda o: any(
                    r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or []
                ),
            )
            found += [(resource.plural, item) for item in items]
        return found

    def delete(
        self,
        resource: str,
        namespace: str,
        name: str,
        policy: str | None = None,
        grace: int | None = None,
        uid: str | None = None,
    ) -> tuple[Obj, bool]:
        """Delete one object; returns (the object, whether it is gone already)."""
        obj = self.store.get(resource, namespace, name)
        meta = obj["metadata"]
        if uid and uid != meta["uid"]:
            raise errors.ApiError(
                409,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: {meta['uid']}",
                "Conflict",
            )
        if resource == "namespaces":
            return self._terminate_namespace(obj), False
        policy = policy or default_policy(resource)
        if policy not in ("Orphan", "Background", "Foreground"):
            raise errors.invalid(
                "DeleteOptions",
                "",
                "",
                [
                    (
                        "FieldValueNotSupported",
                        "propagationPolicy",
                        f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"',
                    )
                ],
            )
        if policy == "Orphan":
            self._orphan(meta["uid"], namespace)
        if meta.get("deletionTimestamp"):
            if (
                resource == "pods"
                and grace is not None
                and grace < int(meta.get("deletionGracePeriodSeconds") or 0)
            ):
                marked = self.store.mark_deleting(resource, namespace, name, grace)
                return marked or obj, False
            return obj, False
        if policy == "Foreground" and self.dependents(meta["uid"], namespace):

            def foreground(current: Obj) -> None:
                finalizers = current["metadata"].setdefault("finalizers", [])
                if FOREGROUND not in finalizers:
                    finalizers.append(FOREGROUND)

            self.store.mutate(resource, namespace, name, foreground)
            marked = self.store.mark_deleting(resource, namespace, name, 0)
            for dep_resource, dependent in self.dependents(meta["uid"], namespace):
                self._delete_quietly(dep_resource, dependent, "Background")
            return marked or obj, False
        if resource == "pods" and _runs_on_node(obj):
            if grace is None:
                grace = int(deep(obj, "spec", "terminationGracePeriodSeconds", default=30))
            marked = self.store.mark_deleting(resource, namespace, name, max(grace, 0))
            return marked or obj, False
        return self.store.delete(resource, namespace, name), True

    def _delete_quietly(self, resource: str, obj: Obj, policy: str) -> None:
        meta = obj["metadata"]
        try:
            self.delete(resource, meta.get("namespace", ""), meta["name"], policy, uid=meta["uid"])
        except errors.ApiError:
            pass  # gone meanwhile

    def _orphan(self, uid: str, namespace: str) -> None:
        for resource, dependent in self.dependents(uid, namespace):

            def drop(current: Obj) -> None:
                refs = [
                    r
                    for r in current["metadata"].get("ownerReferences") or []
                    if r.get("uid") != uid
                ]
                if refs:
                    current["metadata"]["ownerReferences"] = refs
                else:
                    current["metadata"].pop("ownerReferences", None)

            self.store.mutate(resource, namespace, dependent["metadata"]["name"], drop)

    # -- reactions (run by the cluster loop) -------------------------------------------------

    def on_deleted(self, change: Change) -> None:
        """Delete what the gone object owned; finish foreground deletions it was blocking."""
        meta = change.obj["metadata"]
        namespace = str(meta.get("namespace") or "")
        if BY_KIND.get(str(change.obj.get("kind"))) is not None and namespace:
            for resource, dependent in self.dependents(meta["uid"], namespace):
                self._delete_quietly(resource, dependent, "Background")
        for ref in meta.get("ownerReferences") or []:
            owner_type = BY_KIND.get(str(ref.get("kind")))
            if owner_type is None:
                continue
            owner = self.store.try_get(owner_type.plural, namespace, str(ref.get("name")))
            if (
                owner is not None
                and owner["metadata"]["uid"] == ref.get("uid")
                and FOREGROUND in (owner["metadata"].get("finalizers") or [])
                and not self.dependents(owner["metadata"]["uid"], namespace)
            ):
                try:
                    self.store.delete(owner_type.plural, namespace, owner["metadata"]["name"])
                except errors.ApiError:
                    pass

    def _terminate_namespace(self, namespace: Obj) -> Obj:
        name = namespace["metadata"]["name"]

        def terminating(current: Obj) -> None:
            current.setdefault("status", {})["phase"] = "Terminating"

        self.store.mutate("namespaces", "", name, terminating)
        marked = self.store.mark_deleting("namespaces", "", name, 0)
        return marked or namespace

    def sweep_namespace(self, name: str) -> None:
        """Delete everything in a terminating namespace; remove it once it is empty."""
        namespace = self.store.try_get("namespaces", "", name)
        if namespace is None or not namespace["metadata"].get("deletionTimestamp"):
            return
        remaining = 0
        for resource in RESOURCES:
            if not resource.namespaced:
                continue
            items, _ = self.store.list(resource.plural, name)
            remaining += len(items)
            for item in items:
                if not item["metadata"].get("deletionTimestamp"):
                    self._delete_quietly(resource.plural, item, "Background")
        if remaining == 0 or not any(
            self.store.list(r.plural, name)[0] for r in RESOURCES if r.namespaced
        ):
            try:
                self.store.delete("namespaces", "", name)
            except errors.ApiError:
                pass
