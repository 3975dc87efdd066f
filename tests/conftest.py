"""Shared test setup: Ascend's own fixtures, and the rule for tests that need a service."""

from __future__ import annotations

import os

# Tests choose their provider per test (fixtures below); importing ascend must not insist on
# one. Subprocess tests build their own environment and so still see the real import check.
os.environ["ASCEND_SKIP_BACKEND_CHECK"] = "1"

pytest_plugins = ["ascend.testing.pytest_plugin", "ascend.testing.kube.fixtures"]
