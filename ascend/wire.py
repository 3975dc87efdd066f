"""The wire format shared by the client and the runner: one envelope for packages and results.

Layout of an envelope (one storage object)::

    MAGIC (8 bytes) | header length (4 bytes, big-endian) | header (JSON) | payload (pickles)
    | TRAILER_MAGIC (8 bytes) | MAC of header + payload (32 bytes) | payload length (8 bytes)

The MAC is an HMAC-SHA256 with the user's signing key (:mod:`ascend.signing`) when the header
says ``"mac": "hmac-sha256"`` (and names ``key_id``; the header also binds the ``job_id`` and
the ``kind``), else a plain SHA-256 (``"mac": "sha256"``, or no ``mac``: unsigned envelopes,
refused unless ``security.allow_unsigned``). A reader given a :class:`Trust` accepts only an
envelope signed with one of its keys for its job.

The header says what the object is and which versions wrote it, so a mismatch is reported
before anything is unpickled. ``format`` changes only when old readers could not read an
envelope at all; ``format_minor`` counts additions that old readers skip (see FORMAT_MINOR).
The MAC comes last so that the payload can be streamed to storage as it is pickled (one pass,
no second copy in memory); readers verify it before they unpickle a single byte.

Only the standard library and cloudpickle are imported here: the runner uses this module.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import pickle
import sys
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import IO, Any

import cloudpickle

from ascend._version import __version__
from ascend.errors import IntegrityError, SerializationError, VersionMismatchError
from ascend.signing import KeyRing, SigningKey

FORMAT_VERSION = 1
# Additions to format 1, each one invisible to readers that predate it:
#   1: a package's payload ends with one more pickle after the arguments, ``{filename: source}``
#      of the user's files its code came from, so remote tracebacks can show source lines.
#      Readers of minor 0 stop after the arguments; readers of minor 1 read it only when the
#      header says minor >= 1. Exception envelopes also carry ``exception_message`` and
#      ``remote_traceback`` in the header, for a caller that cannot unpickle the exception.
FORMAT_MINOR = 1
MAGIC = b"ASCEND\x00\x01"
TRAILER_MAGIC = b"ASCNDSUM"
TRAILER_SIZE = len(TRAILER_MAGIC) + 32 + 8
PROTOCOL = 5
WRITE_CHUNK = 8 * 1024 * 1024  # bounds the copies a buffering storage client makes
KIND_PACKAGE = "package"
KIND_RESULT = "result"
KIND_EXCEPTION = "exception"
MAX_HEADER = 64 * 1024
MAC_HMAC = "hmac-sha256"
MAC_PLAIN = "sha256"
MAX_SOURCES = 384 * 1024  # bytes of source text one package may carry
HEADER_MESSAGE_CHARS = 1000  # bounds of the exception summary in a header (JSON may escape
HEADER_TRACEBACK_CHARS = 6000  # every character into 6 bytes; the header must stay < 64 KiB)


def python_version() -> str:
    return ".".join(str(part) for part in sys.version_info[:3])


def versions() -> dict[str, str]:
    return {
        "ascend": __version__,
        "python": python_version(),
        "cloudpickle": cloudpickle.__version__,
    }


# -- pickling by value, per pickler ----------------------------------------------------------


@lru_cache(maxsize=1)
def _install_dirs() -> tuple[str, ...]:
    """Directories whose modules the runtime image is expected to have installed."""
    import sysconfig

    paths = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            paths.add(os.path.realpath(path))
    try:
        import site

        paths.update(os.path.realpath(p) for p in site.getsitepackages())
        paths.add(os.path.realpath(site.getusersitepackages()))
    except Exception:  # pragma: no cover - some embedded interpreters lack site
        pass
    return tuple(sorted(paths))


@lru_cache(maxsize=4096)
def is_local_module(name: str) -> bool:
    """Whether module ``name`` exists only here (a notebook, a script, a file next to it).

    Such modules are not installed where the job runs, so what they define travels by value.
    Installed packages, the standard library and ascend itself travel by reference.
    """
    if name == "__main__":
        return True
    top = name.split(".")[0]
    if top == "ascend" or top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return False
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    if not path:
        return False
    return not _is_installed_file(path)


@lru_cache(maxsize=1)
def _code_filename_slot() -> int:
    """Where cloudpickle's code reduction puts ``co_filename`` (-1: it keeps the real one)."""
    probe = compile("pass", "<ascend-probe>", "exec")
    arguments = cloudpickle.cloudpickle._code_reduce(probe)[1]
    for index, value in enumerate(arguments):
        if isinstance(value, str) and value == "<dynamic-code>":
            return index
    return -1


def _code_reduce(code: types.CodeType) -> Any:
    """cloudpickle's reduction of a code object, with the real file name put back.

    The name is all a traceback needs to point at the user's file; it costs a few bytes.
    A cloudpickle without this (private) reducer pickles code its own way.
    """
    reduce = getattr(cloudpickle.cloudpickle, "_code_reduce", None)
    if reduce is None:  # pragma: no cover - another cloudpickle
        return NotImplemented
    constructor, arguments = reduce(code)
    slot = _code_filename_slot()
    if slot >= 0:
        arguments = (*arguments[:slot], code.co_filename, *arguments[slot + 1 :])
    return constructor, arguments


def _exception_reduce(error: BaseException) -> Any:
    """For an exception that pickle could not rebuild: a reduction that skips ``__init__``.

    Pickle rebuilds exceptions as ``cls(*args)``, which fails when ``__init__`` takes other
    arguments than it passes to ``super().__init__`` (``DataQualityError(rows, table)``).
    ``copyreg.__newobj__`` makes pickle create the instance with ``cls.__new__(cls, *args)``
    (which sets ``args``) and restore ``__dict__``: the same object, without a helper that the
    other side would need. Returns None (pickle as usual) when the usual way works or the
    class pickles itself.
    """
    import copyreg

    cls = type(error)
    if (
        cls.__reduce__ is not BaseException.__reduce__
        or cls.__reduce_ex__ is not BaseException.__reduce_ex__
        or cls in copyreg.dispatch_table
    ):
        return None
    try:
        cls(*error.args)
    except Exception:
        return copyreg.__newobj__, (cls, *error.args), (error.__dict__ or None)  # type: ignore[attr-defined]
    return None


_SOURCE_CACHE: dict[str, tuple[tuple[int, int] | None, tuple[str, int] | None]] = {}


def _source_of(filename: str, module_globals: dict[str, Any] | None) -> tuple[str, int] | None:
    """``(text, size in bytes)`` of ``filename`` as linecache knows it, or None when it cannot
    be read, is too big, or belongs to an installed package (the job has those files).

    Kept per file for the process; a file changed on disk (an edited, reloaded module) is read
    again.
    """
    import linecache

    try:
        stat = os.stat(filename)
        key: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
    except (OSError, ValueError):
        key = None
    cached = _SOURCE_CACHE.get(filename)
    if cached is not None and cached[0] == key:
        return cached[1]
    found: tuple[str, int] | None = None
    if not _is_installed_file(filename):
        linecache.checkcache(filename)  # drops lines read before the file changed
        try:
            text = "".join(linecache.getlines(filename, module_globals))
        except Exception:  # a loader that fails: no source, as in a local traceback
            text = ""
        size = len(text.encode("utf-8", "replace"))
        if text and size <= MAX_SOURCES:
            found = text, size
    _SOURCE_CACHE[filename] = (key, found)
    return found


def _is_installed_file(filename: str) -> bool:
    """Whether ``filename`` is part of the standard library or an installed distribution."""
    if filename.startswith("<"):
        return False
    real = os.path.realpath(filename)
    if "site-packages" in real or "dist-packages" in real:
        return True
    return any(real.startswith(directory + os.sep) for directory in _install_dirs())


def collect_sources(pickler: _Pickler) -> dict[str, str]:
    """Source text of the files the pickled code came from, at most MAX_SOURCES bytes in all
    (the function's own file first)."""
    sources: dict[str, str] = {}
    budget = MAX_SOURCES
    for filename in pickler.code_files:
        found = _source_of(filename, pickler.module_globals.get(filename))
        if found is not None and found[1] <= budget:
            sources[filename] = found[0]
            budget -= found[1]
    return sources


class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]
    """A cloudpickle pickler that sends local modules' functions and classes by value.

    cloudpickle's ``register_pickle_by_value`` is a process-wide switch: two threads submitting
    at once would race on it. Deciding per object inside this pickler needs no global state.

    Code objects keep their real file names (cloudpickle writes ``<dynamic-code>``), so remote
    tracebacks name the user's files; the names seen are collected in ``code_files`` for
    :func:`dump_package` to ship their source. With ``rebuild_exceptions``, exceptions whose
    default reconstruction would fail are rebuilt without calling ``__init__``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.code_files: dict[str, None] = {}  # an ordered set: the function's own file first
        self.module_globals: dict[str, dict[str, Any]] = {}
        self.rebuild_exceptions = False

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.CodeType):
            self.code_files.setdefault(obj.co_filename, None)
            return _code_reduce(obj)
        if self.rebuild_exceptions and isinstance(obj, BaseException):
            rebuilt = _exception_reduce(obj)
            if rebuilt is not None:
                return rebuilt
        try:
            is_class = issubclass(type(obj), type)
        except TypeError:  # pragma: no cover - exotic metaclasses
            is_class = False
        if isinstance(obj, types.FunctionType):  # lets linecache ask the module's loader
            self.module_globals.setdefault(obj.__code__.co_filename, obj.__globals__)
        if is_class or isinstance(obj, types.FunctionType):
            module = getattr(obj, "__module__", None)
            if isinstance(module, str) and module != "__main__" and is_local_module(module):
                if is_class:
                    return cloudpickle.cloudpickle._dynamic_class_reduce(obj)
                return self._dynamic_function_reduce(obj)
        elif isinstance(obj, types.ModuleType) and is_local_module(obj.__name__):
            state = obj.__dict__.copy()
            state.pop("__builtins__", None)
            return cloudpickle.cloudpickle.dynamic_subimport, (obj.__name__, state)
        return super().reducer_override(obj)


# -- writing ---------------------------------------------------------------------------------


class _HashingWriter:
    """Feeds every byte to SHA-256 on its way to the target, in bounded chunks.

    Large chunks are hashed on a helper thread while the target writes them (hashlib releases
    the GIL), so hashing costs almost no extra wall time on big payloads.
    """

    PARALLEL_MIN = 1024 * 1024

    def __init__(self, target: IO[bytes], digest: Any) -> None:
        self._target = target
        self._digest = digest
        self._pending: threading.Thread | None = None
        self.count = 0

    def _settle(self) -> None:
        if self._pending is not None:
            self._pending.join()
            self._pending = None

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        for start in range(0, len(view), WRITE_CHUNK):
            chunk = view[start : start + WRITE_CHUNK]
            self._settle()  # updates must stay in order
            if len(chunk) >= self.PARALLEL_MIN:
                self._pending = threading.Thread(target=self._digest.update, args=(chunk,))
                self._pending.start()
            else:
                self._digest.update(chunk)
            self._target.write(chunk)
        self._settle()
        self.count += len(view)
        return len(view)


@dataclass(frozen=True)
class Trust:
    """What a reader accepts: envelopes signed with one of ``keys`` for ``job_id``; unsigned
    ones only with ``allow_unsigned``."""

    keys: KeyRing | None
    job_id: str
    allow_unsigned: bool = False


def _mac(key: SigningKey | None, head: bytes) -> Any:
    return hmac.new(key.secret, head, hashlib.sha256) if key else hashlib.sha256(head)


@contextmanager
def envelope_writer(
    target: IO[bytes], kind: str, key: SigningKey | None = None, **header: Any
) -> Iterator[_Pickler]:
    """Write an envelope of ``kind`` to ``target``, signed with ``key`` (unsigned without one);
    yields the pickler for the payload. The MAC is computed as the payload streams out."""
    signature = {"mac": MAC_HMAC, "key_id": key.key_id} if key else {"mac": MAC_PLAIN}
    head = json.dumps(
        {"format": FORMAT_VERSION, "format_minor": FORMAT_MINOR, "kind": kind}
        | versions()
        | signature
        | header
    ).encode()
    digest = _mac(key, head)
    target.write(MAGIC + len(head).to_bytes(4, "big") + head)
    hashing = _HashingWriter(target, digest)
    pickler = _Pickler(hashing, protocol=PROTOCOL)
    yield pickler
    target.write(TRAILER_MAGIC + digest.digest() + hashing.count.to_bytes(8, "big"))


@lru_cache(maxsize=1)
def _unsendable() -> tuple[tuple[Any, str, str], ...]:
    """Types that can never be pickled, with what to do instead (built on first use)."""
    import socket
    import threading

    return (
        (types.GeneratorType, "a generator", "pass list(...) of it instead"),
        (types.AsyncGeneratorType, "an async generator", "collect it into a list first"),
        (types.CoroutineType, "a coroutine", "await it locally and pass the result"),
        (type(threading.Lock()), "a lock", "create locks inside the function"),
        (type(threading.RLock()), "a lock", "create locks inside the function"),
        (threading.Condition, "a condition variable", "create it inside the function"),
        (threading.Event, "a threading event", "create it inside the function"),
        (threading.Thread, "a thread", "start threads inside the function"),
        (io.IOBase, "an open file or stream", "pass the path (or the bytes) instead"),
        (socket.socket, "a socket", "open connections inside the function"),
        (types.FrameType, "a stack frame", "pass the data you need from it"),
        (types.TracebackType, "a traceback", "pass traceback.format_tb(...) text instead"),
    )


def _unsendable_reason(value: Any, depth: int = 0) -> tuple[str, str] | None:
    """Why ``value`` can never be sent (checked cheaply before anything is uploaded)."""
    for kind, what, fix in _unsendable():
        if isinstance(value, kind):
            return what, fix
    if depth < 2:
        items: Any = ()
        if isinstance(value, (list, tuple, set, frozenset)) and len(value) <= 10_000:
            items = value
        elif isinstance(value, dict) and len(value) <= 10_000:
            items = value.values()
        for item in items:
            found = _unsendable_reason(item, depth + 1)
            if found is not None:
                return f"{found[0]} inside a {type(value).__name__}", found[1]
    return None


def _argument_names(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[str]:
    """A readable name for each argument: its parameter name when the signature tells."""
    import inspect

    try:
        bound = inspect.signature(fn).bind_partial(*args, **kwargs).arguments
        positional = list(bound)[: len(args)]
    except (TypeError, ValueError):
        positional = []
    names = []
    for index in range(len(args)):
        param = positional[index] if index < len(positional) else None
        names.append(f"argument {param!r} (position {index})" if param else f"argument {index}")
    names.extend(f"argument {key!r}" for key in kwargs)
    return names


def check_arguments(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse arguments that can never travel, naming the argument, before any upload."""
    names = _argument_names(fn, args, kwargs)
    for name, value in zip(names, [*args, *kwargs.values()], strict=True):
        found = _unsendable_reason(value)
        if found is not None:
            what, fix = found
            raise SerializationError(
                f"{name} of {getattr(fn, '__qualname__', fn)!r} cannot be sent to the job: it is "
                f"{what} ({type(value).__name__}), which cannot be pickled",
                fix=fix,
            )


def dump_package(
    target: IO[bytes],
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    key: SigningKey | None = None,
    **header: Any,
) -> None:
    """Pickle the call once, streaming into ``target``; a failure names the culprit.

    The pickles are written one after another with one pickler, so objects shared between
    arguments stay shared. The last one holds the source of the user's files the pickled code
    comes from (FORMAT_MINOR 1): the job has no copy of them, and its tracebacks need them.
    """
    names = _argument_names(fn, args, kwargs)
    with envelope_writer(target, KIND_PACKAGE, key, **header) as pickler:
        _dump_one(pickler, fn, f"function {getattr(fn, '__qualname__', fn)!r}")
        pickler.dump((len(args), list(kwargs)))
        for name, value in zip(names, [*args, *kwargs.values()], strict=True):
            _dump_one(pickler, value, name)
        try:
            sources = collect_sources(pickler)
        except Exception:  # source lines are a courtesy; the call must not fail for them
            sources = {}
        pickler.dump(sources)


def _dump_one(pickler: _Pickler, value: Any, name: str) -> None:
    from ascend.errors import StorageError

    try:
        pickler.dump(value)
    except StorageError:  # the target failed (a full disk), not the value
        raise
    except Exception as error:  # whatever __reduce__ raises, the culprit gets named
        raise SerializationError(
            f"{name} cannot be pickled: {type(error).__name__}: {error}",
            fix="pass plain data (numbers, strings, lists, dicts, arrays, dataclasses) or "
            "create the object inside the function",
        ) from error


def dump_result(
    target: IO[bytes], value: Any, key: SigningKey | None = None, **header: Any
) -> None:
    with envelope_writer(target, KIND_RESULT, key, **header) as pickler:
        _dump_one(pickler, value, f"the function's result ({type(value).__name__})")


def dump_exception(
    target: IO[bytes],
    error: BaseException,
    remote_traceback: str = "",
    key: SigningKey | None = None,
    **header: Any,
) -> None:
    """Pickle the exception, rebuilding it without ``__init__`` where pickle could not.

    The header also says what it was (type, message, the end of ``remote_traceback``), so a
    caller that cannot unpickle it still learns what happened.
    """
    cls = type(error)
    summary = {
        "exception_type": cls.__qualname__,
        "exception_module": cls.__module__,
        "exception_message": _safe_str(error)[:HEADER_MESSAGE_CHARS],
        "remote_traceback": remote_traceback[-HEADER_TRACEBACK_CHARS:],
    }
    with envelope_writer(target, KIND_EXCEPTION, key, **summary, **header) as p:
        p.rebuild_exceptions = True
        _dump_one(p, error, f"the exception ({cls.__name__})")


def _safe_str(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:
        return f"<{type(error).__name__}: str() failed>"


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """A verified envelope in a local, seekable file."""

    header: dict[str, Any]
    payload_offset: int
    payload_length: int

    @property
    def kind(self) -> str:
        return str(self.header.get("kind"))


def _hash_region(file: IO[bytes], offset: int, length: int, digest: Any) -> int:
    """Hash ``length`` bytes from ``offset``; returns how many were missing.

    A real file is mapped and hashed in place (no copy through read()); other streams are read
    in chunks.
    """
    import mmap

    try:
        fileno = file.fileno()
    except (AttributeError, OSError, ValueError):
        fileno = -1
    if fileno >= 0 and length > 0:
        with mmap.mmap(fileno, 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                for start in range(offset, offset + length, WRITE_CHUNK):
                    digest.update(view[start : min(start + WRITE_CHUNK, offset + length)])
            finally:
                view.release()
        return 0
    file.seek(offset)
    remaining = length
    while remaining:
        block = file.read(min(WRITE_CHUNK, remaining))
        if not block:
            break
        digest.update(block)
        remaining -= len(block)
    return remaining


def verify(file: IO[bytes], what: str, trust: Trust | None = None) -> Envelope:
    """Check magic, header and MAC of the envelope in ``file`` (seekable, local).

    With ``trust``, only an envelope signed with one of its keys for its job passes; without,
    only the integrity of an unsigned envelope is checked (the runner's own round trips).

    :raises IntegrityError: anything is off: not an envelope, truncated, unsigned, signed with
        a key not at hand, another job's, or changed after it was written.
    """
    file.seek(0, os.SEEK_END)
    size = file.tell()
    file.seek(0)
    start = file.read(len(MAGIC) + 4)
    if len(start) < len(MAGIC) + 4 or start[: len(MAGIC)] != MAGIC:
        raise IntegrityError(
            f"{what} is not an Ascend envelope (wrong magic bytes)",
            fix="the object was overwritten or written by something else; run the job again",
        )
    header_length = int.from_bytes(start[len(MAGIC) :], "big")
    if header_length > MAX_HEADER or len(MAGIC) + 4 + header_length + TRAILER_SIZE > size:
        raise IntegrityError(
            f"{what} is truncated or has a corrupt header", fix="run the job again"
        )
    head = file.read(header_length)
    payload_offset = len(MAGIC) + 4 + header_length
    payload_length = size - payload_offset - TRAILER_SIZE
    try:
        claimed = json.loads(head)
    except ValueError as error:
        raise IntegrityError(f"{what} has an unreadable header: {error}") from None
    if not isinstance(claimed, dict):
        raise IntegrityError(f"{what} has a header that is not a JSON object")
    key = _key_for(claimed, what, trust)
    digest = _mac(key, head)
    remaining = _hash_region(file, payload_offset, payload_length, digest)
    file.seek(payload_offset + payload_length)
    trailer = file.read(TRAILER_SIZE)
    if (
        remaining
        or len(trailer) != TRAILER_SIZE
        or trailer[: len(TRAILER_MAGIC)] != TRAILER_MAGIC
        or int.from_bytes(trailer[-8:], "big") != payload_length
    ):
        raise IntegrityError(f"{what} is truncated (incomplete trailer)", fix="run the job again")
    if not hmac.compare_digest(
        trailer[len(TRAILER_MAGIC) : len(TRAILER_MAGIC) + 32], digest.digest()
    ):
        if key is not None:
            raise IntegrityError(
                f"{what} failed its signature check (HMAC-SHA256 with key {key.key_id}): it "
                "was not written with your key, or it was changed after it was written",
                fix="someone who can write the job's storage but does not have your key wrote "
                "or changed it; do not use it, run the job again, and check who can write to "
                "the storage location (SECURITY.md)",
            )
        raise IntegrityError(
            f"{what} failed its SHA-256 check: the bytes were changed after they were written",
            fix="someone or something modified the job's storage; run the job again and check "
            "who can write to the storage location",
        )
    header = claimed
    if trust is not None and key is not None and header.get("job_id") != trust.job_id:
        raise IntegrityError(
            f"{what} belongs to another job ({header.get('job_id') or 'none named'}), not to "
            f"job {trust.job_id}: a valid payload was copied from elsewhere",
            fix="do not use it; run the job again, and check who can write to the storage",
        )
    if header.get("format") != FORMAT_VERSION:
        raise VersionMismatchError(
            f"{what} uses envelope format {header.get('format') if isinstance(header, dict) else '?'}"
            f", this side reads format {FORMAT_VERSION}",
            fix="use the same ascend version on both sides",
        )
    return Envelope(header, payload_offset, payload_length)


def _key_for(header: dict[str, Any], what: str, trust: Trust | None) -> SigningKey | None:
    """The key that must have signed this envelope (``None``: a plain SHA-256 is expected)."""
    mac = header.get("mac", MAC_PLAIN)
    if mac == MAC_PLAIN:
        if trust is not None and not trust.allow_unsigned:
            raise IntegrityError(
                f"{what} is not signed, so anyone who can write the storage could have "
                "written it",
                fix="run the job again with this version of ascend (it signs both ways); "
                "security.allow_unsigned: true accepts unsigned envelopes (not recommended)",
            )
        return None
    if mac != MAC_HMAC:
        raise IntegrityError(f"{what} names an unknown signature scheme {mac!r}")
    key_id = str(header.get("key_id") or "")
    if trust is None:
        raise IntegrityError(f"{what} is signed (key {key_id}) and no key was given to check it")
    if trust.keys is None:
        raise IntegrityError(
            f"{what} is signed (key {key_id}) and no signing key is available here",
            fix="the job's user needs a signing key: on Kubernetes a cluster admin runs "
            "'ascend admin add-user <user>'",
        )
    key = trust.keys.find(key_id)
    if key is None:
        known = ", ".join(k.key_id for k in (trust.keys.current, *trust.keys.previous))
        raise IntegrityError(
            f"{what} is signed with key {key_id!r}, which is not one of your keys ({known}): "
            "another user wrote it, or it predates keys that were rotated away",
            fix="do not use it; if your key was rotated more than "
            f"{len(trust.keys.previous)} times since, the job's result can no longer be checked",
        )
    return key


def check_versions(envelope: Envelope, what: str) -> None:
    """Refuse to unpickle across Python minor versions or cloudpickle versions."""
    theirs_python = str(envelope.header.get("python", "?"))
    theirs_cp = str(envelope.header.get("cloudpickle", "?"))
    ours = versions()
    problems = []
    if theirs_python.split(".")[:2] != ours["python"].split(".")[:2]:
        problems.append(f"Python {theirs_python} wrote it, this is Python {ours['python']}")
    if theirs_cp.split(".")[:2] != ours["cloudpickle"].split(".")[:2]:
        problems.append(
            f"cloudpickle {theirs_cp} wrote it, this has cloudpickle {ours['cloudpickle']}"
        )
    if problems:
        raise VersionMismatchError(
            f"{what} cannot be unpickled here: " + "; ".join(problems),
            fix="run the job in an image with the same Python minor version and cloudpickle "
            "version as the client (base_image=..., or rebuild the runtime image)",
        )


def _payload(file: IO[bytes], envelope: Envelope) -> pickle.Unpickler:
    file.seek(envelope.payload_offset)
    return pickle.Unpickler(file)


def load_call(
    file: IO[bytes], envelope: Envelope
) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], dict[str, str]]:
    """``(fn, args, kwargs, sources)`` from a verified package; ``sources`` is empty for
    packages written before FORMAT_MINOR 1."""
    if envelope.kind != KIND_PACKAGE:
        raise IntegrityError(f"expected a package, found a {envelope.kind!r} envelope")
    unpickler = _payload(file, envelope)
    fn = unpickler.load()
    n_args, keys = unpickler.load()
    args = tuple(unpickler.load() for _ in range(n_args))
    kwargs = {key: unpickler.load() for key in keys}
    sources: dict[str, str] = {}
    minor = envelope.header.get("format_minor", 0)
    if isinstance(minor, int) and minor >= 1:
        loaded = unpickler.load()
        if isinstance(loaded, dict):
            sources = {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, str)}
    return fn, args, kwargs, sources


def load_package(
    file: IO[bytes], envelope: Envelope
) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
    """``(fn, args, kwargs)`` from a verified package (:func:`load_call` without the sources)."""
    fn, args, kwargs, _ = load_call(file, envelope)
    return fn, args, kwargs


def load_outcome(file: IO[bytes], envelope: Envelope) -> tuple[str, Any]:
    """``("result", value)`` or ``("exception", exception)`` from a verified result envelope."""
    if envelope.kind not in (KIND_RESULT, KIND_EXCEPTION):
        raise IntegrityError(f"expected a result, found a {envelope.kind!r} envelope")
    return envelope.kind, _payload(file, envelope).load()


@contextmanager
def open_envelope(
    open_remote: Callable[[], Any], local_path: str | None, what: str, trust: Trust | None = None
) -> Iterator[tuple[IO[bytes], Envelope]]:
    """Get an envelope into a local file, verify it, and yield ``(file, envelope)``.

    A local object is verified in place; a remote one is streamed once into a temporary file
    (bounded memory) and verified there, so nothing is unpickled before the digest matches.
    """
    import shutil
    import tempfile

    if local_path is not None:
        handle: IO[bytes] = open(local_path, "rb")  # noqa: SIM115 - closed below
    else:
        handle = tempfile.TemporaryFile(prefix="ascend-")  # noqa: SIM115 - closed below
        try:
            with open_remote() as source:
                shutil.copyfileobj(source, handle, WRITE_CHUNK)
        except BaseException:
            handle.close()
            raise
    with handle:
        yield handle, verify(handle, what, trust)
