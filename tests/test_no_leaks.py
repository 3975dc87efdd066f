"""Nothing grows per call: after many sequential calls a process holds no more threads, file
descriptors or memory than after the first few (issue 10, point 3).

The Kubernetes emulator runs in a process of its own here, so that the figures are the
client's alone (the emulator keeps every finished Job and pod, and serves each connection on
a thread). ``benchmarks/leaks.py`` prints the same figures for 1000 calls.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from ascend import ascend

from .process_figures import emulator_process, figures

CALLS = 200
WARM_UP = 20
USER = "alice"

pytestmark = pytest.mark.timeout(600)


@ascend(timeout=60, stream_logs=False)
def increment(x: int) -> int:
    return x + 1


def assert_flat(calls: int) -> None:
    """Make ``calls`` calls; after the warm-up, threads, descriptors and memory stay put."""
    for index in range(WARM_UP):
        assert increment(index) == index + 1
    threads, fds, rss = figures()
    for index in range(calls - WARM_UP):
        assert increment(index) == index + 1
    threads_after, fds_after, rss_after = figures()
    report = (
        f"after {WARM_UP} calls: {threads} threads, {fds} fds, {rss >> 20} MiB; after {calls}: "
        f"{threads_after} threads, {fds_after} fds, {rss_after >> 20} MiB"
    )
    assert threads_after <= threads + 3, report
    assert fds_after <= fds + 5, report
    assert rss_after - rss <= max(0.05 * rss, 4 << 20), report


def test_kubernetes_calls_leave_nothing_behind(
    ascend_pm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    kubeconfig = ExitStack()
    emulator = kubeconfig.enter_context(emulator_process(tmp_path, f"ascend-users-{USER}"))
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "kubernetes")
    monkeypatch.setenv("ASCEND_STORAGE_URL", f"file://{tmp_path}/store")
    monkeypatch.setenv("ASCEND_KUBERNETES_KUBECONFIG", str(emulator))
    monkeypatch.setenv("ASCEND_IMAGES_RUNTIME", "ascend-runtime:dev")  # preloaded on the node
    monkeypatch.setenv("ASCEND_USERNAME", USER)
    # finished Jobs leave soon: an emulator keeping them all slows down
    monkeypatch.setenv("ASCEND_KUBERNETES_TTL_SECONDS", "2")
    with kubeconfig:
        assert_flat(CALLS)


def test_local_calls_leave_nothing_behind(
    ascend_pm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "local")
    monkeypatch.setenv("ASCEND_STORAGE_URL", f"file://{tmp_path}/store")
    monkeypatch.setenv("ASCEND_USERNAME", USER)
    assert_flat(CALLS)
