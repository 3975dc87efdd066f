"""A local package index for tests: a ``--find-links`` directory of wheels.

Tests that resolve and install requirements with uv (``--no-index --find-links DIR``) need an
index that works with no internet. This one holds tiny demo projects written by hand (a
dependency, a conflict, a wheel for another platform) and this environment's own cloudpickle and
fsspec repacked as wheels, because Ascend's runner needs them wherever it runs.

Wheels are byte-for-byte reproducible (fixed timestamps and modes, sorted entries), so a
lock's hashes do not change between builds, and rebuilding an unchanged wheel leaves the file
(and its mtime, which uv's cache keys on) alone.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata
import io
import json
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["build_wheel", "make_wheelhouse", "repack_installed"]

# The earliest time a zip entry can hold; any fixed value makes archives reproducible.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_UNIX = 3  # ZipInfo.create_system: Unix, so the mode bits in external_attr mean something

# Written by the installer, not part of the wheel (PEP 376, PEP 610).
_INSTALLER_FILES = {"INSTALLER", "REQUESTED", "RECORD", "direct_url.json", "uv_cache.json"}


def _escape(name: str) -> str:
    """A project name as wheel file names and .dist-info directories spell it."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _expand(tag: str) -> list[str]:
    """``py2.py3-none-any`` -> ``["py2-none-any", "py3-none-any"]`` (a compressed tag set)."""
    pythons, abis, platforms = tag.split("-")
    return [
        f"{p}-{a}-{plat}"
        for p in pythons.split(".")
        for a in abis.split(".")
        for plat in platforms.split(".")
    ]


def _compress(tags: Sequence[str]) -> str:
    """The file-name tag for a WHEEL file's tags.

    A file name can only say "every combination of these parts"; when the tags are not such a
    product, the first one is used (installers read the file name, so the wheel stays usable
    where that tag fits).
    """
    parts: list[list[str]] = [[], [], []]
    for tag in tags:
        for known, part in zip(parts, tag.split("-"), strict=True):
            if part not in known:
                known.append(part)
    if len(parts[0]) * len(parts[1]) * len(parts[2]) == len(set(tags)):
        return "-".join(".".join(known) for known in parts)
    return tags[0]


def _record(entries: dict[str, bytes], record_path: str) -> bytes:
    """RECORD: one ``path,sha256=<urlsafe b64, unpadded>,size`` row per file, itself unhashed."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for path in sorted(entries):
        digest = base64.urlsafe_b64encode(hashlib.sha256(entries[path]).digest())
        writer.writerow([path, "sha256=" + digest.rstrip(b"=").decode(), len(entries[path])])
    writer.writerow([record_path, "", ""])
    return out.getvalue().encode()


def _zip_bytes(entries: dict[str, bytes], info: str, executable: Iterable[str] = ()) -> bytes:
    """The archive, deterministically: sorted, with .dist-info last as PEP 427 recommends."""
    entries = {**entries, f"{info}/RECORD": _record(entries, f"{info}/RECORD")}
    runnable = set(executable)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in sorted(entries, key=lambda p: (p.startswith(info + "/"), p)):
            entry = zipfile.ZipInfo(path, _EPOCH)
            entry.create_system = _UNIX
            entry.external_attr = (0o100755 if path in runnable else 0o100644) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, entries[path])
    return buffer.getvalue()


def _store(target: Path, data: bytes) -> Path:
    """Write unless identical; atomically, so a reader never sees half a wheel."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if target.read_bytes() == data:
            return target
    except FileNotFoundError:
        pass
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.write_bytes(data)
    os.replace(partial, target)
    return target


def build_wheel(
    directory: Path,
    name: str,
    version: str,
    files: dict[str, str],
    requires: Sequence[str] = (),
    tag: str = "py3-none-any",
) -> Path:
    """Write ``<name>-<version>-<tag>.whl`` holding ``files`` (archive path -> text).

    ``tag`` may be a compressed set (``py2.py3-none-any``). A wheel for a platform (anything but
    ``any``) is marked Root-Is-Purelib: false, as a compiled project's would be.
    """
    stem = f"{_escape(name)}-{version.replace('-', '_')}"
    info = f"{stem}.dist-info"
    tags = _expand(tag)
    purelib = all(t.endswith("-any") for t in tags)
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {requirement}" for requirement in requires]
    wheel = [
        "Wheel-Version: 1.0",
        "Generator: ascend-tests",
        f"Root-Is-Purelib: {str(purelib).lower()}",
    ]
    wheel += [f"Tag: {t}" for t in tags]
    entries = {path: text.encode() for path, text in files.items()}
    entries[f"{info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    entries[f"{info}/WHEEL"] = ("\n".join(wheel) + "\n").encode()
    return _store(directory / f"{stem}-{tag}.whl", _zip_bytes(entries, info))


def _installed(distribution: str) -> tuple[importlib.metadata.Distribution, str, str]:
    """The installed distribution, its wheel stem (``name-version``) and file-name tag."""
    dist = importlib.metadata.distribution(distribution)
    wheel = dist.read_text("WHEEL")
    if wheel is None or dist.files is None:
        raise ValueError(f"{distribution} was not installed from a wheel (no WHEEL or RECORD)")
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct_url.get("dir_info", {}).get("editable"):
        raise ValueError(f"{distribution} is an editable install; its files live elsewhere")
    tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")]
    if not tags:
        raise ValueError(f"{distribution}'s WHEEL file names no tags")
    stem = f"{_escape(dist.metadata['Name'])}-{dist.version.replace('-', '_')}"
    return dist, stem, _compress(tags)


def _repack_name(distribution: str) -> str:
    _, stem, tag = _installed(distribution)
    return f"{stem}-{tag}.whl"


def repack_installed(directory: Path, distribution: str, scripts: Sequence[str] = ()) -> Path:
    """A wheel of a distribution installed in this environment, with its own tags.

    Takes the files its RECORD lists inside site-packages (not scripts or headers installed
    outside it, which installers regenerate or which the runner never needs) and no bytecode;
    the .dist-info is renamed to the wheel's spelling and RECORD rewritten for what is kept.
    ``scripts`` names files of the scripts directory to carry as the wheel's data (uv's own
    binary, which is the package's point).
    """
    dist, stem, tag = _installed(distribution)
    info = f"{stem}.dist-info"
    entries: dict[str, bytes] = {}
    executable: list[str] = []
    for file in dist.files or ():
        path = file.as_posix()
        if path.startswith("../") and file.parts[-2:-1] == ("bin",) and file.name in scripts:
            path = f"{stem}.data/scripts/{file.name}"
        elif path.startswith(("../", "/")) or "__pycache__" in file.parts or path.endswith(".pyc"):
            continue
        head, _, rest = path.partition("/")
        if head.endswith(".dist-info"):
            if rest in _INSTALLER_FILES:
                continue
            path = f"{info}/{rest}"
        source = Path(str(file.locate()))
        entries[path] = source.read_bytes()
        if os.access(source, os.X_OK):
            executable.append(path)
    if f"{info}/METADATA" not in entries or f"{info}/WHEEL" not in entries:
        raise ValueError(f"{distribution}'s RECORD does not list its METADATA and WHEEL")
    return _store(directory / f"{stem}-{tag}.whl", _zip_bytes(entries, info, executable))


def _tiny(version: str) -> dict[str, str]:
    source = f'VERSION = "{version}"\n\n\ndef greet(name):\n    return f"hello {{name}} from tiny {{VERSION}}"\n'
    return {"ascend_demo_tiny/__init__.py": source}


_NEEDS = (
    "from ascend_demo_tiny import greet\n\n\ndef shout(name):\n    return greet(name).upper()\n"
)

# What Ascend's runner imports wherever a function runs, and uv, which the runtime image carries
# so it can serve as the cluster builder (with its binary).
RUNNER_DISTRIBUTIONS = ("cloudpickle", "fsspec")
BUILDER_DISTRIBUTIONS = {"uv": ("uv",)}


def make_wheelhouse(directory: Path) -> Path:
    """The standard set (below); calling it again rewrites nothing and skips repacking.

    - ``ascend-demo-tiny`` 1.0 and 2.0 (``greet``), and ``ascend-demo-needs`` 1.0 needing
      ``ascend-demo-tiny>=1.0`` (``shout``): resolution picks the newest that fits;
    - ``ascend-demo-conflict`` 1.0 needs ``ascend-demo-tiny<1.0``, which no wheel offers;
    - ``ascend-demo-native`` 1.0 exists only for macOS arm64, so Linux resolves fail;
    - cloudpickle and fsspec as installed here, and uv with its binary.
    """
    build_wheel(directory, "ascend-demo-tiny", "1.0", _tiny("1.0"))
    build_wheel(directory, "ascend-demo-tiny", "2.0", _tiny("2.0"))
    build_wheel(
        directory,
        "ascend-demo-needs",
        "1.0",
        {"ascend_demo_needs/__init__.py": _NEEDS},
        requires=["ascend-demo-tiny>=1.0"],
    )
    build_wheel(
        directory,
        "ascend-demo-conflict",
        "1.0",
        {"ascend_demo_conflict/__init__.py": ""},
        requires=["ascend-demo-tiny<1.0"],
    )
    build_wheel(
        directory,
        "ascend-demo-native",
        "1.0",
        {"ascend_demo_native/__init__.py": ""},
        tag="cp311-cp311-macosx_11_0_arm64",
    )
    for distribution in RUNNER_DISTRIBUTIONS:
        if not (directory / _repack_name(distribution)).exists():
            repack_installed(directory, distribution)
    for distribution, scripts in BUILDER_DISTRIBUTIONS.items():
        if not (directory / _repack_name(distribution)).exists():
            repack_installed(directory, distribution, scripts)
    return directory
