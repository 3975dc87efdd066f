"""A local package index for tests (a ``--find-links`` directory): wheels of tiny test
projects, and this environment's own cloudpickle and fsspec repacked as wheels, so uv resolves
and installs offline exactly as it would from an index."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import zipfile
from collections.abc import Sequence
from pathlib import Path

FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def _write(target: Path, files: dict[str, bytes], info: str) -> Path:
    record = [_record_line(name, data) for name, data in sorted(files.items())]
    record.append(f"{info}/RECORD,,")
    entries = {**files, f"{info}/RECORD": ("\n".join(record) + "\n").encode()}
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(entries):
            archive.writestr(zipfile.ZipInfo(name, FIXED_TIME), entries[name])
    return target


def build_wheel(
    directory: Path,
    name: str,
    version: str,
    files: dict[str, str],
    requires: Sequence[str] = (),
    tag: str = "py3-none-any",
) -> Path:
    """Write ``<name>-<version>-<tag>.whl`` holding ``files`` (archive path -> text)."""
    stem = name.replace("-", "_")
    info = f"{stem}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    purelib = "true" if tag.endswith("-none-any") else "false"
    wheel = f"Wheel-Version: 1.0\nGenerator: ascend-tests\nRoot-Is-Purelib: {purelib}\nTag: {tag}\n"
    content = {path: text.encode() for path, text in files.items()}
    content[f"{info}/METADATA"] = metadata.encode()
    content[f"{info}/WHEEL"] = wheel.encode()
    directory.mkdir(parents=True, exist_ok=True)
    return _write(directory / f"{stem}-{version}-{tag}.whl", content, info)


def repack_installed(directory: Path, distribution: str) -> Path:
    """A wheel of a distribution installed here (its files, its own tags)."""
    dist = importlib.metadata.distribution(distribution)
    name = dist.metadata["Name"].replace("-", "_")
    version = dist.version
    info = f"{name}-{version}.dist-info"
    content: dict[str, bytes] = {}
    tags = ["py3-none-any"]
    for file in dist.files or []:
        path = str(file)
        if path.startswith("..") or "__pycache__" in path or path.endswith(".pyc"):
            continue
        if path.endswith(("/RECORD", "/INSTALLER", "/REQUESTED", "/direct_url.json")):
            continue
        data = file.read_binary()
        if path.endswith(".dist-info/WHEEL"):
            tags = [
                line[5:].strip() for line in data.decode().splitlines() if line.startswith("Tag:")
            ]
        if ".dist-info/" in path:
            path = f"{info}/{path.split('.dist-info/', 1)[1]}"
        content[path] = data
    directory.mkdir(parents=True, exist_ok=True)
    return _write(directory / f"{name}-{version}-{tags[0]}.whl", content, info)


def _tiny(version: str) -> dict[str, str]:
    return {
        "ascend_demo_tiny/__init__.py": f'VERSION = "{version}"\n\n\n'
        "def greet(name):\n"
        '    return f"hello {name} from tiny {VERSION}"\n'
    }


def make_wheelhouse(directory: Path) -> Path:
    """The standard set; see the module docstring. Idempotent."""
    build_wheel(directory, "ascend-demo-tiny", "1.0", _tiny("1.0"))
    build_wheel(directory, "ascend-demo-tiny", "2.0", _tiny("2.0"))
    build_wheel(
        directory,
        "ascend-demo-needs",
        "1.0",
        {
            "ascend_demo_needs/__init__.py": "from ascend_demo_tiny import greet\n\n\n"
            "def shout(name):\n    return greet(name).upper()\n"
        },
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
    for name in ("cloudpickle", "fsspec"):
        repack_installed(directory, name)
    return directory
