"""A reproducible image layer: a gzipped tar of a directory, placed under a fixed prefix.

Entries are sorted, times, owners and modes fixed, and gzip's header carries no time or name,
so two builds of one lock give one digest, and a registry that has the layer stores it once.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
FIXED_TIME = 0
# gzip level 1: measured on numpy+pandas (107 MB installed), 1.7 s and 33 MB against level 6's
# 5.0 s and 29 MB; packing is most of a build, and clusters pull fast.
COMPRESS_LEVEL = 1


@dataclass(frozen=True)
class Layer:
    path: Path
    digest: str  # sha256 of the compressed bytes (what the registry stores)
    diff_id: str  # sha256 of the tar (what the image config lists)
    size: int


class _Hashing:
    """A write-only stream that hashes and counts what passes through it."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)

    def flush(self) -> None:
        self.target.flush()


def _info(
    name: str, path: Path | None, kind: bytes, size: int = 0, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.linkname = link
    info.mtime = FIXED_TIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    executable = path is not None and kind == tarfile.REGTYPE and os.access(path, os.X_OK)
    info.mode = 0o755 if kind == tarfile.DIRTYPE or executable else 0o644
    if kind == tarfile.SYMTYPE:
        info.mode = 0o777
    return info


def write_layer(source: Path, prefix: str, output: Path) -> Layer:
    """Write the contents of ``source`` as ``prefix/...`` into ``output`` (tar+gzip)."""
    prefix = prefix.strip("/")
    with open(output, "wb") as raw:
        compressed = _Hashing(raw)
        with gzip.GzipFile(
            filename="",
            fileobj=compressed,
            mode="wb",
            mtime=FIXED_TIME,
            compresslevel=COMPRESS_LEVEL,
        ) as gz:  # type: ignore[arg-type]
            plain = _Hashing(gz)  # type: ignore[arg-type]
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.GNU_FORMAT) as tar:  # type: ignore[call-overload]
                parts = prefix.split("/")
                for depth in range(1, len(parts) + 1):
                    tar.addfile(_info("/".join(parts[:depth]), None, tarfile.DIRTYPE))
                for relative, path in _walk(source):
                    name = f"{prefix}/{relative}"
                    mode = path.lstat().st_mode
                    if stat.S_ISLNK(mode):
                        tar.addfile(_info(name, path, tarfile.SYMTYPE, link=os.readlink(path)))
                    elif stat.S_ISDIR(mode):
                        tar.addfile(_info(name, path, tarfile.DIRTYPE))
                    elif stat.S_ISREG(mode):
                        size = path.stat().st_size
                        with open(path, "rb") as handle:
                            tar.addfile(_info(name, path, tarfile.REGTYPE, size), handle)
    return Layer(
        output,
        "sha256:" + compressed.sha.hexdigest(),
        "sha256:" + plain.sha.hexdigest(),
        compressed.size,
    )


def _walk(root: Path) -> list[tuple[str, Path]]:
    """Every entry below ``root``, parents before children, names sorted, no caches."""
    found: list[tuple[str, str]] = []  # (relative posix name, absolute path)
    base_length = len(str(root)) + 1
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        relative = directory[base_length:].replace(os.sep, "/")
        if relative:
            found.append((relative, directory))
        for name in dirs:
            path = os.path.join(directory, name)
            if os.path.islink(path):  # os.walk does not descend into it: add it here
                found.append((f"{relative}/{name}" if relative else name, path))
        for name in files:
            if not name.endswith(".pyc"):
                found.append(
                    (f"{relative}/{name}" if relative else name, os.path.join(directory, name))
                )
    found.sort()
    return [(relative, Path(path)) for relative, path in found]
