"""``python -m ascend.runner``: runs one packaged call where the job runs (a pod or a process).

Configured by environment variables, so a pod needs only URIs, never payloads or secrets:

- ``ASCEND_PACKAGE_URI`` (required): fsspec URI of the package; the scheme picks the backend.
- ``ASCEND_RESULT_URI`` (required): where the result or the exception is written. Its directory
  is the job's prefix, where ``metadata.json``, ``status.json`` and the log (``logs/``) live too.
- ``ASCEND_TIMEOUT``: seconds; past it the runner records the deadline and stops the job even
  if no client is watching. ``ASCEND_RLIMIT_AS`` (bytes) and ``ASCEND_MEMORY`` (its label)
  cap the address space (local provider). ``ASCEND_STORAGE_OPTIONS``: JSON fsspec options.

The package is verified (digest, then versions) before anything is unpickled. Everything the
function prints goes live to the container's output and into a local file, which is saved as the
job's log while the job runs: every ``LOG_CHUNK_INTERVAL`` seconds the bytes written since the
last save are appended as one more chunk under ``logs/`` (:mod:`ascend.logstore`; nothing saved
is rewritten, and the log is read from the file by offset, never held in memory), and the last
chunk when the job ends, also past its deadline. A chunk that cannot be written is retried with
the next one, and ``status.json`` says why the logs could not be saved (``logs_error``) until
they can again; after the last chunk it records the log's size (``logs_size``), which tells
followers (``ascend jobs logs --follow``) that the log is complete. The runner updates the job's
status itself, so the record is right even when the client has died.
Imports: the standard library, cloudpickle and fsspec only (a test enforces it).
"""

from __future__ import annotations

import functools
import gc
import json
import os
import posixpath
import signal
import socket
import sys
import tempfile
import threading
import traceback
import types
from collections.abc import Callable
from typing import Any

EXIT_OK = 0
EXIT_FUNCTION_FAILED = 1
EXIT_USAGE = 2
EXIT_INTEGRITY = 3
EXIT_VERSION = 4
EXIT_STORAGE = 5
EXIT_OUT_OF_MEMORY = 6
EXIT_DEADLINE = 7
EXIT_TERMINATED = 143
EXPIRE_GRACE = 30.0  # seconds the watchdog may spend saving the verdict and logs
LOG_CHUNK_INTERVAL = 1.5  # seconds between log chunks: the stored log is at most ~2 s behind


class _Terminated(BaseException):
    """Raised in the main thread when the job is asked to stop (SIGTERM)."""


class _OutputTee:
    """Copies everything written to file descriptors 1 and 2 into a log file.

    Working on descriptors, not ``sys.stdout``, also catches output of C extensions and child
    processes. A reader that went away (a client that died) does not stop the job or the log.
    """

    def __init__(self, log_path: str) -> None:
        self.log = open(log_path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        self.lock = threading.Lock()
        self.size = 0
        self._saved: dict[int, int] = {}
        self._threads: list[threading.Thread] = []
        for fd in (1, 2):
            self._saved[fd] = os.dup(fd)
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            thread = threading.Thread(
                target=self._pump, args=(read_end, self._saved[fd]), daemon=True
            )
            thread.start()
            self._threads.append(thread)
        for stream in (sys.stdout, sys.stderr):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(line_buffering=True)

    def _pump(self, read_end: int, out: int) -> None:
        """Forward raw bytes live; log whole lines, so stdout and stderr never split a line."""
        alive = True
        pending = b""
        while True:
            try:
                chunk = os.read(read_end, 65536)
            except OSError:
                break
            if not chunk:
                break
            if alive:
                try:
                    os.write(out, chunk)
                except OSError:
                    alive = False  # the reader is gone; keep logging
            pending += chunk
            cut = pending.rfind(b"\n") + 1
            if cut == 0 and len(pending) < 65536:
                continue  # wait for the end of the line
            complete, pending = (pending[:cut], pending[cut:]) if cut else (pending, b"")
            self._log(complete)
        if pending:
            self._log(pending if pending.endswith(b"\n") else pending + b"\n")
        os.close(read_end)

    def _log(self, data: bytes) -> None:
        with self.lock:
            self.log.write(data)
            self.size += len(data)

    def close(self, wait: float = 2.0) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)  # closes our pipe's write end held by fd
        for thread in self._threads:
            thread.join(wait)  # children still holding the pipe must not hang the runner
        self.log.close()


class Runner:
    """One job run: fetch, verify, call, record."""

    def __init__(self, env: dict[str, str]) -> None:
        from ascend import logstore
        from ascend.storage.local_files import storage_from_url

        missing = [n for n in ("ASCEND_PACKAGE_URI", "ASCEND_RESULT_URI") if not env.get(n)]
        if missing:
            raise ValueError(f"{' and '.join(missing)} must be set (fsspec URIs)")
        options = json.loads(env.get("ASCEND_STORAGE_OPTIONS") or "{}")
        package_uri = env["ASCEND_PACKAGE_URI"]
        result_uri = env["ASCEND_RESULT_URI"]
        self.package_store = storage_from_url(posixpath.dirname(package_uri), **options)
        self.package_name = posixpath.basename(package_uri)
        self.store = storage_from_url(posixpath.dirname(result_uri), **options)
        self.result_name = posixpath.basename(result_uri)
        self.timeout = float(env["ASCEND_TIMEOUT"]) if env.get("ASCEND_TIMEOUT") else None
        self.rlimit_as = int(env["ASCEND_RLIMIT_AS"]) if env.get("ASCEND_RLIMIT_AS") else None
        self.memory_label = env.get("ASCEND_MEMORY") or (
            f"{self.rlimit_as} bytes" if self.rlimit_as else "the memory limit"
        )
        self.job_id = env.get("ASCEND_JOB_ID")
        from ascend import signing

        try:
            self.keys = signing.from_env(env)
        except signing.KeyFormatError as error:
            raise ValueError(f"{signing.KEY_ENV}: {error}") from None
        self.allow_unsigned = env.get(signing.ALLOW_UNSIGNED_ENV, "") in ("1", "true", "yes")
        for name in (signing.KEY_ENV, signing.PREVIOUS_ENV):  # not for the function's children
            os.environ.pop(name, None)
        self._log_dir = tempfile.mkdtemp(prefix="ascend-runner-")
        self.log_path = os.path.join(self._log_dir, "output.log")
        self.tee: _OutputTee | None = None
        self._log_writer = logstore.ChunkWriter(self.store, "", self.log_path)
        self._upload_lock = threading.Lock()
        self._done = threading.Event()
        self._status: dict[str, Any] = {}
        self._status_lock = threading.Lock()

    # -- records -----------------------------------------------------------------------------

    def _metadata(self, status: str, **fields: Any) -> None:
        """Record the job's state in status.json, of which the runner is the only writer.

        A final state is recorded once: the watchdog and the main thread cannot both win.
        """
        from ascend import metadata

        with self._status_lock:
            record = self._status
            if record.get("status") in metadata.FINAL:
                return
            record.update(fields)
            record["status"] = status
            if status == metadata.RUNNING:
                record.setdefault("started_at", metadata.now())
            if status in metadata.FINAL:
                record["finished_at"] = metadata.now()
                started = record.get("started_at")
                if isinstance(started, str):
                    record["duration_seconds"] = round(metadata.elapsed_seconds(started), 3)
            try:
                metadata.write_status(self.store, "", record)
            except Exception as error:  # the record is best effort; the result is what matters
                print(f"ascend runner: could not record the status: {error}", file=sys.__stderr__)

    def upload_logs(self, last: bool = False) -> None:
        """Append what the function printed since the last chunk as one more chunk (nothing
        when it printed nothing new). ``last``: the log is complete; record its size."""
        with self._upload_lock:
            size = self.tee.size if self.tee else 0
            error = None
            try:
                self._log_writer.flush(size)
            except Exception as failure:  # retried with the next chunk, from the same offset
                error = str(failure).splitlines()[0] if str(failure) else type(failure).__name__
                if error != self._status.get("logs_error"):
                    print(f"ascend runner: could not save logs: {error}", file=sys.__stderr__)
            self._record_logs_error(error, self._log_writer.end if last else None)

    def _record_logs_error(self, message: str | None, size: int | None = None) -> None:
        """Say in status.json that the logs could not be saved (or can be again), also after
        the final state: the caller reports it rather than showing empty logs as all there is.
        ``size``: the saved log's size, recorded once the log is complete."""
        from ascend import logstore, metadata

        with self._status_lock:
            if self._status.get("logs_error") == message and size is None:
                return
            if message is None:
                self._status.pop("logs_error", None)
            else:
                self._status["logs_error"] = message
            if size is not None:
                self._status[logstore.SIZE_FIELD] = size
            try:
                metadata.write_status(self.store, "", dict(self._status))
            except Exception:  # the storage that lost the logs may refuse this too
                pass

    def _upload_periodically(self) -> None:
        while not self._done.wait(LOG_CHUNK_INTERVAL):
            self.upload_logs()

    def _write_outcome(self, writer: Callable[..., None], value: Any) -> None:
        """Write the result or the exception, signed with the job's key for its job id."""
        key = self.keys.current if self.keys else None
        with self.store.open(self.result_name, "wb") as target:
            writer(target, value, key=key, job_id=self.job_id)

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> int:
        from ascend import wire
        from ascend.errors import IntegrityError, SerializationError, VersionMismatchError

        self.tee = _OutputTee(self.log_path)
        threading.Thread(target=self._upload_periodically, daemon=True).start()
        if self.timeout:
            self._start_watchdog(self.timeout)
        self._metadata(
            "running",
            runner={
                "pid": os.getpid(),
                "start_ticks": process_start_ticks(os.getpid()),
                "host": socket.gethostname(),
                **wire.versions(),
            },
        )
        try:
            try:
                with wire.open_envelope(
                    lambda: self.package_store.open(self.package_name, "rb"),
                    self.package_store.local_path(self.package_name),
                    f"the package of job {self.job_id}" if self.job_id else "the job package",
                    wire.Trust(self.keys, self.job_id or "", self.allow_unsigned),
                ) as (file, envelope):
                    wire.check_versions(envelope, "the job package")
                    fn, args, kwargs, sources = wire.load_call(file, envelope)
            except IntegrityError as error:
                return self._refuse(error, "IntegrityError", EXIT_INTEGRITY)
            except VersionMismatchError as error:
                return self._refuse(error, "VersionMismatch", EXIT_VERSION)
            except Exception as error:  # a verified package that cannot be unpickled here
                return self._refuse(
                    SerializationError(
                        f"the job package cannot be unpickled in the runner: "
                        f"{type(error).__name__}: {error}",
                        fix="a module it needs is missing where the job runs: add it to "
                        "requirements=[...] or use an image that has it",
                    ),
                    "UnpicklingFailed",
                    EXIT_FUNCTION_FAILED,
                )
            _register_sources(sources)
            self._limit_memory()
            try:
                value = _call(fn, args, kwargs)
            except MemoryError as error:
                return self._out_of_memory(error)
            except _Terminated:  # a real SIGTERM: stop, never report it as the function's
                raise
            except BaseException as error:  # the function's, BaseException subclasses included
                return self._failed(error)
            del fn, args, kwargs
            try:
                self._write_outcome(wire.dump_result, value)
            except SerializationError as error:
                error.fix = "return plain data (numbers, strings, lists, dicts, arrays)"
                return self._failed(error)
            except MemoryError as error:
                return self._out_of_memory(error)
            self._metadata("succeeded", exit_code=EXIT_OK)
            return EXIT_OK
        except Exception as error:  # storage and the like: recorded while the log still runs
            print(f"ascend runner: {type(error).__name__}: {error}", file=sys.stderr)
            self._metadata(
                "failed",
                exit_code=EXIT_STORAGE,
                failure={"reason": "RunnerError", "message": f"{type(error).__name__}: {error}"},
            )
            return EXIT_STORAGE
        except _Terminated:
            self._metadata(
                "failed",
                failure={"reason": "Terminated", "message": "the job was asked to stop (SIGTERM)"},
            )
            return EXIT_TERMINATED
        finally:
            self._finish()

    def _end_with(
        self,
        exception: BaseException,
        code: int,
        failure: dict[str, Any],
        remote_traceback: str = "",
    ) -> int:
        """Write ``exception`` as the job's outcome, record the failure, return the exit code."""
        from ascend import wire

        try:
            self._write_outcome(
                lambda target, error, **signed: wire.dump_exception(
                    target, error, remote_traceback, **signed
                ),
                exception,
            )
        except Exception as write_error:
            print(f"ascend runner: could not write the outcome: {write_error}", file=sys.stderr)
            code = EXIT_STORAGE
        self._metadata("failed", exit_code=code, failure=failure)
        return code

    def _refuse(self, error: Exception, reason: str, code: int) -> int:
        print(f"ascend runner: {error}", file=sys.stderr)
        return self._end_with(
            error, code, {"reason": reason, "message": str(error).splitlines()[0]}
        )

    def _failed(self, error: BaseException) -> int:
        travelling, remote = _travelling_exception(error)
        return self._end_with(
            travelling,
            EXIT_FUNCTION_FAILED,
            {
                "reason": "Exception",
                "type": type(error).__qualname__,
                "message": _first_line(error),
            },
            remote,
        )

    def _out_of_memory(self, error: MemoryError) -> int:
        from ascend.errors import OutOfMemoryError

        self._lift_memory_limit()
        text = "".join(traceback.format_exception(error)) if error.__traceback__ else ""
        if error.__traceback__ is not None:
            traceback.clear_frames(error.__traceback__)  # let the big locals go
            error.__traceback__ = None
        del error
        gc.collect()
        oom = OutOfMemoryError(
            f"the job ran out of memory: it exceeded its memory limit of {self.memory_label}",
            job_id=self.job_id,
            evidence={"reason": "OutOfMemory", "limit": self.memory_label, "traceback": text},
            fix=f"raise memory= above {self.memory_label}, or process the data in smaller parts",
        )
        print(f"ascend runner: {oom.message}", file=sys.stderr)
        return self._end_with(
            oom, EXIT_OUT_OF_MEMORY, {"reason": "OutOfMemory", "limit": self.memory_label}
        )

    def _limit_memory(self) -> None:
        """Cap the function's address space (the soft limit only: the runner lifts it again
        to record the outcome, which must not fail for the memory the function took)."""
        if not self.rlimit_as:
            return
        import resource

        self._unlimited, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (self.rlimit_as, hard))

    def _lift_memory_limit(self) -> None:
        if not self.rlimit_as or not hasattr(self, "_unlimited"):
            return
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        try:
            resource.setrlimit(resource.RLIMIT_AS, (self._unlimited, hard))
        except (ValueError, OSError):  # the function lowered the hard limit: keep trying
            pass

    def _start_watchdog(self, timeout: float) -> None:
        def expire() -> None:
            # Saving the verdict and the logs must not keep an overrun alive: a stuck storage
            # call (or a lock held by a periodic log upload) gets EXPIRE_GRACE seconds.
            hard_stop = threading.Timer(EXPIRE_GRACE, _stop_now)
            hard_stop.daemon = True
            hard_stop.start()
            self._metadata(
                "failed",
                exit_code=EXIT_DEADLINE,
                failure={
                    "reason": "DeadlineExceeded",
                    "message": f"the job ran longer than its timeout of {timeout:g} s",
                },
            )
            print(f"ascend runner: timeout of {timeout:g} s reached; stopping", file=sys.stderr)
            if self.tee:
                self.tee.close(wait=0.5)
            self.upload_logs(last=True)
            _stop_now()  # our own process group's children go too

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()

    def _finish(self) -> None:
        self._done.set()
        _stop_children()  # the job ends with its function: what it started ends too
        if self.tee is not None:
            self.tee.close()
        self.upload_logs(last=True)
        try:
            os.unlink(self.log_path)
            os.rmdir(self._log_dir)
        except OSError:
            pass


def _stop_now() -> None:
    """End the job at once: the other processes of our group, then this one with the
    deadline's exit code (a SIGKILL to the whole group would kill us too, and the pod would
    report 137, which retries would run again)."""
    me, group = os.getpid(), os.getpgrp()
    if group == me:
        try:
            pids = [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
        except OSError:  # no /proc: SIGTERM the group, ourselves excepted
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            os.killpg(group, signal.SIGTERM)
            pids = []
        for pid in pids:
            try:
                if pid != me and os.getpgid(pid) == group:
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    os._exit(EXIT_DEADLINE)


def _stop_children() -> None:
    """SIGTERM every other process of our process group (we lead it: a pod, or a local job).

    Without this, a background process the function started would keep the job (and the log
    pipes) alive after the function returned.
    """
    if os.getpgrp() != os.getpid() or threading.current_thread() is not threading.main_thread():
        return
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.killpg(os.getpgrp(), signal.SIGTERM)
    except OSError:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def process_start_ticks(pid: int) -> int | None:
    """When a process started (clock ticks since boot): with its pid, names one process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _remote_error(error: BaseException, remote: str) -> BaseException:
    """A ``BaseException`` that is not an ``Exception`` (``sys.exit()``, ``KeyboardInterrupt``,
    ``GeneratorExit``, a class of the user's) as a ``RemoteError``: raised as itself in the
    caller it would exit or interrupt the caller's program, or slip past ``except Exception``."""
    from ascend.errors import RemoteError

    if isinstance(error, SystemExit):
        message = (
            f"the function called sys.exit({error.code!r}) instead of returning; return a "
            "value or raise an exception"
        )
    elif isinstance(error, KeyboardInterrupt):
        text = _safe_str(error)
        message = "the function was interrupted" + (f": {text}" if text else "")
    else:
        message = _safe_str(error)
    return RemoteError(_type_name(type(error)), message, remote)


def _type_name(cls: type) -> str:
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _safe_str(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:
        return f"<str() of the {type(error).__name__} failed>"


@functools.lru_cache(maxsize=1)
def _own_code() -> frozenset[int]:
    """Identities of the code objects of this module's functions, methods and the functions
    nested in them: the frames a user's traceback leaves out.

    Identity, not the module's ``__name__``: run as ``python -m``, this module is ``__main__``,
    and so is every function from the user's script.
    """
    found: dict[int, types.CodeType] = {}

    def add(code: types.CodeType) -> None:
        if id(code) not in found:
            found[id(code)] = code
            for const in code.co_consts:
                if isinstance(const, types.CodeType):
                    add(const)

    def add_function(value: Any) -> None:
        value = getattr(value, "__func__", value)  # staticmethod, classmethod
        if isinstance(value, property):
            for accessor in (value.fget, value.fset, value.fdel):
                add_function(accessor)
        elif isinstance(value, types.FunctionType) and value.__globals__ is globals():
            add(value.__code__)

    for value in list(globals().values()):
        if isinstance(value, type) and value.__module__ == __name__:
            for member in vars(value).values():
                add_function(member)
        else:
            add_function(value)
    return frozenset(found)


def _user_traceback(error: BaseException) -> str:
    """The exception's traceback from the user's code on: the runner's own frames (known by
    their code objects) are dropped from its start."""
    own = _own_code()
    tb = error.__traceback__
    while tb is not None and id(tb.tb_frame.f_code) in own:
        tb = tb.tb_next
    error.__traceback__ = tb
    try:
        return "".join(traceback.format_exception(error))
    except Exception as failure:  # a __str__ that raises, say: say so rather than crash
        return f"{_type_name(type(error))} (its traceback could not be formatted: {failure})\n"


def _register_sources(sources: dict[str, str]) -> None:
    """Give linecache the user's files shipped with the package, which the job does not have,
    so tracebacks show their lines. Entries without a modification time are kept as they are
    (linecache.checkcache leaves them alone)."""
    import linecache

    for filename, text in sources.items():
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        linecache.cache[filename] = (len(text), None, lines, filename)


def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return fn(*args, **kwargs)


def _first_line(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__qualname__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _travelling_exception(error: BaseException) -> tuple[BaseException, str]:
    """The exception to send back, and the remote traceback.

    An ``Exception`` travels as itself, with the remote traceback as a note, when it survives
    the pickling the result will use (rebuilt without ``__init__`` if need be) here; otherwise,
    and for other ``BaseException`` subclasses, a ``RemoteError`` carries its type, message and
    traceback.
    """
    from ascend import wire
    from ascend.errors import RemoteError

    remote = _user_traceback(error)
    if not isinstance(error, Exception):
        return _remote_error(error, remote), remote
    try:
        error.add_note("Remote traceback (from the Ascend job):\n" + remote.rstrip())
    except Exception:  # pragma: no cover - exceptions that refuse attributes
        pass
    try:
        import io

        buffer = io.BytesIO()
        wire.dump_exception(buffer, error, remote)
        buffer.seek(0)
        _, copy = wire.load_outcome(buffer, wire.verify(buffer, "exception"))
        if type(copy) is not type(error):
            raise TypeError(f"it came back as {type(copy).__qualname__}")
        return error, remote
    except Exception:
        return RemoteError(_type_name(type(error)), _safe_str(error), remote), remote


def _wait_for_job() -> bool:
    """Warm start: imports are done; read the job's environment from stdin, then run it.

    The local provider keeps one such process ready, so a call does not pay for starting
    Python and importing cloudpickle. Returns False when stdin closes without a job.
    """
    line = sys.stdin.readline()
    if not line.strip():
        return False
    message = json.loads(line)
    os.environ.clear()
    os.environ.update(message["env"])
    os.chdir(message["cwd"])
    return True


def main() -> int:
    """Entry point; returns the process exit code (documented in EXIT_* constants)."""
    if "--wait-for-job" in sys.argv[1:]:
        from ascend import logstore, metadata, wire  # noqa: F401 - the point is to import them
        from ascend.storage import local_files  # noqa: F401

        if not _wait_for_job():
            return EXIT_OK

    def terminate(signum: int, frame: Any) -> None:
        raise _Terminated()

    signal.signal(signal.SIGTERM, terminate)
    # A real SIGINT interrupts the function (reported as KeyboardInterrupt) even when the
    # runner was started with SIGINT ignored, where Python would leave it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        runner = Runner(dict(os.environ))
    except (ValueError, KeyError) as error:
        print(f"ascend runner: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return runner.run()
    except _Terminated:
        return EXIT_TERMINATED
    except Exception as error:  # storage failures and the like: say so and exit distinctly
        print(f"ascend runner: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_STORAGE


if __name__ == "__main__":
    sys.exit(main())
