"""Pod subresources served from the kubelet's side: ``log`` (with ``follow``) and ``eviction``."""

from __future__ import annotations

import time
from collections.abc import Iterator

from ascend.testing.kube import errors
from ascend.testing.kube.gc import GarbageCollector
from ascend.testing.kube.kubelet import Kubelet
from ascend.testing.kube.messages import Request, Response, Stream, json_response
from ascend.testing.kube.process import render
from ascend.testing.kube.store import ObjectStore, Store
from ascend.testing.kube.util import Obj, condition, deep, parse_bool, parse_time, set_condition


def evict(
    store: Store, gc: GarbageCollector, request: Request, namespace: str, name: str
) -> Response:
    """policy/v1 Eviction (no disruption budgets), as the real API server does it: the pod
    gets the DisruptionTarget condition and is deleted with its grace period (the eviction's
    ``deleteOptions`` may shorten it); the kubelet then stops it and reports it Failed."""
    body = request.json()
    if not isinstance(body, dict) or body.get("kind", "Eviction") != "Eviction":
        raise errors.bad_request("the body must be a policy/v1 Eviction")
    pod = store.get("pods", namespace, name)
    if deep(pod, "status", "phase") in ("Succeeded", "Failed"):
        gc.delete("pods", namespace, name, None, 0)
        return json_response(errors.success_status(code=201), 201)

    def disrupt(current: Obj) -> None:
        status = current.setdefault("status", {})
        set_condition(
            status.setdefault("conditions", []),
            condition(
                "DisruptionTarget",
                "True",
                "EvictionByEvictionAPI",
                "Eviction API: evicting",
                probe=True,
            ),
        )

    store.mutate("pods", namespace, name, disrupt)
    grace = deep(body, "deleteOptions", "gracePeriodSeconds")
    gc.delete("pods", namespace, name, None, None if grace is None else int(grace))
    return json_response(errors.success_status(code=201), 201)


def log(
    store: ObjectStore, kubelet: Kubelet, request: Request, namespace: str, name: str, poll: float
) -> Response | Stream:
    """``pods/{name}/log``: the container's output, or a stream of it with ``follow``."""
    pod = store.get("pods", namespace, name)
    names = [c["name"] for c in deep(pod, "spec", "containers") or []]
    init_names = [c["name"] for c in deep(pod, "spec", "initContainers") or []]
    wanted = request.param("container")
    if wanted is None:
        if len(names) != 1:
            raise errors.bad_request(
                f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
                + (
                    f" or one of the init containers: [{' '.join(init_names)}]"
                    if init_names
                    else ""
                )
            )
        wanted = names[0]
    if wanted not in names + init_names:
        raise errors.bad_request(f"container {wanted} is not valid for pod {name}")
    if not deep(pod, "spec", "nodeName"):
        return Response(200, b"", "text/plain")
    worker = kubelet.worker_for(pod)
    container = worker.container(wanted) if worker is not None else None
    if worker is not None and wanted in init_names:
        container = next((c for c in worker.containers if c.name == wanted), None)
    if container is None or (
        container.process is None
        and container.previous_log is None
        and "terminated" not in container.state
    ):
        waiting = (
            deep(container.state if container else {}, "waiting", "reason") or "ContainerCreating"
        )
        if waiting in ("ErrImagePull", "ImagePullBackOff"):
            waiting = "trying and failing to pull image"
        raise errors.bad_request(
            f'container "{wanted}" in pod "{name}" is waiting to start: {waiting}'
        )
    log = container.log
    if parse_bool(request.param("previous")):
        if container.previous_log is None:
            raise errors.bad_request(
                f'previous terminated container "{wanted}" in pod "{name}" not found'
            )
        log = container.previous_log
    timestamps = parse_bool(request.param("timestamps"))
    everything = log.entries()
    entries = _select(everything, request)
    limit = int(request.param("limitBytes") or 0)
    if not parse_bool(request.param("follow")):
        data = render(entries, timestamps)
        return Response(200, data[:limit] if limit else data, "text/plain")

    def follow() -> Iterator[bytes]:
        index = len(everything)
        sent = 0
        first = render(entries, timestamps)
        if first:
            sent += len(first)
            yield first
        while not store.closed:
            new, closed = log.wait_after(index, poll)
            index += len(new)
            data = render(new, timestamps)
            if data:
                sent += len(data)
                yield data
            if closed or (limit and sent >= limit):
                return
            if not new:
                current = store.try_get("pods", namespace, name)
                if current is None or current["metadata"]["uid"] != pod["metadata"]["uid"]:
                    return
                yield b""

    return Stream(follow(), "text/plain")


def _select(entries: list[tuple[float, bytes]], request: Request) -> list[tuple[float, bytes]]:
    since_seconds = request.param("sinceSeconds")
    since_time = request.param("sinceTime")
    if since_seconds:
        cut = time.time() - float(since_seconds)
        entries = [e for e in entries if e[0] >= cut]
    elif since_time:
        cut = parse_time(since_time)
        entries = [e for e in entries if e[0] >= cut]
    tail = request.param("tailLines")
    if tail is not None and int(tail) >= 0:
        entries = entries[len(entries) - int(tail) :] if int(tail) else []
    return entries
