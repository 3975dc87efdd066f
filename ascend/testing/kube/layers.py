"""Unpacking image layers onto a directory that stands for the container's root.

A layer is untrusted input landing on the host, not in a container, so nothing may leave the
root: member names must be relative without ``..``; symlink targets are re-pointed inside the
root (an absolute target means the image's root, as in the container) and hard links must
name a file already inside it; every directory written through is resolved and checked, so a
symlink planted by one member cannot carry a later member outside. OCI whiteouts
(``.wh.<name>``, ``.wh..wh..opq``) delete what lower layers put there before the layer's own
files land. Devices and FIFOs are skipped; set-id bits are dropped; owners are not kept.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


class LayerError(Exception):
    """The layer cannot be unpacked safely (or at all)."""


def compressed(media_type: str) -> bool:
    """Whether a layer of ``media_type`` is gzipped (else plain tar); LayerError for others."""
    if media_type.endswith(("+gzip", ".tar.gzip")):
        return True
    if media_type.endswith(".tar"):
        return False
    raise LayerError(f"unsupported layer media type {media_type!r}")


def unpack(layer: Path, media_type: str, root: Path) -> None:
    """Apply ``layer`` on top of ``root`` (which holds the layers below it)."""
    gzipped = compressed(media_type)
    top = os.path.realpath(root)
    try:
        for parts, _, _ in _members(layer, gzipped):  # whiteouts first: they hide lower layers
            if parts[-1].startswith(WHITEOUT):
                _whiteout(top, parts)
        for parts, member, stream in _members(layer, gzipped, with_files=True):
            if not parts[-1].startswith(WHITEOUT):
                _extract(top, parts, member, stream)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise LayerError(f"{type(error).__name__}: {error}") from None


def _members(
    layer: Path, gzipped: bool, with_files: bool = False
) -> Iterator[tuple[list[str], tarfile.TarInfo, IO[bytes] | None]]:
    """Members in stream order (a file's bytes must be read before the next member)."""
    with tarfile.open(layer, "r|gz" if gzipped else "r|") as tar:
        for member in tar:
            parts = _safe_parts(member.name)
            if parts:
                stream = tar.extractfile(member) if with_files and member.isreg() else None
                yield parts, member, stream


def _safe_parts(name: str) -> list[str]:
    if name.startswith("/"):
        raise LayerError(f"layer member {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LayerError(f"layer member {name!r} leaves the root with '..'")
    return parts


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top + os.sep)


def _clamp(parts: list[str]) -> list[str]:
    """Resolve ``..`` as the container would: never above its root."""
    result: list[str] = []
    for part in parts:
        if part == "..":
            if result:
                result.pop()
        elif part not in ("", "."):
            result.append(part)
    return result


def _directory(top: str, parts: list[str], create: bool) -> str | None:
    """The real path of directory ``parts`` (made as needed with ``create``), checked to be
    inside ``top``; None when it does not exist and ``create`` is false."""
    current = top
    for part in parts:
        candidate = os.path.join(current, part)
        if os.path.lexists(candidate):
            real = os.path.realpath(candidate)
            if not _inside(real, top):
                raise LayerError(f"{'/'.join(parts)} resolves outside the image root")
            if not os.path.isdir(real):
                if not create:
                    return None
                os.unlink(candidate)  # a file (or dangling link) where the layer needs a dir
                os.mkdir(candidate, 0o755)
                real = candidate
            current = real
        elif create:
            os.mkdir(candidate, 0o755)
            current = candidate
        else:
            return None
    return current


def _remove(path: str) -> None:
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def _whiteout(top: str, parts: list[str]) -> None:
    directory = _directory(top, parts[:-1], create=False)
    if directory is None:
        return
    if parts[-1] == OPAQUE:
        for entry in os.listdir(directory):
            _remove(os.path.join(directory, entry))
    else:
        _remove(os.path.join(directory, parts[-1][len(WHITEOUT) :]))


def _extract(top: str, parts: list[str], member: tarfile.TarInfo, stream: IO[bytes] | None) -> None:
    parent = _directory(top, parts[:-1], create=True)
    assert parent is not None
    target = os.path.join(parent, parts[-1])
    if member.isdir():
        if os.path.isdir(target) and not os.path.islink(target):
            os.chmod(target, (member.mode & 0o777) | 0o700)
            return
        _remove(target)
        os.mkdir(target, (member.mode & 0o777) | 0o700)
        return
    if member.issym():
        base = [] if member.linkname.startswith("/") else os.path.relpath(parent, top).split("/")
        inside = _clamp([*base, *member.linkname.split("/")])
        _remove(target)
        os.symlink(os.path.relpath(os.path.join(top, *inside), parent), target)
        return
    if member.islnk():
        source = os.path.realpath(os.path.join(top, *_clamp(member.linkname.split("/"))))
        if not _inside(source, top) or not os.path.isfile(source):
            raise LayerError(f"hard link {'/'.join(parts)} -> {member.linkname}: no such file")
        _remove(target)
        os.link(source, target, follow_symlinks=False)
        return
    if stream is None:
        return  # devices, FIFOs: an unprivileged runtime could not make them either
    _remove(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(target, flags, 0o600), "wb") as out:
        shutil.copyfileobj(stream, out, 1 << 20)
    os.chmod(target, (member.mode & 0o777) | 0o600)
