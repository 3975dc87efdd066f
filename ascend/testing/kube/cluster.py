"""The control plane's loop: one thread that reacts to store changes and timers by running
the scheduler, the Job controller, the garbage collector and the kubelet's pod sync.

Store listeners only queue keys (deduplicated), so a burst of changes costs one pass.
"""

from __future__ import annotations

import heapq
import threading
import time
import traceback
from collections.abc import Callable

from ascend.testing.kube import defaults
from ascend.testing.kube.controller import JobController
from ascend.testing.kube.errors import ApiError
from ascend.testing.kube.events import EventRecorder
from ascend.testing.kube.gc import GarbageCollector
from ascend.testing.kube.kubelet import Kubelet
from ascend.testing.kube.scheduler import Scheduler
from ascend.testing.kube.store import Change, Store
from ascend.testing.kube.util import Obj

Key = tuple[str, ...]


class Cluster:
    def __init__(
        self,
        store: Store,
        kubelet_factory: Callable[[EventRecorder], Kubelet],
        job_batch_period: float = 0.0,
    ) -> None:
        self.store = store
        # Pod changes reach the Job controller once per period, merged, as the real one's
        # SyncJobBatchPeriod does (a Job's Complete comes about a second after its pod ends).
        self.job_batch_period = job_batch_period
        self._batched: set[Key] = set()
        self.recorder = EventRecorder(store)
        self.gc = GarbageCollector(store)
        self.scheduler = Scheduler(store, self.recorder)
        self.kubelet = kubelet_factory(self.recorder)
        self.jobs = JobController(store, self.recorder, self.gc, self.enqueue, self.create_pod)
        self._cond = threading.Condition()
        self._queue: dict[Key, None] = {}
        self._deleted: dict[Key, Change] = {}
        self._timers: list[tuple[float, int, Key]] = []
        self._timer_seq = 0
        self._stopping = False
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._loop, name="kube-control-plane", daemon=True)
        store.subscribe(self._on_change)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(10)
        self.kubelet.stop()

    # -- creating pods as a controller does -------------------------------------------------

    def create_pod(self, pod: Obj) -> Obj:
        namespace = self.store.try_get("namespaces", "", pod["metadata"]["namespace"])
        if namespace is None or namespace["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "namespace is terminating", "Forbidden")
        defaults.on_create("pods", pod)
        return self.store.create("pods", pod)

    # -- queue ---------------------------------------------------------------------------------

    def enqueue(self, key: Key, delay: float = 0.0) -> None:
        with self._cond:
            if delay > 0:
                self._timer_seq += 1
                heapq.heappush(self._timers, (time.monotonic() + delay, self._timer_seq, key))
            else:
                self._queue[key] = None
            self._cond.notify_all()

    def _enqueue_batched(self, key: Key) -> None:
        """Enqueue ``key`` after the batch period, once for all changes within it."""
        if self.job_batch_period <= 0:
            self.enqueue(key)
            return
        with self._cond:
            if key in self._batched:
                return
            self._batched.add(key)
        self.enqueue(key, delay=self.job_batch_period)

    def _on_change(self, change: Change) -> None:
        namespace, name = change.namespace, change.name
        resource = change.resource
        if resource == "pods":
            self.enqueue(("pod", namespace, name))
            self.enqueue(("schedule",))
            for ref in change.obj["metadata"].get("ownerReferences") or []:
                if ref.get("kind") == "Job" and ref.get("controller"):
                    if change.type == "DELETED":
                        self.jobs.departed(str(ref.get("uid", "")), change.obj)
                    self._enqueue_batched(("job", namespace, str(ref.get("name"))))
        elif resource == "jobs":
            key = ("job", namespace, name)
            if change.type == "MODIFIED":  # updates are batched too; a new Job acts at once
                self._enqueue_batched(key)
            else:
                self.enqueue(key)
        elif resource == "nodes":
            self.enqueue(("schedule",))
        elif resource == "namespaces" and change.obj["metadata"].get("deletionTimestamp"):
            self.enqueue(("namespace", name))
        if change.type == "DELETED":
            key = ("deleted", resource, change.obj["metadata"].get("uid", ""))
            with self._cond:
                self._deleted[key] = change
            self.enqueue(key)
            if namespace:
                self.enqueue(("namespace", namespace))

    def _next(self) -> Key | None:
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    _, _, key = heapq.heappop(self._timers)
                    self._batched.discard(key)
                    self._queue[key] = None
                if self._queue:
                    key = next(iter(self._queue))
                    del self._queue[key]
                    return key
                timeout = self._timers[0][0] - now if self._timers else None
                self._cond.wait(timeout)
            return None

    def _loop(self) -> None:
        while (key := self._next()) is not None:
            try:
                self._handle(key)
            except Exception:  # keep the control plane alive; tests can read .errors
                self.errors.append(traceback.format_exc())

    def _handle(self, key: Key) -> None:
        kind = key[0]
        if kind == "schedule":
            self.scheduler.schedule()
        elif kind == "pod":
            self.kubelet.sync(key[1], key[2])
        elif kind == "job":
            self.jobs.reconcile(key[1], key[2])
        elif kind == "namespace":
            namespace = self.store.try_get("namespaces", "", key[1])
            if namespace is not None and namespace["metadata"].get("deletionTimestamp"):
                self.gc.sweep_namespace(key[1])
        elif kind == "deleted":
            with self._cond:
                change = self._deleted.pop(key, None)
            if change is not None:
                self.gc.on_deleted(change)
                if change.resource == "jobs":
                    self.jobs.forget(change.obj["metadata"].get("uid", ""))
