"""Test doubles for the Azure plugin: :class:`FakeArm`, a local Azure Resource Manager.

Nothing here is imported by the plugin itself; tests (Ascend's and plugin authors') import it.
"""

from __future__ import annotations

from ascend_azure.testing.arm import (
    BUILTIN_ROLES,
    ArmError,
    ArmRequest,
    AsyncFakeCredential,
    FakeArm,
    FakeCredential,
)

__all__ = [
    "BUILTIN_ROLES",
    "ArmError",
    "ArmRequest",
    "AsyncFakeCredential",
    "FakeArm",
    "FakeCredential",
]
