"""The local provider's signing keys: one file in the user's config directory, mode 0600.

Made on first use, atomically (two processes starting at once end up with one key), and
refused when other users may read it: a key others can read authenticates nothing.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import threading
from pathlib import Path

from ascend.errors import ConfigError
from ascend.signing import KeyFormatError, KeyRing

KEY_FILE = "signing-key.json"
_lock = threading.Lock()
_cache: dict[Path, KeyRing] = {}


def key_path() -> Path:
    from ascend.config import user_config_dir

    return user_config_dir() / "keys" / KEY_FILE


def load() -> KeyRing:
    """The user's keys, made (and saved) on first use."""
    path = key_path()
    with _lock:
        cached = _cache.get(path)
        if cached is None:
            cached = _cache[path] = _read(path) if path.exists() else _create(path)
        return cached


def rotate() -> KeyRing:
    """A new current key; the old one stays as a previous key (results it signed verify)."""
    path = key_path()
    with _lock:
        rotated = (_read(path) if path.exists() else KeyRing.new()).rotated()
        _write(path, rotated, replace=True)
        _cache[path] = rotated
        return rotated


def _read(path: Path) -> KeyRing:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the signing key {path} may be read by other users (mode {stat.filemode(mode)})",
            fix=f"chmod 600 {path}; then 'ascend admin rotate-key' makes a new key that no one "
            "else has seen",
        )
    try:
        data = json.loads(path.read_text())
        return KeyRing.decode(str(data["current"]), ",".join(data.get("previous", [])))
    except (OSError, ValueError, KeyError, TypeError, KeyFormatError) as error:
        raise ConfigError(
            f"the signing key {path} cannot be read: {error}",
            fix=f"remove {path} to make a new key (results signed with the old one can then no "
            "longer be checked)",
        ) from None


def _create(path: Path) -> KeyRing:
    keys = KeyRing.new()
    if not _write(path, keys, replace=False):
        return _read(path)  # another process made it first
    return keys


def _write(path: Path, keys: KeyRing, replace: bool) -> bool:
    """Write ``keys`` to ``path`` with mode 0600, all at once; without ``replace``, False when
    the file exists already."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = {
        "current": keys.current.encode(),
        "previous": [key.encode() for key in keys.previous],
    }
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".key-")
    try:
        with os.fdopen(descriptor, "w") as file:  # mkstemp's file is 0600 already
            json.dump(data, file)
        if replace:
            os.replace(temporary, path)
            return True
        try:
            os.link(temporary, path)  # fails if it exists: the first writer wins
        except FileExistsError:
            return False
        return True
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
