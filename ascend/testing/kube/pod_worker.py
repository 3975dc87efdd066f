"""One pod's life on the node: image, environment, processes, status and ending.

A worker thread per pod goes through what a kubelet does: image (a preloaded one is "already
present"; any other is pulled, ``Pulling``/``Pulled`` or ``ErrImagePull`` then
``ImagePullBackOff``, retried with backoff), environment
(``CreateContainerConfigError`` while a secret or config map is missing, retried), then
``Created``/``Started`` and the process. It watches the memory limit (``OOMKilled``, 137),
the pod's own ``activeDeadlineSeconds``, deletion (SIGTERM, then SIGKILL after the grace
period, capped at the kubelet's ``max_grace``) and eviction. Init containers run one after
another before the others; ``restartPolicy`` OnFailure/Always restarts containers in place.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ascend.testing.kube import image_run, images, podenv
from ascend.testing.kube.image_store import PulledImage
from ascend.testing.kube.process import ContainerLog, ContainerProcess
from ascend.testing.kube.util import (
    Obj,
    condition,
    deep,
    get_condition,
    now,
    parse_time,
    quantity,
    set_condition,
)

if TYPE_CHECKING:
    from ascend.testing.kube.kubelet import Kubelet

COMPONENT = "kubelet"
_OWN_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")


@dataclass
class Container:
    """One container's runtime state: its spec, status and, while running, its process."""

    spec: Obj
    init: bool
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    restarts: int = 0
    image_id: str = ""
    container_id: str = ""
    process: ContainerProcess | None = None
    log: ContainerLog = field(default_factory=ContainerLog)
    previous_log: ContainerLog | None = None
    workdir: str = ""  # the container's scratch (HOME, TMPDIR), removed with the pod

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def status(self) -> Obj:
        running = "running" in self.state
        status: Obj = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": self.image_id,
            "ready": running and not self.init,
            "restartCount": self.restarts,
            "started": running,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status

    @property
    def terminated(self) -> Obj | None:
        value = self.state.get("terminated")
        return value if isinstance(value, dict) else None


class Stopping(Exception):
    """The pod is being deleted or evicted, or the kubelet stops."""


class PodWorker:
    def __init__(self, kubelet: Kubelet, pod: Obj) -> None:
        self.kubelet = kubelet
        self.store = kubelet.store
        self.namespace = pod["metadata"]["namespace"]
        self.name = pod["metadata"]["name"]
        self.uid = pod["metadata"]["uid"]
        self.pod = pod
        spec = pod["spec"]
        self.containers = [Container(c, True) for c in spec.get("initContainers") or []] + [
            Container(c, False) for c in spec.get("containers") or []
        ]
        if spec.get("initContainers"):
            for container in self.containers:
                if not container.init:
                    container.state = {"waiting": {"reason": "PodInitializing"}}
        self.stop_event = threading.Event()
        self.grace = 0.0
        self.stop_reason = ""  # "deleted", "evicted", "deadline" or "shutdown"
        self.phase = "Pending"
        self.reason = ""
        self.message = ""
        self.started_at = now()
        self.ip = "127.0.0.1"
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"kube-pod-{self.name}", daemon=True)

    # -- control from outside ----------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def request_stop(self, reason: str, grace: float) -> None:
        with self._lock:
            if self.stop_event.is_set():
                self.grace = min(self.grace, grace)
                return
            self.stop_reason = reason
            self.grace = grace
            self.stop_event.set()

    def container(self, name: str | None) -> Container | None:
        for container in self.containers:
            if name in (None, container.name) and not (name is None and container.init):
                return container
        return None

    # -- status ------------------------------------------------------------------------------

    def publish(self) -> None:
        main = [c for c in self.containers if not c.init]
        inits = [c for c in self.containers if c.init]
        all_running = all("running" in c.state for c in main)
        terminal = self.phase in ("Succeeded", "Failed")
        initialized = all(
            c.terminated is not None and c.terminated.get("exitCode") == 0 for c in inits
        )

        def update(pod: Obj) -> None:
            if pod["metadata"].get("uid") != self.uid:
                return
            status = pod.setdefault("status", {})
            conditions = [
                c for c in status.get("conditions") or [] if c.get("type") not in _OWN_CONDITIONS
            ]
            old = {c["type"]: c for c in status.get("conditions") or []}
            own = [
                condition("PodReadyToStartContainers", "True"),
                condition("Initialized", "True")
                if initialized
                else condition(
                    "Initialized",
                    "False",
                    "ContainersNotInitialized",
                    f"containers with incomplete status: [{' '.join(c.name for c in inits)}]",
                ),
                self._ready_condition("Ready", all_running and not terminal, terminal, main),
                self._ready_condition(
                    "ContainersReady", all_running and not terminal, terminal, main
                ),
            ]
            for item in own:
                previous = old.get(item["type"])
                merged = [previous] if previous else []
                set_condition(merged, item)
                conditions.append(merged[0])
            order = {
                t: i
                for i, t in enumerate(
                    (
                        "PodReadyToStartContainers",
                        "Initialized",
                        "Ready",
                        "ContainersReady",
                        "PodScheduled",
                        "DisruptionTarget",
                    )
                )
            }
            conditions.sort(key=lambda c: order.get(c.get("type", ""), 99))
            status["conditions"] = conditions
            status["phase"] = self.phase
            status["hostIP"] = "127.0.0.1"
            status["hostIPs"] = [{"ip": "127.0.0.1"}]
            status["podIP"] = self.ip
            status["podIPs"] = [{"ip": self.ip}]
            status["startTime"] = self.started_at
            if inits:
                status["initContainerStatuses"] = [c.status() for c in inits]
            status["containerStatuses"] = [c.status() for c in main]
            if self.reason:
                status["reason"] = self.reason
                status["message"] = self.message

        self.store.mutate("pods", self.namespace, self.name, update)

    @staticmethod
    def _ready_condition(type_: str, ready: bool, terminal: bool, main: list[Container]) -> Obj:
        if ready:
            return condition(type_, "True")
        if terminal:
            return condition(type_, "False", "PodCompleted")
        unready = " ".join(c.name for c in main if "running" not in c.state)
        return condition(
            type_, "False", "ContainersNotReady", f"containers with unready status: [{unready}]"
        )

    def event(
        self, type_: str, reason: str, message: str, container: Container | None = None
    ) -> None:
        current = self.store.try_get("pods", self.namespace, self.name) or self.pod
        path = None
        if container is not None:
            path = (
                f"spec.{'initContainers' if container.init else 'containers'}{{{container.name}}}"
            )
        self.kubelet.recorder.record(
            current, type_, reason, message, COMPONENT, self.kubelet.node_name, path
        )

    # -- the pod's life ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.publish()
            if self._stop_requested_by_object():
                raise Stopping()
            for container in [c for c in self.containers if c.init]:
                while True:
                    self._run_containers([container])
                    code = container.terminated["exitCode"] if container.terminated else 1
                    if code == 0:
                        break
                    if self.pod["spec"].get("restartPolicy") == "Never":
                        self._finish("Failed")
                        return
                    self._restart_wait(container)
            main = [c for c in self.containers if not c.init]
            while True:
                self._run_containers(main)
                again = self._to_restart(main)
                if not again:
                    break
                for container in again:
                    self._restart_wait(container)
            codes = [c.terminated.get("exitCode") if c.terminated else 1 for c in main]
            self._finish("Succeeded" if all(code == 0 for code in codes) else "Failed")
        except Stopping:
            self._stopped()
        except Exception as error:  # a bug here must not leave a pod hanging silently
            self.reason, self.message = "EmulatorError", f"{type(error).__name__}: {error}"
            self._kill_all(0)
            self._finish("Failed")
        finally:
            for container in self.containers:
                if container.process is not None:
                    self.kubelet.memory.remove(container.process.pid)
                if container.workdir:
                    shutil.rmtree(container.workdir, ignore_errors=True)
            self.kubelet.worker_done(self)

    def _stop_requested_by_object(self) -> bool:
        pod = self.store.try_get("pods", self.namespace, self.name)
        if pod is None or pod["metadata"].get("uid") != self.uid:
            self.request_stop("deleted", 0)
            return True
        if pod["metadata"].get("deletionTimestamp"):
            self.request_stop(
                "deleted", float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
            )
            return True
        if evicting(pod):
            self.request_stop(
                "evicted", float(deep(pod, "spec", "terminationGracePeriodSeconds") or 30)
            )
            return True
        return False

    def _to_restart(self, main: list[Container]) -> list[Container]:
        policy = self.pod["spec"].get("restartPolicy", "Always")
        if policy == "Never" or self.stop_event.is_set():
            return []
        return [
            c
            for c in main
            if c.terminated is not None
            and (policy == "Always" or c.terminated.get("exitCode") != 0)
        ]

    def _restart_wait(self, container: Container) -> None:
        delay = min(self.kubelet.restart_backoff * (2**container.restarts), 10.0)
        container.last_state = {"terminated": container.state["terminated"]}
        container.state = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {delay:g}s restarting failed container={container.name} pod={self.name}_{self.namespace}({self.uid})",
            }
        }
        container.restarts += 1
        container.previous_log = container.log
        container.log = ContainerLog()
        self.publish()
        self.event("Warning", "BackOff", "Back-off restarting failed container", container)
        if self.stop_event.wait(delay):
            raise Stopping()

    def _deadline(self) -> float | None:
        seconds = self.pod["spec"].get("activeDeadlineSeconds")
        return parse_time(self.started_at) + float(seconds) if seconds else None

    def _run_containers(self, containers: list[Container]) -> None:
        """Prepare and start the waiting ``containers`` (in order), then wait until all have
        exited."""
        for container in containers:
            if "waiting" in container.state:
                self._start(container)
        deadline = self._deadline()
        while True:
            running = [c for c in containers if c.process is not None and c.terminated is None]
            for container in running:
                if container.process is not None and container.process.poll() is not None:
                    self._exited(container)
            if all(c.terminated is not None for c in containers):
                return
            if deadline is not None and time.time() > deadline:
                self.request_stop("deadline", 0)
            if self.stop_event.wait(0.05):
                raise Stopping()

    def _start(self, container: Container) -> None:
        image = self._pull(container)
        env = self._environment(container, image)
        cwd = None
        if image is None:
            argv = podenv.container_argv(container.spec, env)
            if argv is None:
                self._start_error(
                    container,
                    "the emulator cannot run a preloaded image's own entrypoint: give the "
                    "container a command",
                )
                return
        else:
            try:
                argv = image_run.argv(container.spec, image, env)
                cwd = image_run.working_dir(container.spec, image)
            except (image_run.StartError, OSError) as error:
                self._start_error(container, str(error))
                return
        if container.workdir:  # a restart starts from a fresh scratch, as from a fresh layer
            shutil.rmtree(container.workdir, ignore_errors=True)
        container.workdir = tempfile.mkdtemp(prefix=f"kube-{self.name}-{container.name}-")
        try:
            mounted = self._secret_volumes(container)
        except podenv.ConfigError as error:
            self._start_error(container, str(error))
            return
        env = {name: podenv.map_mounted(value, mounted) for name, value in env.items()}
        for volume, mount in self._mounts(container):
            if volume.get("emptyDir") is not None and mount.get("mountPath") == "/tmp":
                os.makedirs(os.path.join(container.workdir, "tmp"), exist_ok=True)
                env.setdefault("TMPDIR", os.path.join(container.workdir, "tmp"))
        env.setdefault("HOME", container.workdir)
        self.event("Normal", "Created", f"Created container {container.name}", container)
        try:
            process = ContainerProcess(argv, env, cwd or container.workdir, container.log)
        except OSError as error:
            self._start_error(container, f'exec: "{argv[0]}": {error.strerror or error}')
            return
        container.process = process
        container.container_id = f"emulator://{process.pid}"
        container.state = {"running": {"startedAt": now()}}
        limit = deep(container.spec, "resources", "limits", "memory")
        if limit is not None:

            def exceeded(used: int, container: Container = container) -> None:
                if container.process is not None:
                    container.process.oom_killed = True
                    container.process.signal(signal.SIGKILL)

            self.kubelet.memory.add(process.pid, int(quantity(limit)), exceeded)
        if not container.init:
            self.phase = "Running"
        self.publish()
        self.event("Normal", "Started", f"Started container {container.name}", container)

    def _secret_volumes(self, container: Container) -> dict[str, str]:
        """Write each mounted Secret volume's files into the container's scratch directory;
        returns mountPath -> where it is here (env values under a mountPath are mapped)."""
        mounted: dict[str, str] = {}
        namespace = self.pod["metadata"]["namespace"]
        for volume, mount in self._mounts(container):
            source = volume.get("secret")
            if source is None:
                continue
            target = os.path.join(container.workdir, "volumes", volume["name"])
            os.makedirs(target, exist_ok=True)
            podenv.write_secret_volume(self.kubelet.store, namespace, source, target)
            mounted[str(mount["mountPath"]).rstrip("/")] = target
        return mounted

    def _mounts(self, container: Container) -> list[tuple[Obj, Obj]]:
        volumes = {v.get("name"): v for v in self.pod["spec"].get("volumes") or []}
        return [
            (volumes[m["name"]], m)
            for m in container.spec.get("volumeMounts") or []
            if m.get("name") in volumes
        ]

    def _start_error(self, container: Container, message: str) -> None:
        stamp = now()
        container.state = {
            "terminated": {
                "exitCode": 128,
                "reason": "StartError",
                "message": f"failed to create containerd task: failed to create shim task: OCI runtime create failed: {message}",
                "startedAt": stamp,
                "finishedAt": stamp,
            }
        }
        self.publish()
        self.event("Warning", "Failed", f"Error: {message}", container)

    def _exited(self, container: Container) -> None:
        assert container.process is not None
        self.kubelet.memory.remove(container.process.pid)
        code = container.process.finish()
        reason = (
            "OOMKilled" if container.process.oom_killed else ("Completed" if code == 0 else "Error")
        )
        container.state = {
            "terminated": {
                "exitCode": code,
                "reason": reason,
                "startedAt": container.state.get("running", {}).get("startedAt", now()),
                "finishedAt": now(),
                "containerID": container.container_id,
            }
        }
        self.publish()

    # -- image and environment ---------------------------------------------------------------

    def _pull(self, container: Container) -> PulledImage | None:
        """Make the container's image present; None for a preloaded image (runs on the host)."""
        image = str(container.spec.get("image", ""))
        kubelet = self.kubelet
        policy = container.spec.get("imagePullPolicy", "IfNotPresent")
        present = kubelet.pulled.get(image)
        if kubelet.preloaded(image) or (present is not None and policy != "Always"):
            container.image_id = present.image_id if present is not None else image
            self.event(
                "Normal",
                "Pulled",
                f'Container image "{image}" already present on machine',
                container,
            )
            return present
        if policy == "Never":
            return self._never_pull(container, image)
        ref = images.ImageRef.parse(image)
        delay = kubelet.image_backoff[0]
        while True:
            self.event("Normal", "Pulling", f'Pulling image "{image}"', container)
            started = time.monotonic()
            try:
                pulled = kubelet.images.pull(image, self._credentials(ref.host))
            except images.PullError as error:
                problem = str(error)
            else:
                took = int((time.monotonic() - started) * 1000)
                kubelet.pulled[image] = pulled
                container.image_id = pulled.image_id
                self.event(
                    "Normal",
                    "Pulled",
                    f'Successfully pulled image "{image}" in {took}ms ({took}ms including '
                    f"waiting). Image size: {pulled.size} bytes.",
                    container,
                )
                return pulled
            container.state = {"waiting": {"reason": "ErrImagePull", "message": problem}}
            self.publish()
            self.event("Warning", "Failed", f'Failed to pull image "{image}": {problem}', container)
            self.event("Warning", "Failed", "Error: ErrImagePull", container)
            if self.stop_event.wait(min(delay, 1.0)):
                raise Stopping()
            message = f'Back-off pulling image "{image}"'
            container.state = {"waiting": {"reason": "ImagePullBackOff", "message": message}}
            self.publish()
            self.event("Normal", "BackOff", message, container)
            self.event("Warning", "Failed", "Error: ImagePullBackOff", container)
            if self.stop_event.wait(delay):
                raise Stopping()
            delay = min(delay * 2, kubelet.image_backoff[1])

    def _never_pull(self, container: Container, image: str) -> PulledImage:
        """``imagePullPolicy: Never`` for an image the node lacks: wait (in vain, unless
        another pod pulls it) as the kubelet does."""
        message = images.never_pull(image)
        while True:
            present = self.kubelet.pulled.get(image)
            if present is not None:
                container.image_id = present.image_id
                return present
            container.state = {"waiting": {"reason": "ErrImageNeverPull", "message": message}}
            self.publish()
            self.event("Warning", "ErrImageNeverPull", message, container)
            if self.stop_event.wait(self.kubelet.image_backoff[1]):
                raise Stopping()

    def _credentials(self, host: str) -> tuple[str, str] | None:
        secrets = []
        for ref in self.pod["spec"].get("imagePullSecrets") or []:
            found = self.store.try_get("secrets", self.namespace, ref.get("name", ""))
            if found is not None:
                secrets.append(found)
        return images.pull_credentials(secrets, host)

    def _environment(self, container: Container, image: PulledImage | None) -> dict[str, str]:
        base = self.kubelet.base_env(self.pod, image)
        runner = image is None and podenv.runs_runner(container.spec)
        if runner:
            base = podenv.runtime_env(base)
        while True:
            pod = self.store.try_get("pods", self.namespace, self.name) or self.pod
            try:
                env = podenv.container_env(
                    self.store, pod, container.spec, base, self.kubelet.node()
                )
            except podenv.ConfigError as error:
                container.state = {
                    "waiting": {"reason": "CreateContainerConfigError", "message": str(error)}
                }
                self.publish()
                self.event("Warning", "Failed", f"Error: {error}", container)
                if self.stop_event.wait(self.kubelet.config_retry):
                    raise Stopping() from None
                continue
            if runner and podenv.PROJECT_ROOT not in env.get("PYTHONPATH", "").split(os.pathsep):
                env["PYTHONPATH"] = os.pathsep.join(
                    p for p in (env.get("PYTHONPATH"), podenv.PROJECT_ROOT) if p
                )
            return env

    # -- ending --------------------------------------------------------------------------------

    def _kill_all(self, grace: float) -> None:
        running = [c for c in self.containers if c.process is not None and c.terminated is None]
        for container in running:
            assert container.process is not None
            container.process.signal(signal.SIGTERM if grace > 0 else signal.SIGKILL)
        deadline = time.monotonic() + grace
        while any(c.process is not None and c.process.poll() is None for c in running):
            if time.monotonic() >= deadline:
                for container in running:
                    assert container.process is not None
                    container.process.signal(signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.02)
        for container in running:
            self._exited(container)

    def _stopped(self) -> None:
        reason = self.stop_reason
        grace = min(self.grace, self.kubelet.max_grace)
        for container in self.containers:
            if container.process is not None and container.terminated is None:
                self.event("Normal", "Killing", f"Stopping container {container.name}", container)
        self._kill_all(grace)
        for container in self.containers:
            if container.terminated is None:  # never started
                container.state = {
                    "terminated": {
                        "exitCode": 137,
                        "reason": "ContainerStatusUnknown",
                        "message": "The container could not be located when the pod was terminated",
                        "startedAt": None,
                        "finishedAt": now(),
                    }
                }
        if reason == "evicted":
            self.reason, self.message = "Evicted", "The pod was evicted by the Eviction API"
        elif reason == "deadline":
            self.reason = "DeadlineExceeded"
            self.message = "Pod was active on the node longer than the specified deadline"
            self.event("Normal", "DeadlineExceeded", self.message)
        main = [c for c in self.containers if not c.init]
        succeeded = reason != "evicted" and all(
            c.terminated is not None and c.terminated.get("exitCode") == 0 for c in main
        )
        self._finish("Succeeded" if succeeded else "Failed")
        if reason == "deleted":
            self.kubelet.remove_pod(self.namespace, self.name, self.uid)

    def _finish(self, phase: str) -> None:
        self.phase = phase
        self.publish()


def evicting(pod: Obj) -> bool:
    cond = get_condition(pod, "DisruptionTarget") or {}
    return cond.get("status") == "True" and cond.get("reason") == "EvictionByEvictionAPI"
