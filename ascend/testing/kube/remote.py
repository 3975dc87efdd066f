"""The process kubelet's view of a real API server: a small mutual-TLS client and a
:class:`RemoteStore` that answers the kubelet the way the emulator's store does.

The kubelet was written against the emulator's in-process store; behind a real API server it
reads the pods bound to its node from a watch-fed cache, reads secrets and config maps with GET
(the Node authorizer allows exactly those its pods reference), writes pod status through
``pods/status`` (retrying on conflicts), deletes pods with grace 0 and a uid precondition, and
records events best-effort, as the real kubelet's event broadcaster does.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlencode

import urllib3

from ascend.testing.kube import errors
from ascend.testing.kube.util import Obj, clone

Key = tuple[str, str]

# Paths of the resources the kubelet touches (all core/v1).
_NAMESPACED = ("pods", "secrets", "configmaps", "events")


class RemoteError(Exception):
    """A request the API server refused; ``status`` is its Status object (or text)."""

    def __init__(self, code: int, status: Any, what: str) -> None:
        message = status.get("message") if isinstance(status, dict) else str(status)
        super().__init__(f"{what}: HTTP {code}: {message}")
        self.code = code
        self.status = status


class KubeClient:
    """JSON over HTTPS to one API server, authenticated with a client certificate."""

    def __init__(
        self, server: str, ca_file: str, cert_file: str, key_file: str, timeout: float = 15.0
    ) -> None:
        self.server = server.rstrip("/")
        self.timeout = timeout
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=16,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            retries=False,
        )

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        url = self.server + path + (f"?{urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        response = self._pool.request(
            method,
            url,
            body=data,
            headers={"Content-Type": content_type, "Accept": "application/json"},
            timeout=self.timeout,
        )
        payload: Any = response.data
        try:
            payload = json.loads(payload) if payload else None
        except ValueError:
            payload = payload.decode(errors="replace")
        if response.status >= 400:
            raise RemoteError(response.status, payload, f"{method} {path}")
        return payload

    def watch(self, path: str, query: dict[str, Any]) -> Iterator[Obj]:
        """The events of one watch request, until the server ends it."""
        url = f"{self.server}{path}?{urlencode({**query, 'watch': '1'})}"
        response = self._pool.request(
            "GET",
            url,
            headers={"Accept": "application/json"},
            preload_content=False,
            timeout=urllib3.Timeout(connect=self.timeout, read=None),
        )
        try:
            if response.status >= 400:
                raise RemoteError(response.status, response.read().decode(), f"watch {path}")
            buffer = b""
            for chunk in response.stream(65536, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            response.release_conn()

    def close(self) -> None:
        self._pool.clear()


def object_path(resource: str, namespace: str, name: str = "") -> str:
    if resource in _NAMESPACED:
        base = f"/api/v1/namespaces/{quote(namespace)}/{resource}"
    elif resource == "nodes":
        base = "/api/v1/nodes"
    else:
        raise ValueError(f"the process kubelet does not use {resource}")
    return f"{base}/{quote(name)}" if name else base


def _newer(candidate: Obj, current: Obj | None) -> bool:
    """Whether ``candidate`` is at least as new as ``current`` (etcd's resourceVersions are
    increasing integers; a watch event can arrive after the answer to our own write)."""
    if current is None:
        return True
    try:
        return int(candidate["metadata"]["resourceVersion"]) >= int(
            current["metadata"]["resourceVersion"]
        )
    except (KeyError, TypeError, ValueError):
        return True


class RemoteStore:
    """The kubelet's store in front of a real API server (see the module's docstring)."""

    def __init__(self, client: KubeClient, node_name: str) -> None:
        self.client = client
        self.node_name = node_name
        self.closed = False
        self._lock = threading.Lock()
        self._pods: dict[Key, Obj] = {}
        self._node: Obj | None = None

    # -- the watch-fed cache -----------------------------------------------------------------

    def observe(self, kind: str, obj: Obj) -> None:
        """Take a pod from the watch (``ADDED``/``MODIFIED``/``DELETED``) or a list."""
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        with self._lock:
            current = self._pods.get(key)
            if kind == "DELETED":
                if current is not None and current["metadata"]["uid"] == meta["uid"]:
                    del self._pods[key]
            elif (
                current is None or current["metadata"]["uid"] != meta["uid"] or _newer(obj, current)
            ):
                self._pods[key] = obj

    def pod_keys(self) -> list[Key]:
        with self._lock:
            return list(self._pods)

    def forget(self, key: Key) -> None:
        with self._lock:
            self._pods.pop(key, None)

    def set_node(self, node: Obj) -> None:
        with self._lock:
            self._node = node

    # -- what the kubelet calls ----------------------------------------------------------------

    def try_get(self, resource: str, namespace: str, name: str) -> Obj | None:
        if resource == "pods":
            with self._lock:
                found = self._pods.get((namespace, name))
            return clone(found) if found is not None else None
        if resource == "nodes" and name == self.node_name:
            with self._lock:
                return clone(self._node) if self._node is not None else None
        if resource == "namespaces":
            # A node may not read namespaces. Events for a namespace being deleted are refused
            # by the server and dropped in record_event.
            return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        try:
            found = self.client.request("GET", object_path(resource, namespace, name))
        except RemoteError as error:
            # 403: the Node authorizer hides what no pod of this node references
            if error.code in (403, 404):
                return None
            raise
        return found if isinstance(found, dict) else None

    def get(self, resource: str, namespace: str, name: str) -> Obj:
        found = self.try_get(resource, namespace, name)
        if found is None:
            raise errors.not_found(resource, "", name)
        return found

    def create(self, resource: str, obj: Obj) -> Obj:
        namespace = obj["metadata"].get("namespace", "")
        if resource == "events":
            return self._record_event("POST", object_path(resource, namespace), obj)
        created = self.client.request("POST", object_path(resource, namespace), obj)
        return dict(created)

    def mutate(
        self, resource: str, namespace: str, name: str, change: Callable[[Obj], object]
    ) -> Obj | None:
        if resource == "events":
            return self._mutate_event(namespace, name, change)
        if resource != "pods":
            raise ValueError(f"the process kubelet only writes pods and events, not {resource}")
        for _ in range(10):
            current = self.try_get("pods", namespace, name)
            if current is None:
                return None
            edited = clone(current)
            change(edited)
            if edited == current:
                return current
            path = object_path("pods", namespace, name) + "/status"
            try:
                stored = self.client.request("PUT", path, edited)
            except RemoteError as error:
                if error.code == 404:
                    self.forget((namespace, name))
                    return None
                if error.code != 409:
                    raise
                self._refresh(namespace, name)
                continue
            self.observe("MODIFIED", stored)
            return dict(stored)
        raise RuntimeError(f"pods/{namespace}/{name}: status kept conflicting")

    def delete(self, resource: str, namespace: str, name: str) -> Obj:
        """Delete a pod at once (grace 0), only the one this node knows (uid precondition)."""
        current = self.try_get(resource, namespace, name)
        if current is None:
            raise errors.not_found(resource, "", name)
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": current["metadata"]["uid"]},
        }
        try:
            gone = self.client.request("DELETE", object_path(resource, namespace, name), body)
        except RemoteError as error:
            if error.code in (404, 409):  # gone, or replaced by a pod of the same name
                raise errors.not_found(resource, "", name) from None
            raise
        return dict(gone) if isinstance(gone, dict) else current

    # -- helpers ---------------------------------------------------------------------------------

    def _refresh(self, namespace: str, name: str) -> None:
        try:
            fresh = self.client.request("GET", object_path("pods", namespace, name))
        except RemoteError as error:
            if error.code == 404:
                self.forget((namespace, name))
                return
            raise
        self.observe("MODIFIED", fresh)

    def _record_event(self, method: str, path: str, event: Obj) -> Obj:
        try:
            return dict(self.client.request(method, path, event))
        except (RemoteError, urllib3.exceptions.HTTPError) as error:
            print(f"[kubelet] event dropped: {error}", file=sys.stderr)
            return event

    def _mutate_event(
        self, namespace: str, name: str, change: Callable[[Obj], object]
    ) -> Obj | None:
        path = object_path("events", namespace, name)
        try:
            current = self.client.request("GET", path)
        except (RemoteError, urllib3.exceptions.HTTPError):
            return None
        change(current)
        return self._record_event("PUT", path, current)
