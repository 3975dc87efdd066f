"""core/v1 Events as the controllers, the scheduler and the kubelet record them.

Names are ``<object>.<hex nanoseconds>`` like client-go's recorder, so sorting an object's
events by name sorts them by time. A repeat of the same (object, reason, message) bumps
``count`` and ``lastTimestamp`` instead of adding an event, as the real recorder does.
"""

from __future__ import annotations

import threading

from ascend.testing.kube.store import ObjectStore
from ascend.testing.kube.util import Obj, event_suffix, now


class EventRecorder:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, ...], str] = {}

    def record(
        self,
        involved: Obj,
        type_: str,
        reason: str,
        message: str,
        component: str,
        host: str | None = None,
        field_path: str | None = None,
    ) -> None:
        meta = involved["metadata"]
        namespace = meta.get("namespace") or "default"
        found = self.store.try_get("namespaces", "", namespace)
        if found is None or found["metadata"].get("deletionTimestamp"):
            return  # the namespace is going away
        reference: Obj = {
            "kind": involved.get("kind"),
            "namespace": meta.get("namespace", ""),
            "name": meta["name"],
            "uid": meta.get("uid", ""),
            "apiVersion": involved.get("apiVersion"),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if field_path:
            reference["fieldPath"] = field_path
        key = (namespace, reference["uid"], type_, reason, message, component)
        stamp = now()
        with self._lock:
            existing = self._seen.get(key)
            if existing is not None:

                def bump(event: Obj) -> None:
                    event["count"] = int(event.get("count") or 1) + 1
                    event["lastTimestamp"] = stamp

                if self.store.mutate("events", namespace, existing, bump) is not None:
                    return
            source: Obj = {"component": component}
            if host:
                source["host"] = host
            event: Obj = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{meta['name']}.{event_suffix()}", "namespace": namespace},
                "involvedObject": reference,
                "reason": reason,
                "message": message,
                "source": source,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
                "type": type_,
                "eventTime": None,
                "reportingComponent": component,
                "reportingInstance": host or "",
            }
            created = self.store.create("events", event)
            self._seen[key] = created["metadata"]["name"]
