"""Throughput and caller memory of 256 MB payloads with ``cloud_provider: azure`` on Azurite.

Run by hand (Azurite running, see ``.ci/services.sh``)::

    eval "$(bash .ci/services.sh env)"
    python benchmarks/azure_call.py [--runs 3] [--size-mb 256]

Real calls: Blob storage is Azurite (the caller gets the connection string, the pod only a
Secret ``secretKeyRef``, as in ``tests/azure/test_e2e_azure.py``); compute is the project's
Kubernetes API emulator, whose pods are local processes running the real runner. Every figure
is compared with a baseline measured in the same run: raw adlfs writing one N MB ``bytes``
object and reading it back, with the filesystem's defaults (the block size Ascend's storage
also ends up with; it passes none). Throughput ratio = baseline time / Ascend time (target
>= 0.8):

- send, caller side: ``fn.submit(payload)`` (check, package, upload, records, Job creation)
  against the raw write;
- receive, caller side: ``handle.result()`` of a finished job whose function returned N MB
  (download, verify, unpickle) against the raw read;
- round trip (either case): the whole call minus a trivial call's time measured in the same
  process (pod start and polling are not throughput), against the raw write + read.

The caller's peak RSS growth beyond what it already holds (after a warm-up call, with the
argument already built) is a fraction of the payload, measured as in ``local_call.py``: a
fresh child process per case and run, ``ru_maxrss`` (targets: <= 0.3 sending, <= 1.3
receiving). Times are medians over ``--runs``; RSS growth is the worst run. Everything goes to
a fresh container, emptied and deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from importlib.metadata import version

from _common import PACKAGES, compile_bytecode

from ascend.testing.kube.users import set_up_namespace

USER = "bench"
NAMESPACE = f"ascend-users-{USER}"
SECRET = "ascend-storage"
TARGET_RATIO = 0.8
RSS_TARGET = {"send": 0.3, "receive": 1.3}

CHILD = r"""
import json, os, resource, sys, time, uuid
case, size, container = sys.argv[1], int(sys.argv[2]) * 1024 * 1024, sys.argv[3]

def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

if case == "adlfs":
    import fsspec
    fs = fsspec.filesystem("az", connection_string=os.environ["BENCH_AZURITE"])
    path = f"{container}/raw/{uuid.uuid4().hex}.bin"
    fs.pipe(path, b"warm")  # connection and container, as the warm call does for Ascend
    payload = os.urandom(size)
    before = rss_mb()
    start = time.perf_counter()
    with fs.open(path, "wb") as f:
        f.write(payload)
    written = time.perf_counter()
    with fs.open(path, "rb") as f:
        data = f.read()
    end = time.perf_counter()
    peak = rss_mb()
    assert data == payload
    fs.rm(path)
    print(json.dumps({"write": written - start, "read": end - written, "rss_before_mb": before,
                      "rss_peak_mb": peak, "blocksize": fs.blocksize,
                      "max_concurrency": fs.max_concurrency}))
    sys.exit()

from ascend import ascend, get_backend

@ascend(memory="4Gi", timeout=600, stream_logs=False)
def length(data):
    return len(data)

@ascend(memory="4Gi", timeout=600, stream_logs=False)
def produce(n):
    return bytes(n)

def wait(handle):
    while not handle.done():
        time.sleep(0.02)

storage = get_backend().storage
assert length(b"warm") == 4  # imports, connections, container: not what is measured
start = time.perf_counter()
assert length(b"x") == 1
trivial = time.perf_counter() - start

if case == "send":
    payload = os.urandom(size)
    before = rss_mb()
    start = time.perf_counter()
    handle = length.submit(payload)
    submitted = time.perf_counter()
    wait(handle)
    finished = time.perf_counter()
    assert handle.result() == size
else:
    before = rss_mb()
    start = time.perf_counter()
    handle = produce.submit(size)
    submitted = time.perf_counter()
    wait(handle)
    finished = time.perf_counter()
    value = handle.result()
end = time.perf_counter()
peak = rss_mb()
if case == "receive":
    assert len(value) == size
pod = float(handle.metadata().get("duration_seconds") or "nan")  # the runner's own span
storage.delete("users", recursive=True)
print(json.dumps({"submit": submitted - start, "wait": finished - submitted,
                  "result": end - finished, "call": end - start, "trivial": trivial,
                  "pod": pod, "rss_before_mb": before, "rss_peak_mb": peak}))
"""


def run_child(code: str, args: list[str], env: dict[str, str], cwd: str) -> dict[str, float]:
    path = os.path.join(cwd, "child.py")
    with open(path, "w") as handle:
        handle.write(code)
    done = subprocess.run(
        [sys.executable, path, *args], env=env, cwd=cwd, capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"child {args[0]!r} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def azurite_version(connection_string: str) -> str:
    """What the running Azurite says in its ``Server`` header (an unsigned request: 403)."""
    parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
    endpoint = parts.get("BlobEndpoint", "http://127.0.0.1:10000/devstoreaccount1")
    try:
        with urllib.request.urlopen(endpoint + "?comp=list", timeout=5) as response:
            server = response.headers.get("Server")
    except urllib.error.HTTPError as error:
        server = error.headers.get("Server")
    except OSError as error:
        return f"unreachable ({error})"
    return server or "unknown"


def verdict(label: str, value: float, target: float, at_least: bool) -> str:
    ok = value >= target if at_least else value <= target
    sign = ">=" if at_least else "<="
    return f"    {'PASS' if ok else 'MISS'}  {label}: {value:.2f} (target {sign} {target})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=256)
    args = parser.parse_args()
    connection_string = os.environ.get("ASCEND_TEST_AZURITE")
    if not connection_string:
        sys.exit(
            'ASCEND_TEST_AZURITE is not set: bash .ci/services.sh start azurite && eval "$(bash '
            '.ci/services.sh env)"'
        )
    compile_bytecode(
        (*PACKAGES, "ascend_azure", "adlfs", "azure.storage.blob", "azure.core", "aiohttp")
    )
    print("$ " + shlex.join([sys.executable, *sys.argv]))
    print(
        f"python {sys.version.split()[0]}, adlfs {version('adlfs')}, azure-storage-blob "
        f"{version('azure-storage-blob')}, fsspec {version('fsspec')}, Azurite: "
        f"{azurite_version(connection_string)}"
    )

    import fsspec

    from ascend.testing.kube import KubeEmulator

    container = f"bench-{uuid.uuid4().hex[:12]}"
    fs = fsspec.filesystem("az", connection_string=connection_string, skip_instance_cache=True)
    fs.mkdir(container)
    kube = KubeEmulator().start()
    samples: dict[str, list[dict[str, float]]] = {"adlfs": [], "send": [], "receive": []}
    try:
        with tempfile.TemporaryDirectory() as work:
            kubeconfig = kube.write_kubeconfig(os.path.join(work, "kubeconfig"))
            set_up_namespace(kube, NAMESPACE)
            from kubernetes import client

            client.CoreV1Api(kube.api_client()).create_namespaced_secret(
                NAMESPACE,
                {
                    "metadata": {"name": SECRET},
                    "stringData": {"connection-string": connection_string},
                },
            )
            env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("ASCEND_", "AZURE_STORAGE_"))
            }
            env.update(
                BENCH_AZURITE=connection_string,
                ASCEND_CLOUD_PROVIDER="azure",
                ASCEND_AZURE_CONTAINER=container,
                ASCEND_AZURE_CONNECTION_STRING=connection_string,
                ASCEND_AZURE_CONNECTION_STRING_SECRET=f"{SECRET}/connection-string",
                ASCEND_KUBERNETES_KUBECONFIG=str(kubeconfig),
                ASCEND_IMAGES_RUNTIME="ascend-runtime:dev",
                ASCEND_USERNAME=USER,
                ASCEND_CONFIG_DIR=work,
            )
            for run in range(args.runs):
                for case in samples:
                    result = run_child(CHILD, [case, str(args.size_mb), container], env, work)
                    samples[case].append(result)
                    rounded = {
                        k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()
                    }
                    print(
                        f"  run {run + 1}/{args.runs} {case:7s} {json.dumps(rounded)}", flush=True
                    )
    finally:
        kube.stop()
        try:
            fs.rm(container, recursive=True)
        except FileNotFoundError:
            pass
    report(args, samples)


def report(args: argparse.Namespace, samples: dict[str, list[dict[str, float]]]) -> None:
    def median(case: str, key: str) -> float:
        return statistics.median(sample[key] for sample in samples[case])

    def growth(case: str) -> float:
        return max(s["rss_peak_mb"] - s["rss_before_mb"] for s in samples[case]) / args.size_mb

    size = args.size_mb
    raw_write, raw_read = median("adlfs", "write"), median("adlfs", "read")
    raw = samples["adlfs"][0]
    print(f"{size} MB payloads, median of {args.runs} runs (RSS growth: worst run, x payload)")
    print(
        f"  raw adlfs (block size {raw['blocksize'] / 2**20:g} MiB, max_concurrency "
        f"{raw['max_concurrency']}): write {raw_write:.2f} s = {size / raw_write:.0f} MB/s, "
        f"read {raw_read:.2f} s = {size / raw_read:.0f} MB/s; RSS growth {growth('adlfs'):.2f}"
    )
    ratios: dict[str, dict[str, float]] = {}
    for case, phase, baseline, what in (
        ("send", "submit", raw_write, "submit() (package + upload)"),
        ("receive", "result", raw_read, "result() of a finished job (download + load)"),
    ):
        ours = median(case, phase)
        round_trip = median(case, "call") - median(case, "trivial")
        paired = [  # the same ratio within each run, to show the run-to-run noise
            raw_run["write" if case == "send" else "read"] / run[phase]
            for raw_run, run in zip(samples["adlfs"], samples[case], strict=True)
        ]
        ratios[case] = {
            "caller": baseline / ours,
            "round": (raw_write + raw_read) / round_trip,
            "rss": growth(case),
        }
        print(f"  {case}: caller side, {what}: {ours:.2f} s = {size / ours:.0f} MB/s")
        print(
            f"    whole call {median(case, 'call'):.2f} s (submit {median(case, 'submit'):.2f}"
            f" + job {median(case, 'wait'):.2f} [runner {median(case, 'pod'):.2f}] + result "
            f"{median(case, 'result'):.2f}); trivial call {median(case, 'trivial'):.2f} s"
        )
        print(
            f"    throughput vs raw adlfs: caller side {ratios[case]['caller']:.2f}x (per run "
            f"{min(paired):.2f}-{max(paired):.2f}); round trip "
            f"(call - trivial = {round_trip:.2f} s vs write + read) {ratios[case]['round']:.2f}x;"
            f" peak RSS growth {ratios[case]['rss']:.2f}"
        )
    print("Verdicts")
    for case in ("send", "receive"):
        for label, key, target, at_least in (
            ("caller-side throughput / raw adlfs", "caller", TARGET_RATIO, True),
            ("round-trip throughput / raw adlfs", "round", TARGET_RATIO, True),
            ("caller peak RSS growth x payload", "rss", RSS_TARGET[case], False),
        ):
            print(verdict(f"{case} {label}", ratios[case][key], target, at_least))


if __name__ == "__main__":
    main()
