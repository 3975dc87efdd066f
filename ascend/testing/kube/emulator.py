"""``KubeEmulator``: the store, the control plane, the kubelet and the HTTP API, started and
stopped together."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from ascend.testing.kube import kubeconfig
from ascend.testing.kube.api import Api
from ascend.testing.kube.cluster import Cluster
from ascend.testing.kube.counter import RequestCounter
from ascend.testing.kube.events import EventRecorder
from ascend.testing.kube.images import DEV_RUNTIME_IMAGE
from ascend.testing.kube.kubelet import Kubelet
from ascend.testing.kube.nodes import node_object, parse_taint
from ascend.testing.kube.resources import ALL_VERBS, BY_PLURAL
from ascend.testing.kube.server import ApiServer
from ascend.testing.kube.store import Store
from ascend.testing.kube.util import Obj

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
class KubeEmulator:
    """A one-node Kubernetes API on 127.0.0.1 whose pods run as local processes.

    :param cpu: the node's allocatable CPU (a quantity).
    :param memory: the node's allocatable memory.
    :param gpu: how many ``nvidia.com/gpu`` the node offers (0: none).
    :param node_labels: extra node labels.
    :param taints: node taints, ``"key=value:NoSchedule"`` or mappings.
    :param registry: deprecated and ignored. Images are now pulled from the registry their
        reference names (loopback hosts only), so no registry needs naming.
    :param port: 0 for an ephemeral port.
    :param watch_history: how many changes a watch can resume from (older: 410 Expired).
    :param job_batch_period: seconds the Job controller merges pod changes for before it
        acts on them, as the real one does (about a second): a Job is ``Complete`` that long
        after its pod has ended, so the emulator cannot flatter how fast a client that waits
        for ``Complete`` gets its result. ``0`` acts at once.
    :param env: variables every container starts with (after the image's own ``Env``).
    :param preloaded_images: the images the node has without pulling, as after
        ``kind load docker-image``, never pulled whatever ``imagePullPolicy`` says: their
        containers run on the host (``python -m ascend.runner``, or an ``ascend-runtime``
        image without a command, runs this interpreter with this checkout importable).
        Default: only :data:`DEV_RUNTIME_IMAGE`. A list given here is exactly what the node
        has: include ``DEV_RUNTIME_IMAGE`` in it to keep it. Every other image is pulled for
        real when a pod needs it.
    """

    kind = "emulator"

    def __init__(
        self,
        cpu: str = "4",
        memory: str = "8Gi",
        gpu: int = 0,
        node_labels: Mapping[str, str] | None = None,
        taints: Iterable[str | Mapping[str, Any]] | None = None,
        registry: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        node_name: str = "ascend-emulator-node",
        watch_history: int = 1000,
        job_batch_period: float = 1.0,
        env: Mapping[str, str] | None = None,
        namespaces: Iterable[str] = DEFAULT_NAMESPACES,
        preloaded_images: Iterable[str] = (DEV_RUNTIME_IMAGE,),
    ) -> None:
        if registry is not None:
            warnings.warn(
                "KubeEmulator(registry=...) is ignored: images are pulled from the registry "
                "their reference names",
                DeprecationWarning,
                stacklevel=2,
            )
        self.cpu = cpu
        self.memory = memory
        self.gpu = int(gpu)
        self.node_labels = dict(node_labels or {})
        self.taints = [parse_taint(t) for t in taints or []]
        self.preloaded_images = (
            (preloaded_images,) if isinstance(preloaded_images, str) else tuple(preloaded_images)
        )
        self.host = host
        self.node_name = node_name
        self.namespaces = tuple(namespaces)
        self.env = dict(env or {})
        self.kubeconfig: Path | None = None
        self.requests = RequestCounter()
        self.job_batch_period = job_batch_period
        self.forbidden: set[tuple[str, str]] = set()  # see forbid()
        self.store = Store(history=watch_history)
        self._port = port
        self._server: ApiServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._cluster: Cluster | None = None
        self._image_dir: Path | None = None
        self._stopped = False

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> KubeEmulator:
        if self._server is not None:
            return self
        server = ApiServer((self.host, self._port), self.requests)
        port = server.server_address[1]
        image_dir = self._image_dir = Path(tempfile.mkdtemp(prefix="ascend-kube-images-"))

        def kubelet(recorder: EventRecorder) -> Kubelet:
            return Kubelet(
                self.store,
                recorder,
                self.node_name,
                int(port),
                self.env,
                preloaded_images=self.preloaded_images,
                image_dir=image_dir,
            )

        cluster = Cluster(self.store, kubelet, self.job_batch_period)
        api = Api(self.store, cluster, self.requests, lambda: f"{self.host}:{port}")
        api.forbidden = self.forbidden  # shared: forbid() works before and after start
        server.api = api
        self._server, self._cluster = server, cluster
        self._seed()
        cluster.start()
        self._serve_thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="kube-api", daemon=True
        )
        self._serve_thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, kill every pod process, and join every thread the emulator started."""
        if self._server is None or self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self.store.close()
        self._server.close_all()
        self._server.server_close()
        if self._serve_thread is not None:
            self._serve_thread.join(5)
        if self._cluster is not None:
            self._cluster.stop()
        if self._image_dir is not None:
            shutil.rmtree(self._image_dir, ignore_errors=True)

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- access --------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not started; call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            raise RuntimeError("the emulator is not started; call start() first")
        return self._cluster

    @property
    def image_dir(self) -> Path | None:
        """Where pulled images are kept while the emulator runs (removed by :meth:`stop`)."""
        return self._image_dir

    @property
    def errors(self) -> list[str]:
        """Tracebacks of exceptions inside the control plane (empty when all is well)."""
        return list(self._cluster.errors) if self._cluster else []

    def write_kubeconfig(self, path: str | os.PathLike[str], namespace: str | None = None) -> Path:
        self.kubeconfig = kubeconfig.write(path, self.url, namespace)
        return self.kubeconfig

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` for this emulator (imports the client)."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        return client.ApiClient(configuration)

    def running_pids(self, namespace: str | None = None) -> list[int]:
        """Process ids of the containers running right now (of one namespace's pods)."""
        return self.cluster.kubelet.running_pids(namespace)

    def create_namespace(self, name: str) -> Obj:
        created = self.store.create(
            "namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
            _namespace,
        )
        self._service_account(name)
        return created

    def forbid(self, verb: str, resource: str) -> None:
        """Answer ``verb`` on ``resource`` (a plural, or ``plural/subresource``) with 403
        Forbidden and the real server's Status, as RBAC refuses a user without the right:
        ``forbid("list", "nodes")``. There is no RBAC otherwise; :meth:`allow` undoes it."""
        if verb not in ALL_VERBS:
            raise ValueError(f"verb {verb!r}: expected one of {', '.join(ALL_VERBS)}")
        if resource.partition("/")[0] not in BY_PLURAL:
            raise ValueError(f"resource {resource!r}: expected one of {', '.join(BY_PLURAL)}")
        self.forbidden.add((verb, resource))

    def allow(self, verb: str, resource: str) -> None:
        """Undo :meth:`forbid`."""
        self.forbidden.discard((verb, resource))

    def add_node(
        self,
        name: str,
        cpu: str = "4",
        memory: str = "8Gi",
        gpu: int = 0,
        labels: Mapping[str, str] | None = None,
        taints: Iterable[str | Mapping[str, Any]] | None = None,
        *,
        unschedulable: bool = False,
    ) -> Obj:
        """Add a node of that shape (its allocatable as given), as a cluster with several node
        pools has. No kubelet runs on it: pods the scheduler binds there stay Pending. Only
        the emulator's own node (``node_name``) runs pods."""
        node = node_object(name, cpu, memory, gpu, labels or {}, [parse_taint(t) for t in taints or []])
        if unschedulable:
            node["spec"]["unschedulable"] = True
        return self.store.create("nodes", node)

    # -- seed objects --------------------------------------------------------------------------

    def _seed(self) -> None:
        for name in self.namespaces:
            self.create_namespace(name)
        node = node_object(self.node_name, self.cpu, self.memory, self.gpu, self.node_labels, self.taints)
        self.store.create("nodes", node)

    def _service_account(self, namespace: str) -> None:
        self.store.create(
            "serviceaccounts",
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": namespace},
            },
        )


def _namespace(obj: Obj) -> None:
    from ascend.testing.kube import defaults

    defaults.namespace(obj)
