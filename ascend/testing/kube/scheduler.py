"""The scheduler: binds pending pods to the node when they fit, as kube-scheduler's default
filters do (in its order: unschedulable node, taints, node selector and affinity, then
resources), and explains a misfit with its wording:
``0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: ...``.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from ascend.testing.kube.events import EventRecorder
from ascend.testing.kube.selectors import Requirement
from ascend.testing.kube.store import Store
from ascend.testing.kube.util import Obj, condition, deep, get_condition, quantity, set_condition

TERMINAL = ("Succeeded", "Failed")
_NOT_HELPFUL = "Preemption is not helpful for scheduling."
_NO_VICTIMS = "No preemption victims found for incoming pod."


def pod_requests(spec: Obj) -> dict[str, Decimal]:
    """What a pod asks for: the sum over its containers, or the largest init container."""
    total: dict[str, Decimal] = {}
    for container in spec.get("containers") or []:
        for name, value in _requests(container).items():
            total[name] = total.get(name, Decimal(0)) + value
    for container in spec.get("initContainers") or []:
        for name, value in _requests(container).items():
            total[name] = max(total.get(name, Decimal(0)), value)
    return total


def _requests(container: Obj) -> dict[str, Decimal]:
    resources = container.get("resources") or {}
    merged = dict(resources.get("limits") or {})
    merged.update(resources.get("requests") or {})
    return {name: quantity(value) for name, value in merged.items()}


def _tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        operator = toleration.get("operator") or "Equal"
        key = toleration.get("key") or ""
        if not key and operator == "Exists":
            return True
        if key != taint.get("key"):
            continue
        if operator == "Exists" or (toleration.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _term_matches(term: Obj, node: Obj) -> bool:
    labels = deep(node, "metadata", "labels") or {}
    ops = {
        "In": "in",
        "NotIn": "notin",
        "Exists": "exists",
        "DoesNotExist": "!exists",
        "Gt": "gt",
        "Lt": "lt",
    }
    for expression in term.get("matchExpressions") or []:
        op = ops.get(expression.get("operator", ""))
        if op is None or not Requirement(
            expression.get("key", ""), op, tuple(expression.get("values") or ())
        ).matches(labels):
            return False
    for expression in term.get("matchFields") or []:
        name = node["metadata"]["name"]
        fields = {"metadata.name": name}
        op = ops.get(expression.get("operator", ""))
        if op is None or not Requirement(
            expression.get("key", ""), op, tuple(expression.get("values") or ())
        ).matches(fields):
            return False
    return True


def misfit(pod: Obj, node: Obj, used: dict[str, Decimal], pod_count: int) -> tuple[str, str] | None:
    """Why ``pod`` cannot go on ``node`` as (reason, preemption hint), or None when it fits."""
    spec = pod.get("spec") or {}
    if deep(node, "spec", "unschedulable"):
        return "1 node(s) were unschedulable", _NOT_HELPFUL
    for taint in deep(node, "spec", "taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(
            spec.get("tolerations") or [], taint
        ):
            return (
                f"1 node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}",
                _NOT_HELPFUL,
            )
    labels = deep(node, "metadata", "labels") or {}
    selector_ok = all(labels.get(k) == v for k, v in (spec.get("nodeSelector") or {}).items())
    terms = deep(
        spec,
        "affinity",
        "nodeAffinity",
        "requiredDuringSchedulingIgnoredDuringExecution",
        "nodeSelectorTerms",
    )
    if terms is not None and not any(_term_matches(term, node) for term in terms):
        selector_ok = False
    if not selector_ok:
        return "1 node(s) didn't match Pod's node affinity/selector", _NOT_HELPFUL
    allocatable = deep(node, "status", "allocatable") or {}
    short = []
    if pod_count + 1 > int(quantity(allocatable.get("pods", "110"))):
        short.append("1 Too many pods")
    for name, wanted in sorted(pod_requests(spec).items()):
        if wanted <= 0:
            continue
        if wanted + used.get(name, Decimal(0)) > quantity(allocatable.get(name, "0")):
            short.append(f"1 Insufficient {name}")
    if short:
        return ", ".join(short), _NO_VICTIMS
    return None


class Scheduler:
    def __init__(self, store: Store, recorder: EventRecorder) -> None:
        self.store = store
        self.recorder = recorder

    def schedule(self) -> None:
        """One pass: bind every pending pod that fits, in creation order."""
        nodes, _ = self.store.list("nodes")
        pods, _ = self.store.list("pods")
        used: dict[str, dict[str, Decimal]] = {n["metadata"]["name"]: {} for n in nodes}
        counts: Counter[str] = Counter()
        pending = []
        for pod in pods:
            node_name = deep(pod, "spec", "nodeName")
            phase = deep(pod, "status", "phase")
            if node_name:
                if phase not in TERMINAL and node_name in used:
                    counts[node_name] += 1
                    for name, value in pod_requests(pod["spec"]).items():
                        used[node_name][name] = used[node_name].get(name, Decimal(0)) + value
            elif (
                phase not in TERMINAL
                and not pod["metadata"].get("deletionTimestamp")
                and deep(pod, "spec", "schedulerName") in (None, "default-scheduler")
            ):
                pending.append(pod)
        pending.sort(
            key=lambda p: (
                -int(deep(p, "spec", "priority") or 0),
                p["metadata"]["creationTimestamp"],
                int(p["metadata"]["resourceVersion"]),
            )
        )
        for pod in pending:
            reasons: list[tuple[str, str]] = []
            for node in nodes:
                name = node["metadata"]["name"]
                why = misfit(pod, node, used[name], counts[name])
                if why is None:
                    if self._bind(pod, node):
                        counts[name] += 1
                        for resource, value in pod_requests(pod["spec"]).items():
                            used[name][resource] = used[name].get(resource, Decimal(0)) + value
                    break
                reasons.append(why)
            else:
                self._unschedulable(pod, reasons, len(nodes))

    def _bind(self, pod: Obj, node: Obj) -> bool:
        meta = pod["metadata"]
        node_name = node["metadata"]["name"]

        def bind(current: Obj) -> None:
            if current["spec"].get("nodeName") or current["metadata"].get("deletionTimestamp"):
                return
            current["spec"]["nodeName"] = node_name
            status = current.setdefault("status", {})
            set_condition(
                status.setdefault("conditions", []), condition("PodScheduled", "True", probe=True)
            )

        bound = self.store.mutate("pods", meta["namespace"], meta["name"], bind)
        if bound is None or bound["spec"].get("nodeName") != node_name:
            return False
        self.recorder.record(
            bound,
            "Normal",
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {node_name}",
            "default-scheduler",
        )
        return True

    def _unschedulable(self, pod: Obj, reasons: list[tuple[str, str]], node_count: int) -> None:
        if reasons:
            counted = ", ".join(sorted(r for r, _ in reasons))
            hints = ", ".join(sorted({f"1 {h}" for _, h in reasons}))
            message = (
                f"0/{node_count} nodes are available: {counted}. preemption: 0/{node_count} nodes "
                f"are available: {hints}"
            )
        else:
            message = "no nodes available to schedule pods"
        current = get_condition(pod, "PodScheduled")
        if (
            current
            and current.get("reason") == "Unschedulable"
            and current.get("message") == message
        ):
            return
        meta = pod["metadata"]

        def mark(obj: Obj) -> None:
            status = obj.setdefault("status", {})
            set_condition(
                status.setdefault("conditions", []),
                condition("PodScheduled", "False", "Unschedulable", message, probe=True),
            )

        if self.store.mutate("pods", meta["namespace"], meta["name"], mark) is not None:
            self.recorder.record(pod, "Warning", "FailedScheduling", message, "default-scheduler")
