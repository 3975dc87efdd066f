"""Server-side printing (``meta.k8s.io/v1 Table``) so ``kubectl get`` shows the usual
columns (READY, STATUS, RESTARTS for pods; STATUS, COMPLETIONS, DURATION for jobs...)."""

from __future__ import annotations

import time
from collections.abc import Callable

from ascend.testing.kube.resources import Resource
from ascend.testing.kube.util import Obj, deep, get_condition, parse_time

Column = tuple[str, str, int, Callable[[Obj], object]]  # name, type, priority, cell


def human(seconds: float) -> str:
    """kubectl's short durations: 45s, 3m12s, 2m, 5h, 3d."""
    seconds = max(int(seconds), 0)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def _age(obj: Obj) -> str:
    stamp = deep(obj, "metadata", "creationTimestamp")
    return human(time.time() - parse_time(stamp)) if stamp else "<unknown>"


def _pod_status(pod: Obj) -> str:
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    reason = deep(pod, "status", "reason") or deep(pod, "status", "phase") or "Pending"
    for status in deep(pod, "status", "initContainerStatuses") or []:
        state = status.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason") not in (None, "PodInitializing"):
            return f"Init:{state['waiting']['reason']}"
    for status in deep(pod, "status", "containerStatuses") or []:
        state = status.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            return str(state["waiting"]["reason"])
        if (
            "terminated" in state
            and state["terminated"].get("reason")
            and not deep(pod, "status", "reason")
        ):
            reason = state["terminated"]["reason"]
    return str(reason)


def _pod_ready(pod: Obj) -> str:
    statuses = deep(pod, "status", "containerStatuses") or []
    total = len(deep(pod, "spec", "containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _restarts(pod: Obj) -> int:
    return sum(
        int(s.get("restartCount") or 0) for s in deep(pod, "status", "containerStatuses") or []
    )


def _job_status(job: Obj) -> str:
    for kind, label in (
        ("Failed", "Failed"),
        ("Complete", "Complete"),
        ("FailureTarget", "FailureTarget"),
        ("Suspended", "Suspended"),
    ):
        cond = get_condition(job, kind)
        if cond and cond.get("status") == "True":
            return label
    return "Running"


def _job_completions(job: Obj) -> str:
    completions = deep(job, "spec", "completions")
    succeeded = int(deep(job, "status", "succeeded") or 0)
    if completions is None:
        parallelism = deep(job, "spec", "parallelism") or 1
        return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"
    return f"{succeeded}/{completions}"


def _job_duration(job: Obj) -> str:
    start = deep(job, "status", "startTime")
    if not start:
        return ""
    end = deep(job, "status", "completionTime")
    return human((parse_time(end) if end else time.time()) - parse_time(start))


def _event_object(event: Obj) -> str:
    ref = event.get("involvedObject") or {}
    return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"


def _last_seen(event: Obj) -> str:
    stamp = (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or deep(event, "metadata", "creationTimestamp")
    )
    return human(time.time() - parse_time(stamp)) if stamp else "<unknown>"


_NAME: Column = ("Name", "string", 0, lambda o: o["metadata"]["name"])
_AGE: Column = ("Age", "string", 0, _age)
COLUMNS: dict[str, list[Column]] = {
    "pods": [
        _NAME,
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, _pod_status),
        ("Restarts", "string", 0, _restarts),
        _AGE,
        ("IP", "string", 1, lambda o: deep(o, "status", "podIP") or "<none>"),
        ("Node", "string", 1, lambda o: deep(o, "spec", "nodeName") or "<none>"),
    ],
    "jobs": [
        _NAME,
        ("Status", "string", 0, _job_status),
        ("Completions", "string", 0, _job_completions),
        ("Duration", "string", 0, _job_duration),
        _AGE,
        (
            "Containers",
            "string",
            1,
            lambda o: ",".join(
                c.get("name", "") for c in deep(o, "spec", "template", "spec", "containers") or []
            ),
        ),
        (
            "Images",
            "string",
            1,
            lambda o: ",".join(
                c.get("image", "") for c in deep(o, "spec", "template", "spec", "containers") or []
            ),
        ),
    ],
    "events": [
        ("Last Seen", "string", 0, _last_seen),
        ("Type", "string", 0, lambda o: o.get("type", "")),
        ("Reason", "string", 0, lambda o: o.get("reason", "")),
        ("Object", "string", 0, _event_object),
        ("Message", "string", 0, lambda o: o.get("message", "")),
    ],
    "namespaces": [
        _NAME,
        ("Status", "string", 0, lambda o: deep(o, "status", "phase") or ""),
        _AGE,
    ],
    "nodes": [
        _NAME,
        ("Status", "string", 0, lambda o: "Ready"),
        ("Roles", "string", 0, lambda o: "<none>"),
        _AGE,
        ("Version", "string", 0, lambda o: deep(o, "status", "nodeInfo", "kubeletVersion") or ""),
    ],
    "secrets": [
        _NAME,
        ("Type", "string", 0, lambda o: o.get("type", "")),
        ("Data", "integer", 0, lambda o: len(o.get("data") or {})),
        _AGE,
    ],
    "configmaps": [
        _NAME,
        ("Data", "integer", 0, lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
        _AGE,
    ],
}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def table(
    resource: Resource, items: list[Obj], resource_version: int | str, include: str = "Metadata"
) -> Obj:
    columns = COLUMNS.get(resource.plural, [_NAME, _AGE])
    rows = []
    for item in items:
        row: Obj = {"cells": [cell(item) for _, _, _, cell in columns]}
        if include == "Object":
            row["object"] = item
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": item["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(resource_version)},
        "columnDefinitions": [
            {
                "name": name,
                "type": type_,
                "format": "name" if name == "Name" else "",
                "description": name,
                "priority": priority,
            }
            for name, type_, priority, _ in columns
        ],
        "rows": rows,
    }
