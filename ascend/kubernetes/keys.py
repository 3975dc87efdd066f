"""Signing keys on Kubernetes: the Secret ``ascend-signing-key`` in each user's namespace.

``ascend admin add-user`` makes it (and lets the user's Role ``get`` it, by name only);
``ascend admin rotate-key`` replaces its current key and keeps the earlier ones as
``previous``. The client reads it through the API (kept for a minute per namespace, never
written anywhere); pods get it only through ``secretKeyRef`` (:func:`manifest.signing_env`).
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

from ascend.errors import ComputeError
from ascend.kubernetes.manifest import SECRET_CURRENT, SECRET_PREVIOUS
from ascend.signing import SECRET_NAME, KeyFormatError, KeyRing

KEEP_SECONDS = 60.0  # a rotation reaches running clients within this
REQUEST_TIMEOUT = (5.0, 15.0)


def _user_of(namespace: str) -> str:
    return namespace.removeprefix("ascend-users-").removeprefix("ascend-projects-")


def _decode(secret: Any, namespace: str) -> KeyRing:
    data = secret.data or {}
    try:
        current = base64.b64decode(data.get(SECRET_CURRENT) or "").decode()
        previous = base64.b64decode(data.get(SECRET_PREVIOUS) or "").decode()
        return KeyRing.decode(current, previous)
    except (ValueError, KeyFormatError) as error:
        raise ComputeError(
            f"the Secret {SECRET_NAME} in namespace {namespace} does not hold a signing key: "
            f"{error}",
            fix=f"ask a cluster admin to run: ascend admin rotate-key {_user_of(namespace)}",
        ) from None


def _body(keys: KeyRing, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": SECRET_NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "ascend"},
        },
        "stringData": {
            SECRET_CURRENT: keys.current.encode(),
            SECRET_PREVIOUS: keys.encode_previous(),
        },
    }


def new_secret(namespace: str) -> dict[str, Any]:
    """A Secret holding a new key, for ``namespace``."""
    return _body(KeyRing.new(), namespace)


def read(core: Any, namespace: str) -> KeyRing:
    """The namespace's keys. A missing or unreadable Secret is an error naming the fix."""
    from kubernetes.client.exceptions import ApiException

    try:
        secret = core.read_namespaced_secret(
            SECRET_NAME, namespace, _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as error:
        if error.status == 403:
            from ascend.kubernetes.access import forbidden_error

            raise forbidden_error(
                core.api_client, error, namespace, f"read the signing key (Secret {SECRET_NAME})"
            ) from None
        if error.status == 404:
            what = "there is no signing key"
            raise ComputeError(
                f"{what} (Secret {SECRET_NAME}) in namespace {namespace}, so your jobs' "
                "packages and results cannot be signed",
                fix=f"ask a cluster admin to run: ascend admin add-user {_user_of(namespace)}",
            ) from None
        raise ComputeError(
            f"could not read the signing key in {namespace}: HTTP {error.status} {error.reason}"
        ) from None
    return _decode(secret, namespace)


def ensure(core: Any, namespace: str) -> bool:
    """Make the namespace's key if it has none; whether it was made."""
    from kubernetes.client.exceptions import ApiException

    try:
        core.create_namespaced_secret(namespace, new_secret(namespace))
        return True
    except ApiException as error:
        if error.status == 409:
            return False
        raise ComputeError(
            f"could not create the signing key in {namespace}: HTTP {error.status} {error.reason}",
            fix="run this as a cluster admin",
        ) from None


def rotate(core: Any, namespace: str) -> KeyRing:
    """A new current key; the old ones stay as previous keys, so results they signed verify."""
    from kubernetes.client.exceptions import ApiException

    try:
        rotated = read(core, namespace).rotated()
    except ComputeError:
        rotated = KeyRing.new()
        if ensure(core, namespace):  # there was none: the new one is all there is
            return read(core, namespace)
    try:
        core.replace_namespaced_secret(SECRET_NAME, namespace, _body(rotated, namespace))
    except ApiException as error:
        raise ComputeError(
            f"could not rotate the signing key in {namespace}: HTTP {error.status} {error.reason}",
            fix="run this as a cluster admin",
        ) from None
    return rotated


class KeyCache:
    """Keys per namespace, read at most once a minute (thread-safe)."""

    def __init__(self, core: Any) -> None:
        self._core = core
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[float, KeyRing]] = {}

    def get(self, namespace: str) -> KeyRing:
        with self._lock:
            kept = self._kept.get(namespace)
            if kept is not None and time.monotonic() - kept[0] < KEEP_SECONDS:
                return kept[1]
        keys = read(self._core(), namespace)
        with self._lock:
            self._kept[namespace] = (time.monotonic(), keys)
        return keys
