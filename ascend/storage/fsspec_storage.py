"""Generic storage on any fsspec URL: ``file://``, ``memory://``, ``s3://``, ``az://``, ``gs://``.

fsspec is imported when a storage is created, never at ``import ascend``.
"""

from __future__ import annotations

import atexit
import posixpath
import threading
import uuid
import weakref
from typing import IO, TYPE_CHECKING, Any

from ascend.errors import ConfigError
from ascend.storage.base import CloudStorage, normalize_path
from ascend.storage.local_files import PARTIAL_MARK, AtomicWriter, atomic_file_writer

if TYPE_CHECKING:
    import fsspec

# Remote writers still open when the interpreter exits. Async backends (s3fs, adlfs) finish a
# write on their event-loop thread; a handle finalised after that thread has stopped blocks the
# exit forever (measured with adlfs), and one finalised in time would publish a truncated
# object. So whatever is still open at exit is aborted while the loop still runs.
_open_writers: weakref.WeakSet[AtomicWriter] = weakref.WeakSet()
_exit_hook_lock = threading.Lock()
_exit_hook_registered = False


# Block sizes per fsspec protocol when the storage options set none. adlfs buffers a whole
# 50 MiB block, and aiohttp copies each block in flight two or three times, so a 256 MB upload
# grew the caller by 0.8x the payload; 8 MiB blocks (the wire's chunk size) keep it at 0.08x at
# the same throughput (benchmarks/azure_call.py). Azure's 50,000 blocks per blob then cap one
# object at about 390 GiB. s3fs keeps its default: S3's 10,000 parts would cap it at 78 GiB.
DEFAULT_BLOCK_SIZES = {"abfs": 8 * 2**20, "abfss": 8 * 2**20, "az": 8 * 2**20}


def _abort_open_writers() -> None:
    for writer in list(_open_writers):
        try:
            writer.abort()
        except Exception:
            pass


def _track(writer: AtomicWriter) -> AtomicWriter:
    global _exit_hook_registered
    with _exit_hook_lock:
        if not _exit_hook_registered:
            atexit.register(_abort_open_writers)
            _exit_hook_registered = True
        _open_writers.add(writer)
    return writer


class FsspecStorage(CloudStorage):
    """Storage rooted at an fsspec URL, for example ``s3://bucket/ascend``.

    :param url: the root URL; the scheme picks the fsspec backend.
    :param storage_options: passed to the fsspec filesystem (``endpoint_url``, credentials...).
    """

    failure_types: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError)

    def __init__(self, url: str, **storage_options: Any) -> None:
        if not isinstance(url, str) or not url.strip():
            raise ConfigError(
                f"storage_url {url!r} is empty",
                fix="set storage_url to an fsspec URL such as s3://bucket/ascend or file:///data",
            )
        import fsspec.core

        self.url = url.rstrip("/")
        try:
            fs, root = fsspec.core.url_to_fs(self.url, **storage_options)
        except (ValueError, ImportError) as error:
            scheme = url.split("://", 1)[0] if "://" in url else "file"
            fix = (
                f"install the fsspec backend for '{scheme}://' (s3fs, adlfs, gcsfs) or correct "
                "the URL"
                if isinstance(error, ImportError)
                else "check the URL and the storage options and credentials passed with it"
            )
            raise ConfigError(f"storage_url {url!r} cannot be opened: {error}", fix=fix) from error
        self._fs = fs
        self._root = root.rstrip("/") or "/"
        # The scheme the user wrote, when the backend answers to it (adlfs lists 'abfs' first
        # for az:// URLs): it is what storage_uri hands to pods.
        protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
        scheme = self.url.split("://", 1)[0] if "://" in self.url else ""
        self._protocol = scheme if scheme in protocols else protocols[0]
        block_size = storage_options.get("blocksize") or DEFAULT_BLOCK_SIZES.get(self._protocol)
        self._open_options: dict[str, Any] = {"block_size": block_size} if block_size else {}

    def __repr__(self) -> str:
        from ascend.secrets import redact_url

        return f"FsspecStorage({redact_url(self.url, mark=True)!r})"

    # -- paths -------------------------------------------------------------------------------

    def get_filesystem(self) -> fsspec.AbstractFileSystem:
        return self._fs

    def _full(self, path: str) -> str:
        if self._root == "/":
            return "/" + normalize_path(path)
        return posixpath.join(self._root, normalize_path(path))

    def storage_uri(self, path: str = "") -> str:
        full = self._full(path) if path else self._root
        if self._protocol in ("file", "local"):
            return "file://" + full
        return f"{self._protocol}://{full.lstrip('/')}"

    def local_path(self, path: str) -> str | None:
        return self._full(path) if self._is_local else None

    @property
    def _is_local(self) -> bool:
        return self._protocol in ("file", "local")

    @property
    def _is_memory(self) -> bool:
        return self._protocol == "memory"

    # -- primitives --------------------------------------------------------------------------

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        if mode == "rb":
            with self._errors(path, "read"):
                self._fs.invalidate_cache(self._full(path))  # a listing's stale size, say
                local = self._is_local or self._is_memory
                if local and not self._fs.isfile(self._full(path)):
                    raise FileNotFoundError(self._full(path))
                return self._fs.open(  # type: ignore[no-any-return]
                    self._full(path), "rb", **self._open_options
                )
        if mode == "wb":
            with self._errors(path, "write"):
                return self._open_write(path)  # type: ignore[return-value]
        raise ValueError(f"mode {mode!r} is not supported; use 'rb' or 'wb'")

    def _open_write(self, path: str) -> AtomicWriter:
        full = self._full(path)
        uri = self.storage_uri(path)
        token = uuid.uuid4().hex
        if self._is_local:
            return atomic_file_writer(full, uri)

        if self._is_memory:
            temp = posixpath.join(posixpath.dirname(full), f"{PARTIAL_MARK}{token}")
            handle = self._fs.open(temp, "wb")

            def commit_memory() -> None:
                self._fs.mv(temp, full)

            def abort_memory() -> None:
                self._fs.rm(temp)

            return AtomicWriter(handle, commit_memory, abort_memory, uri)

        handle = self._fs.open(full, "wb", **self._open_options)

        def commit_remote() -> None:
            with self._errors(path, "write"):
                handle.close()
            self._fs.invalidate_cache(full)

        def abort_remote() -> None:
            # Cancel the upload (multipart abort / uncommitted blocks) and stop fsspec from
            # committing on close or at garbage collection.
            discard = getattr(handle, "discard", None)
            try:
                if discard is not None:
                    discard()
            finally:
                handle.closed = True

        return _track(AtomicWriter(handle, commit_remote, abort_remote, uri))

    def exists(self, path: str) -> bool:
        # Not fsspec's isfile(), which answers False to every error: a refused credential
        # must not look like an object that was never written.
        full = self._full(path)
        with self._errors(path, "check"):
            self._fs.invalidate_cache(full)
            try:
                info = self._fs.info(full)
            except FileNotFoundError:
                return False
            return bool(info.get("type") == "file")

    def children(self, prefix: str) -> list[str]:
        base = self._full(prefix)
        with self._errors(prefix, "list"):
            self._fs.invalidate_cache(base)
            try:
                found = self._fs.ls(base, detail=False)
            except FileNotFoundError:
                return []
        names = {posixpath.basename(str(item).rstrip("/")) for item in found}
        return sorted(name for name in names if name and PARTIAL_MARK not in name)

    def list(self, prefix: str = "") -> list[str]:
        base = self._full(prefix) if prefix.strip("/") else self._root
        with self._errors(prefix, "list"):
            self._fs.invalidate_cache(base)
            try:
                found = self._fs.find(base)
            except FileNotFoundError:
                return []
        root = self._root.rstrip("/") + "/"
        names = []
        for item in found:
            item = "/" + item.lstrip("/") if self._root.startswith("/") else item
            relative = item[len(root) :] if item.startswith(root) else item
            if PARTIAL_MARK not in posixpath.basename(relative):
                names.append(relative)
        return sorted(names)

    def delete(self, path: str, recursive: bool = False) -> None:
        full = self._full(path)
        with self._errors(path, "delete"):
            try:
                if recursive and self._fs.isdir(full):
                    self._fs.rm(full, recursive=True)
                else:
                    self._fs.rm(full)
            except FileNotFoundError:
                pass
            self._fs.invalidate_cache(full)

    def ensure_container(self, name: str | None = None) -> None:
        target = self._root
        if name is not None:
            target = normalize_path(name)
        elif not (self._is_local or self._is_memory):
            target = self._root.split("/")[0]  # the bucket / container
        local = self._is_local or self._is_memory
        with self._errors("", "create"):
            if self._fs.exists(target):
                return
            try:
                if local:
                    self._fs.makedirs(target, exist_ok=True)
                else:  # a bucket or container: adlfs' makedirs would not create one
                    self._fs.mkdir(target)
            except FileExistsError:
                pass
            if not local:  # some backends (adlfs) only warn when creation fails
                self._fs.invalidate_cache(target)
                if not self._fs.exists(target):
                    raise OSError(f"{self._protocol}://{target} was not created")
