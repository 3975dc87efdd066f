"""Storage in a local directory with the standard library only.

The local provider and every runner that is handed ``file://`` URIs use it: importing fsspec
costs more than a trivial job takes, and plain files need none of it.
"""

from __future__ import annotations

import os
import uuid
from typing import IO, TYPE_CHECKING, Any

from ascend.errors import StorageError
from ascend.storage.base import CloudStorage, normalize_path, storage_error

if TYPE_CHECKING:
    import fsspec

PARTIAL_MARK = ".ascend-partial-"


class AtomicWriter:
    """A write stream that publishes its object on ``close`` and leaves nothing on ``abort``.

    Used as a context manager, an exception inside the block aborts. (fsspec's own files
    commit on ``__exit__`` even when the block raised, which would publish a truncated object.)
    """

    def __init__(self, raw: Any, commit: Any, abort: Any, uri: str) -> None:
        self._raw = raw
        self._commit = commit
        self._abort = abort
        self.uri = uri
        self.closed = False

    def write(self, data: Any) -> int:
        try:
            written = self._raw.write(data)
        except OSError as error:  # a full disk is the storage's fault, not the data's
            raise storage_error(self.uri, "write", error) from error
        return len(data) if written is None else int(written)

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return int(self._raw.tell())

    def flush(self) -> None:
        try:
            self._raw.flush()
        except OSError as error:
            raise storage_error(self.uri, "write", error) from error

    def close(self) -> None:
        """Publish the object (idempotent)."""
        if self.closed:
            return
        self.closed = True
        try:
            self._commit()
        except OSError as error:
            self._abort()
            raise storage_error(self.uri, "write", error) from error
        except BaseException:
            self._abort()
            raise

    def abort(self) -> None:
        """Throw the partial object away (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self._abort()

    def __del__(self) -> None:
        # A writer dropped without close() is an abandoned write: throw it away rather than let
        # the backend's own finaliser publish a truncated object.
        if not getattr(self, "closed", True):
            try:
                self.abort()
            except Exception:
                pass

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def atomic_file_writer(target: str, uri: str) -> AtomicWriter:
    """Write to a hidden sibling of ``target`` and rename it into place on close."""
    directory = os.path.dirname(target)
    os.makedirs(directory, exist_ok=True)
    temp = os.path.join(directory, f"{PARTIAL_MARK}{uuid.uuid4().hex}")
    handle = open(temp, "wb")  # noqa: SIM115 - closed by commit/abort

    def commit() -> None:
        handle.close()
        os.replace(temp, target)

    def abort() -> None:
        handle.close()
        if os.path.exists(temp):
            os.unlink(temp)

    return AtomicWriter(handle, commit, abort, uri)


class LocalFileStorage(CloudStorage):
    """Storage rooted at a local directory (``file:///path`` or a plain absolute path)."""

    def __init__(self, root: str) -> None:
        path = root[len("file://") :] if root.startswith("file://") else root
        if not os.path.isabs(path):
            raise StorageError(
                f"local storage root {root!r} is not an absolute path",
                fix="use file:///absolute/path",
            )
        self.root = os.path.normpath(path)

    def __repr__(self) -> str:
        return f"LocalFileStorage({self.root!r})"

    def _full(self, path: str) -> str:
        return os.path.join(self.root, *normalize_path(path).split("/"))

    def get_filesystem(self) -> fsspec.AbstractFileSystem:
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem()

    def storage_uri(self, path: str = "") -> str:
        return "file://" + (self._full(path) if path else self.root)

    def local_path(self, path: str) -> str | None:
        return self._full(path)

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        full = self._full(path)
        if mode == "rb":
            with self._errors(path, "read"):
                if os.path.isdir(full):
                    raise FileNotFoundError(full)
                return open(full, "rb")
        if mode == "wb":
            with self._errors(path, "write"):
                return atomic_file_writer(full, self.storage_uri(path))  # type: ignore[return-value]
        raise ValueError(f"mode {mode!r} is not supported; use 'rb' or 'wb'")

    def exists(self, path: str) -> bool:
        return os.path.isfile(self._full(path))

    def list(self, prefix: str = "") -> list[str]:
        base = self._full(prefix) if prefix.strip("/") else self.root
        if os.path.isfile(base):
            return [normalize_path(prefix)]
        names = []
        for directory, _, files in os.walk(base):
            for name in files:
                if not name.startswith(PARTIAL_MARK):
                    relative = os.path.relpath(os.path.join(directory, name), self.root)
                    names.append(relative.replace(os.sep, "/"))
        return sorted(names)

    def delete(self, path: str, recursive: bool = False) -> None:
        full = self._full(path)
        with self._errors(path, "delete"):
            if os.path.isdir(full):
                if not recursive:
                    raise StorageError(
                        f"{self.storage_uri(path)} is a directory",
                        fix="pass recursive=True to delete everything under it",
                    )
                import shutil

                shutil.rmtree(full)
            elif os.path.exists(full):
                os.unlink(full)

    def ensure_container(self, name: str | None = None) -> None:
        target = self._full(name) if name else self.root
        with self._errors(name or "", "create"):
            os.makedirs(target, exist_ok=True)


def storage_from_url(url: str, **options: Any) -> CloudStorage:
    """The storage for ``url``: plain files for ``file://`` (and absolute paths), else fsspec."""
    if (url.startswith("file://") or url.startswith("/")) and not options:
        return LocalFileStorage(url)
    from ascend.storage.fsspec_storage import FsspecStorage

    return FsspecStorage(url, **options)
