"""How much `import ascend` costs, against a bare interpreter and against pluggy+click+yaml.

Run by hand: ``python benchmarks/import_time.py [--runs 15]``. Each sample is a fresh
interpreter; the figure is the median wall time. The target: `import ascend` (provider selected,
every plugin of this repository installed) costs no more than importing pluggy, click and yaml,
and loads no cloud SDK, no kubernetes, no fsspec and no cloudpickle.
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

FORBIDDEN = ("kubernetes", "fsspec", "cloudpickle", "azure", "adlfs", "docker", "s3fs")
CASES = {
    "bare interpreter": "pass",
    "import pluggy, click, yaml": "import pluggy, click, yaml",
    "import ascend": "import ascend",
    "import ascend (.ascend.yaml)": "import ascend",
    "import ascend (plugin provider)": "import ascend",
}
# The file case selects the provider in a project file instead of the environment, so the
# import also finds and scans the file. The plugin case selects nothing: a provider plugin is
# installed (an entry point), so the import check discovers and loads the plugins to find it.
FILE_CASE = "import ascend (.ascend.yaml)"
PLUGIN_CASE = "import ascend (plugin provider)"
PLUGIN_SOURCE = (
    "from ascend import Provider, hookimpl\n\n"
    "@hookimpl\ndef ascend_providers():\n    return [Provider('benchcloud')]\n"
)


def install_provider_plugin(site: str) -> None:
    """A tiny installed distribution with an ``ascend`` entry point, as pip would lay it out."""
    os.makedirs(site)
    with open(os.path.join(site, "bench_provider.py"), "w") as handle:
        handle.write(PLUGIN_SOURCE)
    info = os.path.join(site, "bench_provider-1.0.dist-info")
    os.mkdir(info)
    with open(os.path.join(info, "METADATA"), "w") as handle:
        handle.write("Metadata-Version: 2.1\nName: bench-provider\nVersion: 1.0\n")
    with open(os.path.join(info, "entry_points.txt"), "w") as handle:
        handle.write("[ascend]\nbench = bench_provider\n")


def sample(code: str, env: dict[str, str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, check=True)
    return time.perf_counter() - start


def main() -> None:
    compile_bytecode()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per case (>=10)")
    args = parser.parse_args()
    runs = max(args.runs, 10)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASCEND_")}
    env["ASCEND_CLOUD_PROVIDER"] = "kubernetes"
    with tempfile.TemporaryDirectory() as cwd:
        env["ASCEND_CONFIG_DIR"] = cwd
        check = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys, ascend; print(sorted(m for m in sys.modules "
                f"if m.split('.')[0] in {FORBIDDEN!r}))",
            ],
            env=env,
            cwd=cwd,
            check=True,
            capture_output=True,
            text=True,
        )
        for code in CASES.values():  # warm the file cache
            sample(code, env, cwd)
        medians = {}
        file_env = {k: v for k, v in env.items() if k != "ASCEND_CLOUD_PROVIDER"}
        project = os.path.join(cwd, "project")
        os.mkdir(project)
        with open(os.path.join(project, ".ascend.yaml"), "w") as handle:
            handle.write("cloud_provider: kubernetes\nstorage_url: memory://bench\n")
        site = os.path.join(cwd, "site")
        install_provider_plugin(site)
        plugin_env = dict(file_env)
        plugin_env["PYTHONPATH"] = os.pathsep.join(p for p in (site, env.get("PYTHONPATH")) if p)
        # Interleave the cases round by round so that load drifting over time (other work on
        # the machine) affects every case alike.
        samples: dict[str, list[float]] = {name: [] for name in CASES}
        for _ in range(runs):
            for name, code in CASES.items():
                case_env, case_cwd = {
                    FILE_CASE: (file_env, project),
                    PLUGIN_CASE: (plugin_env, cwd),
                }.get(name, (env, cwd))
                samples[name].append(sample(code, case_env, case_cwd))
        medians = {name: statistics.median(values) for name, values in samples.items()}
    bare = medians["bare interpreter"]
    baseline = medians["import pluggy, click, yaml"] - bare
    ours = medians["import ascend"] - bare
    print(f"python {sys.version.split()[0]}, {runs} fresh interpreters per case (median wall time)")
    for name, value in medians.items():
        print(f"  {name:28s} {value * 1000:7.1f} ms   (+{(value - bare) * 1000:6.1f} ms over bare)")
    print(f"  import ascend / bare interpreter:            {medians['import ascend'] / bare:5.2f}x")
    for name in ("import ascend", FILE_CASE, PLUGIN_CASE):
        ratio = medians[name] / medians["import pluggy, click, yaml"]
        print(f"  {name} / import pluggy, click, yaml: {ratio:5.2f}x")
    print(
        f"  added cost over bare, ascend vs pluggy+click+yaml: {ours * 1000:.1f} ms vs "
        f"{baseline * 1000:.1f} ms"
    )
    print(f"  heavy modules loaded by import ascend: {check.stdout.strip()}")


if __name__ == "__main__":
    main()
