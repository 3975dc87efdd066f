"""Pytest fixtures for the Kubernetes emulator. Import them into a conftest.py or a test
module::

    from ascend.testing.kube.fixtures import kube_emulator, make_kube_emulator  # noqa: F401

- ``kube_emulator``: a started :class:`KubeEmulator` (default node: 4 CPUs, 8Gi, no GPU;
  only ``ascend-runtime:dev`` preloaded, every other image pulled from its loopback
  registry) with a kubeconfig written at ``kube_emulator.kubeconfig``; stopped (every pod
  process killed, pulled images removed) after the test.
- ``make_kube_emulator(**options)``: a factory for emulators with other node shapes or
  images (``gpu=1``, ``taints=[...]``, ``preloaded_images=[DEV_RUNTIME_IMAGE,
  "busybox:1.36"]``), each started, with a kubeconfig, and stopped after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ascend.testing.kube.emulator import KubeEmulator


@pytest.fixture
def make_kube_emulator(tmp_path: Path) -> Iterator[Callable[..., KubeEmulator]]:
    started: list[KubeEmulator] = []

    def make(namespace: str | None = None, **options: Any) -> KubeEmulator:
        emulator = KubeEmulator(**options).start()
        started.append(emulator)
        emulator.write_kubeconfig(tmp_path / f"kubeconfig-{len(started)}", namespace)
        return emulator

    yield make
    for emulator in reversed(started):
        emulator.stop()


@pytest.fixture
def kube_emulator(make_kube_emulator: Callable[..., KubeEmulator]) -> KubeEmulator:
    return make_kube_emulator()
