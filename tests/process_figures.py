"""What a leak test and ``benchmarks/leaks.py`` share: this process's threads, descriptors and
resident memory, and a Kubernetes emulator in a process of its own (so the figures are the
client's alone: the emulator keeps every finished Job and serves each connection on a thread).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path


def figures() -> tuple[int, int, int]:
    """(threads, open file descriptors, resident bytes) of this process."""
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return (
        threading.active_count(),
        len(os.listdir("/proc/self/fd")),
        resident_pages * os.sysconf("SC_PAGE_SIZE"),
    )


@contextlib.contextmanager
def emulator_process(work: Path, namespace: str) -> Iterator[Path]:
    """Serve an emulator from another process with ``namespace`` made; yields its kubeconfig."""
    kubeconfig = work / "kubeconfig"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ascend.testing.kube",
            "serve",
            "--port=0",
            f"--kubeconfig={kubeconfig}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()  # the URL: it serves
        process.stdout.readline()  # the kubeconfig is written
        from kubernetes import config

        from ascend.kubernetes.admin import ensure_namespace

        with config.new_client_from_config(config_file=str(kubeconfig)) as api:
            ensure_namespace(api, namespace, subject=namespace.removeprefix("ascend-users-"))
        yield kubeconfig
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
