"""The Job controller (batch/v1 semantics): creates pods from the template (``parallelism``,
``completions``, ``completionMode: Indexed``), counts finished pods once, applies
``podFailurePolicy`` (FailJob, Ignore, Count on exit codes and pod conditions),
``backoffLimit`` (with a short exponential delay between retries), ``activeDeadlineSeconds``,
``suspend`` and ``ttlSecondsAfterFinished``, and reports status, conditions and events.

Failure, as in Kubernetes 1.31+, first sets ``FailureTarget`` and deletes the running pods;
``Failed`` follows once no pod is left running. The real controller's tracking finalizer
(``batch.kubernetes.io/job-tracking``) makes it see every pod's last state, even of a pod the
kubelet deleted at once (an eviction); here :meth:`JobController.departed` hands it that last
state from the deletion. Only a pod deleted before it finished counts as a plain failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ascend.testing.kube import defaults
from ascend.testing.kube.errors import ApiError
from ascend.testing.kube.events import EventRecorder
from ascend.testing.kube.gc import GarbageCollector
from ascend.testing.kube.store import Store
from ascend.testing.kube.util import (
    Obj,
    clone,
    condition,
    deep,
    get_condition,
    now,
    parse_time,
    set_condition,
)

COMPONENT = "job-controller"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
TERMINAL = ("Succeeded", "Failed")


@dataclass
class Tracking:
    """What the controller remembers about one Job (the real one keeps it in finalizers)."""

    counted: dict[str, str] = field(default_factory=dict)  # pod uid -> succeeded|failed|ignored
    completed_indexes: set[int] = field(default_factory=set)
    active: dict[str, tuple[str, int | None]] = field(default_factory=dict)  # uid -> name, index
    last_failure: float = 0.0
    failjob_message: str = ""
    reported_failure: bool = False


def _index(pod: Obj) -> int | None:
    value = (pod["metadata"].get("annotations") or {}).get(INDEX_KEY)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _compress(indexes: set[int]) -> str:
    """``0-2,5``: the completedIndexes format."""
    parts, ordered = [], sorted(indexes)
    start = prev = None
    for value in [*ordered, None]:
        if start is None:
            start = prev = value
        elif value is not None and prev is not None and value == prev + 1:
            prev = value
        else:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = value
    return ",".join(parts)


def match_failure_policy(job: Obj, pod: Obj) -> tuple[str, str] | None:
    """(action, message) of the first podFailurePolicy rule matching a failed pod."""
    meta = pod["metadata"]
    where = f"{meta['namespace']}/{meta['name']}"
    for number, rule in enumerate(deep(job, "spec", "podFailurePolicy", "rules") or []):
        action = rule.get("action", "")
        exit_rule = rule.get("onExitCodes")
        if exit_rule:
            for status in deep(pod, "status", "containerStatuses") or []:
                if exit_rule.get("containerName") not in (None, status.get("name")):
                    continue
                code = deep(status, "state", "terminated", "exitCode")
                if code is None or code == 0:
                    continue
                values = exit_rule.get("values") or []
                inside = code in values
                if inside == (exit_rule.get("operator", "In") == "In"):
                    return action, (
                        f"Container {status.get('name')} for pod {where} failed with exit code "
                        f"{code} matching {action} rule at index {number}"
                    )
        for pattern in rule.get("onPodConditions") or []:
            for cond in deep(pod, "status", "conditions") or []:
                if cond.get("type") == pattern.get("type") and cond.get("status") == pattern.get(
                    "status", "True"
                ):
                    return action, (
                        f"Pod {where} has condition {pattern.get('type')} matching {action} rule at index {number}"
                    )
    return None


class JobController:
    def __init__(
        self,
        store: Store,
        recorder: EventRecorder,
        gc: GarbageCollector,
        requeue: Callable[[tuple[str, ...], float], None],
        create_pod: Callable[[Obj], Obj],
    ) -> None:
        self.store = store
        self.recorder = recorder
        self.gc = gc
        self.requeue = requeue
        self.create_pod = create_pod
        self.backoff = 0.2  # seconds before the first retry; doubles per failure (real: 10 s)
        self.max_backoff = 5.0
        self._tracking: dict[str, Tracking] = {}
        self._lock = threading.Lock()
        self._departed: dict[str, list[Obj]] = {}  # job uid -> last states of deleted pods

    def forget(self, uid: str) -> None:
        self._tracking.pop(uid, None)
        with self._lock:
            self._departed.pop(uid, None)

    def departed(self, job_uid: str, pod: Obj) -> None:
        """A pod of the Job was deleted: keep its last state to count (called by the store's
        writers, before the Job is reconciled)."""
        with self._lock:
            self._departed.setdefault(job_uid, []).append(pod)

    def reconcile(self, namespace: str, name: str) -> None:
        job = self.store.try_get("jobs", namespace, name)
        if job is None:
            return
        meta = job["metadata"]
        uid = meta["uid"]
        track = self._tracking.setdefault(uid, Tracking())
        pods, _ = self.store.list(
            "pods",
            namespace,
            lambda p: any(
                r.get("uid") == uid and r.get("controller")
                for r in p["metadata"].get("ownerReferences") or []
            ),
        )
        with self._lock:
            departed = self._departed.pop(uid, [])
        self._count(job, pods + departed, track, {p["metadata"]["uid"] for p in pods})
        spec = job["spec"]
        running = [p for p in pods if deep(p, "status", "phase") not in TERMINAL]
        active = [p for p in running if not p["metadata"].get("deletionTimestamp")]
        terminating = [p for p in running if p["metadata"].get("deletionTimestamp")]
        status = clone(job.get("status") or {})
        if self._finished(job):  # keep counting pods that end after the verdict
            self._write_status(job, status, active, terminating, track)
            return
        if meta.get("deletionTimestamp"):
            return
        conditions: list[Obj] = status.setdefault("conditions", [])
        suspended = bool(spec.get("suspend"))
        if not suspended and not status.get("startTime"):
            status["startTime"] = now()
        failure = self._failure(job, status, track, running)
        if failure is not None:
            reason, message = failure
            if set_condition(
                conditions, condition("FailureTarget", "True", reason, message, probe=True)
            ):
                self.recorder.record(job, "Warning", reason, message, COMPONENT)
            self._delete_pods(job, active, track)
            if not running:
                set_condition(conditions, condition("Failed", "True", reason, message, probe=True))
        elif self._succeeded(job, track, active):
            self._delete_pods(job, active, track)
            reached = ("CompletionsReached", "Reached expected number of succeeded pods")
            # as in Kubernetes 1.31+: SuccessCriteriaMet first, then Complete, same reason
            set_condition(conditions, condition("SuccessCriteriaMet", "True", *reached, probe=True))
            set_condition(conditions, condition("Complete", "True", *reached, probe=True))
            status["completionTime"] = now()
            self.recorder.record(job, "Normal", "Completed", "Job completed", COMPONENT)
        elif suspended:
            self._delete_pods(job, active, track)
            if set_condition(
                conditions,
                condition("Suspended", "True", "JobSuspended", "Job suspended", probe=True),
            ):
                self.recorder.record(job, "Normal", "Suspended", "Job suspended", COMPONENT)
            status.pop("startTime", None)
        else:
            if (get_condition(job, "Suspended") or {}).get("status") == "True":
                set_condition(
                    conditions,
                    condition("Suspended", "False", "JobResumed", "Job resumed", probe=True),
                )
                self.recorder.record(job, "Normal", "Resumed", "Job resumed", COMPONENT)
            waiting_for_terminating = spec.get("podReplacementPolicy") == "Failed" and terminating
            if not waiting_for_terminating:
                active = active + self._create_pods(job, active, track)
            self._arm_deadline(job, status)
        self._write_status(job, status, active, terminating, track)

    # -- counting ------------------------------------------------------------------------------

    def _count(self, job: Obj, pods: list[Obj], track: Tracking, present: set[str]) -> None:
        """Count each finished pod once; ``pods`` includes the last states of deleted ones,
        ``present`` names those that still exist."""
        for pod in pods:
            pod_uid = pod["metadata"]["uid"]
            phase = deep(pod, "status", "phase")
            if pod_uid in track.counted:
                continue
            if phase == "Succeeded":
                track.counted[pod_uid] = "succeeded"
                index = _index(pod)
                if index is not None:
                    track.completed_indexes.add(index)
            elif phase == "Failed":
                self._count_failure(job, pod, track)
            elif pod_uid in present:
                track.active[pod_uid] = (pod["metadata"]["name"], _index(pod))
                continue
            else:  # deleted before it finished
                track.counted[pod_uid] = "failed"
                track.last_failure = time.monotonic()
            track.active.pop(pod_uid, None)
        for pod_uid, _ in list(track.active.items()):
            if pod_uid not in present:  # vanished before finishing
                track.active.pop(pod_uid)
                if pod_uid not in track.counted:
                    track.counted[pod_uid] = "failed"
                    track.last_failure = time.monotonic()

    def _count_failure(self, job: Obj, pod: Obj, track: Tracking) -> None:
        pod_uid = pod["metadata"]["uid"]
        verdict = "failed"
        matched = match_failure_policy(job, pod)
        if matched is not None:
            action, message = matched
            if action == "Ignore":
                verdict = "ignored"
            elif action == "FailJob":
                track.failjob_message = track.failjob_message or message
        track.counted[pod_uid] = verdict
        if verdict == "failed":
            track.last_failure = time.monotonic()

    @staticmethod
    def _finished(job: Obj) -> bool:
        return any(
            (c := get_condition(job, t)) is not None and c.get("status") == "True"
            for t in ("Complete", "Failed")
        )

    def _failed_count(self, track: Tracking) -> int:
        return sum(1 for v in track.counted.values() if v == "failed")

    def _failure(
        self, job: Obj, status: Obj, track: Tracking, running: list[Obj]
    ) -> tuple[str, str] | None:
        target = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "FailureTarget"), None
        )
        if target is not None:
            return str(target.get("reason")), str(target.get("message"))
        spec = job["spec"]
        if track.failjob_message:
            return "PodFailurePolicy", track.failjob_message
        failures = self._failed_count(track)
        if deep(spec, "template", "spec", "restartPolicy") == "OnFailure":
            failures += sum(  # with OnFailure, container restarts count towards the limit
                int(s.get("restartCount") or 0)
                for pod in running
                for s in deep(pod, "status", "containerStatuses") or []
            )
        if failures > int(spec.get("backoffLimit", 6)):
            return "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        deadline = spec.get("activeDeadlineSeconds")
        started = status.get("startTime")
        if deadline and started and time.time() >= parse_time(started) + float(deadline):
            return "DeadlineExceeded", "Job was active longer than specified deadline"
        return None

    def _succeeded(self, job: Obj, track: Tracking, active: list[Obj]) -> bool:
        spec = job["spec"]
        completions = spec.get("completions")
        if spec.get("completionMode") == "Indexed":
            return completions is not None and track.completed_indexes >= set(
                range(int(completions))
            )
        done = sum(1 for v in track.counted.values() if v == "succeeded")
        if completions is None:  # work queue: one success and nothing left running
            return done > 0 and not active
        return done >= int(completions)

    # -- pods ----------------------------------------------------------------------------------

    def _delete_pods(self, job: Obj, pods: list[Obj], track: Tracking) -> None:
        for pod in pods:
            meta = pod["metadata"]
            try:
                self.gc.delete(
                    "pods", meta["namespace"], meta["name"], "Background", uid=meta["uid"]
                )
            except ApiError:
                continue
            self.recorder.record(
                job, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}", COMPONENT
            )

    def _create_pods(self, job: Obj, active: list[Obj], track: Tracking) -> list[Obj]:
        spec = job["spec"]
        parallelism = int(spec.get("parallelism", 1))
        completions = spec.get("completions")
        delay = 0.0
        failures = self._failed_count(track)
        if failures:
            delay = min(self.backoff * 2 ** (failures - 1), self.max_backoff)
            wait = track.last_failure + delay - time.monotonic()
            if wait > 0:
                self.requeue(("job", job["metadata"]["namespace"], job["metadata"]["name"]), wait)
                return []
        indexes: list[int | None]
        if spec.get("completionMode") == "Indexed":
            busy = {_index(p) for p in active}
            free = [
                i
                for i in range(int(completions or 0))
                if i not in track.completed_indexes and i not in busy
            ]
            indexes = list(free[: max(parallelism - len(active), 0)])
        else:
            done = sum(1 for v in track.counted.values() if v == "succeeded")
            if completions is None:
                wanted = 0 if done else parallelism - len(active)
            else:
                wanted = min(parallelism, int(completions) - done) - len(active)
            indexes = [None] * max(wanted, 0)
        created = []
        for index in indexes:
            pod = self._pod_for(job, index)
            try:
                made = self.create_pod(pod)
            except ApiError as error:
                self.recorder.record(
                    job, "Warning", "FailedCreate", f"Error creating: {error.message}", COMPONENT
                )
                continue
            track.active[made["metadata"]["uid"]] = (made["metadata"]["name"], index)
            created.append(made)
            self.recorder.record(
                job,
                "Normal",
                "SuccessfulCreate",
                f"Created pod: {made['metadata']['name']}",
                COMPONENT,
            )
        return created

    def _pod_for(self, job: Obj, index: int | None) -> Obj:
        meta = job["metadata"]
        template = clone(job["spec"].get("template") or {})
        template_meta = template.get("metadata") or {}
        labels = dict(template_meta.get("labels") or {})
        annotations = dict(template_meta.get("annotations") or {})
        spec = template.get("spec") or {}
        prefix = f"{meta['name']}-"
        if index is not None:
            prefix = f"{meta['name']}-{index}-"
            labels[INDEX_KEY] = str(index)
            annotations[INDEX_KEY] = str(index)
            spec.setdefault("hostname", f"{meta['name']}-{index}")
            for field_name in ("initContainers", "containers"):
                for container in spec.get(field_name) or []:
                    env = container.setdefault("env", [])
                    if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in env):
                        env.append(
                            {
                                "name": "JOB_COMPLETION_INDEX",
                                "valueFrom": {
                                    "fieldRef": {
                                        "apiVersion": "v1",
                                        "fieldPath": f"metadata.annotations['{INDEX_KEY}']",
                                    }
                                },
                            }
                        )
        pod_meta: Obj = {
            "generateName": prefix,
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
        if annotations:
            pod_meta["annotations"] = annotations
        pod: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}
        defaults.pod(pod)
        return pod

    # -- time ----------------------------------------------------------------------------------

    def _arm_deadline(self, job: Obj, status: Obj) -> None:
        deadline = job["spec"].get("activeDeadlineSeconds")
        started = status.get("startTime")
        if deadline and started:
            wait = parse_time(started) + float(deadline) - time.time()
            self.requeue(
                ("job", job["metadata"]["namespace"], job["metadata"]["name"]), max(wait, 0) + 0.05
            )

    def _expire(self, job: Obj) -> None:
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        finished = next(
            (
                c.get("lastTransitionTime")
                for c in deep(job, "status", "conditions") or []
                if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            ),
            None,
        )
        if finished is None:
            return
        meta = job["metadata"]
        # conditions have whole seconds; count from the wall clock of the finish second
        wait = parse_time(finished) + float(ttl) - time.time()
        if wait > 0:
            self.requeue(("job", meta["namespace"], meta["name"]), wait + 0.01)
            return
        try:
            self.gc.delete("jobs", meta["namespace"], meta["name"], "Background", uid=meta["uid"])
        except ApiError:
            pass

    # -- status --------------------------------------------------------------------------------

    def _write_status(
        self, job: Obj, status: Obj, active: list[Obj], terminating: list[Obj], track: Tracking
    ) -> None:
        spec = job["spec"]
        status["active"] = len(active)
        status["ready"] = sum(
            1
            for p in active
            if (c := get_condition(p, "Ready")) is not None and c.get("status") == "True"
        )
        status["terminating"] = len(terminating)
        status["succeeded"] = sum(1 for v in track.counted.values() if v == "succeeded")
        status["failed"] = self._failed_count(track)
        status["uncountedTerminatedPods"] = {}
        if spec.get("completionMode") == "Indexed":
            status["succeeded"] = len(track.completed_indexes)
            if track.completed_indexes:
                status["completedIndexes"] = _compress(track.completed_indexes)
        for field_name in ("active", "succeeded", "failed"):  # ready, terminating: always
            if not status[field_name]:
                status.pop(field_name)
        if not status.get("conditions"):
            status.pop("conditions", None)
        meta = job["metadata"]

        def write(current: Obj) -> None:
            if current["metadata"]["uid"] == meta["uid"]:
                current["status"] = status

        written = self.store.mutate("jobs", meta["namespace"], meta["name"], write)
        if written is not None and self._finished(written):
            self._expire(written)
