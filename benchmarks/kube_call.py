"""Kubernetes API requests per call, and the delay from the job's end to the caller's return.

Run by hand: ``python benchmarks/kube_call.py [--runs 20]``. The calls go through the generic
``kubernetes`` provider to the project's Kubernetes API emulator (real HTTP, the official
client), with file:// storage. Requests are counted at the emulator, watch and log streams
included (target: at most 8 per call). The delay is measured from the moment the function
returns inside the pod (it returns ``time.time()``) to the moment the caller has the result
(target: median under 0.5 s; the previous generation polled with up to 30 s of added latency).
Baseline in the same run: a bare ``python -c pass`` subprocess, for the machine's speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _common import compile_bytecode

from ascend.testing.kube.users import set_up_namespace


def main() -> None:
    compile_bytecode()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        os.environ["ASCEND_CLOUD_PROVIDER"] = "kubernetes"  # before ascend is imported
        from ascend.testing.kube import KubeEmulator

        kube = KubeEmulator().start()
        try:
            kubeconfig = kube.write_kubeconfig(os.path.join(work, "kubeconfig"))
            set_up_namespace(kube, "ascend-users-bench")
            os.environ.update(
                ASCEND_CLOUD_PROVIDER="kubernetes",
                ASCEND_STORAGE_URL=f"file://{work}/store",
                ASCEND_KUBERNETES_KUBECONFIG=str(kubeconfig),
                ASCEND_IMAGES_RUNTIME="ascend-runtime:dev",
                ASCEND_USERNAME="bench",
                ASCEND_CONFIG_DIR=work,
            )
            from ascend import ascend

            @ascend(timeout=120, stream_logs=True)
            def finish() -> float:
                print("done")
                return time.time()

            finish()  # warm: client import, first connection
            requests, delays, totals = [], [], []
            for _ in range(args.runs):
                kube.requests.reset()
                start = time.perf_counter()
                ended = finish()
                delays.append(time.time() - ended)
                totals.append(time.perf_counter() - start)
                requests.append(kube.requests.total)
        finally:
            kube.stop()
    bare = statistics.median(
        _timed([sys.executable, "-c", "pass"]) for _ in range(max(5, args.runs // 2))
    )
    print(f"Kubernetes emulator, {args.runs} calls (python {sys.version.split()[0]})")
    print(
        f"  API requests per call: median {statistics.median(requests):.0f}, max {max(requests)}"
        " (target <= 8)"
    )
    print(
        f"  function end -> caller has the result: median {statistics.median(delays) * 1000:.0f}"
        f" ms, max {max(delays) * 1000:.0f} ms (target < 500 ms)"
    )
    print(
        f"  whole call: median {statistics.median(totals) * 1000:.0f} ms = "
        f"{statistics.median(totals) / bare:.1f}x a bare python subprocess ({bare * 1000:.0f} ms)"
    )


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
