"""Shared test setup: Ascend's own fixtures, and the rule for tests that need a service."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ascend.testing.kube.users import set_up_namespace

from . import services

# Tests choose their provider per test (fixtures below); importing ascend must not insist on
# one. Subprocess tests build their own environment and so still see the real import check.
os.environ["ASCEND_SKIP_BACKEND_CHECK"] = "1"

pytest_plugins = [
    "ascend.testing.pytest_plugin",
    "ascend.testing.kube.fixtures",
    "tests.kube_clusters",
]


# -- the local OCI registries (.ci/services.sh): open, and with htpasswd auth -----------------

REGISTRY_USER = "ascend"
REGISTRY_PASSWORD = "s3cret"


@pytest.fixture
def open_registry() -> str:
    return services.require("registry")


@pytest.fixture
def auth_registry() -> str:
    return services.require("auth-registry")


@pytest.fixture
def auth_credentials() -> tuple[str, str]:
    return (
        os.environ.get("ASCEND_TEST_REGISTRY_USER", REGISTRY_USER),
        os.environ.get("ASCEND_TEST_REGISTRY_PASSWORD", REGISTRY_PASSWORD),
    )


# -- a local package index (tests/wheelhouse.py): image builds resolve offline ------------------


@pytest.fixture(scope="session")
def wheelhouse_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from .wheelhouse import make_wheelhouse

    return make_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


@pytest.fixture(scope="session")
def wheelhouse(wheelhouse_dir: Path) -> Any:
    from ascend.images.lock import IndexOptions

    return IndexOptions(no_index=True, find_links=(str(wheelhouse_dir),))


IMAGES_USER = "alice"


@pytest.fixture
def offline_cluster(
    make_kube_emulator: Any,
    ascend_pm: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    wheelhouse_dir: Path,
) -> Any:
    """``configure(registry, **env)``: an emulator and the ``kubernetes`` provider for user
    alice (namespace made), images on ``registry``, requirements resolved offline from the
    wheelhouse; ``env`` adds or overrides ASCEND_* variables. Returns the emulator."""

    def configure(registry: str, **env: str) -> Any:
        kube = make_kube_emulator()
        values = {
            "ASCEND_CLOUD_PROVIDER": "kubernetes",
            "ASCEND_STORAGE_URL": f"file://{tmp_path}/store",
            "ASCEND_KUBERNETES_KUBECONFIG": str(kube.kubeconfig),
            "ASCEND_USERNAME": IMAGES_USER,
            "ASCEND_REGISTRY_URL": registry,
            "ASCEND_IMAGES_NO_INDEX": "true",
            "ASCEND_IMAGES_FIND_LINKS": str(wheelhouse_dir),
            **env,
        }
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        set_up_namespace(kube, f"ascend-users-{IMAGES_USER}")
        return kube

    return configure


@pytest.fixture
def local(ascend_pm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The local provider with its jobs in ``<tmp_path>/jobs`` (returned), status lines on."""
    storage = tmp_path / "jobs"
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "local")
    monkeypatch.setenv("ASCEND_LOCAL_STORAGE_DIR", str(storage))
    monkeypatch.delenv("ASCEND_QUIET", raising=False)
    return storage
