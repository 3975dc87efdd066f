"""Kubernetes API requests per call, and the delay from the job's end to the caller's return.

Run by hand: ``python benchmarks/kube_call.py [--runs 20] [--cluster emulator|real|both]``.
The calls go through the generic ``kubernetes`` provider (the official client, file://
storage) to the project's Kubernetes API emulator and, with ``real``/``both``, to the real
control plane of ``bash .ci/services.sh start kube`` with the process kubelet as its node
(``eval "$(bash .ci/services.sh env)"`` first). Requests are counted by the server: the
emulator's counter, or the real API server's audit log (people and test clients only; watch
and log streams included). Target: at most 8 per call. The delay is measured from the moment
the function returns inside the pod (it returns ``time.time()``) to the moment the caller has
the result (target: median under 0.2 s on the real control plane, whose Job controller says
``Complete`` about a second after the pod ends; the caller does not wait for it). Baseline in
the same run: a bare ``python -c pass`` subprocess, for the machine's speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

from _common import compile_bytecode

from ascend.testing.kube.users import set_up_namespace


def main() -> None:
    compile_bytecode()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cluster", choices=("emulator", "real", "both"), default="emulator")
    args = parser.parse_args()
    os.environ["ASCEND_CLOUD_PROVIDER"] = "kubernetes"  # before ascend is imported
    kinds = ("emulator", "real") if args.cluster == "both" else (args.cluster,)
    results = {kind: measure(kind, args.runs) for kind in kinds}
    bare = statistics.median(
        _timed([sys.executable, "-c", "pass"]) for _ in range(max(5, args.runs // 2))
    )
    print(f"{args.runs} calls per cluster (python {sys.version.split()[0]})")
    for kind, (requests, delays, totals) in results.items():
        print(f"{kind}:")
        print(
            f"  API requests per call: median {statistics.median(requests):.0f}, "
            f"max {max(requests)} (target <= 8)"
        )
        print(
            f"  function end -> caller has the result: median "
            f"{statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms "
            "(target < 200 ms on the real control plane)"
        )
        print(
            f"  whole call: median {statistics.median(totals) * 1000:.0f} ms = "
            f"{statistics.median(totals) / bare:.1f}x a bare python subprocess "
            f"({bare * 1000:.0f} ms)"
        )


def measure(kind: str, runs: int) -> tuple[list[int], list[float], list[float]]:
    with tempfile.TemporaryDirectory() as work:
        cluster = _start(kind, work)
        user = f"bench{uuid.uuid4().hex[:4]}"
        namespace = f"ascend-users-{user}"
        try:
            set_up_namespace(cluster, namespace)
            os.environ.update(
                ASCEND_CLOUD_PROVIDER="kubernetes",
                ASCEND_STORAGE_URL=f"file://{work}/store",
                ASCEND_KUBERNETES_KUBECONFIG=str(cluster.kubeconfig),
                ASCEND_IMAGES_RUNTIME="ascend-runtime:dev",
                ASCEND_USERNAME=user,
                ASCEND_CONFIG_DIR=work,
            )
            from ascend import ascend
            from ascend.backend import clear_backend_cache

            clear_backend_cache()

            @ascend(timeout=120, stream_logs=True)
            def finish() -> float:
                print("done")
                return time.time()

            finish()  # warm: client import, first connection
            requests, delays, totals = [], [], []
            for _ in range(runs):
                cluster.requests.reset()
                start = time.perf_counter()
                ended = finish()
                delays.append(time.time() - ended)
                totals.append(time.perf_counter() - start)
                time.sleep(0.2)  # the audit log is written as requests arrive; let it settle
                requests.append(cluster.requests.total)
        finally:
            _stop(kind, cluster, namespace)
    return requests, delays, totals


def _start(kind: str, work: str) -> Any:
    if kind == "emulator":
        from ascend.testing.kube import KubeEmulator

        emulator = KubeEmulator().start()
        emulator.write_kubeconfig(os.path.join(work, "kubeconfig"))
        return emulator
    from ascend.testing.kube.real import RealCluster

    real = RealCluster.from_environment()
    if real is None or real.requests is None:
        sys.exit(
            "the real control plane is not running: bash .ci/services.sh start kube && "
            'eval "$(bash .ci/services.sh env)"'
        )
    return real.start()


def _stop(kind: str, cluster: Any, namespace: str) -> None:
    if kind == "real":
        from kubernetes import client

        client.CoreV1Api(cluster.api_client()).delete_namespace(namespace)
    cluster.stop()


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
