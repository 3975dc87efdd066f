"""Watch streams: newline-delimited JSON events over a chunked response."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

from ascend.testing.kube import errors, table
from ascend.testing.kube.messages import Request, Stream
from ascend.testing.kube.resources import Resource
from ascend.testing.kube.selectors import make_filter
from ascend.testing.kube.store import Expired, Store
from ascend.testing.kube.util import Obj

DEFAULT_WATCH_SECONDS = 1800


def watch(
    store: Store, request: Request, resource: Resource, namespace: str | None, poll: float
) -> Stream:
    """``?watch``: ADDED for what exists (no resourceVersion) or the changes after the given
    version, then every change until ``timeoutSeconds``; 410 Expired past the history."""
    accept = make_filter(
        request.param("labelSelector"), request.param("fieldSelector"), resource.kind
    )
    since = request.param("resourceVersion") or ""
    timeout = float(request.param("timeoutSeconds") or DEFAULT_WATCH_SECONDS)
    as_table = table.wants_table(request.accept)
    include = request.param("includeObject", "Metadata") or "Metadata"
    try:
        start = int(since) if since not in ("", "0") else None
    except ValueError:
        raise errors.bad_request(f'invalid resource version "{since}"') from None
    if start is not None:
        try:
            store.check_version(start)
        except Expired as error:
            return Stream(
                iter([_event_line("ERROR", errors.ApiError(410, str(error), "Expired").status())])
            )
    return Stream(
        _events(store, poll, resource, namespace, accept, start, timeout, as_table, include)
    )


def _events(
    store: Store,
    poll: float,
    resource: Resource,
    namespace: str | None,
    accept: Callable[[Obj], bool],
    start: int | None,
    timeout: float,
    as_table: bool,
    include: str,
) -> Iterator[bytes]:
    deadline = time.monotonic() + timeout

    def encode(kind: str, obj: Obj) -> bytes:
        if as_table:
            obj = table.table(resource, [obj], obj["metadata"]["resourceVersion"], include)
        return _event_line(kind, obj)

    if start is None:
        items, cursor = store.list(resource.plural, namespace, accept)
        for item in items:
            yield encode("ADDED", item)
    else:
        cursor = start
    while not store.closed:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            changes = store.changes_after(cursor, min(poll, remaining))
        except Expired as error:
            yield _event_line("ERROR", errors.ApiError(410, str(error), "Expired").status())
            return
        # an empty chunk is not sent, but lets the server see a client that went away: also
        # after changes that were not for this watch, or a busy store would keep dead
        # watches (their threads and sockets) alive until it is idle
        yield b""
        for change in changes:
            cursor = change.rv
            if change.resource != resource.plural:
                continue
            if namespace is not None and change.namespace != namespace:
                continue
            now_matches = accept(change.obj)
            was_matching = change.old is not None and accept(change.old)
            if change.type == "ADDED" and now_matches:
                yield encode("ADDED", change.obj)
            elif change.type == "MODIFIED":
                if now_matches:
                    yield encode("MODIFIED" if was_matching else "ADDED", change.obj)
                elif was_matching:
                    yield encode("DELETED", change.obj)
            elif change.type == "DELETED" and (now_matches or was_matching):
                yield encode("DELETED", change.obj)


def _event_line(kind: str, obj: Obj) -> bytes:
    return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"
