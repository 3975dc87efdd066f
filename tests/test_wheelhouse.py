"""The tests' wheelhouse (tests/wheelhouse.py) is an offline index the real uv resolves from
and installs from: if it were not, image and environment tests would fail for reasons that have
nothing to do with Ascend."""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata
import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .wheelhouse import build_wheel, make_wheelhouse, repack_installed

PLATFORM = ("--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28")


def _find_uv() -> str | None:
    beside = Path(sys.executable).with_name("uv.exe" if os.name == "nt" else "uv")
    return str(beside) if beside.is_file() else shutil.which("uv")


UV = _find_uv()


@pytest.fixture(scope="module")
def house(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


@pytest.fixture(scope="module")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """uv's cache for this module only, so no earlier download can stand in for the index.

    Every test that runs uv takes this fixture, so they (and only they) skip without uv.
    """
    if UV is None:
        pytest.skip("no uv binary next to Python or on PATH")
    return tmp_path_factory.mktemp("uv-cache")


def uv(cache: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``uv pip ...`` offline, ignoring any uv.toml and UV_* settings of the machine."""
    assert UV is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    return subprocess.run(
        [UV, "pip", *args, "--offline", "--no-config", "--cache-dir", str(cache)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def compile_(cache: Path, house: Path, *requirements: str) -> subprocess.CompletedProcess[str]:
    return uv(
        cache,
        "compile",
        "-",
        "--no-index",
        "--find-links",
        str(house),
        *PLATFORM,
        "--no-header",
        "--no-annotate",
        stdin="".join(f"{r}\n" for r in requirements),
    )


def pins(result: subprocess.CompletedProcess[str]) -> set[str]:
    assert result.returncode == 0, result.stderr
    return {line.strip() for line in result.stdout.splitlines() if line.strip()[:1] not in "#"}


def run_isolated(target: Path, code: str, cwd: Path) -> str:
    """Python without site-packages, seeing only ``target``: what an image's runner would."""
    env = {"PYTHONPATH": str(target), "PATH": os.environ.get("PATH", "")}
    result = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def check_record(wheel: Path) -> None:
    """Every archive member is in RECORD with the right hash and size, and nothing else is."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (record,) = [n for n in names if n.endswith(".dist-info/RECORD")]
        rows = list(csv.reader(io.StringIO(archive.read(record).decode())))
        assert sorted(row[0] for row in rows) == sorted(names)
        for path, digest, size in rows:
            if path == record:
                assert (digest, size) == ("", "")
                continue
            data = archive.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + expected.decode(), path
            assert int(size) == len(data), path


# -- resolution ---------------------------------------------------------------------------


def test_resolves_a_dependency_to_the_newest_that_fits(house: Path, uv_cache: Path) -> None:
    assert pins(compile_(uv_cache, house, "ascend-demo-needs")) == {
        "ascend-demo-needs==1.0",
        "ascend-demo-tiny==2.0",
    }


def test_an_upper_bound_picks_the_older_version(house: Path, uv_cache: Path) -> None:
    assert pins(compile_(uv_cache, house, "ascend-demo-tiny<2")) == {"ascend-demo-tiny==1.0"}


def test_a_conflict_fails_naming_the_packages(house: Path, uv_cache: Path) -> None:
    result = compile_(uv_cache, house, "ascend-demo-conflict", "ascend-demo-tiny>=1")
    assert result.returncode != 0
    assert "ascend-demo-conflict" in result.stderr
    assert "ascend-demo-tiny<1.0" in result.stderr


def test_a_wheel_for_another_platform_only_does_not_resolve(house: Path, uv_cache: Path) -> None:
    result = compile_(uv_cache, house, "ascend-demo-native")
    assert result.returncode != 0
    assert "ascend-demo-native" in result.stderr
    assert "platform" in result.stderr


# -- installs -----------------------------------------------------------------------------


def test_installs_into_a_target_that_imports_without_site_packages(
    house: Path, uv_cache: Path, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    result = uv(
        uv_cache,
        "install",
        "--no-index",
        "--find-links",
        str(house),
        "--target",
        str(target),
        *PLATFORM,
        "ascend-demo-needs",
        "cloudpickle",
    )
    assert result.returncode == 0, result.stderr
    out = run_isolated(
        target,
        "import ascend_demo_needs, cloudpickle\n"
        "print(ascend_demo_needs.shout('x'))\n"
        "print(cloudpickle.__version__)\n"
        "print(cloudpickle.loads(cloudpickle.dumps(lambda: 42))())\n"
        "print(cloudpickle.__file__)\n",
        cwd=tmp_path,
    )
    shout, version, answer, location = out.splitlines()
    assert shout == "HELLO X FROM TINY 2.0"
    assert version == importlib.metadata.version("cloudpickle")
    assert answer == "42"
    assert Path(location).is_relative_to(target)


def test_repacked_fsspec_installs_as_the_version_here(uv_cache: Path, tmp_path: Path) -> None:
    wheel = repack_installed(tmp_path / "house", "fsspec")
    check_record(wheel)
    target = tmp_path / "target"
    result = uv(
        uv_cache,
        "install",
        "--no-index",
        "--find-links",
        str(wheel.parent),
        "--target",
        str(target),
        *PLATFORM,
        "fsspec",
    )
    assert result.returncode == 0, result.stderr
    out = run_isolated(
        target,
        "import importlib.metadata, fsspec\n"
        "print(fsspec.__version__, importlib.metadata.version('fsspec'))\n"
        "print(fsspec.filesystem('memory').protocol)\n"
        "print(fsspec.__file__)\n",
        cwd=tmp_path,
    )
    versions, protocol, location = out.splitlines()
    here = importlib.metadata.version("fsspec")
    assert versions == f"{here} {here}"
    assert "memory" in protocol
    assert Path(location).is_relative_to(target)


def test_repacking_a_compiled_distribution_keeps_its_platform(
    uv_cache: Path, tmp_path: Path
) -> None:
    """PyYAML (a dependency of Ascend) is compiled where a wheel exists for the platform."""
    installed = importlib.metadata.distribution("pyyaml")
    tags = [
        line.split(":", 1)[1].strip()
        for line in (installed.read_text("WHEEL") or "").splitlines()
        if line.startswith("Tag:")
    ]
    if not tags or all(t.endswith("-none-any") for t in tags):
        pytest.skip("PyYAML is installed here as pure Python")
    wheel = repack_installed(tmp_path / "house", "pyyaml")
    check_record(wheel)
    file_tag = wheel.name.removesuffix(".whl").split("-", 2)[2]
    pythons, abis, platforms = (part.split(".") for part in file_tag.split("-"))
    assert {f"{p}-{a}-{plat}" for p in pythons for a in abis for plat in platforms} == set(tags)
    with zipfile.ZipFile(wheel) as archive:
        wheel_file = archive.read(f"pyyaml-{installed.version}.dist-info/WHEEL").decode()
        assert "Root-Is-Purelib: false" in wheel_file
        assert any(n.startswith("yaml/_yaml.") for n in archive.namelist())
    # For this machine's platform (no --python-platform): the extension must load here.
    target = tmp_path / "target"
    result = uv(
        uv_cache,
        "install",
        "--no-index",
        "--find-links",
        str(wheel.parent),
        "--target",
        str(target),
        "--python",
        sys.executable,
        "pyyaml",
    )
    assert result.returncode == 0, result.stderr
    out = run_isolated(target, "import yaml\nprint(yaml.__with_libyaml__)", cwd=tmp_path)
    assert out == "True"


# -- the wheels themselves ----------------------------------------------------------------


def test_every_wheel_records_its_files(house: Path) -> None:
    wheels = sorted(house.glob("*.whl"))
    assert len(wheels) == 8
    (uv,) = [w for w in wheels if w.name.startswith("uv-")]
    with zipfile.ZipFile(uv) as archive:  # the binary travels as the wheel's script data
        assert any(name.endswith(".data/scripts/uv") for name in archive.namelist())
    for wheel in wheels:
        check_record(wheel)


def test_two_builds_are_byte_identical(tmp_path: Path) -> None:
    def build(directory: Path) -> Path:
        return build_wheel(
            directory,
            "ascend-demo-same",
            "0.1",
            {"ascend_demo_same/__init__.py": "X = 1\n", "ascend_demo_same/b.py": ""},
            requires=["ascend-demo-tiny"],
        )

    first, second = build(tmp_path / "a"), build(tmp_path / "b")
    assert first.name == second.name == "ascend_demo_same-0.1-py3-none-any.whl"
    assert first.read_bytes() == second.read_bytes()
    # Builds a second apart must match too, so no entry may carry the time of the build.
    with zipfile.ZipFile(first) as archive:
        assert {entry.date_time for entry in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_a_compressed_tag_names_every_tag(tmp_path: Path) -> None:
    wheel = build_wheel(
        tmp_path, "Demo.Name", "1.0", {"demo/__init__.py": ""}, tag="py2.py3-none-any"
    )
    assert wheel.name == "demo_name-1.0-py2.py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read("demo_name-1.0.dist-info/WHEEL").decode()
    assert "Tag: py2-none-any\nTag: py3-none-any\n" in text
    assert "Root-Is-Purelib: true" in text


def test_making_it_again_rewrites_nothing(house: Path) -> None:
    def state() -> dict[str, tuple[int, bytes]]:
        return {
            p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).digest())
            for p in house.iterdir()
        }

    before = state()
    make_wheelhouse(house)
    assert state() == before
