"""Image builds and reuse, against the local OCI registry (``bash .ci/services.sh start
registry``), resolving offline from the tests' wheelhouse.

Run by hand from the repository root: ``python benchmarks/images.py [--runs 20]``. Printed:
- the reuse decision for an existing image: registry requests (target: one) and time (target:
  under 20 ms on loopback);
- a local build of a five-package lock against ``uv pip install --target`` of the same lock, the
  baseline measured in the same run (target: at most 1.3x);
- whether two builds of one lock give one manifest digest;
- a call on the Kubernetes emulator (real pulls) that reuses a requirements image against a
  call with no requirements, both on the same runtime image (target: at most 1.1x).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from ascend.testing.kube.users import set_up_namespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ascend.images.build import build_env_image, open_base
from ascend.images.lock import PLATFORM, IndexOptions, resolve, run_uv
from ascend.images.progress import Progress
from ascend.images.spec import ImageBuilder, ImageSpec
from ascend.registry import OCIRegistry
from tests.image_helpers import push_python_base
from tests.registry_proxy import counting_proxy
from tests.wheelhouse import build_wheel, make_wheelhouse


def _spec(base: str, registry: OCIRegistry, lock: object, repository: str) -> ImageSpec:
    opened = open_base(base, registry)
    return ImageSpec(
        base_image=base,
        base_digest=opened.digest,
        python_version=opened.python_version,
        lock=lock,  # type: ignore[arg-type]
        ascend_version="bench",
        cloudpickle_version="bench",
        repository=repository,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    upstream = os.environ.get("ASCEND_TEST_REGISTRY", "127.0.0.1:5000")
    with tempfile.TemporaryDirectory() as work:
        wheels = make_wheelhouse(Path(work) / "wheels")
        for number in range(3):  # five packages: needs + tiny, and three 200-module ones
            files = {f"bench_pkg{number}/m{i}.py": f"X = {i}\n" * 50 for i in range(200)}
            build_wheel(wheels, f"bench-pkg{number}", "1.0", files)
        index = IndexOptions(no_index=True, find_links=(str(wheels),))
        requirements = ["ascend-demo-needs", "bench-pkg0", "bench-pkg1", "bench-pkg2"]
        lock = resolve(requirements, "3.11", index)
        print(f"lock: {len(lock.pins)} packages")
        base = push_python_base(upstream, repository=f"bench/python-{uuid.uuid4().hex[:8]}")
        registry = OCIRegistry(upstream)

        builds, digests = [], []
        for _ in range(3):
            spec = _spec(base, registry, lock, f"bench/env-{uuid.uuid4().hex[:8]}")
            start = time.perf_counter()
            build_env_image(spec, registry, index=index, timeout=300, progress=Progress(False))
            builds.append(time.perf_counter() - start)
            digests.append(registry.manifest(spec.repository, spec.tag).digest)
        installs = []
        for _ in range(3):
            with tempfile.TemporaryDirectory() as target:
                (Path(target) / "lock.txt").write_text(lock.text)
                start = time.perf_counter()
                done = run_uv(
                    [
                        "pip",
                        "install",
                        "--target",
                        f"{target}/t",
                        "--no-deps",
                        "--require-hashes",
                        "--python-version",
                        "3.11",
                        "--python-platform",
                        PLATFORM,
                        "-r",
                        f"{target}/lock.txt",
                        *index.uv_args(),
                    ],
                    timeout=300,
                )
                installs.append(time.perf_counter() - start)
                assert done.returncode == 0, done.stderr
        build, install = statistics.median(builds), statistics.median(installs)
        print(f"local build (install + layer + push): median {build * 1000:.0f} ms")
        print(f"uv pip install --target (baseline):   median {install * 1000:.0f} ms")
        print(f"ratio build/install: {build / install:.2f}x (target <= 1.3x)")
        print(f"one lock, one digest over 3 builds: {len(set(digests)) == 1}")

        class Never(ImageBuilder):
            def build(self, spec: ImageSpec, progress: Progress | None = None) -> str:
                raise AssertionError("the image exists; nothing should build")

        with counting_proxy(upstream) as (address, seen):
            client = OCIRegistry(address)
            spec = _spec(base.replace(upstream, address), client, lock, spec.repository)
            times = []
            for _ in range(args.runs):
                seen.clear()
                start = time.perf_counter()
                Never().get_or_build(spec, client)
                times.append(time.perf_counter() - start)
            requests = len(seen.requests)
        print(
            f"reuse decision for an existing image: {requests} registry request(s), median "
            f"{statistics.median(times) * 1000:.2f} ms over {args.runs} (target: 1, < 20 ms)"
        )
        calls(upstream, wheels, work, args.runs)


def calls(upstream: str, wheels: Path, work: str, runs: int) -> None:
    """A call with requirements (image built once, then reused) against one without."""
    from ascend import ascend, get_backend
    from ascend.images.build import retag
    from ascend.images.choose import spec_for
    from ascend.images.spec import RUNTIME_REPOSITORY
    from ascend.testing.kube import KubeEmulator
    from tests.registry_proxy import counting_proxy

    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    kube = KubeEmulator().start()
    try:
        with counting_proxy(upstream, f"bench/{uuid.uuid4().hex[:8]}") as (registry, _):
            os.environ.update(
                ASCEND_CLOUD_PROVIDER="kubernetes",
                ASCEND_STORAGE_URL=f"file://{work}/store",
                ASCEND_KUBERNETES_KUBECONFIG=str(kube.write_kubeconfig(f"{work}/kubeconfig")),
                ASCEND_USERNAME="bench",
                ASCEND_REGISTRY_URL=registry,
                ASCEND_IMAGES_BUILDER="local",
                ASCEND_IMAGES_NO_INDEX="true",
                ASCEND_IMAGES_FIND_LINKS=str(wheels),
            )
            set_up_namespace(kube, "ascend-users-bench")
            backend = get_backend()
            base = push_python_base(registry, repository="library/python")
            spec = spec_for(backend, base, (), repository=RUNTIME_REPOSITORY)
            built = backend.image_builder.build(spec, Progress(enabled=False))
            retag(backend.registry, RUNTIME_REPOSITORY, built.rsplit(":", 1)[1], f"py{minor}")

            @ascend(stream_logs=False, timeout=120)
            def plain() -> int:
                return 1

            @ascend(requirements=["ascend-demo-tiny"], stream_logs=False, timeout=120)
            def with_tiny() -> int:
                import ascend_demo_tiny  # type: ignore[import-not-found]  # noqa: F401

                return 1

            plain(), with_tiny()  # the build and the first pulls are not what is measured
            timings: dict[str, list[float]] = {"plain": [], "with_tiny": []}
            for _ in range(runs):
                for name, function in (("plain", plain), ("with_tiny", with_tiny)):
                    start = time.perf_counter()
                    function()
                    timings[name].append(time.perf_counter() - start)
    finally:
        kube.stop()
    plain_ms = statistics.median(timings["plain"]) * 1000
    tiny_ms = statistics.median(timings["with_tiny"]) * 1000
    print(f"call with no requirements (baseline): median {plain_ms:.0f} ms over {runs}")
    print(f"call reusing a requirements image:    median {tiny_ms:.0f} ms")
    print(f"ratio: {tiny_ms / plain_ms:.2f}x (target <= 1.1x)")


if __name__ == "__main__":
    main()
