"""Whether the ``azure`` extra is installed, answered without importing it.

``importlib.util.find_spec`` only locates the packages, so ``ascend plugins`` and
``import ascend`` can tell a user what is missing without paying for adlfs and azure-identity
(about a second of imports together).
"""

from __future__ import annotations

import importlib.util

EXTRA_FIX = "pip install ascend[azure]"
# module that must be importable -> the distribution that provides it
REQUIRED = {
    "adlfs": "adlfs",
    "azure.identity": "azure-identity",
    "azure.mgmt.containerservice": "azure-mgmt-containerservice",
}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing or broken
        return False


def missing_distributions() -> list[str]:
    """Distributions of the ``azure`` extra that are not installed, in a stable order."""
    return [dist for module, dist in REQUIRED.items() if not _importable(module)]
