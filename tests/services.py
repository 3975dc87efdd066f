"""Local test services (moto, Azurite, OCI registry, the real Kubernetes control plane), started
by .ci/services.sh.

A test that needs a service calls :func:`require`: outside CI it is skipped with the reason;
with ``ASCEND_REQUIRE_SERVICES=1`` (set by .ci/run) a missing service fails the test, so CI
never skips silently.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

SERVICES = {
    "moto": "ASCEND_TEST_S3_ENDPOINT",
    "azurite": "ASCEND_TEST_AZURITE",  # Azurite's connection string
    "registry": "ASCEND_TEST_REGISTRY",
    "auth-registry": "ASCEND_TEST_AUTH_REGISTRY",
    "azurite-bin": "ASCEND_TEST_AZURITE_BIN",  # the azurite-blob launcher, for own instances
    "kube": "ASCEND_TEST_KUBE_SERVER",  # kube-apiserver (`start kube`; not in the default list)
}
# Services whose value is a program to run, not an address: checked to exist, not connected to.
PROGRAMS = {"azurite-bin"}


def _address(name: str, value: str) -> str:
    if name == "azurite":  # a connection string: reach its BlobEndpoint
        parts = dict(p.split("=", 1) for p in value.split(";") if "=" in p)
        return parts.get("BlobEndpoint", "")
    return value


def _reachable(address: str) -> bool:
    parsed = urlparse(address if "://" in address else f"http://{address}")
    try:
        with socket.create_connection((parsed.hostname or "", parsed.port or 80), timeout=2):
            return True
    except OSError:
        return False


def require(name: str) -> str:
    """The service's address (from its environment variable), or skip/fail when absent."""
    var = SERVICES[name]
    value = os.environ.get(var, "")
    problem = None
    if not value:
        problem = f"service {name!r} is not configured ({var} is unset)"
    elif name in PROGRAMS:
        if not (os.path.isfile(value) and os.access(value, os.X_OK)):
            problem = f"service {name!r}: {value} is not an executable file"
    elif not _reachable(_address(name, value)):
        problem = f"service {name!r} at {value} is not reachable"
    if problem is None:
        return value
    which = " kube" if name == "kube" else ""
    hint = f'start it with: bash .ci/services.sh start{which} && eval "$(bash .ci/services.sh env)"'
    if os.environ.get("ASCEND_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{problem}; ASCEND_REQUIRE_SERVICES=1 forbids skipping. {hint}")
    pytest.skip(f"{problem}; {hint}")
