"""Label selectors (string and LabelSelector forms) and field selectors, with real semantics."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ascend.testing.kube.errors import bad_request
from ascend.testing.kube.util import Obj, deep

_KEY = re.compile(r"^([A-Za-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # = != in notin exists !exists gt lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        try:
            number, bound = int(value or ""), int(self.values[0])
        except ValueError:
            return False
        return number > bound if self.op == "gt" else number < bound


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _check_key(key: str, text: str) -> str:
    if not _KEY.match(key):
        raise bad_request(f"unable to parse requirement: invalid label key {key!r} in {text!r}")
    return key


_SET = re.compile(r"^(\S+)\s+(in|notin)\s*\(([^()]*)\)$")
_BINARY = re.compile(r"^([^=!<>\s]+)\s*(==|=|!=|>|<)\s*(\S*)$")


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse ``a=b,c!=d,e in (x,y),f notin (z),g,!h``; raises 400 like the API server."""
    requirements: list[Requirement] = []
    for part in _split_top(text or ""):
        if match := _SET.match(part):
            values = tuple(v.strip() for v in match.group(3).split(",") if v.strip())
            requirements.append(
                Requirement(_check_key(match.group(1), part), match.group(2), values)
            )
        elif match := _BINARY.match(part):
            key, op, value = match.groups()
            op = {"==": "=", ">": "gt", "<": "lt"}.get(op, op)
            requirements.append(Requirement(_check_key(key, part), op, (value,)))
        elif part.startswith("!"):
            requirements.append(Requirement(_check_key(part[1:].strip(), part), "!exists"))
        else:
            requirements.append(Requirement(_check_key(part, part), "exists"))
    return requirements


def labels_match(requirements: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    return all(r.matches(labels or {}) for r in requirements)


def selector_object_matches(selector: Obj | None, labels: Mapping[str, str] | None) -> bool:
    """A ``LabelSelector`` object (matchLabels + matchExpressions); an empty one matches all."""
    labels = labels or {}
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}.get(
            expression.get("operator", ""),
            {"Gt": "gt", "Lt": "lt"}.get(expression.get("operator", ""), ""),
        )
        if not op:
            return False
        requirement = Requirement(
            expression.get("key", ""), op, tuple(expression.get("values") or ())
        )
        if not requirement.matches(labels):
            return False
    return True


# -- field selectors ---------------------------------------------------------------------------

_COMMON = ("metadata.name", "metadata.namespace")
#: The fields the real API server supports per kind (anything else is a 400).
FIELDS: dict[str, tuple[str, ...]] = {
    "Pod": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "Event": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "Job": ("status.successful",),
    "Secret": ("type",),
    "Namespace": ("status.phase",),
    "Node": ("spec.unschedulable",),
}
_ALIASES = {"source": "source.component", "status.successful": "status.succeeded"}


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    value: str
    equal: bool

    def matches(self, obj: Obj) -> bool:
        path = _ALIASES.get(self.field, self.field).split(".")
        actual: Any = deep(obj, *path)
        if actual is None:
            actual = {"spec.hostNetwork": "false", "spec.unschedulable": "false"}.get(
                self.field, ""
            )
        if isinstance(actual, bool):
            actual = "true" if actual else "false"
        return (str(actual) == self.value) == self.equal


def parse_field_selector(text: str | None, kind: str) -> list[FieldRequirement]:
    requirements = []
    allowed = _COMMON + FIELDS.get(kind, ())
    for part in _split_top(text or ""):
        match = re.match(r"^([^=!]+?)\s*(==|=|!=)\s*(.*)$", part)
        if not match:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        name, op, value = match.groups()
        if name not in allowed:
            raise bad_request(f'field label not supported: "{name}"')
        requirements.append(FieldRequirement(name, value, op != "!="))
    return requirements


def fields_match(requirements: list[FieldRequirement], obj: Obj) -> bool:
    return all(r.matches(obj) for r in requirements)


def make_filter(
    label_selector: str | None, field_selector: str | None, kind: str
) -> Callable[[Obj], bool]:
    """One predicate for a list or watch request; parsing errors surface as 400 right away."""
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(field_selector, kind)

    def accept(obj: Obj) -> bool:
        return labels_match(labels, deep(obj, "metadata", "labels")) and fields_match(fields, obj)

    return accept
