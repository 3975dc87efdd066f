"""Fail fast when nothing can ever fit: can any node of the cluster ever hold a job's pod?

A pod waits for a node while one may come free or be added. A request larger than every node's
*allocatable* resources (what the kubelet offers pods, not what is free now: a busy node frees
up later) can never be scheduled, and waiting ``kubernetes.pending_timeout`` for that helps
nobody. :func:`check_fits` refuses such a request with :class:`UnschedulableError` before
anything is uploaded, naming the largest node and what it offers.

It judges only when it can be sure; otherwise the call proceeds, and the scheduler and
``pending_timeout`` decide:

- the nodes cannot be listed (403: the user was set up before ``ascend admin add-user`` granted
  read on nodes; or any API or transport error);
- no node carries the pod's node selector (a pool scaled to zero may grow), or every node that
  does is cordoned or tainted against the pod (nodes get replaced);
- some matching node's allocatable holds everything the pod requests (cpu, memory, GPUs...).

Nodes count as kube-scheduler's filters count them: a cordoned node (``spec.unschedulable``)
and a node with a ``NoSchedule`` or ``NoExecute`` taint the pod does not tolerate cannot hold
it. Required node affinity is not evaluated: the nodes it would rule out are still counted,
which can only make the check more lenient, never refuse a pod that could run.

Nodes are read with one LIST narrowed by the node selector, kept :data:`NODES_TTL` seconds by
a :class:`NodeLister`, so a burst of calls costs one request.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ascend.errors import UnschedulableError
from ascend.kubernetes.manifest import GPU_RESOURCE
from ascend.quantities import parse_quantity

if TYPE_CHECKING:
    from ascend.compute import JobRequest

NODES_TTL = 30.0  # seconds a node listing is reused
LIST_TIMEOUT = (5.0, 10.0)  # connect and read seconds of the node LIST
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"  # what a cordon amounts to
REFUSING_EFFECTS = ("NoSchedule", "NoExecute")
REASON = "TooLargeForAnyNode"
_ORDER = ("cpu", "memory", GPU_RESOURCE)
_WORDS = {"cpu": "cpu", "memory": "memory", GPU_RESOURCE: "GPUs"}
_BYTES = ("memory", "ephemeral-storage", "hugepages-")
_KI, _MI, _GI = 2**10, 2**20, 2**30

log = logging.getLogger(__name__)

Obj = dict[str, Any]


# -- the cluster's nodes ------------------------------------------------------------------------


class NodeLister:
    """The cluster's nodes as plain dicts, listed at most once per ``ttl`` seconds for each
    label selector; ``None`` when they cannot be listed. Thread-safe: callers arriving while
    a LIST runs wait for it and share its answer."""

    def __init__(
        self,
        core: Callable[[], Any],
        ttl: float = NODES_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._core = core  # -> kubernetes.client.CoreV1Api
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, list[Obj] | None]] = {}

    def nodes(self, selector: Mapping[str, str]) -> list[Obj] | None:
        key = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        with self._lock:
            now = self._clock()
            cached = self._cache.get(key)
            if cached is not None and now - cached[0] < self._ttl:
                return cached[1]
            nodes = self._list(key)  # a failure is kept too: no LIST per call on a 403
            now = self._clock()
            self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self._ttl}
            self._cache[key] = (now, nodes)
            return nodes

    def _list(self, selector: str) -> list[Obj] | None:
        from kubernetes.client.exceptions import ApiException

        core = self._core()  # no configuration at all is the caller's error, not a skip
        try:
            response = core.list_node(
                label_selector=selector or None,
                _request_timeout=LIST_TIMEOUT,
                _preload_content=False,
            )
            try:
                body = json.loads(response.data)
            finally:
                response.release_conn()
        except ApiException as error:
            # 403: this user may not read nodes (set up before `ascend admin add-user`
            # granted it). No verdict then: the scheduler and pending_timeout judge.
            log.debug(
                "capacity check skipped: cannot list nodes: HTTP %s %s", error.status, error.reason
            )
            return None
        except Exception as error:  # refused, reset, timed out, not JSON: the check is
            # only a shortcut, and submitting meets the same trouble and reports it
            log.debug("capacity check skipped: cannot list nodes: %r", error)
            return None
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            log.debug("capacity check skipped: the node list has no items: %.200r", body)
            return None
        return [item for item in items if isinstance(item, dict)]


# -- what the pod needs -------------------------------------------------------------------------


@dataclass(frozen=True)
class PodNeeds:
    """What one pod asks of a node: resources (amounts above zero), node selector, tolerations."""

    requests: dict[str, Decimal]
    node_selector: dict[str, str]
    tolerations: list[Obj]

    @classmethod
    def of(cls, pod_spec: Mapping[str, Any]) -> PodNeeds:
        """From a pod spec (camelCase, as :func:`ascend.kubernetes.manifest.build_job` writes
        it): the sum over its containers, or the largest init container, as the scheduler
        counts; a container's limits stand for requests it leaves out."""
        total: dict[str, Decimal] = {}
        for container in pod_spec.get("containers") or []:
            for name, value in _container_requests(container).items():
                total[name] = total.get(name, Decimal(0)) + value
        for container in pod_spec.get("initContainers") or []:
            for name, value in _container_requests(container).items():
                total[name] = max(total.get(name, Decimal(0)), value)
        return cls(
            requests={name: value for name, value in total.items() if value > 0},
            node_selector={str(k): str(v) for k, v in (pod_spec.get("nodeSelector") or {}).items()},
            tolerations=[dict(t) for t in pod_spec.get("tolerations") or []],
        )


def _container_requests(container: Mapping[str, Any]) -> dict[str, Decimal]:
    resources = container.get("resources") or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return {str(name): parse_quantity(str(value)) for name, value in merged.items()}


# -- the verdict --------------------------------------------------------------------------------


def check_fits(
    request: JobRequest, pod_spec: Mapping[str, Any], lister: NodeLister | None = None
) -> None:
    """Raise :class:`UnschedulableError` when no node can ever hold the pod of ``request``
    (``pod_spec`` is the pod the Job will create); return when one may, or when unsure."""
    needs = PodNeeds.of(pod_spec)
    if not needs.requests or lister is None:
        return
    nodes = lister.nodes(needs.node_selector)
    if nodes is None:
        return
    error = too_large(request, needs, nodes)
    if error is not None:
        raise error


def too_large(request: JobRequest, needs: PodNeeds, nodes: list[Obj]) -> UnschedulableError | None:
    """The error when ``nodes`` prove the pod can never be scheduled, else ``None``."""
    usable = [
        node
        for node in nodes
        if _labels_match(node, needs.node_selector) and _refusal(node, needs.tolerations) is None
    ]
    wanted = dict(sorted(needs.requests.items(), key=lambda item: _rank(item[0])))
    offers: list[tuple[Obj, dict[str, Decimal]]] = []
    for node in usable:
        offer = _allocatable(node, wanted)
        if offer is None:
            return None  # a node whose allocatable cannot be read may well hold it
        if all(offer[name] >= amount for name, amount in wanted.items()):
            return None
        offers.append((node, offer))
    if not offers:
        return None  # no node for this selector yet: a pool scaled to zero may grow
    short = [name for name in wanted if all(offer[name] < wanted[name] for _, offer in offers)]
    if short:  # no node has enough of these: the largest by the first one tells
        by = short[0]
        node, offer = max(offers, key=lambda item: item[1][by])
        most = {name: max(offer[name] for _, offer in offers) for name in short}
        lacking = short
        summary = (
            f"job {request.job_id} asks for more {_and(_word(n) for n in short)} than any "
            f"node{_scope(request, needs)} can ever give it"
        )
        named = f"the largest node by {_word(by)}, {_name(node)}"
    else:  # every resource fits some node, but no node fits them all
        node, offer = min(
            offers,
            key=lambda item: (
                sum(item[1][name] < wanted[name] for name in wanted),
                [-item[1][name] for name in wanted],
            ),
        )
        lacking = [name for name in wanted if offer[name] < wanted[name]]
        most = {name: offer[name] for name in lacking}
        summary = (
            f"job {request.job_id} asks for more than any single node"
            f"{_scope(request, needs)} can ever give it"
        )
        named = f"no node has all of it, and the closest, {_name(node)}"
    message = (
        f"{summary}: it asks for {_amounts(wanted)}; {named}, has {_amounts(offer, floor=True)} "
        f"allocatable (too little {_and(_word(n) for n in lacking)})"
    )
    return UnschedulableError(
        message,
        job_id=request.job_id,
        evidence={
            "reason": REASON,
            "largest_node": _name(node),
            "allocatable": _raw_allocatable(node, wanted),
            "requested": {name: _show(name, amount) for name, amount in wanted.items()},
            "short_of": lacking,
            "nodes_considered": len(offers),
        },
        fix=_fix(request, most),
    )


def _fix(request: JobRequest, most: dict[str, Decimal]) -> str:
    options = []
    sized = [f"{n}={_show(n, most[n], floor=True)!r}" for n in ("cpu", "memory") if n in most]
    if sized:
        options.append(f"ask for at most {' and '.join(sized)} in @ascend(...)")
    others = {n: most[n] for n in most if n not in ("cpu", "memory", GPU_RESOURCE)}
    if others:
        options.append(f"ask for at most {_amounts(others, floor=True)}")
    gpus = most.get(GPU_RESOURCE)
    if gpus is None:
        bigger = "pick a node_type with bigger nodes"
        if request.node_type:
            bigger += f" than {request.node_type!r}"
        options.append(bigger)
    elif gpus >= 1:
        options.append(f"pick a node_type with at most {_amounts({GPU_RESOURCE: gpus}, True)}")
    else:
        options.append("pick a node_type without GPUs (no node here offers nvidia.com/gpu)")
    options.append("ask a cluster admin for a node pool with bigger nodes")
    return ", or ".join(options)


# -- nodes --------------------------------------------------------------------------------------


def _name(node: Obj) -> str:
    return str((node.get("metadata") or {}).get("name") or "?")


def _labels_match(node: Obj, selector: Mapping[str, str]) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


def _refusal(node: Obj, tolerations: list[Obj]) -> str | None:
    """Why the pod can never go on ``node`` whatever runs there (cordon, taint), or None."""
    spec = node.get("spec") or {}
    if spec.get("unschedulable") and not _tolerates(
        tolerations, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}
    ):
        return "cordoned"
    for taint in spec.get("taints") or []:
        if taint.get("effect") in REFUSING_EFFECTS and not _tolerates(tolerations, taint):
            return f"taint {taint.get('key')}={taint.get('value') or ''}:{taint.get('effect')}"
    return None


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


def _allocatable(node: Obj, wanted: Mapping[str, Decimal]) -> dict[str, Decimal] | None:
    """The node's allocatable amount of each wanted resource (0 when it has none), or None
    when it reports no allocatable or an amount that is not a quantity."""
    status = node.get("status") or {}
    allocatable = status.get("allocatable")
    if not isinstance(allocatable, dict):
        return None
    try:
        return {name: parse_quantity(str(allocatable.get(name, "0"))) for name in wanted}
    except ValueError:
        return None


def _raw_allocatable(node: Obj, wanted: Mapping[str, Decimal]) -> dict[str, str]:
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    names = dict.fromkeys([*_ORDER, *wanted])
    return {name: str(allocatable.get(name, "0")) for name in names}


# -- words --------------------------------------------------------------------------------------


def _rank(name: str) -> tuple[int, str]:
    return (_ORDER.index(name) if name in _ORDER else len(_ORDER), name)


def _word(name: str, amount: Decimal | None = None) -> str:
    if name == GPU_RESOURCE and amount == 1:
        return "GPU"
    return _WORDS.get(name, name)


def _and(words: Iterable[str]) -> str:
    items = list(words)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _scope(request: JobRequest, needs: PodNeeds) -> str:
    if not needs.node_selector:
        return ""
    labels = ", ".join(f"{k}={v}" for k, v in sorted(needs.node_selector.items()))
    if request.node_type:
        return f" of node_type {request.node_type!r} ({labels})"
    return f" labelled {labels}"


def _amounts(amounts: Mapping[str, Decimal], floor: bool = False) -> str:
    return ", ".join(
        f"{_show(name, amount, floor)} {_word(name, amount)}" for name, amount in amounts.items()
    )


def _show(name: str, amount: Decimal, floor: bool = False) -> str:
    """A quantity as a person writes it; ``floor``: rounded down to a value that fits."""
    if name == "memory" or name.startswith(_BYTES):
        value = int(amount)
        if floor and value >= _MI:
            value -= value % _MI
        if value and value % _GI == 0:
            return f"{value // _GI}Gi"
        if value >= _GI and value % (_GI // 2) == 0:
            return f"{value / _GI:g}Gi"
        if value and value % _MI == 0:
            return f"{value // _MI}Mi"
        if value and value % _KI == 0:
            return f"{value // _KI}Ki"
        return str(value)
    if name == "cpu":
        if amount == amount.to_integral_value():
            return str(int(amount))
        return f"{int(amount * 1000)}m"
    if amount == amount.to_integral_value():
        return str(int(amount))
    return str(amount.normalize())
