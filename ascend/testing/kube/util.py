"""Small shared helpers: timestamps, names, quantities and object paths."""

from __future__ import annotations

import copy
import datetime as _dt
import random
import threading
import time
import uuid
from decimal import Decimal
from typing import Any, TypeVar

from ascend.quantities import parse_quantity

Obj = dict[str, Any]
T = TypeVar("T")

#: Characters Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_event_clock_lock = threading.Lock()
_event_clock_last = 0


def now() -> str:
    """A metav1.Time: RFC 3339, whole seconds, UTC."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """A metav1.MicroTime: RFC 3339 with microseconds."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339_nano(seconds: float) -> str:
    """A log timestamp like the kubelet's (nanosecond precision, UTC)."""
    whole = int(seconds)
    nanos = int((seconds - whole) * 1e9)
    stamp = _dt.datetime.fromtimestamp(whole, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z"


def parse_time(text: str) -> float:
    """Seconds since the epoch for an RFC 3339 time (whole or fractional seconds)."""
    value = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.timestamp()


def new_uid() -> str:
    return str(uuid.uuid4())


def random_suffix(length: int = 5) -> str:
    return "".join(random.choice(_SUFFIX_ALPHABET) for _ in range(length))


def event_suffix() -> str:
    """``%x`` of a strictly increasing nanosecond clock: event names sort by creation."""
    global _event_clock_last
    with _event_clock_lock:
        value = max(time.time_ns(), _event_clock_last + 1)
        _event_clock_last = value
    return f"{value:x}"


def quantity(text: Any) -> Decimal:
    """A Kubernetes quantity (string or number) as a Decimal; 0 for anything unparsable."""
    try:
        return parse_quantity(str(text))
    except ValueError:
        return Decimal(0)


def deep(obj: Obj, *path: str, default: Any = None) -> Any:
    """``obj[a][b]...`` or ``default`` when any step is missing or not a mapping."""
    current: Any = obj
    for key in path:
        if not isinstance(current, dict) or key not in current:
            return default
        current = current[key]
    return current


def clone(obj: T) -> T:
    return copy.deepcopy(obj)


def parse_bool(text: str | None) -> bool:
    """Go's ``strconv.ParseBool`` (clients send ``true``, ``True`` or ``1``); junk is false."""
    return (text or "") in ("1", "t", "T", "true", "TRUE", "True")


def condition(
    type_: str, status: str, reason: str = "", message: str = "", probe: bool = False
) -> Obj:
    result: Obj = {"type": type_, "status": status, "lastTransitionTime": now()}
    if probe:
        result["lastProbeTime"] = None
    if reason:
        result["reason"] = reason
    if message:
        result["message"] = message
    return result


def set_condition(conditions: list[Obj], new: Obj) -> bool:
    """Insert or update a condition by type; keeps lastTransitionTime when the status holds.

    Returns whether anything changed.
    """
    for index, old in enumerate(conditions):
        if old.get("type") == new["type"]:
            same = all(old.get(k) == new.get(k) for k in ("status", "reason", "message"))
            if same:
                return False
            if old.get("status") == new["status"]:
                new = {**new, "lastTransitionTime": old.get("lastTransitionTime")}
            conditions[index] = new
            return True
    conditions.append(new)
    return True


def get_condition(obj: Obj, type_: str) -> Obj | None:
    for cond in deep(obj, "status", "conditions", default=None) or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None
