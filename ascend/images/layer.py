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
            filename="", fileobj=compressed, mode="wb", mtime=FIXED_TIME, compresslevel=6
        ) as gz:  # type: ignore[arg-type]
            plain = _Hashing(gz)  # type: ignore[arg-type]
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                parts = prefix.split("/")
                for depth in range(1, len(parts) + 1):
                    tar.addfile(_info("/".join(parts[:depth]), None, tarfile.DIRTYPE))
                for path in _walk(source):
                    name = f"{prefix}/{path.relative_to(source).as_posix()}"
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


def _walk(root: Path) -> list[Path]:
    """Every entry below ``root``, parents before children, names sorted, no caches."""
    found: list[Path] = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        base = Path(directory)
        for name in sorted(dirs):
            if (base / name).is_symlink():
                found.append(base / name)
        for name in sorted(files):
            if not name.endswith(".pyc"):
                found.append(base / name)
        if base != root:
            found.append(base)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())
