"""The kubelet: runs the pods bound to the node as local processes (one
:class:`~ascend.testing.kube.pod_worker.PodWorker` each) and keeps their objects in step:
starts workers for new pods, stops them on deletion or eviction, removes deleted pods once
their processes are gone, and keeps finished workers a while so their logs stay readable.

It also holds the node's images: the preloaded ones (run on the host) and an
:class:`~ascend.testing.kube.image_store.ImageStore` for those it pulls.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from ascend.testing.kube import image_run
from ascend.testing.kube.events import EventRecorder
from ascend.testing.kube.image_store import ImageStore, PulledImage
from ascend.testing.kube.images import DEV_RUNTIME_IMAGE, same_image
from ascend.testing.kube.pod_worker import PodWorker, evicting
from ascend.testing.kube.process import MemoryWatch
from ascend.testing.kube.store import ObjectStore
from ascend.testing.kube.util import Obj, deep


class Kubelet:
    def __init__(
        self,
        store: ObjectStore,
        recorder: EventRecorder,
        node_name: str,
        api_port: int,
        extra_env: dict[str, str] | None = None,
        *,
        preloaded_images: Iterable[str] = (DEV_RUNTIME_IMAGE,),
        image_dir: Path | None = None,
    ) -> None:
        """``preloaded_images``: what the node has without pulling (exactly these).
        ``image_dir``: where pulled images go; without one the kubelet makes (and at
        :meth:`stop` removes) a temporary directory."""
        self.store = store
        self.recorder = recorder
        self.node_name = node_name
        self.api_port = api_port
        self.extra_env = dict(extra_env or {})
        self.preloaded_images = tuple(preloaded_images)
        self._own_image_dir = image_dir is None
        self.images = ImageStore(image_dir or Path(tempfile.mkdtemp(prefix="kube-images-")))
        self.pulled: dict[str, PulledImage] = {}  # by the name pods used
        self.memory = MemoryWatch()
        self.max_grace = 2.0
        self.restart_backoff = 0.5
        self.image_backoff = (1.0, 10.0)
        self.config_retry = 1.0
        self._lock = threading.Lock()
        self._workers: dict[str, PodWorker] = {}
        self._finished: dict[str, PodWorker] = {}  # for logs of completed pods
        self._closed = False

    def node(self) -> Obj | None:
        return self.store.try_get("nodes", "", self.node_name)

    def preloaded(self, image: str) -> bool:
        return any(same_image(image, name) for name in self.preloaded_images)

    def base_env(self, pod: Obj, image: PulledImage | None = None) -> dict[str, str]:
        """What every container starts from: a pulled image's ``Env`` (else the host's
        ``PATH`` and locale), then what the kubelet adds, then the emulator's ``env``."""
        port = str(self.api_port)
        if image is not None:
            env = image_run.environment(image)
        else:
            env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")}
            for name in ("LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
                if name in os.environ:
                    env[name] = os.environ[name]
        env.update(
            {
                "HOSTNAME": str(deep(pod, "spec", "hostname") or pod["metadata"]["name"]),
                "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                "KUBERNETES_SERVICE_PORT": port,
                "KUBERNETES_PORT": f"tcp://127.0.0.1:{port}",
            }
        )
        env.update(self.extra_env)
        return env

    def sync(self, namespace: str, name: str) -> None:
        """Bring the pod's process in line with the object (called on every pod change)."""
        pod = self.store.try_get("pods", namespace, name)
        with self._lock:
            if self._closed:
                return
            if pod is None:
                for worker in self._workers.values():
                    if (worker.namespace, worker.name) == (namespace, name):
                        worker.request_stop("deleted", 0)
                return
            if deep(pod, "spec", "nodeName") != self.node_name:
                return
            uid = pod["metadata"]["uid"]
            existing = self._workers.get(uid)
            deleting = bool(pod["metadata"].get("deletionTimestamp"))
            terminal = deep(pod, "status", "phase") in ("Succeeded", "Failed")
            if existing is not None:
                if deleting:
                    existing.request_stop(
                        "deleted", float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
                    )
                elif evicting(pod):
                    existing.request_stop(
                        "evicted", float(deep(pod, "spec", "terminationGracePeriodSeconds") or 30)
                    )
                return
            if uid in self._finished or terminal:
                if deleting:
                    self._remove_later(namespace, name, uid)
                return
            worker = PodWorker(self, pod)
            self._workers[uid] = worker
        worker.start()

    def _remove_later(self, namespace: str, name: str, uid: str) -> None:
        threading.Thread(target=self.remove_pod, args=(namespace, name, uid), daemon=True).start()

    def remove_pod(self, namespace: str, name: str, uid: str) -> None:
        current = self.store.try_get("pods", namespace, name)
        if current is not None and current["metadata"]["uid"] == uid:
            try:
                self.store.delete("pods", namespace, name)
            except Exception:
                pass
        with self._lock:
            self._finished.pop(uid, None)

    def worker_done(self, worker: PodWorker) -> None:
        with self._lock:
            self._workers.pop(worker.uid, None)
            pod = self.store.try_get("pods", worker.namespace, worker.name)
            if pod is None or pod["metadata"]["uid"] != worker.uid:
                return
            self._finished[worker.uid] = worker
            if len(self._finished) > 500:
                self._finished.pop(next(iter(self._finished)))
            deleting = bool(pod["metadata"].get("deletionTimestamp")) and not self._closed
        if deleting:  # deleted while the worker was finishing on its own
            self.remove_pod(worker.namespace, worker.name, worker.uid)

    def worker_for(self, pod: Obj) -> PodWorker | None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            return self._workers.get(uid) or self._finished.get(uid)

    def stop(self) -> None:
        """Kill every pod process (no grace) and wait for the workers."""
        with self._lock:
            self._closed = True
            workers = list(self._workers.values())
        for worker in workers:
            worker.request_stop("shutdown", 0)
        for worker in workers:
            worker.thread.join(10)
        self.memory.stop()
        if self._own_image_dir:
            shutil.rmtree(self.images.directory, ignore_errors=True)

    def running_pids(self, namespace: str | None = None) -> list[int]:
        """Container processes alive now (of the pods of ``namespace``, or of all)."""
        with self._lock:
            workers = [w for w in self._workers.values() if namespace in (None, w.namespace)]
        return [
            c.process.pid
            for w in workers
            for c in w.containers
            if c.process is not None and c.process.poll() is None
        ]
