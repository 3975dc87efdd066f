"""A job's log in storage: appended in chunks while the job runs, read whole, followed live.

Object stores cannot append to an object, so the log is a series of objects ("chunks") under
the job's prefix, each written once and never rewritten::

    <job prefix>/logs/000000000000.txt    the log's bytes 0 .. 1233
    <job prefix>/logs/000000001234.txt    its bytes 1234 .. 5677
    ...

A chunk is named by the offset of its first byte in the whole log, zero-padded to 12 digits so
that names sort (a larger offset only gets more digits; readers order chunks by the number).

Writers, one at a time:

- the runner, while the job runs (:class:`ChunkWriter`): every second or two, the bytes written
  since its last chunk, from where the stored log ends, so a re-run of the job (retries) appends
  after the earlier attempt's output. A chunk that could not be written is written again, with
  the same bytes, before anything newer: no bytes are lost and no offset is skipped. After its
  last chunk the runner records the log's size in ``status.json`` (``logs_size``);
- the client, after a job that ended without a result (killed, out of memory): what the backend
  still holds beyond the chunks, as one more chunk (:func:`append_missing`).

Older runners wrote the whole log as one object, ``logs.txt``; it reads as the chunk at offset 0
when no chunk has offset 0.

Readers (:func:`read_logs`, :func:`follow`) concatenate the chunks in offset order. Bytes that
cannot be read are never skipped silently: a marker line stands where they would be::

    [ascend: bytes 1234-5677 of the log are missing (<why>)]

(a chunk deleted or unreadable; :data:`MISSING_MARK` starts every such line). Chunks that
overlap, which a single writer never makes, are trimmed to the bytes not read yet.

Standard library only: the runner imports this module.
"""

from __future__ import annotations

import json
import posixpath
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol

LOG_DIR = "logs"
LEGACY_FILE = "logs.txt"  # the whole log, as runners before chunks wrote it
OFFSET_DIGITS = 12
SIZE_FIELD = "logs_size"  # status.json: the log's size, recorded after the runner's last chunk
MISSING_MARK = "[ascend: "
FOLLOW_INTERVAL = 1.0  # seconds between a follower's looks at the storage
END_GRACE = 3.0  # seconds a follower waits for a last chunk when no logs_size was recorded
STUCK_POLLS = 3  # looks a follower waits for a missing chunk before reporting it missing
POLL_FAILURES = 30  # consecutive failed looks (storage unreachable) before a follower gives up
COPY_BLOCK = 1 << 20
READERS = 16  # chunks read at once

_CHUNK = re.compile(rf"([0-9]{{{OFFSET_DIGITS},}})\.txt")


class _Storage(Protocol):
    def read(self, path: str) -> bytes: ...
    def list(self, prefix: str = "") -> list[str]: ...
    def open(self, path: str, mode: str = "rb") -> IO[bytes]: ...
    def write(self, path: str, data: bytes, overwrite: bool = True) -> str: ...
    def exists(self, path: str) -> bool: ...


@dataclass(frozen=True)
class Chunk:
    """One stored piece of the log: its first byte's offset and its path."""

    offset: int
    path: str
    legacy: bool = False


def chunk_path(prefix: str, offset: int) -> str:
    """Where the chunk starting at ``offset`` lives (``<prefix>/logs/000000001234.txt``)."""
    return posixpath.join(prefix, LOG_DIR, f"{offset:0{OFFSET_DIGITS}d}.txt")


def list_chunks(storage: _Storage, prefix: str) -> list[Chunk]:
    """The log's chunks in offset order; a legacy ``logs.txt`` is the chunk at offset 0 when
    no chunk starts there.

    Lists ``logs/`` only, not the whole job: a listing caches what it saw in some fsspec
    backends (s3fs), and ``status.json``, rewritten while the job runs, would then be read with
    stale details and fail. Chunks are never rewritten."""
    base = posixpath.join(prefix, LOG_DIR)
    found: list[Chunk] = []
    for path in storage.list(base):
        if path.startswith(base + "/"):
            match = _CHUNK.fullmatch(path[len(base) + 1 :])
            if match:
                found.append(Chunk(int(match[1]), path))
    found.sort(key=lambda chunk: chunk.offset)
    if not (found and found[0].offset == 0):
        legacy = posixpath.join(prefix, LEGACY_FILE)
        if storage.exists(legacy):
            found.insert(0, Chunk(0, legacy, legacy=True))
    return found


def missing_marker(start: int, end: int | None, why: str) -> bytes:
    """The line that stands for bytes ``start``..``end`` (exclusive) that could not be read."""
    span = (
        f"bytes {start}-{end - 1} of the log are"
        if end is not None
        else f"the log from byte {start} on is"
    )
    return f"\n{MISSING_MARK}{span} missing ({why})]\n".encode()


def stored_end(storage: _Storage, prefix: str) -> tuple[int, bytes]:
    """Where the stored log ends (its size), and the last chunk's bytes."""
    chunks = list_chunks(storage, prefix)
    if not chunks:
        return 0, b""
    last = chunks[-1]
    data = storage.read(last.path)
    return last.offset + len(data), data


class ChunkWriter:
    """The runner's side: appends a growing local file to the stored log, chunk by chunk.

    :meth:`flush` saves the file's bytes not saved yet as one new chunk, reading them from the
    file by offset (never the whole log in memory). A flush that fails raises and saves
    nothing; the next one first writes the same bytes again, at the same offset, then what
    came since as another chunk.
    """

    def __init__(self, storage: _Storage, prefix: str, source: str) -> None:
        self.storage = storage
        self.prefix = prefix
        self.source = source
        self.saved = 0  # bytes of ``source`` in storage
        self.base: int | None = None  # the stored log's size before this writer (re-runs)
        self._attempted = 0  # end of a chunk that failed: it is retried with the same bytes

    @property
    def end(self) -> int:
        """The stored log's size as far as this writer knows."""
        return (self.base or 0) + self.saved

    def flush(self, size: int) -> bool:
        """Save ``source``'s bytes up to ``size``; returns whether a chunk was written."""
        if size <= self.saved:
            return False
        if self.base is None:
            self.base, _ = stored_end(self.storage, self.prefix)
        if self._attempted > self.saved:  # what failed goes again, unchanged
            self._write(self._attempted)
        if size > self.saved:
            self._write(size)
        return True

    def _write(self, until: int) -> None:
        self._attempted = max(self._attempted, until)
        assert self.base is not None
        with open(self.source, "rb") as source:
            source.seek(self.saved)
            with self.storage.open(chunk_path(self.prefix, self.base + self.saved), "wb") as target:
                left = until - self.saved
                while left > 0:
                    block = source.read(min(COPY_BLOCK, left))
                    if not block:
                        raise OSError(f"{self.source} is shorter than {until} bytes")
                    target.write(block)
                    left -= len(block)
        self.saved = until


class LogReader:
    """Reads a job's log from ``start`` on; each :meth:`read` returns what was not returned yet.

    Chunks read whole are not read again (the legacy ``logs.txt``, which an old runner still
    rewrites while it runs, is read again while it is the last piece).
    """

    def __init__(self, storage: _Storage, prefix: str, start: int = 0) -> None:
        self.storage = storage
        self.prefix = prefix
        self.position = start
        self._done: set[str] = set()
        self._stuck = 0  # reads in a row stopped by the same missing piece
        self._blocked_at = -1
        self._reported: int | None = None  # where an unreadable last chunk was reported

    def read(self, *, final: bool = True) -> bytes:
        """The new bytes. ``final``: a missing or unreadable piece is reported at once with a
        marker line and passed; otherwise (the job still writes) the read stops before it and
        reports it only after it stayed missing for :data:`STUCK_POLLS` reads."""
        chunks = list_chunks(self.storage, self.prefix)
        wanted: list[tuple[Chunk, int | None]] = []
        for index, chunk in enumerate(chunks):
            following = chunks[index + 1].offset if index + 1 < len(chunks) else None
            if chunk.path in self._done:
                continue
            if following is not None and following <= self.position:
                self._done.add(chunk.path)  # all before where we are
                continue
            wanted.append((chunk, following))
        fetched = self._fetch([chunk for chunk, _ in wanted])
        out = bytearray()
        report = final or self._stuck >= STUCK_POLLS
        blocked = False
        for chunk, following in wanted:
            if chunk.offset > self.position:  # no chunk holds the bytes before this one
                if not report:
                    blocked = True
                    break
                if self._reported != self.position:
                    out += missing_marker(self.position, chunk.offset, "no chunk holds them")
                self.position = chunk.offset
            data = fetched[chunk.path]
            if isinstance(data, BaseException):
                if not report:
                    blocked = True
                    break
                why = f"{chunk.path} could not be read: {_first_line(data)}"
                if following is None:
                    if self._reported != self.position:
                        out += missing_marker(self.position, None, why)
                    self._reported = self.position
                else:
                    out += missing_marker(self.position, following, why)
                    self.position = following
                self._done.add(chunk.path)
                continue
            end = chunk.offset + len(data)
            if end > self.position:
                out += data[self.position - chunk.offset :]
                self.position = end
            if following is not None or not chunk.legacy:
                self._done.add(chunk.path)
        if not blocked:
            self._stuck = 0
        elif self._blocked_at == self.position:
            self._stuck += 1
        else:
            self._blocked_at, self._stuck = self.position, 1
        return bytes(out)

    def _fetch(self, chunks: list[Chunk]) -> dict[str, bytes | BaseException]:
        def one(chunk: Chunk) -> bytes | BaseException:
            try:
                return self.storage.read(chunk.path)
            except Exception as error:  # reported as a marker by the caller
                return error

        if len(chunks) <= 1:
            return {chunk.path: one(chunk) for chunk in chunks}
        from concurrent.futures import ThreadPoolExecutor  # readers only, not the runner

        with ThreadPoolExecutor(max_workers=min(READERS, len(chunks))) as pool:
            return dict(zip((c.path for c in chunks), pool.map(one, chunks), strict=True))


def read_logs(storage: _Storage, prefix: str, start: int = 0) -> bytes:
    """The job's log from byte ``start`` on: its chunks in order (or the legacy ``logs.txt``),
    ``b""`` when nothing was saved. A piece that cannot be read is a marker line (see the
    module's docstring), not a gap nobody sees."""
    return LogReader(storage, prefix, start).read(final=True)


def follow(
    storage: _Storage,
    prefix: str,
    *,
    start: int = 0,
    interval: float = FOLLOW_INTERVAL,
    sleep: Callable[[float], Any] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[bytes]:
    """Yield the job's log as it grows: first what is saved, then each new piece, until the
    job has ended and its last chunk has been read.

    Looks every ``interval`` seconds (one listing and the job's record). The job has ended when
    its merged record (:func:`ascend.metadata.read`) is final; the log is read again after that,
    until it holds the ``logs_size`` the runner recorded after its last chunk, or, when none
    was recorded (the runner was killed, or is older), until no new chunk came for
    :data:`END_GRACE` seconds.
    """
    from ascend import metadata
    from ascend.errors import StorageError

    reader = LogReader(storage, prefix, start)
    quiet_since: float | None = None
    failures = 0
    while True:
        try:
            record = _job_record(storage, prefix)
            final = record.get("status") in metadata.FINAL
            data = reader.read(final=False)
            failures = 0
        except (OSError, RuntimeError, StorageError):  # a storage briefly unreachable
            failures += 1
            if failures >= POLL_FAILURES:
                raise
            sleep(interval)
            continue
        if data:
            yield data
        if final:
            now = clock()
            if data or quiet_since is None:
                quiet_since = now
            recorded = record.get(SIZE_FIELD)
            size = recorded if type(recorded) is int else None
            if (size is not None and reader.position >= size) or now - quiet_since >= END_GRACE:
                rest = reader.read(final=True)
                if size is not None and reader.position < size:
                    rest += missing_marker(reader.position, size, "not found in storage")
                if rest:
                    yield rest
                return
        sleep(interval)


def _job_record(storage: _Storage, prefix: str) -> dict[str, Any]:
    """The job's merged record; the runner's ``status.json`` alone for a runner started
    without a client record; ``{}`` before either exists."""
    from ascend import metadata

    try:
        return metadata.read(storage, prefix)
    except FileNotFoundError:
        pass
    try:
        value = json.loads(storage.read(posixpath.join(prefix, metadata.STATUS_FILE)))
    except (FileNotFoundError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def append_missing(storage: _Storage, prefix: str, held: bytes) -> int:
    """Save what the backend still holds of the job's output (``held``, the whole output as the
    cluster kept it) beyond the stored log, as one more chunk; returns the bytes appended.

    ``held`` is lined up with the stored log by the stored log's last bytes, found in ``held``
    at or after the same offset (a backend's copy may start with output from before the
    runner); when they are not found, by length: the bytes beyond the stored log's size.
    """
    end, last = stored_end(storage, prefix)
    tail = last[-4096:]
    cut = -1
    if tail:
        found = held.find(tail, max(0, end - len(tail)))
        if found < 0:
            found = held.rfind(tail)
        if found >= 0:
            cut = found + len(tail)
    if cut < 0:
        cut = end
    missing = held[cut:]
    if not missing:
        return 0
    storage.write(chunk_path(prefix, end), missing)
    return len(missing)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
