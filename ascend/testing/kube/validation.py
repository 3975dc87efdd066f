"""Validation of incoming objects: the official schema (``kubernetes-validate``, strict, for
Kubernetes 1.30) plus the handful of semantic checks the real API server makes that a schema
cannot (names, restart policies, Job rules, requests versus limits).

Loading a schema costs about 15 ms, so one validator per kind is built once and reused
(about 1 ms per object afterwards).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from typing import Any

from ascend.quantities import parse_quantity
from ascend.testing.kube.errors import ApiError, invalid
from ascend.testing.kube.resources import Resource
from ascend.testing.kube.util import Obj, deep, quantity

KUBERNETES_VERSION = "1.30.0"

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SUBDOMAIN_TEXT = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_TEXT = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
Cause = tuple[str, str, str]


@functools.lru_cache(maxsize=64)
def _validator(api_version: str, kind: str) -> Any:
    """A ready jsonschema validator for one kind, or None when no schema exists for it."""
    import jsonschema  # type: ignore[import-untyped]
    from kubernetes_validate import utils  # type: ignore[import-untyped]
    from referencing import Registry, Resource

    wanted = utils.major_minor(KUBERNETES_VERSION)
    version = [v for v in utils.all_versions() if utils.major_minor(v) <= wanted][-1]
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        return None
    definitions = utils.schema_contents(f"{folder}/_definitions.json", version)
    registry: Any = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _field(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def schema_causes(obj: Obj) -> list[Cause]:
    """The schema's verdict (first error only, like ``kubernetes_validate.validate``)."""
    import jsonschema  # type: ignore[import-untyped]

    try:
        validator = _validator(str(obj.get("apiVersion")), str(obj.get("kind")))
    except Exception:  # the library's layout changed: use its public entry point
        validator = None
        import kubernetes_validate  # type: ignore[import-untyped]

        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            return [_cause(error)]
        except Exception:
            return []
    if validator is None:
        return []
    found = jsonschema.exceptions.best_match(validator.iter_errors(obj))
    return [] if found is None else [_cause(found)]


def _cause(error: Any) -> Cause:
    where = _field(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set((error.schema or {}).get("properties") or {})
        unknown = sorted(set(error.instance) - known)
        if unknown:
            field = f"{where}.{unknown[0]}" if where else unknown[0]
            return ("FieldValueInvalid", field, f'unknown field "{field}"')
    return ("FieldValueInvalid", where, f"Invalid value: {error.message}")


# -- semantic checks ---------------------------------------------------------------------------


def _metadata_causes(obj: Obj, resource: Resource) -> list[Cause]:
    causes: list[Cause] = []
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name and not meta.get("generateName"):
        causes.append(
            (
                "FieldValueRequired",
                "metadata.name",
                "Required value: name or generateName is required",
            )
        )
    elif name:
        label_only = resource.plural in ("namespaces", "jobs")
        pattern, text = (_LABEL, _LABEL_TEXT) if label_only else (_SUBDOMAIN, _SUBDOMAIN_TEXT)
        limit = 63 if label_only else 253
        if not pattern.match(name):
            causes.append(
                ("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": {text}')
            )
        elif len(name) > limit:
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.name",
                    f'Invalid value: "{name}": must be no more than {limit} characters',
                )
            )
    for key, value in (meta.get("labels") or {}).items():
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.labels",
                    f'Invalid value: "{value}": a valid label must be an empty string or consist of '
                    "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character, and be no more than 63 characters",
                )
            )
        if len(key.rsplit("/", 1)[-1]) > 63:
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.labels",
                    f'Invalid value: "{key}": name part must be no more than 63 characters',
                )
            )
    return causes


def pod_spec_causes(spec: Obj, prefix: str) -> list[Cause]:
    causes: list[Cause] = []
    names: set[str] = set()
    for field in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(field) or []):
            where = f"{prefix}.{field}[{index}]"
            name = container.get("name") or ""
            if not _LABEL.match(name):
                causes.append(
                    (
                        "FieldValueInvalid",
                        f"{where}.name",
                        f'Invalid value: "{name}": {_LABEL_TEXT}',
                    )
                )
            elif name in names:
                causes.append(
                    ("FieldValueDuplicate", f"{where}.name", f'Duplicate value: "{name}"')
                )
            names.add(name)
            if not container.get("image"):
                causes.append(("FieldValueRequired", f"{where}.image", "Required value"))
            causes += _resource_causes(container.get("resources") or {}, f"{where}.resources")
    if not spec.get("containers"):
        causes.append(("FieldValueRequired", f"{prefix}.containers", "Required value"))
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in ("Always", "OnFailure", "Never"):
        causes.append(
            (
                "FieldValueNotSupported",
                f"{prefix}.restartPolicy",
                f'Unsupported value: "{policy}": supported values: "Always", "OnFailure", "Never"',
            )
        )
    return causes


def _resource_causes(resources: Obj, where: str) -> list[Cause]:
    causes: list[Cause] = []
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    for kind, values in (("requests", requests), ("limits", limits)):
        for name, value in values.items():
            if not _is_quantity(value):
                causes.append(
                    (
                        "FieldValueInvalid",
                        f"{where}.{kind}[{name}]",
                        f'Invalid value: "{value}": must be a valid quantity',
                    )
                )
    for name, value in requests.items():
        if name in limits and quantity(value) > quantity(limits[name]):
            causes.append(
                (
                    "FieldValueInvalid",
                    f"{where}.requests",
                    f'Invalid value: "{value}": must be less than or equal to {name} limit of {limits[name]}',
                )
            )
        if "/" in name and name in limits and quantity(value) != quantity(limits[name]):
            causes.append(
                (
                    "FieldValueInvalid",
                    f"{where}.requests[{name}]",
                    f'Invalid value: "{value}": must be equal to {name} limit of {limits[name]}',
                )
            )
    return causes


def _is_quantity(value: Any) -> bool:
    try:
        return parse_quantity(str(value)) >= 0
    except ValueError:
        return False


def _job_causes(job: Obj) -> list[Cause]:
    causes: list[Cause] = []
    spec = job.get("spec") or {}
    template_spec = deep(spec, "template", "spec") or {}
    causes += pod_spec_causes(template_spec, "spec.template.spec")
    policy = template_spec.get("restartPolicy")
    if policy not in ("OnFailure", "Never"):
        causes.append(
            (
                "FieldValueRequired" if policy in (None, "Always") else "FieldValueNotSupported",
                "spec.template.spec.restartPolicy",
                f'Unsupported value: "{policy or "Always"}": supported values: "OnFailure", "Never"',
            )
        )
    elif spec.get("podFailurePolicy") and policy != "Never":
        causes.append(
            (
                "FieldValueInvalid",
                "spec.template.spec.restartPolicy",
                f'Invalid value: "{policy}": only "Never" is supported when podFailurePolicy is specified',
            )
        )
    for field in ("parallelism", "completions", "backoffLimit"):
        value = spec.get(field)
        if isinstance(value, int) and value < 0:
            causes.append(
                (
                    "FieldValueInvalid",
                    f"spec.{field}",
                    f"Invalid value: {value}: must be greater than or equal to 0",
                )
            )
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and deadline <= 0:
        causes.append(
            (
                "FieldValueInvalid",
                "spec.activeDeadlineSeconds",
                f"Invalid value: {deadline}: must be greater than 0",
            )
        )
    if spec.get("completionMode") == "Indexed" and spec.get("completions") is None:
        causes.append(
            (
                "FieldValueRequired",
                "spec.completions",
                "Required value: when completion mode is Indexed",
            )
        )
    mode = spec.get("completionMode")
    if mode not in (None, "Indexed", "NonIndexed"):
        causes.append(
            (
                "FieldValueNotSupported",
                "spec.completionMode",
                f'Unsupported value: "{mode}": supported values: "NonIndexed", "Indexed"',
            )
        )
    return causes


def _secret_causes(secret: Obj) -> list[Cause]:
    causes: list[Cause] = []
    for key, value in (secret.get("data") or {}).items():
        try:
            base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            causes.append(
                (
                    "FieldValueInvalid",
                    f"data[{key}]",
                    'Invalid value: "<secret contents redacted>": illegal base64 data',
                )
            )
    return causes


def validate(obj: Obj, resource: Resource) -> None:
    """Raise 422 Invalid (a Status naming every problem found) when ``obj`` is not valid."""
    causes = schema_causes(obj)
    causes += _metadata_causes(obj, resource)
    if resource.plural == "pods":
        causes += pod_spec_causes(obj.get("spec") or {}, "spec")
    elif resource.plural == "jobs":
        causes += _job_causes(obj)
    elif resource.plural == "secrets":
        causes += _secret_causes(obj)
    if causes:
        name = str(deep(obj, "metadata", "name") or deep(obj, "metadata", "generateName") or "")
        raise invalid(resource.kind, resource.group, name, causes)


def check_kind(obj: Any, resource: Resource) -> Obj:
    """The body as an object of the endpoint's kind (apiVersion and kind default to it)."""
    if not isinstance(obj, dict):
        raise ApiError(400, "the body of the request must be a JSON object", "BadRequest")
    obj.setdefault("apiVersion", resource.api_version)
    obj.setdefault("kind", resource.kind)
    if obj["apiVersion"] != resource.api_version or obj["kind"] != resource.kind:
        raise ApiError(
            400,
            f"the API version in the data ({obj['apiVersion']}) and kind ({obj['kind']}) do not "
            f"match the endpoint's {resource.api_version} {resource.kind}",
            "BadRequest",
        )
    if not isinstance(obj.get("metadata", {}), dict):
        raise ApiError(400, "metadata must be an object", "BadRequest")
    obj.setdefault("metadata", {})
    return obj
