"""Azure credentials from azure-identity, built once per configuration and shared.

Which identity is used:

- ``azure.client_id`` set: that managed identity (a user-assigned identity on a VM, or the
  workload identity inside a job pod), through ``DefaultAzureCredential`` so that a developer's
  ``az login`` still works on a laptop;
- otherwise ``DefaultAzureCredential``: environment, workload identity, managed identity,
  Azure CLI, in that order.

``azure.identity`` is imported here, on first use, never when the plugin loads. Tests (and
tools that already hold a credential) install one with :func:`override_credential`, so nothing
here ever probes the real instance-metadata endpoint during a test.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ascend.errors import ConfigError

if TYPE_CHECKING:
    from ascend.config import AscendConfig

ARM_SCOPE = "https://management.azure.com/.default"
STORAGE_SCOPE = "https://storage.azure.com/.default"

_lock = threading.Lock()
_cache: dict[tuple[str | None, str | None, bool], Any] = {}
_override: list[tuple[Any, Any]] = []


def _missing_sdk(error: ImportError) -> ConfigError:
    return ConfigError(
        f"the Azure identity library is not installed ({error.name})",
        fix="pip install ascend[azure]",
    )


def get_credential(config: AscendConfig, *, asynchronous: bool = False) -> Any:
    """The credential for ``config``: an ``azure.core`` TokenCredential (async when asked)."""
    if _override:
        sync, async_ = _override[-1]
        return async_ if asynchronous else sync
    client_id = config.get("azure.client_id")
    tenant_id = config.get("azure.tenant_id")
    key = (client_id, tenant_id, asynchronous)
    with _lock:
        if key not in _cache:
            _cache[key] = _build(client_id, tenant_id, asynchronous)
        return _cache[key]


def _build(client_id: str | None, tenant_id: str | None, asynchronous: bool) -> Any:
    try:
        if asynchronous:
            from azure.identity.aio import DefaultAzureCredential
        else:
            from azure.identity import DefaultAzureCredential  # type: ignore[assignment]
    except ImportError as error:
        raise _missing_sdk(error) from error
    options: dict[str, Any] = {"exclude_interactive_browser_credential": True}
    if client_id:
        options["managed_identity_client_id"] = client_id
        options["workload_identity_client_id"] = client_id
    if tenant_id:
        options["additionally_allowed_tenants"] = [tenant_id]
        options["workload_identity_tenant_id"] = tenant_id
    return DefaultAzureCredential(**options)


@contextlib.contextmanager
def override_credential(credential: Any, async_credential: Any = None) -> Iterator[None]:
    """Use ``credential`` (and ``async_credential`` for adlfs) instead of azure-identity's."""
    _override.append((credential, async_credential))
    try:
        yield
    finally:
        _override.remove((credential, async_credential))


def clear_cache() -> None:
    """Forget built credentials (tests; after ``az login`` as someone else)."""
    with _lock:
        _cache.clear()


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT access token, read without verifying it, to say who is signed in
    (``upn``, ``appid``, ``oid``); ``{}`` when the token is not a readable JWT."""
    try:
        payload = token.split(".")[1]
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}
