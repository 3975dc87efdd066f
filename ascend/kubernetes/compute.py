"""Kubernetes compute: create the Job, watch it (no polling), stream its logs, explain failures.

Waiting uses two watches (the Job, and its pods) feeding one queue, so the caller learns of
the end, or of the evidence that it will never end (an image that cannot be pulled, a pod that
cannot be scheduled), within a second of the cluster knowing it. A watch that expires (410
Gone) is resumed from a fresh list; one that fails (a dropped, refused or reset connection, an
API server restarting) reconnects with a capped, jittered back-off and lists again, and only
``lost_contact_timeout`` seconds without the cluster end the wait, with
:class:`ClusterUnreachableError` (the job may still run; nothing is recorded about it).

A returned wait holds nothing: its watch and log streams are shut and their threads joined.
"""

from __future__ import annotations

import codecs
import json
import logging
import queue
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ascend.compute import (
    CANCELLED,
    FAILED,
    RUNNING,
    SUCCEEDED,
    TIMED_OUT,
    ComputeBackend,
    JobRequest,
    JobStatus,
)
from ascend.errors import (
    ClusterUnreachableError,
    ComputeError,
    ImagePullError,
    JobEvictedError,
    JobFailedError,
    OutOfMemoryError,
    UnschedulableError,
)
from ascend.job_ids import JOB_NAME_PREFIX
from ascend.kubernetes.access import forbidden_error
from ascend.kubernetes.manifest import CONTAINER, job_name
from ascend.signing import KeyRing

IMAGE_PULL_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
CONFIG_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})
WATCH_SECONDS = 60  # server-side watch timeout; a new watch starts after it
LIST_TIMEOUT = (10.0, 30.0)  # connect and read seconds of a list: a hung one is a failure
BACKOFF_FIRST = 0.2  # seconds before reconnecting after a failure; doubles, jittered
BACKOFF_CAP = 5.0  # the longest pause between reconnections
CREATE_ATTEMPTS = 4  # sends of a create whose answer may have been lost
JOIN_SECONDS = 5.0  # how long a returning wait waits for its watch and log threads
WATCH_THREAD = "ascend-watch"  # watcher threads' name prefix
EXIT_DEADLINE = 7  # the runner's exit code when its watchdog stops an overrun


@dataclass
class KubernetesSettings:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str = "default"
    pending_timeout: float = 300.0
    scale_up_timeout: float = 900.0
    lost_contact_timeout: float = 120.0
    ttl_seconds: int = 300
    ttl_unattended_seconds: int = 86400
    env: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, tuple[str, str]] = field(default_factory=dict)
    service_account: str | None = None
    capacity_check: bool = True  # refuse at once a request larger than any node (capacity.py)


@dataclass
class _Tracked:
    namespace: str
    name: str
    request: JobRequest | None
    memory: str | None
    log_thread: threading.Thread | None = None
    log_streams: _Streams | None = None
    log_pod: str | None = None  # the pod whose log is printed, and how many bytes of it
    log_printed: int = 0
    cancelled: bool = False


def api_client(settings: KubernetesSettings) -> Any:
    """A client for the configured cluster: the kubeconfig (path, context) or in-cluster."""
    from kubernetes import client, config

    try:
        return config.new_client_from_config(
            config_file=settings.kubeconfig, context=settings.context
        )
    except config.ConfigException as kube_error:
        try:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        except config.ConfigException:
            raise ComputeError(
                f"no Kubernetes configuration: {kube_error}",
                fix="set kubernetes.kubeconfig (or KUBECONFIG) and kubernetes.context, or run "
                "inside a cluster",
            ) from None


class KubernetesCompute(ComputeBackend):
    """Runs each call as one ``batch/v1`` Job in the user's namespace."""

    name = "kubernetes"

    def __init__(
        self,
        settings: KubernetesSettings,
        manifest_hook: Any = None,
        node_types: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self._manifest_hook = manifest_hook
        self.node_types = dict(node_types or {})
        self.expired_watches = 0  # watches resumed after 410 Gone (diagnostics, tests)
        self._client: Any = None
        self._tracked: dict[str, _Tracked] = {}
        self._lock = threading.Lock()
        from ascend.kubernetes.capacity import NodeLister

        self._nodes = NodeLister(self._core)  # the node list check() reads, kept 30 s
        from ascend.kubernetes.keys import KeyCache

        self._keys = KeyCache(self._core)  # the users' signing keys, read from their Secrets

    # -- clients -----------------------------------------------------------------------------

    def _api(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = api_client(self.settings)
            return self._client

    def _batch(self) -> Any:
        from kubernetes import client

        return client.BatchV1Api(self._api())

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self._api())

    # -- submit ------------------------------------------------------------------------------

    def check(self, request: JobRequest) -> None:
        """Refuse, before anything is uploaded, a request no node can ever hold: larger than
        the allocatable resources of every node its pod may go on (one node LIST, kept 30 s;
        no verdict when nodes cannot be listed or none matches). See
        :mod:`ascend.kubernetes.capacity`; ``kubernetes.capacity_check: false`` turns it off.
        """
        if not self.settings.capacity_check:
            return
        from ascend.kubernetes.capacity import check_fits

        _, manifest = self._manifest(request)  # the pod the scheduler will see, hooks applied
        check_fits(request, manifest["spec"]["template"]["spec"], self._nodes)

    def submit(self, request: JobRequest) -> str:
        namespace, manifest = self._manifest(request)
        if not self._create(namespace, manifest):
            raise ComputeError(
                f"a Job named {manifest['metadata']['name']} already exists in {namespace}",
                fix="submit the call again: it gets a new job id",
            )
        return self._track(namespace, manifest, request)

    def _create(self, namespace: str, manifest: dict[str, Any]) -> bool:
        """Create the Job; False when one of that name exists already. A request that may not
        have arrived (no answer, a reset, 429 or 5xx) is sent again after a short pause: Job
        names are unique per call, so AlreadyExists after a resend means it did arrive."""
        from kubernetes.client.exceptions import ApiException

        transport = _transport_errors()
        for attempt in range(CREATE_ATTEMPTS):
            resent = attempt > 0
            try:
                self._batch().create_namespaced_job(
                    namespace, manifest, _request_timeout=LIST_TIMEOUT
                )
                return True
            except ApiException as error:
                if error.status == 409:
                    return resent
                if not _transient(error.status) or attempt == CREATE_ATTEMPTS - 1:
                    raise _api_error(error, namespace, "create the job", self._api()) from None
            except transport as error:
                if attempt == CREATE_ATTEMPTS - 1:
                    raise self._no_cluster("create the job", error) from None
            time.sleep(BACKOFF_FIRST * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _request(self, action: str, namespace: str, send: Any) -> Any:
        """One API request, with the cluster's refusal, or its absence, as a typed error."""
        from kubernetes.client.exceptions import ApiException

        try:
            return send()
        except ApiException as error:
            raise _api_error(error, namespace, action, self._api()) from None
        except _transport_errors() as error:
            raise self._no_cluster(action, error) from None

    def _no_cluster(self, action: str, error: BaseException) -> ClusterUnreachableError:
        host = getattr(getattr(self._client, "configuration", None), "host", None) or "?"
        return ClusterUnreachableError(
            f"could not reach the Kubernetes API server at {host} to {action}: "
            f"{type(error).__name__}: {error}",
            fix="check the network (a VPN?), the server in your kubeconfig, and that the "
            "cluster is up ('kubectl cluster-info' tells)",
        )

    def submit_shared(
        self,
        request: JobRequest,
        name: str,
        command: list[str],
        docker_config_secret: str | None = None,
    ) -> tuple[str, bool]:
        """Start the Job ``name`` running ``command``, or join the one of that name already
        running (AlreadyExists). Returns ``(handle, created)``. Builder Jobs are named after
        the image they build, so two callers needing one image share one build."""

        namespace, manifest = self._manifest(request)
        manifest["metadata"]["name"] = name
        pod = manifest["spec"]["template"]["spec"]
        container = pod["containers"][0]
        container["command"] = list(command)
        if docker_config_secret:  # the push credentials, as a docker config
            pod.setdefault("volumes", []).append(
                {
                    "name": "docker-config",
                    "secret": {
                        "secretName": docker_config_secret,
                        "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                    },
                }
            )
            container.setdefault("volumeMounts", []).append(
                {"name": "docker-config", "mountPath": "/ascend/docker", "readOnly": True}
            )
            container["env"].append({"name": "DOCKER_CONFIG", "value": "/ascend/docker"})
        created = self._create(namespace, manifest)
        return self._track(namespace, manifest, request), created

    def _track(self, namespace: str, manifest: dict[str, Any], request: JobRequest) -> str:
        handle = f"{namespace}/{manifest['metadata']['name']}"
        with self._lock:
            self._tracked[handle] = _Tracked(
                namespace, manifest["metadata"]["name"], request, request.memory
            )
        return handle

    def _manifest(self, request: JobRequest) -> tuple[str, dict[str, Any]]:
        from ascend.kubernetes.manifest import POD_START_ALLOWANCE, build_job

        node_type = self.node_types.get(request.node_type) if request.node_type else None
        namespace = self.namespace_for(request)
        manifest = build_job(
            request,
            namespace=namespace,
            image=self._image(request),
            node_type=node_type,
            ttl_seconds=self.settings.ttl_unattended_seconds,
            start_allowance=int(
                max(self.settings.pending_timeout, self.settings.scale_up_timeout)
                + POD_START_ALLOWANCE
            ),
            env=self.settings.env,
            secret_env=self.settings.secret_env,
            service_account=self.settings.service_account,
        )
        if self._manifest_hook is not None:
            self._manifest_hook(request=request, manifest=manifest)
        return namespace, manifest

    def namespace_for(self, request: JobRequest) -> str:
        """The configured namespace, else the user's (or the project's with project=True)."""
        if self.settings.namespace:
            return self.settings.namespace
        if request.extra.get("project_scoped"):
            return f"ascend-projects-{request.labels.get('project', 'default')}"
        return f"ascend-users-{request.labels.get('user', 'default')}"

    @staticmethod
    def _image(request: JobRequest) -> str:
        if not request.image:
            raise ComputeError(
                f"job {request.job_id} names no image to run",
                fix="submit through ascend.runtime.submit, which picks the image from the "
                "registry the plugins answer",
            )
        return request.image

    def handle_for(self, job_id: str, record: dict[str, Any]) -> str:
        """``<namespace>/<Job name>`` of a job, derived from its id as :meth:`namespace_for`
        and :func:`job_name` make them: ``kubernetes.namespace`` when set, else the user's
        namespace, or the project's for a ``project=True`` job. The record's
        ``compute.handle`` (anyone who can write the storage can change it) counts only when
        it is exactly one of these, which is how a project job is told apart."""
        from ascend.job_ids import parse_job_id

        name = job_name(job_id)
        if self.settings.namespace:
            return f"{self.settings.namespace}/{name}"
        parts = parse_job_id(job_id)
        user_handle = f"ascend-users-{parts.user}/{name}"
        project_handle = f"ascend-projects-{parts.project}/{name}"
        recorded = (record.get("compute") or {}).get("handle")
        return project_handle if recorded == project_handle else user_handle

    def _tracked_for(self, handle: str) -> _Tracked:
        """The handle's state, kept until :meth:`release` (a wait and a cancel share it)."""
        with self._lock:
            tracked = self._tracked.get(handle)
            if tracked is None:
                tracked = self._tracked[handle] = self._lookup(handle)
            return tracked

    def _lookup(self, handle: str) -> _Tracked:
        """The handle's state if kept, else a new one that is not kept (one-off reads)."""
        tracked = self._tracked.get(handle)
        if tracked is None:
            namespace, _, name = handle.partition("/")
            tracked = _Tracked(namespace, name, None, None)
        return tracked

    # -- wait --------------------------------------------------------------------------------

    def wait(self, handle: str, timeout: float | None = None) -> JobStatus:
        from ascend import console

        _quiet_watch_retries()
        tracked = self._tracked_for(handle)
        shown = console.current() if timeout != 0 else None  # where its output goes, if shown
        events: queue.Queue[tuple[str, Any]] = queue.Queue()
        stop = threading.Event()
        streams = _Streams()
        contact = _Contact()
        watchers = [
            threading.Thread(
                target=self._watch,
                args=(kind, tracked, events, streams, contact, stop),
                name=f"{WATCH_THREAD}-{kind}",
                daemon=True,
            )
            for kind in ("job", "pod")
        ]
        for watcher in watchers:
            watcher.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        pending_since: float | None = None
        pending_limit = self.settings.pending_timeout
        scheduler_message = ""
        pod_status: dict[str, Any] | None = None
        join_seconds = JOIN_SECONDS
        try:
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return JobStatus(RUNNING)
                lost = contact.lost_since()
                if lost is not None:  # judged here: a watcher may hang in a request
                    since, failure = lost
                    left = since + self.settings.lost_contact_timeout - time.monotonic()
                    if left <= 0:
                        join_seconds = 1.0  # a watcher stuck connecting must not delay this
                        raise self._unreachable(tracked, failure, time.monotonic() - since)
                    remaining = left if remaining is None else min(remaining, left)
                if pending_since is not None:
                    left = pending_since + pending_limit - time.monotonic()
                    if left <= 0:
                        recent = self._events(tracked)
                        if pending_limit < self.settings.scale_up_timeout and _scaling_up(recent):
                            # the autoscaler is adding a node (GPU pools start at zero and
                            # take minutes): wait for it, up to scale_up_timeout
                            pending_limit = self.settings.scale_up_timeout
                            continue
                        self._give_up(tracked)
                        raise UnschedulableError(
                            f"no node could take job {tracked.name} within "
                            f"{pending_limit:g} s: {scheduler_message}",
                            evidence={
                                "reason": "Unschedulable",
                                "message": scheduler_message,
                                "events": recent,
                            },
                            fix="ask for fewer resources, pick another node_type, or check that "
                            "the cluster has a node pool for it (a pool the autoscaler is "
                            "still growing gets kubernetes.scale_up_timeout)",
                        )
                    remaining = left if remaining is None else min(remaining, left)
                try:
                    kind, obj = events.get(timeout=remaining)
                except queue.Empty:
                    continue
                if kind == "error":
                    raise obj
                if kind == "contact":
                    continue  # a watch lost the cluster: the loop's head keeps the time
                if kind == "gone":
                    return self._finished_without_trace(tracked)
                if kind == "pod-gone":
                    pod_status = obj
                elif kind == "pod":
                    pod_status = obj
                    verdict = self._pod_verdict(tracked, obj)
                    if verdict is not None:
                        return verdict
                    if obj.status.phase == "Succeeded":
                        # The runner exits 0 only once its signed result is in storage: the
                        # Job controller's Complete, which a real one batches (about a second
                        # later), adds nothing. Every other ending waits for the Job's word.
                        self._finish_logs(tracked)
                        return JobStatus(SUCCEEDED, 0)
                    console.report(*_pod_phase(obj))
                    unschedulable = _unschedulable(obj)
                    if unschedulable is not None and pending_since is None:
                        pending_since = time.monotonic()
                        scheduler_message = unschedulable
                    elif unschedulable is None:
                        pending_since = None
                        pending_limit = self.settings.pending_timeout
                    self._maybe_stream_logs(tracked, obj, shown)
                elif kind == "job":
                    verdict = self._job_verdict(tracked, obj, pod_status)
                    if verdict is not None:
                        return verdict
        finally:
            # A returned wait holds nothing: cut the watch streams (a thread blocked reading
            # one wakes only when its socket is shut) and join the threads reading them.
            stop.set()
            streams.close()
            joined_by = time.monotonic() + join_seconds
            for watcher in watchers:
                watcher.join(max(0.0, joined_by - time.monotonic()))
            self._stop_logs(tracked)

    def _watch(
        self,
        kind: str,
        tracked: _Tracked,
        events: queue.Queue[tuple[str, Any]],
        streams: _Streams,
        contact: _Contact,
        stop: threading.Event,
    ) -> None:
        """List, then watch from the list's version, until stopped.

        Any transport failure (a refused or reset connection, a cut stream, a 5xx, an ERROR
        event) and a watch the server ends early (a restart) are followed by a capped,
        jittered back-off and a fresh list, so no change made while disconnected is missed
        and a reset store is noticed; 410 Gone lists again at once. How long the cluster has
        been out of reach goes to ``contact``: the waiter decides when that is too long.
        """
        from kubernetes.client.exceptions import ApiException

        if kind == "job":
            lister = self._batch().list_namespaced_job
            selector = {"field_selector": f"metadata.name={tracked.name}"}
        else:
            lister = self._core().list_namespaced_pod
            selector = {"label_selector": f"job-name={tracked.name}"}
        transport = _transport_errors()
        resource_version: str | None = None
        failing_since: float | None = None  # start of the current run of failures
        attempts = 0  # failures since a watch last delivered something (sets the back-off)
        while not stop.is_set():
            failure: BaseException
            try:
                if resource_version is None:
                    listing = lister(tracked.namespace, _request_timeout=LIST_TIMEOUT, **selector)
                    if failing_since is not None:  # the cluster answers again
                        failing_since = None
                        contact.restored(kind)
                    resource_version = listing.metadata.resource_version
                    for item in listing.items:
                        events.put((kind, item))
                    if kind == "job" and not listing.items:
                        events.put(("gone", None))
                        return
                outcome, resource_version, delivered = self._follow(
                    kind, lister, selector, tracked, resource_version, events, streams, stop
                )
                if delivered:
                    attempts = 0
                if outcome in ("stopped", "gone"):
                    return
                if outcome == "expired":
                    resource_version = None  # list again, then watch from there
                    self.expired_watches += 1
                    continue
                if outcome == "timeout":
                    attempts = 0
                    continue  # the server's timeoutSeconds: watch again from the last version
                failure = ConnectionError("the server ended the watch early")
            except ApiException as error:
                if error.status == 410:
                    resource_version = None
                    self.expired_watches += 1
                    continue
                if not _transient(error.status):
                    if not stop.is_set():
                        events.put(
                            (
                                "error",
                                _api_error(error, tracked.namespace, f"watch {kind}s", self._api()),
                            )
                        )
                    return
                failure = error
            except transport as error:
                failure = error
            except Exception as error:  # not the network: report it, do not retry it
                if not stop.is_set():
                    events.put(
                        (
                            "error",
                            ComputeError(
                                f"watching {tracked.name} failed: {type(error).__name__}: {error}"
                            ),
                        )
                    )
                return
            if stop.is_set():
                return
            resource_version = None  # whatever happened meanwhile, a fresh list shows it
            if failing_since is None:
                failing_since = time.monotonic()
                contact.lost(kind, failing_since, failure)
                events.put(("contact", None))  # the waiter starts counting
            else:
                contact.lost(kind, failing_since, failure)
            delay = min(BACKOFF_CAP, BACKOFF_FIRST * 2**attempts) * random.uniform(0.5, 1.0)
            attempts += 1
            stop.wait(delay)

    def _follow(
        self,
        kind: str,
        lister: Any,
        selector: dict[str, str],
        tracked: _Tracked,
        resource_version: str | None,
        events: queue.Queue[tuple[str, Any]],
        streams: _Streams,
        stop: threading.Event,
    ) -> tuple[str, str | None, bool]:
        """One watch request, its events put on the queue: ``(outcome, last version seen,
        whether it delivered anything)``. Outcomes: ``timeout`` (the server's timeoutSeconds
        passed: resume from the version), ``early`` (it ended sooner: the server went away),
        ``expired`` (410 Gone), ``gone`` (the job was deleted), ``stopped``.

        The stream is read raw (``_preload_content=False``) and registered with ``streams``
        so that the waiter can shut it when it returns, instead of leaving it open until the
        server's timeout.
        """
        api = self._api()
        model = "V1Job" if kind == "job" else "V1Pod"
        started = time.monotonic()
        response = lister(
            tracked.namespace,
            watch=True,
            resource_version=resource_version,
            timeout_seconds=WATCH_SECONDS,
            _preload_content=False,
            # a connection that dies silently must not hang the caller
            _request_timeout=(LIST_TIMEOUT[0], WATCH_SECONDS + 30),
            **selector,
        )
        delivered = False
        if not streams.add(response):
            return "stopped", resource_version, delivered
        try:
            for line in _lines(response):
                if stop.is_set():
                    return "stopped", resource_version, delivered
                event = json.loads(line)
                raw = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if raw.get("code") == 410:
                        return "expired", resource_version, delivered
                    raise _WatchError(
                        f"{raw.get('code')} {raw.get('reason')}: {raw.get('message')}"
                    )
                version = (raw.get("metadata") or {}).get("resourceVersion")
                resource_version = version or resource_version
                delivered = True
                if event.get("type") == "BOOKMARK":
                    continue
                if event.get("type") == "DELETED" and kind == "job":
                    events.put(("gone", None))
                    return "gone", resource_version, delivered
                obj = api.deserialize(_Body(json.dumps(raw)), model)
                # a deleted pod's last state is evidence for the Job's verdict (an evicted
                # pod is deleted at once, often before the Job says Failed)
                events.put(("pod-gone" if event.get("type") == "DELETED" else kind, obj))
        finally:
            streams.discard(response)
            _close(response)
        if stop.is_set():
            return "stopped", resource_version, delivered
        if time.monotonic() - started < WATCH_SECONDS - 1:
            return "early", resource_version, delivered
        return "timeout", resource_version, delivered

    def _unreachable(
        self, tracked: _Tracked, failure: BaseException, lost_for: float
    ) -> ClusterUnreachableError:
        job_id = (
            tracked.request.job_id
            if tracked.request is not None
            else tracked.name.removeprefix(JOB_NAME_PREFIX)
        )
        return ClusterUnreachableError(
            f"lost contact with the cluster for {lost_for:.0f} s while waiting for job "
            f"{job_id} ({tracked.namespace}/{tracked.name}): {type(failure).__name__}: "
            f"{failure}. The job may still be running: nothing was recorded about it.",
            job_id=job_id,
            unreachable_for=lost_for,
            fix=f"once the cluster is reachable, ascend.attach({job_id!r}).result() waits "
            f"again (or 'ascend jobs status {job_id}'); kubernetes.lost_contact_timeout "
            "sets how long a call keeps reconnecting",
        )

    def _pod_verdict(self, tracked: _Tracked, pod: Any, final: bool = False) -> JobStatus | None:
        """Evidence in a pod that the job has ended or never will.

        Image and configuration errors are raised at once. An OOM kill or an eviction is raised
        only with ``final`` (the Job has failed and this is its newest pod): with retries the
        Job may still succeed with another pod.
        """
        statuses = pod.status.container_statuses or []
        for status in statuses:
            waiting = status.state.waiting if status.state else None
            if waiting is not None and _image_will_not_come(waiting):
                self._give_up(tracked)
                raise ImagePullError(
                    f"image {status.image} cannot be pulled: {waiting.reason}"
                    + (f": {waiting.message}" if waiting.message else ""),
                    evidence={
                        "reason": waiting.reason,
                        "image": status.image,
                        "message": waiting.message,
                        "events": self._events(tracked),
                    },
                    fix="check the image name and tag, and that the cluster may pull from its "
                    "registry (build it first, or pass base_image=...)",
                )
            if waiting is not None and waiting.reason in CONFIG_REASONS:
                self._give_up(tracked)
                raise JobFailedError(
                    f"the job's container cannot be created: {waiting.message or waiting.reason}",
                    evidence={
                        "reason": waiting.reason,
                        "message": waiting.message,
                        "events": self._events(tracked),
                    },
                    fix="a secret or config map it needs is probably missing in the namespace",
                )
            terminated = status.state.terminated if status.state else None
            if final and terminated is not None and terminated.reason == "OOMKilled":
                raise OutOfMemoryError(
                    f"the job ran out of memory: it exceeded its memory limit of "
                    f"{tracked.memory or 'its limit'} and was killed (OOMKilled)",
                    evidence={
                        "reason": "OOMKilled",
                        "exit_code": terminated.exit_code,
                        "limit": tracked.memory,
                        "events": self._events(tracked),
                    },
                    fix="raise memory= in @ascend(...), or process the data in smaller parts",
                )
        if (
            final
            and pod.status.phase == "Failed"
            and (
                pod.status.reason in ("Evicted", "Preempting")
                or _has_condition(pod, "DisruptionTarget")
            )
        ):
            raise JobEvictedError(
                f"the job's pod was {'preempted' if pod.status.reason == 'Preempting' else 'evicted'}"
                f": {pod.status.message or pod.status.reason or 'disruption'}",
                evidence={
                    "reason": pod.status.reason or "DisruptionTarget",
                    "message": pod.status.message,
                    "events": self._events(tracked),
                },
                fix="run it again; retries=N re-runs automatically after a disruption",
            )
        return None

    def _job_verdict(self, tracked: _Tracked, job: Any, pod: Any) -> JobStatus | None:
        for condition in job.status.conditions or []:
            if condition.status != "True":
                continue
            if condition.type == "Complete":
                self._finish_logs(tracked)
                return JobStatus(SUCCEEDED, 0)
            if condition.type == "Failed":
                self._finish_logs(tracked)
                # The Job's verdict can arrive before the pod's last update: read the pods once
                # so that an OOMKill or an eviction is reported as what it is. A pod deleted
                # already (evicted) is judged by the last state the watch saw.
                pods = sorted(
                    self._pods(tracked), key=lambda p: str(p.metadata.creation_timestamp or "")
                )
                if pods:
                    pod = pods[-1]
                if pod is not None:
                    self._pod_verdict(tracked, pod, final=True)
                if condition.reason == "PodFailurePolicy" and "DisruptionTarget" in (
                    condition.message or ""
                ):  # the pod is gone, the Job's condition says why (manifest: podFailurePolicy)
                    raise JobEvictedError(
                        f"the job's pod was evicted or preempted: {condition.message}",
                        evidence={
                            "reason": "DisruptionTarget",
                            "message": condition.message,
                            "events": self._events(tracked),
                        },
                        fix="run it again; retries=N re-runs automatically after a disruption",
                    )
                exit_code = _exit_code(pod)
                if condition.reason == "DeadlineExceeded" or exit_code == EXIT_DEADLINE:
                    return JobStatus(
                        TIMED_OUT,
                        exit_code,
                        "DeadlineExceeded",
                        condition.message or "the function ran past its timeout",
                    )
                if tracked.cancelled:
                    return JobStatus(CANCELLED, exit_code, "Cancelled", "the job was cancelled")
                return JobStatus(
                    FAILED,
                    exit_code,
                    condition.reason or "Failed",
                    condition.message or f"the container exited with {exit_code}",
                    {"events": self._events(tracked)},
                )
        return None

    def _finished_without_trace(self, tracked: _Tracked) -> JobStatus:
        self._finish_logs(tracked)
        if tracked.cancelled:
            return JobStatus(CANCELLED, None, "Cancelled", "the job was cancelled")
        return JobStatus(FAILED, None, "Deleted", "the job no longer exists in the cluster")

    def _pods(self, tracked: _Tracked) -> list[Any]:
        try:
            listing = self._core().list_namespaced_pod(
                tracked.namespace, label_selector=f"job-name={tracked.name}"
            )
        except Exception:  # the job's verdict stands without the pods' details
            return []
        return list(listing.items)

    def _events(self, tracked: _Tracked) -> list[str]:
        """Recent events of the job and its pods, oldest first (evidence for errors).

        Pods are found by their ``job-name`` label, not by name prefix: the API server cuts a
        long Job name before adding the pod's random suffix.
        """
        try:
            core = self._core()
            pods = core.list_namespaced_pod(
                tracked.namespace, label_selector=f"job-name={tracked.name}"
            )
            names = {tracked.name} | {pod.metadata.name for pod in pods.items}
            listing = core.list_namespaced_event(tracked.namespace)
        except Exception:  # evidence is best effort
            return []
        ours = [e for e in listing.items if (e.involved_object.name or "") in names]
        ours.sort(key=_event_time)
        return [f"{e.type} {e.reason}: {e.message}" for e in ours][-20:]

    def _give_up(self, tracked: _Tracked) -> None:
        """The job can never run: delete it so nothing waits in the cluster either."""
        self._delete(tracked)

    def _read_job(self, tracked: _Tracked) -> Any:
        """The Job, from one GET; ``None`` when it does not exist."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self._request(
                "read the job",
                tracked.namespace,
                lambda: self._batch().read_namespaced_job(
                    tracked.name, tracked.namespace, _request_timeout=LIST_TIMEOUT
                ),
            )
        except ComputeError as error:
            cause = error.__context__
            if isinstance(cause, ApiException) and cause.status == 404:
                return None
            raise

    def status(self, handle: str) -> JobStatus:
        """The Job's state now, without a watch: for ``done()`` and ``cancel()``. A Job whose
        pod has succeeded is done, as for :meth:`wait`, before the controller says Complete."""
        tracked = self._lookup(handle)
        job = self._read_job(tracked)
        if job is None:
            return JobStatus(FAILED, None, "Deleted", "the job no longer exists")
        for condition in job.status.conditions or []:
            if condition.status != "True":
                continue
            if condition.type == "Complete":
                return JobStatus(SUCCEEDED, 0)
            if condition.type == "Failed":
                state = TIMED_OUT if condition.reason == "DeadlineExceeded" else FAILED
                return JobStatus(state, None, condition.reason, condition.message)
        if job.status.succeeded or any(p.status.phase == "Succeeded" for p in self._pods(tracked)):
            return JobStatus(SUCCEEDED, 0)
        return JobStatus(RUNNING)

    # -- logs --------------------------------------------------------------------------------

    def _maybe_stream_logs(self, tracked: _Tracked, pod: Any, shown: Any) -> None:
        """Follow the pod's log once its container has started, when the caller shows the
        job's output (``shown``: its :class:`ascend.console.Call`), also for an attached job."""
        if tracked.log_thread is not None or shown is None or not shown.logs:
            return
        statuses = pod.status.container_statuses or []
        started = any(s.state and (s.state.running or s.state.terminated) for s in statuses)
        if not started:
            return
        tracked.log_streams = _Streams()
        tracked.log_thread = threading.Thread(
            target=self._stream_logs,
            args=(tracked, pod.metadata.name, tracked.log_streams, shown),
            name="ascend-logs",
            daemon=True,
        )
        tracked.log_thread.start()

    def _stream_logs(self, tracked: _Tracked, pod_name: str, streams: _Streams, shown: Any) -> None:
        """Print the pod's log as it grows. A wait that resumes (after ``result(timeout=...)``)
        follows again from the start and skips what an earlier wait printed."""
        if tracked.log_pod != pod_name:
            tracked.log_pod, tracked.log_printed = pod_name, 0
        skip = tracked.log_printed
        try:
            response = self._core().read_namespaced_pod_log(
                pod_name,
                tracked.namespace,
                container=CONTAINER,
                follow=True,
                _preload_content=False,
            )
        except Exception:
            return  # the runner saves the log to storage; live output is a convenience
        if not streams.add(response):
            return
        try:
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            for chunk in response.stream(65536):
                if skip:
                    chunk, skip = chunk[skip:], max(0, skip - len(chunk))
                    if not chunk:
                        continue
                tracked.log_printed += len(chunk)
                shown.write(decoder.decode(chunk))  # characters split across chunks survive
        except Exception:
            pass  # cut by the waiter, or the connection dropped: the runner saves the log
        finally:
            streams.discard(response)
            _close(response)

    def _finish_logs(self, tracked: _Tracked) -> None:
        """The job has ended: let the log stream print its end (it closes by itself)."""
        if tracked.log_thread is not None:
            tracked.log_thread.join(JOIN_SECONDS)

    def _stop_logs(self, tracked: _Tracked) -> None:
        """Cut the log stream and join its thread, so a returned wait holds no stream."""
        thread, streams = tracked.log_thread, tracked.log_streams
        if thread is None:
            return
        if streams is not None:
            streams.close()
        thread.join(JOIN_SECONDS)
        tracked.log_thread = tracked.log_streams = None

    def signing_keys(self, request: JobRequest | None = None, handle: str | None = None) -> KeyRing:
        """The keys in the Secret of the job's namespace (see :mod:`ascend.kubernetes.keys`)."""
        if request is not None:
            namespace = self.namespace_for(request)
        elif handle is not None:
            namespace = handle.partition("/")[0]
        else:
            raise ValueError("signing_keys needs a request or a handle")
        transport = _transport_errors()
        for attempt in range(CREATE_ATTEMPTS):  # the first request of a call: ride out a blip
            try:
                return self._keys.get(namespace)
            except transport as error:
                if attempt == CREATE_ATTEMPTS - 1:
                    raise self._no_cluster("read the signing key", error) from None
            time.sleep(BACKOFF_FIRST * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def shows_output(self, handle: str) -> bool:
        """Any job's pod log can be followed, an attached job's too."""
        return True

    def logs(self, handle: str) -> str:
        """The pod's log as the cluster still holds it ('' once the pod is gone)."""
        tracked = self._lookup(handle)
        chunks = []
        for pod in self._pods(tracked):
            try:
                response = self._core().read_namespaced_pod_log(
                    pod.metadata.name,
                    tracked.namespace,
                    container=CONTAINER,
                    _preload_content=False,
                )
            except Exception:  # a pod that never started has no log
                continue
            try:
                data = response.data
            except Exception:  # cut off: the connection cannot be reused
                _close(response)
                continue
            response.release_conn()  # read to the end: the connection goes back to the pool
            chunks.append(data.decode("utf-8", errors="replace"))
        return "".join(chunks)

    def release(self, handle: str) -> None:
        """The caller saved logs and result: let the cluster remove the Job soon (TTL), and
        forget the handle (nothing is kept per finished call)."""
        with self._lock:
            tracked = self._tracked.pop(handle, None)
        self._shorten_ttl(tracked or self._lookup(handle))

    def _shorten_ttl(self, tracked: _Tracked) -> None:
        try:
            self._batch().patch_namespaced_job(
                tracked.name,
                tracked.namespace,
                {"spec": {"ttlSecondsAfterFinished": self.settings.ttl_seconds}},
            )
        except Exception:
            pass  # the long unattended TTL still applies

    # -- cancel ------------------------------------------------------------------------------

    def cancel(self, handle: str) -> None:
        """Delete the job's Job, once it is shown to be Ascend's Job of that very job (see
        :meth:`_ours`); a Job that is not there is nothing to cancel."""
        job = self._ours(self._lookup(handle))
        if job is None:
            return
        tracked = self._tracked_for(handle)
        tracked.cancelled = True
        self._delete(tracked, job)

    def _ours(self, tracked: _Tracked) -> Any:
        """The Job ``tracked`` names, read now, or ``None`` when there is none. A Job is
        deleted only when it is the job's own: named ``ascend-<job id>`` (or, for a Job this
        process created, the name it gave), labelled ``app.kubernetes.io/managed-by:
        ascend`` and with that job id; any other raises :class:`PermissionDeniedError` naming
        it and why. A handle read from storage, or a Job someone else made, is never trusted.
        """

        from ascend.errors import InvalidJobIdError, PermissionDeniedError
        from ascend.job_ids import job_id_from_name
        from ascend.kubernetes.manifest import JOB_ID_LABEL, MANAGED_BY, label_value

        where = f"{tracked.namespace}/{tracked.name}"
        fix = (
            "nothing was deleted. Ascend deletes only the Jobs it made, for the job asked; if "
            f"this Job is yours to stop, delete it yourself (kubectl delete job -n "
            f"{tracked.namespace} {tracked.name}), and check who can write the job storage"
        )
        if tracked.request is not None:  # made (or joined) by this process: its name is ours
            job_id = tracked.request.job_id
        else:
            try:
                job_id = job_id_from_name(tracked.name)
            except InvalidJobIdError:
                raise PermissionDeniedError(
                    f"refusing to delete Job {where}: its name is not an ascend Job name "
                    f"({JOB_NAME_PREFIX}<job id>)",
                    fix=fix,
                ) from None
        job = self._read_job(tracked)
        if job is None:
            return None
        labels = dict(getattr(job.metadata, "labels", None) or {})
        expected = {MANAGED_BY: "ascend", JOB_ID_LABEL: label_value(job_id)}
        for key, value in expected.items():
            if labels.get(key) != value:
                found = f"{labels[key]!r}" if key in labels else "missing"
                raise PermissionDeniedError(
                    f"refusing to delete Job {where}: its label {key} is {found}, not "
                    f"{value!r}, so it is not Ascend's Job of job {job_id}",
                    fix=fix,
                )
        return job

    def _delete(self, tracked: _Tracked, job: Any = None) -> None:
        """Delete the Job ``tracked`` names, only once :meth:`_ours` has shown it to be the
        job's own (``job``: already shown). The delete is conditional on the Job's uid, so a
        Job made again under that name since it was checked is not deleted either.

        Without ``job`` (a wait giving up on a job that can never run), a Job that is not the
        job's own is left alone silently: the wait's own error says why the job cannot run."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        from ascend.errors import PermissionDeniedError

        if job is None:
            try:
                job = self._ours(tracked)
            except PermissionDeniedError:
                return
            if job is None:
                return
        uid = getattr(job.metadata, "uid", None)
        options = client.V1DeleteOptions(
            propagation_policy="Background",
            preconditions=client.V1Preconditions(uid=uid) if uid else None,
        )
        try:
            self._request(
                "delete the job",
                tracked.namespace,
                lambda: self._batch().delete_namespaced_job(
                    tracked.name,
                    tracked.namespace,
                    body=options,
                    _request_timeout=LIST_TIMEOUT,
                ),
            )
        except ComputeError as error:
            cause = error.__context__
            if not (isinstance(cause, ApiException) and cause.status == 404):
                raise


class _WatchError(Exception):
    """An ERROR event other than 410 Gone in a watch stream (retried like a dropped stream)."""


@dataclass
class _Body:
    """What ``ApiClient.deserialize`` reads: a response's ``data``."""

    data: str


class _WatchRetryFilter(logging.Filter):
    """Drops urllib3's "Retrying ..." warnings from watcher threads: they retry on their own
    with back-off, and an outage would otherwise print a few lines a second."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not threading.current_thread().name.startswith(WATCH_THREAD):
            return True
        return not record.getMessage().startswith("Retrying")


_retry_filter = _WatchRetryFilter()


def _quiet_watch_retries() -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    if _retry_filter not in logger.filters:
        logger.addFilter(_retry_filter)


class _Contact:
    """Since when each watch of a wait has been failing to reach the cluster, and why."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lost: dict[str, tuple[float, BaseException]] = {}

    def lost(self, kind: str, since: float, failure: BaseException) -> None:
        with self._lock:
            self._lost[kind] = (since, failure)

    def restored(self, kind: str) -> None:
        with self._lock:
            self._lost.pop(kind, None)

    def lost_since(self) -> tuple[float, BaseException] | None:
        """The longest current run of failures: when it began and its latest failure."""
        with self._lock:
            return min(self._lost.values(), key=lambda entry: entry[0], default=None)


class _Streams:
    """The open HTTP responses of one wait, so that the wait can cut them when it returns.

    A thread blocked reading a stream wakes only when its socket is shut; closing the
    response object from another thread is not enough.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[Any] = set()
        self.closed = False

    def add(self, response: Any) -> bool:
        """Hold ``response``; when already closed, shut it at once and return False."""
        with self._lock:
            if not self.closed:
                self._open.add(response)
                return True
        _shut(response)
        _close(response)
        return False

    def discard(self, response: Any) -> None:
        with self._lock:
            self._open.discard(response)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            responses, self._open = list(self._open), set()
        for response in responses:
            _shut(response)


def _shut(response: Any) -> None:
    """Wake the thread reading ``response`` by shutting its socket; that thread closes it."""
    try:
        if hasattr(response, "shutdown"):  # urllib3 >= 2.3
            response.shutdown()
            return
        sock = getattr(getattr(response, "_connection", None), "sock", None)
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except Exception:  # already released or closed: nobody is blocked on it
        pass


def _close(response: Any) -> None:
    """Close a raw response and its connection: a stream left half read cannot be reused."""
    try:
        response.close()
        response.release_conn()
    except Exception:
        pass


def _lines(response: Any) -> Iterator[bytes]:
    """The non-empty lines of a newline-delimited stream, as chunks arrive."""
    pending = b""
    for chunk in response.stream(65536, decode_content=False):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


def _transport_errors() -> tuple[type[BaseException], ...]:
    """What a dropped, refused, reset or cut connection raises through the client (urllib3's
    errors are neither OSError nor ValueError), plus a garbled line and an ERROR event."""
    import http.client

    import urllib3.exceptions

    return (
        OSError,
        ValueError,
        http.client.HTTPException,
        urllib3.exceptions.HTTPError,
        _WatchError,
    )


def _transient(status: int | None) -> bool:
    """An API answer worth retrying: no HTTP answer at all (status 0), throttling, or a server
    error (an API server restarting answers 503 for a while)."""
    return not status or status == 429 or status >= 500


def _image_will_not_come(waiting: Any) -> bool:
    """A pull failure that retrying will not fix: back-off (it failed already), a bad name, or
    a registry that says the image is missing or refused. A first ErrImagePull for another
    reason (a registry hiccup) gets the kubelet's retry."""
    if waiting.reason not in IMAGE_PULL_REASONS:
        return False
    if waiting.reason != "ErrImagePull":
        return True
    message = (waiting.message or "").lower()
    return any(
        word in message
        for word in (
            "not found",
            "manifest unknown",
            "unauthorized",
            "denied",
            "forbidden",
            "invalid",
        )
    )


def _event_time(event: Any) -> str:
    """When an event last happened, as a sortable string (a repeated event keeps its name)."""
    series = getattr(event, "series", None)
    for value in (
        getattr(series, "last_observed_time", None),
        event.last_timestamp,
        event.event_time,
        event.first_timestamp,
        event.metadata.creation_timestamp if event.metadata else None,
    ):
        if value:
            return value.isoformat() if hasattr(value, "isoformat") else str(value)
    return ""


def _scaling_up(events: list[str]) -> bool:
    """Whether the cluster autoscaler said it is adding a node for the pod (and not since
    that it cannot)."""
    verdicts = [e for e in events if " TriggeredScaleUp:" in e or " NotTriggerScaleUp:" in e]
    return bool(verdicts) and " TriggeredScaleUp:" in verdicts[-1]


def _has_condition(pod: Any, kind: str) -> bool:
    return any(c.type == kind and c.status == "True" for c in pod.status.conditions or [])


def _pod_phase(pod: Any) -> tuple[str, str]:
    """Where the pod is on its way to running, for the caller's status line."""
    from ascend import console

    unschedulable = _unschedulable(pod)
    if unschedulable is not None:
        return console.WAITING_FOR_NODE, unschedulable
    if not _has_condition(pod, "PodScheduled"):
        return console.QUEUED, ""
    for status in pod.status.container_statuses or []:
        state = status.state
        if state is not None and (state.running or state.terminated):
            return console.RUNNING, ""
        if state is not None and state.waiting is not None:
            if state.waiting.reason in ("ContainerCreating", *IMAGE_PULL_REASONS):
                reason = state.waiting.reason
                return console.PULLING, "" if reason == "ContainerCreating" else reason
            return console.STARTING, state.waiting.reason or ""
    return console.STARTING, ""


def _unschedulable(pod: Any) -> str | None:
    for condition in pod.status.conditions or []:
        if condition.type == "PodScheduled" and condition.status == "False":
            return str(condition.message or condition.reason or "unschedulable")
    return None


def _exit_code(pod: Any) -> int | None:
    for status in (pod.status.container_statuses or []) if pod is not None else []:
        if status.state and status.state.terminated:
            return int(status.state.terminated.exit_code)
    return None


def _api_error(error: Any, namespace: str, action: str, api_client: Any) -> ComputeError:
    if error.status == 404 and "namespace" in str(error.body or "").lower():
        user = namespace.removeprefix("ascend-users-")
        return ComputeError(
            f"namespace {namespace!r} does not exist, so Ascend cannot {action}",
            fix=f"ask a cluster admin to run: ascend admin add-user {user}",
        )
    if error.status == 403:
        return forbidden_error(api_client, error, namespace, action)
    return ComputeError(f"could not {action}: HTTP {error.status} {error.reason}: {error.body}")
