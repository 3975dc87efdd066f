"""Defaulting on create and update, as the API server's registry strategies do: pod and Job
spec defaults, the Job selector and pod-template labels, Secret ``stringData``, namespace
status. Also which parts of an update a client may change (spec versus status).
"""

from __future__ import annotations

import base64
from typing import Any

from ascend.testing.kube.errors import invalid
from ascend.testing.kube.util import Obj, deep

_POD_TOLERATIONS = [
    {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
    {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
]


def _image_pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    if "serviceAccountName" in spec or "serviceAccount" in spec:
        account = spec.get("serviceAccountName") or spec.get("serviceAccount")
        spec["serviceAccountName"] = spec["serviceAccount"] = account
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault(
                "imagePullPolicy", _image_pull_policy(str(container.get("image", "")))
            )
            resources = container.setdefault("resources", {})
            limits = resources.get("limits") or {}
            if limits:
                requests = resources.setdefault("requests", {})
                for name, value in limits.items():
                    requests.setdefault(name, value)


def pod(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    pod_spec(spec)
    # defaulted on Pods only, not in a Job's pod template (as the real API server does)
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    tolerations = spec.setdefault("tolerations", [])
    for default in _POD_TOLERATIONS:
        if not any(t.get("key") == default["key"] for t in tolerations):
            tolerations.append(dict(default))
    obj["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}


def qos_class(spec: Obj) -> str:
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    requests_any = limits_any = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        requests_any = requests_any or bool(requests) or bool(limits)
        limits_any = limits_any or bool(limits)
        for name in ("cpu", "memory"):
            if name not in limits or str(requests.get(name, limits[name])) != str(limits[name]):
                guaranteed = False
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed and limits_any else "Burstable"


def job(obj: Obj) -> None:
    """Job defaults that need the uid: call when the uid is known (the store's prepare step)."""
    spec = obj.setdefault("spec", {})
    meta = obj["metadata"]
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("manualSelector", False)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault(
        "podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"
    )
    for rule in deep(spec, "podFailurePolicy", "rules") or []:
        for pattern in rule.get("onPodConditions") or []:
            pattern.setdefault("status", "True")
    template = spec.setdefault("template", {})
    template_meta = template.setdefault("metadata", {})
    labels = template_meta.setdefault("labels", {})
    uid, name = meta["uid"], meta["name"]
    if not spec.get("manualSelector"):
        labels.update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
        )
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    pod_spec(template.setdefault("spec", {}))
    if not meta.get("labels"):
        meta["labels"] = dict(labels)
    obj.setdefault("status", {})


def namespace(obj: Obj) -> None:
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj["status"] = {"phase": "Active"}
    labels = obj["metadata"].setdefault("labels", {})
    labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]


def secret(obj: Obj) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None) or {}
    if string_data:
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def on_create(plural: str, obj: Obj) -> None:
    """Defaults that need no uid (the rest happen in :func:`prepare`)."""
    if plural == "pods":
        pod(obj)
    elif plural == "namespaces":
        namespace(obj)
    elif plural == "secrets":
        secret(obj)
    elif plural == "events":
        obj.setdefault("count", 1)


def prepare(plural: str, obj: Obj) -> None:
    if plural == "jobs":
        job(obj)


def on_update(plural: str, old: Obj, new: Obj, subresource: str) -> Obj:
    """What an update may change: ``/status`` takes only the status; the main resource keeps
    the stored status for kinds with a status subresource (pods, jobs, namespaces...)."""
    if plural == "secrets":
        secret(new)
    if subresource == "status":
        result = dict(old)
        result["status"] = new.get("status", {})
        return result
    if plural in ("pods", "jobs", "namespaces", "nodes", "resourcequotas") and "status" in old:
        new["status"] = old["status"]
    if plural == "pods":
        pod_spec(new.setdefault("spec", {}))
    if plural == "jobs":
        _keep_job_invariants(old, new)
    return new


def _keep_job_invariants(old: Obj, new: Obj) -> None:
    """Fill what a partial update left out; refuse changes to immutable fields (422)."""
    spec: Any = new.setdefault("spec", {})
    if isinstance(spec.get("template"), dict):
        pod_spec(spec["template"].setdefault("spec", {}))
    for field in ("selector", "template", "completionMode", "completions", "podFailurePolicy"):
        if field in old.get("spec", {}) and field not in spec:
            spec[field] = old["spec"][field]
    for field in ("selector", "template", "completionMode"):
        if spec.get(field) != old.get("spec", {}).get(field):
            raise invalid(
                "Job",
                "batch",
                old["metadata"]["name"],
                [("FieldValueInvalid", f"spec.{field}", "Invalid value: field is immutable")],
            )
