"""Resolve requirements into a lock for the job's platform, with uv, on the client.

Resolving here, before anything reaches the cluster, turns an unknown package, conflicting pins
or a package without a wheel for linux x86_64 into an :class:`ImageBuildError` within seconds.
The lock (exact versions, hashes where the index gives them) is what the image is named after
and what the builder installs, so the pod gets exactly what was resolved.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ascend.errors import ImageBuildError
from ascend.images.spec import normalize_requirements, python_minor

PLATFORM = "x86_64-manylinux_2_28"  # what python:X.Y-slim (Debian, glibc >= 2.28) runs
RESOLVE_TIMEOUT = 180.0


@dataclass(frozen=True)
class IndexOptions:
    """Where packages come from: an index, extra indexes, local wheel directories."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False

    @classmethod
    def from_config(cls, config: Any) -> IndexOptions:
        return cls(
            index_url=config.get("images.index_url"),
            extra_index_urls=tuple(config.get("images.extra_index_urls") or ()),
            find_links=tuple(config.get("images.find_links") or ()),
            no_index=bool(config.get("images.no_index", False)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "index_url": self.index_url,
            "extra_index_urls": list(self.extra_index_urls),
            "find_links": list(self.find_links),
            "no_index": self.no_index,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IndexOptions:
        return cls(
            index_url=data.get("index_url"),
            extra_index_urls=tuple(data.get("extra_index_urls") or ()),
            find_links=tuple(data.get("find_links") or ()),
            no_index=bool(data.get("no_index")),
        )

    def uv_args(self) -> list[str]:
        args: list[str] = []
        if self.no_index:
            args.append("--no-index")
        elif self.index_url:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        return args


@dataclass(frozen=True)
class Lock:
    """Requirements as asked (normalized) and the pinned lines uv resolved them to."""

    requirements: tuple[str, ...]
    text: str

    @property
    def pins(self) -> tuple[tuple[str, str], ...]:
        """``(name, version)`` of every package the lock installs."""
        pins = []
        for line in self.text.splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "--")) and "==" in line:
                name, _, rest = line.partition("==")
                pins.append((name.strip(), rest.split()[0].rstrip("\\").strip()))
        return tuple(pins)

    def content_key(self) -> str:
        """The lock without comments or layout, so only what is installed names the image."""
        lines = [
            line.split("#", 1)[0].strip() for line in self.text.replace("\\\n", " ").splitlines()
        ]
        return "\n".join(sorted(" ".join(line.split()) for line in lines if line))

    def has_hashes(self) -> bool:
        return "--hash=" in self.text


def uv_binary() -> str:
    """The uv executable: the one the ``uv`` wheel ships, else one on PATH."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.exists() else shutil.which("uv")
    if not found:
        raise ImageBuildError(
            "building images needs uv, and it is not installed",
            fix="pip install uv (it is a dependency of ascend; reinstall ascend)",
        )
    return found


def run_uv(
    args: list[str], *, timeout: float, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run uv quietly; its own cache and configuration apply (so do a company's mirrors)."""
    env = dict(os.environ)
    env.setdefault("UV_NO_PROGRESS", "1")
    try:
        return subprocess.run(
            [uv_binary(), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise ImageBuildError(
            f"uv {args[0]} {args[1] if len(args) > 1 else ''} did not finish within {timeout:g} s",
            fix="check that the package index is reachable (images.index_url)",
        ) from error


def resolve(
    requirements: tuple[str, ...] | list[str],
    python_version: str,
    index: IndexOptions | None = None,
    *,
    constraints: tuple[str, ...] = (),
    platform: str | None = PLATFORM,
) -> Lock:
    """Resolve ``requirements`` for linux x86_64 and Python ``python_version`` (X.Y).

    ``platform=None`` resolves for this machine instead (the local provider's environments).

    :param constraints: pins the runner needs (``cloudpickle==3.1.1``): a requirement that
        conflicts with them does not resolve, rather than breaking the runner in the pod.
    :raises ImageBuildError: a requirement that does not resolve, naming uv's reason.
    """
    normalized = normalize_requirements(list(requirements))
    if not normalized:
        return Lock((), "")
    index = index or IndexOptions()
    with tempfile.TemporaryDirectory(prefix="ascend-lock-") as scratch:
        args = [
            "pip",
            "compile",
            "-",
            "--python-version",
            python_minor(python_version),
            *(["--python-platform", platform] if platform else []),
            "--generate-hashes",
            "--no-header",
            "--no-annotate",
            "--quiet",
            *index.uv_args(),
        ]
        if constraints:
            path = Path(scratch) / "constraints.txt"
            path.write_text("\n".join(constraints) + "\n")
            args += ["--constraint", str(path)]
        done = run_uv(args, timeout=RESOLVE_TIMEOUT, stdin="\n".join(normalized) + "\n")
    if done.returncode != 0:
        reason = _uv_reason(done.stderr)
        where = "linux x86_64" if platform else "this machine"
        raise ImageBuildError(
            f"requirements {list(normalized)} do not resolve for Python "
            f"{python_minor(python_version)} on {where}: {reason}",
            fix="check the names and version pins; a package without a linux wheel or sdist "
            "cannot run in the cluster",
        )
    return Lock(normalized, done.stdout)


def _uv_reason(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = " ".join(line.removeprefix("error:").removeprefix("╰─▶").strip() for line in lines)
    return text[:1500] or "uv gave no reason"
