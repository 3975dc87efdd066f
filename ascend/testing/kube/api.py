"""The HTTP API: routing of Kubernetes REST paths to the store and the cluster.

Serves discovery, CRUD (create, get, list, update, patch, delete, deletecollection) on every
resource in :mod:`resources`, the ``status`` subresources, Table output for kubectl, and
``/debug/requests`` (the request counter); hands ``?watch`` to :mod:`watch` and the pod
``log`` and ``eviction`` subresources to :mod:`pods`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ascend.testing.kube import defaults, discovery, errors, pods, table, validation
from ascend.testing.kube.cluster import Cluster
from ascend.testing.kube.counter import RequestCounter
from ascend.testing.kube.errors import ApiError
from ascend.testing.kube.gc import ORPHAN_WARNING
from ascend.testing.kube.messages import Request, Response, Stream, json_response
from ascend.testing.kube.patch import apply_patch
from ascend.testing.kube.resources import Resource, lookup
from ascend.testing.kube.selectors import make_filter
from ascend.testing.kube.store import Store
from ascend.testing.kube.util import Obj, deep, parse_bool
from ascend.testing.kube.watch import watch


@dataclass
class Target:
    """What a resource path names."""

    resource: Resource
    namespace: str | None  # None: all namespaces (lists) or a cluster-scoped resource
    name: str | None
    subresource: str | None
    watch_path: bool = False


class Api:
    def __init__(
        self, store: Store, cluster: Cluster, counter: RequestCounter, host: Callable[[], str]
    ) -> None:
        self.store = store
        self.cluster = cluster
        self.counter = counter
        self.host = host
        self.watch_poll = 0.5
        #: (verb, resource) pairs refused with 403 Forbidden, e.g. ("list", "nodes"): the
        #: emulator has no RBAC, so a test says what a user may not do (KubeEmulator.forbid)
        self.forbidden: set[tuple[str, str]] = set()

    # -- entry -----------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response | Stream:
        try:
            return self._route(request)
        except ApiError as error:
            return json_response(error.status(), error.code)

    def _route(self, request: Request) -> Response | Stream:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        if path.startswith("/debug/requests"):
            if request.method == "DELETE" or path.endswith("/reset"):
                self.counter.reset()
            return json_response(self.counter.as_json())
        if path in ("/healthz", "/readyz", "/livez"):
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if path == "/version":
            return json_response(discovery.VERSION)
        if path == "/api":
            return json_response(discovery.core_versions(self.host()))
        if path == "/apis":
            return json_response(discovery.group_list())
        if path == "/openapi/v3":
            return json_response(discovery.openapi_index())
        if path.startswith("/openapi/v3/"):
            document = discovery.openapi_document(path[len("/openapi/v3/") :])
            if document is None:
                raise ApiError(404, "the server could not find the requested resource", "NotFound")
            return json_response(document)
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        elif parts[:1] == ["apis"] and len(parts) == 2:
            found = discovery.api_group(parts[1])
            if found is None:
                raise ApiError(404, "the server could not find the requested resource", "NotFound")
            return json_response(found)
        else:
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        if not rest:
            listing = discovery.resource_list(f"{group}/{version}" if group else version)
            if listing is None:
                raise ApiError(404, "the server could not find the requested resource", "NotFound")
            return json_response(listing)
        target = self._target(group, version, rest)
        return self._dispatch(request, target)

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        watch_path = False
        if rest[0] == "watch":
            watch_path, rest = True, rest[1:]
        not_found = ApiError(404, "the server could not find the requested resource", "NotFound")
        if not rest:
            raise not_found
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and lookup(group, version, rest[2]) is not None
        ):
            resource = lookup(group, version, rest[2])
            assert resource is not None
            if not resource.namespaced:
                raise not_found
            name = rest[3] if len(rest) > 3 else None
            sub = rest[4] if len(rest) > 4 else None
            if len(rest) > 5:
                raise not_found
            return Target(resource, rest[1], name, sub, watch_path)
        resource = lookup(group, version, rest[0])
        if resource is None or len(rest) > 3:
            raise not_found
        name = rest[1] if len(rest) > 1 else None
        if resource.namespaced and name is not None:
            raise not_found
        return Target(resource, None, name, rest[2] if len(rest) > 2 else None, watch_path)

    def _dispatch(self, request: Request, target: Target) -> Response | Stream:
        method = request.method
        resource = target.resource
        if self.forbidden:
            self._authorize(request, target)
        if target.subresource is not None:
            return self._subresource(request, target)
        if target.name is None:
            if method == "GET":
                if target.watch_path or parse_bool(request.param("watch")):
                    return watch(self.store, request, resource, target.namespace, self.watch_poll)
                return self._list(request, target)
            if method == "POST":
                return self._create(request, target)
            if method == "DELETE":
                return self._delete_collection(request, target)
        else:
            if method == "GET":
                if target.watch_path:
                    request.query["fieldSelector"] = f"metadata.name={target.name}"
                    return watch(self.store, request, resource, target.namespace, self.watch_poll)
                obj = self.store.get(resource.plural, target.namespace or "", target.name)
                return self._object_response(request, resource, obj)
            if method == "PUT":
                return self._update(request, target, request.json())
            if method == "PATCH":
                return self._patch(request, target)
            if method == "DELETE":
                return self._delete(request, target)
        raise ApiError(
            405,
            f"the server does not allow this method on the requested resource ({method})",
            "MethodNotAllowed",
        )

    def _authorize(self, request: Request, target: Target) -> None:
        """Refuse a (verb, resource) listed in :attr:`forbidden` as RBAC would: 403 Forbidden
        with the real server's Status, for the unauthenticated user the emulator sees."""
        method, resource = request.method, target.resource
        if method == "GET":
            watching = target.watch_path or parse_bool(request.param("watch"))
            verb = "watch" if watching else ("get" if target.name else "list")
        elif method == "DELETE":
            verb = "delete" if target.name else "deletecollection"
        else:
            verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method)
        plural = resource.plural + (f"/{target.subresource}" if target.subresource else "")
        if (verb, plural) not in self.forbidden:
            return
        scope = (
            f'in the namespace "{target.namespace}"' if target.namespace else "at the cluster scope"
        )
        subject = f'{resource.qualified} "{target.name}"' if target.name else resource.qualified
        details: Obj = {"name": target.name} if target.name else {}
        if resource.group:
            details["group"] = resource.group
        details["kind"] = resource.plural
        raise ApiError(
            403,
            f'{subject} is forbidden: User "system:anonymous" cannot {verb} resource "{plural}" '
            f'in API group "{resource.group}" {scope}',
            "Forbidden",
            details,
        )

    def _object_response(
        self, request: Request, resource: Resource, obj: Obj, code: int = 200
    ) -> Response:
        if table.wants_table(request.accept) and request.method == "GET":
            return json_response(
                table.table(
                    resource,
                    [obj],
                    obj["metadata"]["resourceVersion"],
                    request.param("includeObject", "Metadata") or "Metadata",
                ),
                code,
            )
        return json_response(obj, code)

    # -- list and watch ----------------------------------------------------------------------

    def _list(self, request: Request, target: Target) -> Response:
        resource = target.resource
        accept = make_filter(
            request.param("labelSelector"), request.param("fieldSelector"), resource.kind
        )
        items, rv = self.store.list(resource.plural, target.namespace, accept)
        if table.wants_table(request.accept):
            return json_response(
                table.table(
                    resource, items, rv, request.param("includeObject", "Metadata") or "Metadata"
                )
            )
        return json_response(
            {
                "kind": f"{resource.kind}List",
                "apiVersion": resource.api_version,
                "metadata": {"resourceVersion": str(rv)},
                "items": items,
            }
        )

    # -- create, update, patch ---------------------------------------------------------------

    def _check_namespace(self, resource: Resource, namespace: str, name: str) -> None:
        found = self.store.try_get("namespaces", "", namespace)
        if found is None:
            raise errors.not_found("namespaces", "", namespace)
        if found["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                f'{resource.qualified} "{name}" is forbidden: unable to create new content in namespace {namespace} because it is being terminated',
                "Forbidden",
            )

    def _create(self, request: Request, target: Target) -> Response:
        resource = target.resource
        obj = validation.check_kind(request.json(), resource)
        meta = obj["metadata"]
        if resource.namespaced:
            if target.namespace is None:
                raise ApiError(
                    405,
                    "the server does not allow this method on the requested resource",
                    "MethodNotAllowed",
                )
            if meta.get("namespace") and meta["namespace"] != target.namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = target.namespace
            self._check_namespace(
                resource, target.namespace, str(meta.get("name") or meta.get("generateName") or "")
            )
        else:
            meta.pop("namespace", None)
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        for server_field in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
        ):
            meta.pop(server_field, None)
        if resource.plural in ("pods", "jobs"):
            obj.pop("status", None)
        self._validate(request, obj, resource)
        defaults.on_create(resource.plural, obj)
        if request.param("dryRun"):
            if resource.plural == "jobs":
                meta.setdefault("uid", "00000000-0000-0000-0000-000000000000")
                meta.setdefault("name", f"{meta.get('generateName', '')}dryrun")
                defaults.prepare(resource.plural, obj)
            return json_response(obj, 201)
        created = self.store.create(
            resource.plural, obj, lambda o: defaults.prepare(resource.plural, o)
        )
        if resource.plural == "namespaces":
            self._namespace_defaults(created["metadata"]["name"])
        return json_response(created, 201)

    def _namespace_defaults(self, namespace: str) -> None:
        """What the service-account controller adds to a new namespace."""
        try:
            self.store.create(
                "serviceaccounts",
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": namespace},
                },
            )
        except ApiError:
            pass

    def _validate(self, request: Request, obj: Obj, resource: Resource) -> None:
        if (request.param("fieldValidation") or "").lower() == "ignore":
            return
        validation.validate(obj, resource)

    def _update(
        self, request: Request, target: Target, body: Any, expect: str | None = None
    ) -> Response:
        resource = target.resource
        namespace = target.namespace or ""
        assert target.name is not None
        obj = validation.check_kind(body, resource)
        meta = obj["metadata"]
        if meta.get("name") and meta["name"] != target.name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({target.name})"
            )
        meta["name"] = target.name
        if resource.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        old = self.store.get(resource.plural, namespace, target.name)
        expect = expect if expect is not None else meta.get("resourceVersion")
        new = defaults.on_update(resource.plural, old, obj, target.subresource or "")
        self._validate(request, new, resource)
        if request.param("dryRun"):
            return json_response(new)
        stored = self.store.replace(resource.plural, new, expect or None)
        return json_response(stored)

    def _patch(self, request: Request, target: Target) -> Response:
        resource = target.resource
        assert target.name is not None
        old = self.store.get(resource.plural, target.namespace or "", target.name)
        content_type = request.headers.get("content-type", "application/merge-patch+json")
        patched = apply_patch(content_type, old, request.json())
        if not isinstance(patched, dict):
            raise errors.bad_request("the patch did not produce an object")
        expect = deep(patched, "metadata", "resourceVersion")
        if expect == old["metadata"]["resourceVersion"]:
            expect = None
        if expect is not None:
            raise errors.conflict(resource.plural, resource.group, target.name)
        return self._update(request, target, patched, "")

    # -- delete --------------------------------------------------------------------------------

    def _delete_options(self, request: Request) -> tuple[str | None, int | None, str | None]:
        options: Obj = {}
        if request.body:
            try:
                options = json.loads(request.body) or {}
            except ValueError:
                raise errors.bad_request(
                    "the body of the request is not valid DeleteOptions JSON"
                ) from None
        policy = request.param("propagationPolicy") or options.get("propagationPolicy")
        orphan = request.param("orphanDependents")
        if orphan is None and options.get("orphanDependents") is not None:
            orphan = str(options["orphanDependents"]).lower()
        if policy is None and orphan is not None:
            policy = "Orphan" if parse_bool(orphan) else "Background"
        grace_text = request.param("gracePeriodSeconds")
        grace: int | None = (
            int(grace_text) if grace_text is not None else options.get("gracePeriodSeconds")
        )
        uid = deep(options, "preconditions", "uid")
        return policy, grace, uid

    def _delete(self, request: Request, target: Target) -> Response:
        resource = target.resource
        assert target.name is not None
        policy, grace, uid = self._delete_options(request)
        headers = {}
        if resource.plural == "jobs" and policy is None:
            headers["Warning"] = ORPHAN_WARNING
        if request.param("dryRun"):
            obj = self.store.get(resource.plural, target.namespace or "", target.name)
            return json_response(obj, 200, headers)
        obj, gone = self.cluster.gc.delete(
            resource.plural, target.namespace or "", target.name, policy, grace, uid
        )
        if resource.plural == "pods" or not gone:
            return json_response(obj, 200, headers)
        details: Obj = {"name": target.name, "kind": resource.plural, "uid": obj["metadata"]["uid"]}
        if resource.group:
            details["group"] = resource.group
        return json_response(errors.success_status(details), 200, headers)

    def _delete_collection(self, request: Request, target: Target) -> Response:
        resource = target.resource
        if "deletecollection" not in resource.verbs:
            raise ApiError(
                405,
                "the server does not allow this method on the requested resource",
                "MethodNotAllowed",
            )
        accept = make_filter(
            request.param("labelSelector"), request.param("fieldSelector"), resource.kind
        )
        items, rv = self.store.list(resource.plural, target.namespace, accept)
        policy, grace, _ = self._delete_options(request)
        deleted = []
        for item in items:
            meta = item["metadata"]
            try:
                obj, _ = self.cluster.gc.delete(
                    resource.plural, meta.get("namespace", ""), meta["name"], policy, grace
                )
                deleted.append(obj)
            except ApiError:
                continue
        return json_response(
            {
                "kind": f"{resource.kind}List",
                "apiVersion": resource.api_version,
                "metadata": {"resourceVersion": str(rv)},
                "items": deleted,
            }
        )

    # -- subresources --------------------------------------------------------------------------

    def _subresource(self, request: Request, target: Target) -> Response | Stream:
        resource, sub = target.resource, target.subresource
        if sub not in resource.subresources:
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        assert target.name is not None
        namespace = target.namespace or ""
        if sub == "status":
            if request.method == "GET":
                return json_response(self.store.get(resource.plural, namespace, target.name))
            if request.method == "PUT":
                return self._update(request, target, request.json())
            if request.method == "PATCH":
                return self._patch(request, target)
        if sub == "log" and request.method == "GET":
            return pods.log(
                self.store, self.cluster.kubelet, request, namespace, target.name, self.watch_poll
            )
        if sub == "eviction" and request.method == "POST":
            return pods.evict(self.store, self.cluster.gc, request, namespace, target.name)
        raise ApiError(
            405,
            f"the server does not allow this method on the requested resource ({request.method})",
            "MethodNotAllowed",
        )
