"""The local provider's answer to ``requirements``: one environment per lock, in the cache.

The same resolver and installer as image builds (uv), for this machine instead of linux
x86_64. The runner process gets the environment first on its path, so the job imports the
locked versions even when this Python has others installed. An environment is installed into a
temporary directory and renamed into place, so a failed install leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ascend.images.build import install
from ascend.images.local_build import one_build_at_a_time
from ascend.images.lock import IndexOptions, resolve
from ascend.images.progress import Progress


def environments_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("ascend", appauthor=False)) / "environments"


def environment_for(
    requirements: tuple[str, ...],
    index: IndexOptions,
    progress: Progress,
    *,
    timeout: float = 1800.0,
    root: Path | None = None,
) -> Path:
    """The directory holding ``requirements`` resolved for this interpreter (made once)."""
    python = ".".join(str(part) for part in sys.version_info[:3])
    with progress.step(f"resolve {', '.join(requirements)} for this machine"):
        lock = resolve(requirements, python, index, platform=None)
    key = hashlib.sha256(
        f"{sys.implementation.cache_tag}\n{sys.platform}\n{lock.content_key()}".encode()
    ).hexdigest()[:20]
    root = root or environments_dir()
    target = root / f"{sys.implementation.cache_tag}-{key}"
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with one_build_at_a_time(f"env-{key}"):
        if target.is_dir():  # another caller made it meanwhile
            return target
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
        try:
            with progress.step(f"install {len(lock.pins)} packages into {target}"):
                install(lock, scratch / "site", python, index, timeout, progress, platform=None)
                (scratch / "site" / "ascend-lock.txt").write_text(lock.text)
            os.replace(scratch / "site", target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return target
