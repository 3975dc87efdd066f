"""The object store: objects by resource, one global resourceVersion, and the watch history.

Like etcd behind the API server: every write gets the next resourceVersion; the last
``history`` changes are kept so a watch can resume from a version, and an older version is
answered with 410 Expired. Stored objects are never mutated in place, so history snapshots
stay valid; callers get deep copies.
"""

from __future__ import annotations

import builtins
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ascend.testing.kube import errors
from ascend.testing.kube.resources import BY_PLURAL
from ascend.testing.kube.util import Obj, clone, new_uid, now, random_suffix

Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects


@dataclass(frozen=True)
class Change:
    rv: int
    type: str  # ADDED, MODIFIED or DELETED
    resource: str  # plural, e.g. "pods"
    obj: Obj  # the object after the change (for DELETED: its last state); read-only
    old: Obj | None  # the object before the change; read-only

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"].get("namespace", ""))

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])


class Expired(Exception):
    """The requested resourceVersion is older than the retained history."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")


class ObjectStore(Protocol):
    """What the kubelet reads and writes: the emulator's :class:`Store`, or
    :class:`~ascend.testing.kube.remote.RemoteStore` in front of a real API server."""

    closed: bool

    def try_get(self, resource: str, namespace: str, name: str) -> Obj | None: ...

    def get(self, resource: str, namespace: str, name: str) -> Obj: ...

    def create(self, resource: str, obj: Obj) -> Obj: ...

    def mutate(
        self, resource: str, namespace: str, name: str, change: Callable[[Obj], object]
    ) -> Obj | None: ...

    def delete(self, resource: str, namespace: str, name: str) -> Obj: ...


class Store:
    def __init__(self, history: int = 1000) -> None:
        self._cond = threading.Condition(threading.RLock())
        self._objects: dict[str, dict[Key, Obj]] = {plural: {} for plural in BY_PLURAL}
        self._rv = 0
        self._history: deque[Change] = deque(maxlen=max(1, history))
        self._listeners: list[Callable[[Change], None]] = []
        self.closed = False

    # -- bookkeeping -----------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        with self._cond:
            return self._rv

    def subscribe(self, listener: Callable[[Change], None]) -> None:
        """``listener(change)`` runs under the store lock after every write: it must only queue."""
        with self._cond:
            self._listeners.append(listener)

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def _record(self, kind: str, resource: str, obj: Obj, old: Obj | None) -> None:
        change = Change(self._rv, kind, resource, obj, old)
        self._history.append(change)
        for listener in self._listeners:
            listener(change)
        self._cond.notify_all()

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _table(self, resource: str) -> dict[Key, Obj]:
        return self._objects[resource]

    @staticmethod
    def _key(obj: Obj) -> Key:
        meta = obj["metadata"]
        return str(meta.get("namespace") or ""), str(meta["name"])

    # -- reads -----------------------------------------------------------------------------------

    def try_get(self, resource: str, namespace: str, name: str) -> Obj | None:
        with self._cond:
            found = self._table(resource).get((namespace, name))
            return clone(found) if found is not None else None

    def get(self, resource: str, namespace: str, name: str) -> Obj:
        found = self.try_get(resource, namespace, name)
        if found is None:
            raise errors.not_found(resource, BY_PLURAL[resource].group, name)
        return found

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        accept: Callable[[Obj], bool] | None = None,
    ) -> tuple[list[Obj], int]:
        """Matching objects sorted by (namespace, name) like etcd keys, and the list's version."""
        with self._cond:
            items = [
                obj
                for (ns, _), obj in sorted(self._table(resource).items())
                if (namespace is None or ns == namespace) and (accept is None or accept(obj))
            ]
            return clone(items), self._rv

    # -- writes ----------------------------------------------------------------------------------

    def create(
        self, resource: str, obj: Obj, prepare: Callable[[Obj], object] | None = None
    ) -> Obj:
        """Store a new object (``generateName`` resolved here); ``prepare(obj)`` runs once the
        name and uid are known, before the object is stored (the Job selector needs its uid)."""
        info = BY_PLURAL[resource]
        obj = clone(obj)
        meta = obj.setdefault("metadata", {})
        with self._cond:
            table = self._table(resource)
            namespace = str(meta.get("namespace") or "")
            if not meta.get("name") and meta.get("generateName"):
                for _ in range(100):
                    # like the API server: the base is cut to 58 characters, so that the
                    # name with its 5-character suffix stays a valid 63-character name
                    candidate = f"{meta['generateName'][:58]}{random_suffix()}"
                    if (namespace, candidate) not in table:
                        meta["name"] = candidate
                        break
            key = self._key(obj)
            if key in table:
                raise errors.already_exists(resource, info.group, key[1])
            meta["uid"] = new_uid()
            meta["creationTimestamp"] = now()
            meta["resourceVersion"] = self._next_rv()
            if "spec" in obj:
                meta["generation"] = 1
            for transient in ("deletionTimestamp", "deletionGracePeriodSeconds"):
                meta.pop(transient, None)
            if prepare is not None:
                prepare(obj)
            table[key] = obj
            self._record("ADDED", resource, obj, None)
            return clone(obj)

    def replace(self, resource: str, obj: Obj, expect_rv: str | None = None) -> Obj:
        """Store ``obj`` over the existing object; 409 Conflict when ``expect_rv`` is stale."""
        info = BY_PLURAL[resource]
        obj = clone(obj)
        with self._cond:
            key = self._key(obj)
            table = self._table(resource)
            old = table.get(key)
            if old is None:
                raise errors.not_found(resource, info.group, key[1])
            if expect_rv and expect_rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(resource, info.group, key[1])
            meta = obj["metadata"]
            for kept in ("uid", "creationTimestamp", "resourceVersion", "generation"):
                if kept in old["metadata"]:
                    meta[kept] = old["metadata"][kept]
                else:
                    meta.pop(kept, None)
            for kept in ("deletionTimestamp", "deletionGracePeriodSeconds"):
                if kept in old["metadata"]:
                    meta[kept] = old["metadata"][kept]
                else:
                    meta.pop(kept, None)
            if obj == old:
                return clone(old)  # a no-op write keeps its resourceVersion, like the real one
            if obj.get("spec") != old.get("spec") and "generation" in meta:
                meta["generation"] = int(meta["generation"]) + 1
            meta["resourceVersion"] = self._next_rv()
            table[key] = obj
            self._record("MODIFIED", resource, obj, old)
            return clone(obj)

    def mutate(
        self, resource: str, namespace: str, name: str, change: Callable[[Obj], object]
    ) -> Obj | None:
        """Read-modify-write under the lock: ``change`` edits a copy in place. Returns the
        stored result, or None when the object does not exist (or is being replaced)."""
        with self._cond:
            current = self._table(resource).get((namespace, name))
            if current is None:
                return None
            edited = clone(current)
            change(edited)
            return self.replace(resource, edited)

    def mark_deleting(self, resource: str, namespace: str, name: str, grace: int) -> Obj | None:
        def mark(obj: Obj) -> None:
            meta = obj["metadata"]
            meta.setdefault("deletionTimestamp", now())
            meta["deletionGracePeriodSeconds"] = grace

        with self._cond:
            current = self._table(resource).get((namespace, name))
            if current is None:
                return None
            edited = clone(current)
            mark(edited)
            edited["metadata"]["resourceVersion"] = self._next_rv()
            self._table(resource)[(namespace, name)] = edited
            self._record("MODIFIED", resource, edited, current)
            return clone(edited)

    def delete(self, resource: str, namespace: str, name: str) -> Obj:
        info = BY_PLURAL[resource]
        with self._cond:
            table = self._table(resource)
            old = table.pop((namespace, name), None)
            if old is None:
                raise errors.not_found(resource, info.group, name)
            gone = clone(old)
            gone["metadata"]["resourceVersion"] = self._next_rv()
            self._record("DELETED", resource, gone, old)
            return clone(gone)

    # -- watch -----------------------------------------------------------------------------------

    def changes_after(self, rv: int, timeout: float) -> builtins.list[Change]:
        """Changes newer than ``rv``, waiting up to ``timeout`` for one; raises Expired when
        ``rv`` fell out of the history. Returns [] on timeout or when the store closes."""
        with self._cond:
            if not self._has_after(rv) and not self.closed:
                self._cond.wait(timeout)
            if self._history and rv < self._history[0].rv - 1:
                raise Expired(rv, self._history[0].rv)
            if not self._has_after(rv):
                return []
            return [change for change in self._history if change.rv > rv]

    def check_version(self, rv: int) -> None:
        """Raise Expired when a watch could not start from ``rv``."""
        with self._cond:
            if self._history and rv < self._history[0].rv - 1:
                raise Expired(rv, self._history[0].rv)

    def _has_after(self, rv: int) -> bool:
        return bool(self._history) and self._history[-1].rv > rv
