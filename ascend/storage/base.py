"""The storage interface every provider implements (``CloudStorage``).

Paths are relative to the storage root, ``/``-separated, and may not escape it. Writes are
all-or-nothing: a write that fails part way leaves no object behind, and readers never see a
half-written object. Large objects stream through :meth:`CloudStorage.open` in bounded memory.
"""

from __future__ import annotations

import errno
import posixpath
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, BinaryIO

from ascend.errors import InvalidStoragePathError, StorageError

if TYPE_CHECKING:
    import fsspec

COPY_CHUNK = 8 * 1024 * 1024
PACKAGE_FILE = "package.pkl"
RESULT_FILE = "result.pkl"


def normalize_path(path: str) -> str:
    """Validate a storage path and return its canonical form (no leading or trailing ``/``)."""
    if not isinstance(path, str) or not path.strip("/"):
        raise InvalidStoragePathError(
            f"storage path {path!r} is empty", fix="pass a path such as 'jobs/123/result.pkl'"
        )
    if "\\" in path or "\x00" in path:
        raise InvalidStoragePathError(
            f"storage path {path!r} contains a backslash or NUL", fix="use '/' between parts"
        )
    parts = path.strip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidStoragePathError(
            f"storage path {path!r} has an empty, '.' or '..' part",
            fix="paths are relative to the storage root and may not leave it",
        )
    return posixpath.join(*parts)


_FULL = (errno.ENOSPC, errno.EDQUOT)
_REFUSED = (errno.EACCES, errno.EPERM, errno.EROFS)


def storage_error(uri: str, action: str, error: BaseException) -> StorageError:
    """The typed error for a failed storage operation on ``uri``: a full disk or quota says
    "storage full", a refused write says so, anything else names the client's error. A
    credential in the URI (``user:secret@``, a SAS query) is not repeated."""
    from ascend.secrets import redact_url

    uri = redact_url(uri, mark=True)
    code = getattr(error, "errno", None)
    if code in _FULL:
        return StorageError(
            f"storage full: could not {action} {uri} ({error.strerror or error})",  # type: ignore[attr-defined]
            fix="free space or quota in the storage; 'ascend jobs prune --older-than 7d' "
            "deletes old jobs' data",
        )
    if code in _REFUSED:
        return StorageError(
            f"the storage refused to let this process {action} {uri} "
            f"({error.strerror or error})",  # type: ignore[attr-defined]
            fix="check that you may write there (permissions, a read-only mount)",
        )
    return StorageError(
        f"could not {action} {uri}: {type(error).__name__}: {error}",
        fix="check that the storage is reachable and that you may " + action + " there",
    )


class CloudStorage(ABC):
    """Object storage for job packages, metadata, logs and results."""

    #: Exceptions of the underlying client that mean "the operation failed" (not a bug).
    failure_types: tuple[type[BaseException], ...] = (OSError,)

    @contextmanager
    def _errors(self, path: str, action: str) -> Iterator[None]:
        """Turn the client's errors into typed storage errors that name the object."""
        from ascend.errors import StorageNotFoundError

        try:
            yield
        except StorageError:
            raise
        except FileNotFoundError as error:
            raise StorageNotFoundError(
                f"{self.storage_uri(path)} does not exist",
                fix="check the path; 'ascend jobs list' shows existing jobs",
            ) from error
        except self.failure_types as error:
            raise storage_error(self.storage_uri(path), action, error) from error

    @abstractmethod
    def get_filesystem(self) -> fsspec.AbstractFileSystem:
        """The configured fsspec filesystem (for code that needs fsspec directly)."""

    @abstractmethod
    def storage_uri(self, path: str = "") -> str:
        """The full URI of ``path`` (``s3://bucket/prefix/path``); the root when empty.

        This is what a pod receives: the URI scheme picks the fsspec backend there.
        """

    @abstractmethod
    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        """Open ``path`` for streaming: ``rb`` to read, ``wb`` to write (atomically).

        A ``wb`` stream used as a context manager publishes the object when the block exits
        normally and discards it when the block raises.
        """

    @abstractmethod
    def exists(self, path: str) -> bool:
        """Whether an object exists at ``path``."""

    def children(self, prefix: str) -> list[str]:
        """The names one level below ``prefix`` (objects and "directories"), sorted: a
        listing of jobs that does not walk every object of every job. Override it where the
        store can list one level (the default walks everything under ``prefix``)."""
        base = prefix.strip("/")
        return sorted({path[len(base) + 1 :].split("/", 1)[0] for path in self.list(base)})

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Every object under ``prefix`` (recursively), as sorted paths relative to the root."""

    @abstractmethod
    def delete(self, path: str, recursive: bool = False) -> None:
        """Delete the object at ``path`` (or everything under it with ``recursive``).

        Deleting something that does not exist is not an error.
        """

    @abstractmethod
    def ensure_container(self, name: str | None = None) -> None:
        """Create the bucket, container or directory holding the root, if missing.

        ``name`` overrides the container (bucket) name for stores that have one.
        """

    def local_path(self, path: str) -> str | None:
        """The path on this machine's disk when the object is local, else ``None``.

        Lets readers verify and unpickle in place instead of copying.
        """
        return None

    # -- conveniences built on the primitives ------------------------------------------------

    def write(self, path: str, data: bytes | BinaryIO, overwrite: bool = True) -> str:
        """Write ``data`` (bytes, or a readable binary stream copied in chunks) to ``path``.

        Returns the object's URI. With ``overwrite=False`` an existing object raises
        :class:`ascend.errors.StorageExistsError` and is left untouched.
        """
        from ascend.errors import StorageExistsError

        if not overwrite and self.exists(path):
            raise StorageExistsError(
                f"{self.storage_uri(path)} already exists",
                fix="pass overwrite=True to replace it, or write to a new path",
            )
        with self.open(path, "wb") as target:
            if isinstance(data, (bytes, bytearray, memoryview)):
                target.write(data)
            else:
                shutil.copyfileobj(data, target, COPY_CHUNK)
        return self.storage_uri(path)

    def read(self, path: str) -> bytes:
        """The whole object at ``path`` (use :meth:`open` for large objects)."""
        with self.open(path, "rb") as source:
            return source.read()

    def upload_package(self, job_prefix: str, package: bytes | BinaryIO) -> str:
        """Store a job's package under ``job_prefix``; returns the URI the pod reads."""
        return self.write(posixpath.join(normalize_path(job_prefix), PACKAGE_FILE), package)

    def download_result(self, job_prefix: str) -> bytes:
        """The raw result bytes a job wrote under ``job_prefix``."""
        return self.read(posixpath.join(normalize_path(job_prefix), RESULT_FILE))

    @contextmanager
    def open_result(self, job_prefix: str) -> Iterator[IO[bytes]]:
        """Stream the result a job wrote under ``job_prefix`` (large results)."""
        with self.open(posixpath.join(normalize_path(job_prefix), RESULT_FILE), "rb") as f:
            yield f
