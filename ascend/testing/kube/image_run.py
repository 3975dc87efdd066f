"""How a container of a pulled image runs on the host: the image's unpacked files stand in for
its root filesystem, and a Python image's interpreter is this one, without site-packages.

There is no chroot (the emulator runs unprivileged), so the absolute paths an image's config
names (``PATH`` and ``PYTHONPATH`` entries, ``WorkingDir``, an absolute command) are mapped
into the image's root. The images worth running here are ``python:X.Y`` based; their
``python`` becomes ``sys.executable -S``: the standard library, but none of the test
environment's packages, so a function sees exactly what its image's layers hold. That only
holds when the image declares this interpreter's X.Y in ``PYTHON_VERSION``.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import sys

from ascend.testing.kube.image_store import PulledImage
from ascend.testing.kube.podenv import expand
from ascend.testing.kube.util import Obj

_PYTHON = re.compile(r"^(/usr/local/bin/|/usr/bin/)?python(3(\.\d+)?)?$")
HOST_MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"


class StartError(Exception):
    """The container cannot start (the runtime's exec error)."""


def in_root(image: PulledImage, path: str) -> str:
    return os.path.join(image.root, path.lstrip("/"))


def environment(image: PulledImage) -> dict[str, str]:
    """The image's ``Env``, with absolute ``PATH`` and ``PYTHONPATH`` entries in its root."""
    env = image.env
    for name in ("PATH", "PYTHONPATH"):
        if name in env:
            env[name] = os.pathsep.join(
                in_root(image, entry) if entry.startswith("/") else entry
                for entry in env[name].split(os.pathsep)
            )
    return env


def working_dir(spec: Obj, image: PulledImage) -> str | None:
    """The container's ``workingDir`` or the image's, in the root (made as a runtime does)."""
    wanted = str(spec.get("workingDir") or image.config.get("WorkingDir") or "")
    if not wanted.startswith("/"):
        return None
    path = in_root(image, wanted)
    os.makedirs(path, exist_ok=True)
    return path


def argv(spec: Obj, image: PulledImage, env: dict[str, str]) -> list[str]:
    """What to execute: ``command``/``args`` over the image's ``Entrypoint``/``Cmd`` (as
    Kubernetes combines them), with the image's Python or its own executables."""
    command = [expand(str(c), env) for c in spec.get("command") or []]
    args = [expand(str(a), env) for a in spec.get("args") or []]
    if not command:
        command = [str(c) for c in image.config.get("Entrypoint") or []]
        if not args:
            args = [str(a) for a in image.config.get("Cmd") or []]
    line = command + args
    if not line:
        raise StartError("no command specified: the container and its image name none")
    program = line[0]
    match = _PYTHON.match(program)
    declared = image.env.get("PYTHON_VERSION", "")
    if match and declared:
        _check_python(program, match.group(3), declared)
        return [sys.executable, "-S", *line[1:]]
    if "/" in program:
        found = in_root(image, program) if program.startswith("/") else program
        if not os.path.isfile(found):
            raise StartError(f'exec: "{program}": stat {program}: no such file or directory')
        return [found, *line[1:]]
    located = shutil.which(program, path=env.get("PATH", ""))
    if located is None or not _inside(located, str(image.root)):
        raise StartError(f'exec: "{program}": executable file not found in $PATH')
    return [located, *line[1:]]


def _inside(path: str, root: str) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real.startswith(top + os.sep)


def _check_python(program: str, suffix: str | None, declared: str) -> None:
    image_minor = ".".join(declared.split(".")[:2])
    if suffix and suffix[1:] != image_minor.partition(".")[2]:
        raise StartError(f'exec: "{program}": executable file not found in $PATH')
    if image_minor != HOST_MINOR:
        raise StartError(
            f'exec: "{program}": the image is Python {declared} (its PYTHON_VERSION) but the '
            f"emulator runs an image's Python with its own interpreter, Python "
            f"{platform.python_version()}: use a python:{HOST_MINOR} based image"
        )
