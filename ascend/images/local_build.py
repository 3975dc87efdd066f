"""Builds on this machine wait for each other: two threads or processes that need the same
missing tag share one build (the second finds the image when the first is done)."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_threads: dict[str, threading.Lock] = {}
_threads_lock = threading.Lock()


def _lock_dir() -> Path:
    import platformdirs

    path = Path(platformdirs.user_cache_dir("ascend")) / "build-locks"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def one_build_at_a_time(tag: str) -> Iterator[None]:
    """Hold the build of ``tag``: a thread lock in this process, a file lock across them."""
    with _threads_lock:
        lock = _threads.setdefault(tag, threading.Lock())
    with lock:
        fd = os.open(_lock_dir() / f"{tag}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
