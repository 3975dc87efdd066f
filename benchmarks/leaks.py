"""Threads, open file descriptors and resident memory of a process making many calls.

Run by hand: ``python benchmarks/leaks.py [--calls 1000] [--provider kubernetes|local|both]``.
Each provider gets ``--calls`` sequential calls of a trivial function (``stream_logs=False``).
The figures are taken before the first call, after ``--warm-up`` calls (imports, the first
connections, the warm runner) and at the end; the growth after the warm-up should be nil: a
finished call must hold no thread, socket or watch. The Kubernetes emulator runs in a process
of its own, so the figures are the client's alone (the emulator keeps every Job and pod).
``tests/test_no_leaks.py`` asserts the same for 200 calls.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import compile_bytecode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.process_figures import emulator_process, figures

USER = "bench"


def measure(name: str, calls: int, warm_up: int) -> None:
    from ascend import ascend
    from ascend.backend import clear_backend_cache

    clear_backend_cache()

    @ascend(timeout=120, stream_logs=False)
    def increment(x: int) -> int:
        return x + 1

    start = figures()
    began = time.perf_counter()
    for index in range(warm_up):
        increment(index)
    warm = figures()
    for index in range(calls - warm_up):
        increment(index)
    end = figures()
    elapsed = time.perf_counter() - began
    print(f"{name}: {calls} calls in {elapsed:.0f} s ({elapsed / calls * 1000:.0f} ms a call)")
    print(f"  {'':24}{'threads':>10}{'fds':>10}{'RSS KiB':>12}")
    for label, row in (
        ("before the first call", start),
        (f"after {warm_up} calls", warm),
        (f"after {calls} calls", end),
    ):
        print(f"  {label:24}{row[0]:>10}{row[1]:>10}{row[2] // 1024:>12}")
    growth = [e - w for e, w in zip(end, warm, strict=True)]
    ratios = [e / w if w else float("nan") for e, w in zip(end, warm, strict=True)]
    print(
        f"  growth after the warm-up: threads {growth[0]:+d} (x{ratios[0]:.2f}), "
        f"fds {growth[1]:+d} (x{ratios[1]:.2f}), RSS {growth[2] // 1024:+d} KiB (x{ratios[2]:.3f}), "
        f"{growth[2] / 1024 / max(1, calls - warm_up):.1f} KiB a call"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warm-up", type=int, default=20)
    parser.add_argument("--provider", choices=("kubernetes", "local", "both"), default="both")
    args = parser.parse_args()
    compile_bytecode()
    print(f"python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as work:
        os.environ.update(
            ASCEND_CLOUD_PROVIDER="local",  # before ascend is imported
            ASCEND_STORAGE_URL=f"file://{work}/store",
            ASCEND_USERNAME=USER,
            ASCEND_CONFIG_DIR=work,
        )
        if args.provider in ("kubernetes", "both"):
            with emulator_process(Path(work), f"ascend-users-{USER}") as kubeconfig:
                os.environ.update(
                    ASCEND_CLOUD_PROVIDER="kubernetes",
                    ASCEND_KUBERNETES_KUBECONFIG=str(kubeconfig),
                    ASCEND_IMAGES_RUNTIME="ascend-runtime:dev",  # preloaded on the node
                    # finished Jobs leave soon: an emulator keeping them all slows down
                    ASCEND_KUBERNETES_TTL_SECONDS="2",
                )
                measure("kubernetes (emulator)", args.calls, args.warm_up)
        if args.provider in ("local", "both"):
            os.environ["ASCEND_CLOUD_PROVIDER"] = "local"
            measure("local", args.calls, args.warm_up)


if __name__ == "__main__":
    main()
