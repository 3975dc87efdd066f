"""Latency of a trivial call and throughput of 256 MB payloads on the local provider.

Run by hand: ``python benchmarks/local_call.py [--runs 15] [--size-mb 256]``. Every figure is a
ratio against a baseline measured in the same run:

(a) a trivial call: median latency against ``ProcessPoolExecutor(1).submit(...).result()`` on a
    fresh pool, and against a bare ``python -c pass`` subprocess (target: <= 2.5x the bare
    subprocess);
(b) a 256 MB bytes argument (the function returns its length) and a function returning 256 MB:
    wall time against writing and reading the same bytes with fsspec directly (target <= 1.5x),
    and how much the caller's peak RSS grows beyond what it already holds, as a fraction of the
    payload (targets: <= 0.3 sending, since the upload streams; <= 1.3 receiving).

(c) with ``--lithops-python PATH`` (a Python whose environment has ``pip install lithops``;
    Lithops pins its own dependencies, so keep it in its own virtualenv), the same trivial call
    and the same payloads through Lithops' localhost executor, as the peer to beat.

Peak RSS is measured in a fresh child process per case (``ru_maxrss``), so cases do not mask
each other.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _common import compile_bytecode

CHILD = r"""
import json, os, resource, sys, time
size = int(sys.argv[2]) * 1024 * 1024
case = sys.argv[1]
def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
from ascend import ascend
import fsspec

@ascend(memory="4Gi", timeout=600, stream_logs=False)
def length(data):
    return len(data)

@ascend(memory="4Gi", timeout=600, stream_logs=False)
def produce(n):
    return bytes(n)

if case == "send":
    payload = os.urandom(size)
    before = rss_mb()
    start = time.perf_counter()
    assert length(payload) == size
    elapsed = time.perf_counter() - start
elif case == "receive":
    before = rss_mb()
    start = time.perf_counter()
    value = produce(size)
    elapsed = time.perf_counter() - start
    assert len(value) == size
elif case == "fsspec":
    payload = os.urandom(size)
    before = rss_mb()
    path = os.path.join(os.environ["ASCEND_LOCAL_STORAGE_DIR"], "raw.bin")
    start = time.perf_counter()
    with fsspec.open("file://" + path, "wb") as f:
        f.write(payload)
    with fsspec.open("file://" + path, "rb") as f:
        data = f.read()
    elapsed = time.perf_counter() - start
    assert len(data) == size
    os.unlink(path)
print(json.dumps({"seconds": elapsed, "rss_before_mb": before, "rss_peak_mb": rss_mb()}))
"""

TRIVIAL = r"""
import sys, time, json
from ascend import ascend
@ascend(stream_logs=False)
def add(a, b):
    return a + b
runs = int(sys.argv[1])
add(1, 2)  # warm: imports, storage directory
samples = []
for _ in range(runs):
    start = time.perf_counter(); assert add(1, 2) == 3; samples.append(time.perf_counter() - start)
print(json.dumps(samples))
"""

POOL = r"""
import sys, time, json
from concurrent.futures import ProcessPoolExecutor
def add(a, b):
    return a + b
if __name__ == "__main__":
    samples = []
    for _ in range(int(sys.argv[1])):
        start = time.perf_counter()
        with ProcessPoolExecutor(1) as pool:
            assert pool.submit(add, 1, 2).result() == 3
        samples.append(time.perf_counter() - start)
    print(json.dumps(samples))
"""


LITHOPS = r"""
import json, logging, os, resource, statistics, sys, time
import lithops
logging.disable(logging.CRITICAL)
case, size, runs = sys.argv[1], int(sys.argv[2]) * 1024 * 1024, int(sys.argv[3])
def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def add(a, b):
    return a + b
def length(data):
    return len(data)
def produce(n):
    return bytes(n)
fexec = lithops.FunctionExecutor(
    config={"lithops": {"backend": "localhost", "storage": "localhost", "data_limit": False}},
    log_level=None)  # data_limit: Lithops refuses arguments over 4 MiB by default
fexec.call_async(add, (1, 2)); fexec.get_result()
if case == "trivial":
    samples = []
    for _ in range(runs):
        start = time.perf_counter(); fexec.call_async(add, (1, 2)); fexec.get_result()
        samples.append(time.perf_counter() - start)
    print(json.dumps({"seconds": statistics.median(samples)}))
else:
    payload = os.urandom(size) if case == "send" else None
    before = rss_mb()
    start = time.perf_counter()
    if case == "send":
        fexec.call_async(length, (payload,)); assert fexec.get_result() == size
    else:
        fexec.call_async(produce, (size,)); assert len(fexec.get_result()) == size
    print(json.dumps({"seconds": time.perf_counter() - start, "rss_before_mb": before,
                      "rss_peak_mb": rss_mb()}))
"""


def run_child(
    code: str, args: list[str], env: dict[str, str], cwd: str, python: str = sys.executable
) -> str:
    path = os.path.join(cwd, "child.py")
    with open(path, "w") as handle:
        handle.write(code)
    done = subprocess.run(
        [python, path, *args], env=env, cwd=cwd, check=True, capture_output=True, text=True
    )
    return done.stdout.strip().splitlines()[-1]


def lithops_peer(
    args: argparse.Namespace,
    env: dict[str, str],
    work: str,
    ours: float,
    results: dict[str, dict[str, float]],
) -> None:
    lithops_env = dict(env)
    # Lithops' localhost backend starts `python` from PATH: make it the one with lithops.
    lithops_env["PATH"] = os.path.dirname(args.lithops_python) + os.pathsep + env["PATH"]
    peer = {
        case: json.loads(
            run_child(
                LITHOPS,
                [case, str(args.size_mb), str(args.runs)],
                lithops_env,
                work,
                args.lithops_python,
            )
        )
        for case in ("trivial", "send", "receive")
    }
    print("(c) Lithops localhost executor, same run")
    trivial = peer["trivial"]["seconds"]
    print(f"    trivial call {trivial * 1000:7.1f} ms = {trivial / ours:.2f}x ascend's")
    for case in ("send", "receive"):
        r = peer[case]
        growth = (r["rss_peak_mb"] - r["rss_before_mb"]) / args.size_mb
        print(
            f"    {case:7s} {r['seconds']:6.2f} s = {r['seconds'] / results[case]['seconds']:.2f}x "
            f"ascend's; peak RSS growth {growth:.2f} x payload"
        )


def main() -> None:
    compile_bytecode()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--lithops-python", help="a Python with lithops installed (part c)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASCEND_")}
        env.update(
            ASCEND_CLOUD_PROVIDER="local",
            ASCEND_LOCAL_STORAGE_DIR=os.path.join(work, "jobs"),
            ASCEND_CONFIG_DIR=work,
        )
        bare = []
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            bare.append(time.perf_counter() - start)
        pool = json.loads(run_child(POOL, [str(args.runs)], env, work))
        ours = json.loads(run_child(TRIVIAL, [str(args.runs)], env, work))
        b, p, o = (statistics.median(x) for x in (bare, pool, ours))
        print(f"(a) trivial call, median of {args.runs} (python {sys.version.split()[0]})")
        print(f"    python -c pass subprocess      {b * 1000:7.1f} ms")
        print(f"    ProcessPoolExecutor(1), fresh  {p * 1000:7.1f} ms")
        print(f"    @ascend local call             {o * 1000:7.1f} ms")
        print(
            f"    ascend / bare subprocess: {o / b:.2f}x (target <= 2.5x); ascend / pool: {o / p:.2f}x"
        )

        size = str(args.size_mb)
        results = {
            case: json.loads(run_child(CHILD, [case, size], env, work))
            for case in ("fsspec", "send", "receive")
        }
        raw = results["fsspec"]["seconds"]
        print(f"(b) {args.size_mb} MB payloads")
        print(f"    fsspec write + read, same bytes {raw:6.2f} s")
        for case in ("send", "receive"):
            r = results[case]
            growth = (r["rss_peak_mb"] - r["rss_before_mb"]) / args.size_mb
            print(
                f"    {case:7s} {r['seconds']:6.2f} s = {r['seconds'] / raw:.2f}x fsspec "
                f"(target <= 1.5x); peak RSS growth {growth:.2f} x payload "
                f"(target <= {0.3 if case == 'send' else 1.3})"
            )
        if args.lithops_python:
            lithops_peer(args, env, work, o, results)


if __name__ == "__main__":
    main()
