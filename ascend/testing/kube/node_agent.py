"""A process kubelet for a real API server: the emulator's :class:`Kubelet` (pulls, local
processes, memory limits, deletion) joined to a cluster as ``system:node:<name>``.

It registers its Node (capacity, labels, taints, addresses, the port of its log endpoint) and
keeps it alive with a Lease in ``kube-node-lease``, lists and watches the pods bound to it
(``spec.nodeName``) and hands each change to the kubelet, and serves
``/containerLogs/<namespace>/<pod>/<container>`` over mutual TLS with the node's certificate, so
the API server's ``pods/log`` (``kubectl logs -f``, Ascend's log follow) reaches the process.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import ssl
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ascend.testing.kube import errors, pods
from ascend.testing.kube.counter import RequestCounter
from ascend.testing.kube.events import EventRecorder
from ascend.testing.kube.images import DEV_RUNTIME_IMAGE
from ascend.testing.kube.kubelet import Kubelet
from ascend.testing.kube.messages import Request, Response, Stream
from ascend.testing.kube.nodes import node_object, parse_taint
from ascend.testing.kube.remote import KubeClient, RemoteError, RemoteStore
from ascend.testing.kube.server import ApiServer
from ascend.testing.kube.util import Obj, now, now_micro

LEASE_SECONDS = 40
RENEW_EVERY = 10.0


class NodeAgent:
    def __init__(
        self,
        client: KubeClient,
        name: str,
        *,
        tls: tuple[str, str, str],
        cpu: str = "4",
        memory: str = "8Gi",
        gpu: int = 0,
        labels: Mapping[str, str] | None = None,
        taints: Iterable[str | Mapping[str, Any]] = (),
        preloaded_images: Iterable[str] = (DEV_RUNTIME_IMAGE,),
        env: Mapping[str, str] | None = None,
        port: int = 0,
    ) -> None:
        """``tls``: (CA, certificate, key) of the log endpoint; the certificate is the node's
        serving certificate and the CA verifies the API server's client certificate."""
        self.client = client
        self.name = name
        self.cpu, self.memory, self.gpu = cpu, memory, int(gpu)
        self.labels = dict(labels or {})
        self.taints = [parse_taint(t) for t in taints]
        self.store = RemoteStore(client, name)
        self._image_dir = Path(tempfile.mkdtemp(prefix="ascend-node-images-"))
        self._env = dict(env or {})
        self._preloaded = tuple(preloaded_images)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        ca, cert, key = tls
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.load_verify_locations(ca)
        context.verify_mode = ssl.CERT_REQUIRED
        self.server = ApiServer(("127.0.0.1", port), RequestCounter(), context)
        self.server.thread_name = "kubelet-logs"
        self.kubelet: Kubelet | None = None
        self.errors: list[str] = []
        self._claim: Any = None

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> NodeAgent:
        self._claim_node()
        version = self.client.request("GET", "/version").get("gitVersion", "v0.0.0")
        api_port = int(self.client.server.rsplit(":", 1)[1])
        self.kubelet = Kubelet(
            self.store,
            EventRecorder(self.store),
            self.name,
            api_port,
            self._env,
            preloaded_images=self._preloaded,
            image_dir=self._image_dir,
        )
        self.server.api = _LogEndpoint(self.store, self.kubelet)
        self._register(str(version))
        self._spawn(self._serve, "kubelet-log-server")
        self._spawn(self._heartbeat, "kubelet-lease")
        self._spawn(self._watch_pods, "kubelet-pod-watch")
        return self

    def stop(self) -> None:
        """Stop every pod process (no grace) and stop serving. The Node stays registered, as a
        real kubelet's does (the Node authorizer does not let a node delete itself); without
        its Lease renewed it turns NotReady, or an admin deletes it."""
        self._stop.set()
        self.store.closed = True
        if self.kubelet is not None:
            self.kubelet.stop()
        self.server.shutdown()
        self.server.close_all()
        self.server.server_close()
        for thread in self._threads:
            thread.join(5)
        self.client.close()
        shutil.rmtree(self._image_dir, ignore_errors=True)
        if self._claim is not None:
            self._claim.close()  # releases the lock

    def _claim_node(self) -> None:
        """One kubelet per node on this machine: a second one would run every pod twice."""
        path = Path(tempfile.gettempdir()) / f"ascend-kubelet-{self.name}.lock"
        claim = path.open("a+")
        try:
            fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            claim.seek(0)
            holder = claim.read().strip() or "?"
            claim.close()
            raise RuntimeError(
                f"another process kubelet already serves node {self.name} on this machine "
                f"(pid {holder}); stop it first, or join with another node name"
            ) from None
        claim.seek(0)
        claim.truncate()
        claim.write(str(os.getpid()))
        claim.flush()
        self._claim = claim

    def running_pids(self) -> list[int]:
        return self.kubelet.running_pids() if self.kubelet is not None else []

    # -- registration and heartbeat --------------------------------------------------------------

    def _node(self, version: str) -> Obj:
        return node_object(
            self.name,
            self.cpu,
            self.memory,
            self.gpu,
            self.labels,
            self.taints,
            kubelet_version=version,
            kubelet_port=self.port,
        )

    def _register(self, version: str) -> None:
        node = self._node(version)
        status = node.pop("status")
        try:
            self.client.request("POST", "/api/v1/nodes", node)
        except RemoteError as error:
            if error.code != 409:
                raise
            patch = {"metadata": {"labels": node["metadata"]["labels"]}, "spec": node["spec"]}
            self.client.request(
                "PATCH", f"/api/v1/nodes/{self.name}", patch, None, "application/merge-patch+json"
            )
        self._post_status(status)

    def _post_status(self, status: Obj) -> None:
        stamp = now()
        conditions = []
        for type_, value, reason, message in (
            (
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            (
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ):
            conditions.append(
                {
                    "type": type_,
                    "status": value,
                    "reason": reason,
                    "message": message,
                    "lastHeartbeatTime": stamp,
                    "lastTransitionTime": stamp,
                }
            )
        status["conditions"] = conditions
        node = self.client.request(
            "PATCH",
            f"/api/v1/nodes/{self.name}/status",
            {"status": status},
            None,
            "application/merge-patch+json",
        )
        self.store.set_node(node)

    def _heartbeat(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        lease: Obj | None = None
        while not self._stop.is_set():
            try:
                if lease is None:
                    try:
                        lease = self.client.request("GET", path)
                    except RemoteError as error:
                        if error.code != 404:
                            raise
                        lease = self.client.request(
                            "POST",
                            path.rsplit("/", 1)[0],
                            {
                                "apiVersion": "coordination.k8s.io/v1",
                                "kind": "Lease",
                                "metadata": {"name": self.name, "namespace": "kube-node-lease"},
                                "spec": {
                                    "holderIdentity": self.name,
                                    "leaseDurationSeconds": LEASE_SECONDS,
                                    "renewTime": now_micro(),
                                },
                            },
                        )
                assert lease is not None
                lease["spec"]["renewTime"] = now_micro()
                lease = self.client.request("PUT", path, lease)
            except Exception as error:
                lease = None  # read it again next time (a conflict, or the server restarting)
                if not self._stop.is_set():
                    self._error(f"lease renewal failed: {error}")
            self._stop.wait(RENEW_EVERY)

    # -- pods ------------------------------------------------------------------------------------

    def _watch_pods(self) -> None:
        selector = {"fieldSelector": f"spec.nodeName={self.name}"}
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._relist(selector)
                for event in self.client.watch(
                    "/api/v1/pods",
                    {
                        **selector,
                        "resourceVersion": version,
                        "allowWatchBookmarks": "true",
                        "timeoutSeconds": "300",
                    },
                ):
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        version = ""  # 410 Gone: the version fell out of the window; relist
                        break
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self.store.observe(kind, obj)
                        self._sync(obj)
                    if self._stop.is_set():
                        return
            except Exception as error:
                if self._stop.is_set():
                    return
                self._error(f"pod watch failed: {error}")
                version = ""
                self._stop.wait(1.0)

    def _relist(self, selector: dict[str, str]) -> str:
        listed = self.client.request("GET", "/api/v1/pods", None, selector)
        seen = set()
        for pod in listed.get("items") or []:
            pod.setdefault("apiVersion", "v1")
            pod.setdefault("kind", "Pod")
            self.store.observe("ADDED", pod)
            seen.add((pod["metadata"]["namespace"], pod["metadata"]["name"]))
            self._sync(pod)
        for key in set(self.store.pod_keys()) - seen:  # deleted while we were not watching
            self.store.forget(key)
            assert self.kubelet is not None
            self.kubelet.sync(*key)
        return str(listed["metadata"]["resourceVersion"])

    def _sync(self, pod: Obj) -> None:
        assert self.kubelet is not None
        meta = pod.get("metadata") or {}
        try:
            self.kubelet.sync(meta.get("namespace", ""), meta.get("name", ""))
        except Exception:
            self._error(traceback.format_exc())

    # -- plumbing ----------------------------------------------------------------------------------

    def _serve(self) -> None:
        self.server.serve_forever(poll_interval=0.1)

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _error(self, text: str) -> None:
        self.errors.append(text)
        print(f"[kubelet] {text}", file=sys.stderr, flush=True)


class _LogEndpoint:
    """The kubelet's HTTPS API, as much as the API server's ``pods/log`` proxy uses."""

    def __init__(self, store: RemoteStore, kubelet: Kubelet) -> None:
        self.store = store
        self.kubelet = kubelet

    def handle(self, request: Request) -> Response | Stream:
        parts = [unquote(p) for p in request.path.split("/") if p]
        if parts in (["healthz"], ["readyz"], ["livez"]):
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if len(parts) != 4 or parts[0] != "containerLogs" or request.method != "GET":
            return Response(404, b"404 page not found\n", "text/plain; charset=utf-8")
        _, namespace, name, container = parts
        request.query["container"] = container
        try:
            return pods.log(self.store, self.kubelet, request, namespace, name, 0.5)
        except errors.ApiError as error:
            # the real kubelet answers in plain text; the API server wraps it into a Status
            return Response(error.code, error.message.encode(), "text/plain; charset=utf-8")


def environment_from_pki(directory: str | os.PathLike[str]) -> tuple[str, str, str]:
    """(CA, certificate, key) of the node in a PKI directory made by ``.ci/kube/pki.sh``."""
    base = Path(directory)
    return str(base / "ca.crt"), str(base / "node.crt"), str(base / "node.key")


def wait_ready(client: KubeClient, name: str, timeout: float = 60.0) -> Obj:
    """Wait until the Node is Ready and carries no ``not-ready`` taint (the node lifecycle
    controller removes it once it sees the Ready condition)."""
    deadline = time.monotonic() + timeout
    node: Obj = {}
    while time.monotonic() < deadline:
        node = client.request("GET", f"/api/v1/nodes/{name}")
        taints = [t.get("key") for t in (node.get("spec") or {}).get("taints") or []]
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (node.get("status") or {}).get("conditions") or []
        )
        if ready and not any(str(t).startswith("node.kubernetes.io/") for t in taints):
            return node
        time.sleep(0.2)
    raise TimeoutError(f"node {name} did not become ready in {timeout:.0f} s: {node.get('spec')}")
