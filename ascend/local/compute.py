"""Local compute: one ``python -m ascend.runner`` process per call.

Each job gets its own session (process group), so Ctrl-C in the caller does not reach it by
accident and stopping it stops everything it started. The runner enforces the timeout itself
(it keeps working when the caller has died); this side adds a backstop a few seconds later.
Memory is capped with an address-space limit, an approximation of a container's limit.
"""

from __future__ import annotations

import atexit
import codecs
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from ascend.compute import (
    CANCELLED,
    FAILED,
    RUNNING,
    SUCCEEDED,
    TIMED_OUT,
    ComputeBackend,
    JobRequest,
    JobStatus,
)
from ascend.errors import ComputeError
from ascend.quantities import memory_bytes
from ascend.runner import process_start_ticks

if TYPE_CHECKING:
    from ascend.images.lock import IndexOptions
    from ascend.signing import KeyRing

GRACE_SECONDS = 5.0
# Variables read when the interpreter or the loader starts: a warm runner would ignore them.
STARTUP_PREFIXES = ("PYTHON", "LD_", "DYLD_", "MALLOC_", "OMP_", "MKL_", "OPENBLAS_")
EXIT_DEADLINE = 7  # ascend.runner.EXIT_DEADLINE (not imported: the runner module is for pods)


class _Sink:
    """Where one of a job's output streams goes: held until a caller waits for the job with
    its output shown (so ``submit()`` prints nothing by itself), then passed on live.

    What is held is bounded (``HELD_MAX``): beyond it the oldest text is dropped, with a note
    naming how much; the runner saves the whole log with the job either way.
    """

    def __init__(self, stream: str, keep: bool) -> None:
        self.stream = stream
        self.keep = keep  # stream_logs=False: nothing is ever shown, so nothing is held
        self._lock = threading.Lock()
        self._held: list[str] = []
        self._size = 0
        self._dropped = 0
        self._target: Any = None

    def write(self, text: str) -> None:
        with self._lock:
            if self._target is not None:
                self._target.write(text, self.stream)
                return
            if not self.keep or not text:
                return
            self._held.append(text)
            self._size += len(text)
            while self._size > HELD_MAX and len(self._held) > 1:
                dropped = self._held.pop(0)
                self._size -= len(dropped)
                self._dropped += len(dropped)

    def attach(self, target: Any) -> None:
        """Show what was held, then everything that follows, through ``target.write``."""
        with self._lock:
            if self._dropped:
                target.write(
                    f"[ascend] ({self._dropped} earlier characters of output not shown: "
                    "the job's saved log has them)\n",
                    self.stream,
                )
            for text in self._held:
                target.write(text, self.stream)
            self._held, self._size, self._dropped = [], 0, 0
            self._target = target

    def detach(self) -> None:
        with self._lock:
            self._target = None


HELD_MAX = 4 * 1024 * 1024  # characters of a job's output held until someone waits for it


@dataclass
class _LocalJob:
    process: subprocess.Popen[bytes]
    deadline: float
    forwarders: list[threading.Thread] = field(default_factory=list)
    sinks: list[_Sink] = field(default_factory=list)
    cancelled: bool = False
    timed_out: bool = False


def _forward(source: IO[bytes], sink: _Sink) -> None:
    """Pass a child's output on as it arrives (live logs); the pipe is always drained, so the
    runner never blocks on it."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    fd = source.fileno()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        sink.write(decoder.decode(chunk))
    sink.write(decoder.decode(b"", final=True))
    source.close()


def unmet_requirements(requirements: tuple[str, ...]) -> list[str]:
    """Requirements this environment does not satisfy, each with what is installed."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    unmet = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            unmet.append(f"{text} (not installed)")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            unmet.append(f"{text} (installed: {installed})")
    return unmet


def _base_env() -> dict[str, str]:
    import ascend

    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(ascend.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _SparePool:
    """One warm runner per interpreter path, shared by every LocalCompute in the process.

    A spare has imported what a job needs and waits on stdin; it exits when stdin closes, so
    it never outlives this process.
    """

    def __init__(self) -> None:
        self._spares: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        atexit.register(self.close)

    def spawn(self, python: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(
                [python, "-m", "ascend.runner", "--wait-for-job"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env or _base_env(),
                start_new_session=True,
            )
        except OSError as error:
            raise ComputeError(
                f"could not start the runner with {python}: {error}",
                fix="check that this Python interpreter still exists and can run",
            ) from error

    def take(self, python: str) -> subprocess.Popen[bytes] | None:
        with self._lock:
            return self._spares.pop(python, None)

    def replenish(self, python: str) -> None:
        spare = self.spawn(python)
        with self._lock:
            previous = self._spares.get(python)
            self._spares[python] = spare
        if previous is not None:
            _release(previous)

    def close(self) -> None:
        with self._lock:
            spares, self._spares = list(self._spares.values()), {}
        for spare in spares:
            _release(spare)


def _release(spare: subprocess.Popen[bytes]) -> None:
    """Stop a spare and close its pipes (nothing reads them: left open, they would leak)."""
    try:
        if spare.stdin is not None:
            spare.stdin.close()  # EOF: the spare exits
        spare.wait(2)
    except (OSError, subprocess.TimeoutExpired):
        spare.kill()
        spare.wait()
    for pipe in (spare.stdout, spare.stderr):
        if pipe is not None:
            pipe.close()


SPARES = _SparePool()


class LocalCompute(ComputeBackend):
    """Runs each job as a child process of this Python, in its own process group."""

    name = "local"
    runs_images = False  # runs in this Python environment

    def __init__(
        self,
        python: str | None = None,
        warm_start: bool = True,
        index: IndexOptions | None = None,
        build_timeout: float = 1800.0,
    ) -> None:
        self.python = python or sys.executable
        self.warm_start = warm_start
        if index is None:
            from ascend.images.lock import IndexOptions

            index = IndexOptions()
        self.index = index
        self.build_timeout = build_timeout
        self._environments: dict[str, str] = {}  # job id -> its requirements' environment
        self._jobs: dict[str, _LocalJob] = {}
        self._lock = threading.Lock()

    def _start(
        self, message: bytes, cold_env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Hand the job to the warm spare (or a new runner) and keep a new spare ready.

        ``cold_env``: start a fresh runner with this environment instead, for variables that
        only take effect when Python starts (PYTHONHASHSEED, LD_LIBRARY_PATH, ...).
        """
        spare = SPARES.take(self.python) if self.warm_start and cold_env is None else None
        for process in [spare, None]:
            process = process or SPARES.spawn(self.python, cold_env)
            if process.poll() is not None:
                _release(process)  # a spare that died: its pipes are still ours to close
                continue
            try:
                assert process.stdin is not None
                process.stdin.write(message)
                process.stdin.close()
            except OSError:
                _release(process)
                continue
            if self.warm_start:
                SPARES.replenish(self.python)
            return process
        raise ComputeError(
            "the runner exited before it received its job",
            fix="run 'python -m ascend.runner' to see why it cannot start",
        )

    def handle_for(self, job_id: str, record: dict[str, Any]) -> str:
        """The handle of a job: this process's own when it started the job, else the pid and
        start time the runner recorded of itself (``status.json``), or the bare id when it has
        recorded none (nothing to signal). ``compute.handle`` is never read: anyone who can
        write the storage can change it. Nothing here is trusted either: the process is
        checked (pid, start time, command line) before any signal, and while the job is not
        finished, a pid that is another process now is said at once (a warning)."""
        with self._lock:
            own = [handle for handle in self._jobs if handle.rsplit("@", 1)[0] == job_id]
        if own:
            return own[0]
        runner = record.get("runner")
        if not isinstance(runner, dict) or not _is_count(runner.get("pid")):
            return job_id
        pid: int = runner["pid"]
        ticks: int | None = runner.get("start_ticks")
        ticks = ticks if _is_count(ticks) else None
        handle = f"{job_id}@{pid}:{ticks}"
        if record.get("status") not in FINAL_STATES and _alive(pid):
            reason = _unverified(pid, ticks)
            if reason is not None and reason not in (NO_PROC, GONE):
                import warnings

                warnings.warn(
                    RunnerNotVerifiedWarning(
                        f"job {job_id} is recorded as running in pid {pid}, but {reason}; "
                        f"pid {pid} is not signalled (the job's runner is gone, or its record "
                        "was altered)"
                    ),
                    stacklevel=3,
                )
        return handle

    def check(self, request: JobRequest) -> None:
        """Make (or find) the environment of the job's requirements before anything is
        uploaded: a requirement that does not resolve fails here."""
        memory_bytes(request.memory)
        if request.requirements and unmet_requirements(request.requirements):
            from ascend.images.progress import Progress
            from ascend.local.environments import environment_for

            environment = environment_for(
                request.requirements,
                self.index,
                Progress(enabled=request.stream_logs),
                timeout=self.build_timeout,
            )
            with self._lock:
                self._environments[request.job_id] = str(environment)

    def signing_keys(
        self, request: JobRequest | None = None, handle: str | None = None
    ) -> KeyRing:
        """The user's key file in the config directory (made on first use)."""
        from ascend.local import keys

        return keys.load()

    def submit(self, request: JobRequest) -> str:
        env = _base_env()
        with self._lock:
            environment = self._environments.pop(request.job_id, None)
        if environment:  # first on the path: the locked versions win over this Python's
            env["PYTHONPATH"] = os.pathsep.join([environment, env["PYTHONPATH"]])
        env.update(request.env)
        from ascend import signing

        env.update(signing.env_for(self.signing_keys(request)))  # the runner's only copy
        env.update(
            ASCEND_PACKAGE_URI=request.package_uri,
            ASCEND_RESULT_URI=request.result_uri,
            ASCEND_JOB_ID=request.job_id,
            ASCEND_TIMEOUT=str(request.timeout),
            ASCEND_RLIMIT_AS=str(memory_bytes(request.memory)),
            ASCEND_MEMORY=request.memory,
        )
        message = json.dumps({"env": env, "cwd": os.getcwd()}).encode() + b"\n"
        at_startup = environment is not None or any(
            key.startswith(STARTUP_PREFIXES) for key in request.env
        )
        process = self._start(message, cold_env=env if at_startup else None)
        job = _LocalJob(process, deadline=time.monotonic() + request.timeout)
        for source, stream in ((process.stdout, "stdout"), (process.stderr, "stderr")):
            assert source is not None
            sink = _Sink(stream, keep=request.stream_logs)
            thread = threading.Thread(target=_forward, args=(source, sink), daemon=True)
            thread.start()
            job.forwarders.append(thread)
            job.sinks.append(sink)
        handle = f"{request.job_id}@{process.pid}:{process_start_ticks(process.pid)}"
        with self._lock:
            self._jobs[handle] = job
        return handle

    def wait(self, handle: str, timeout: float | None = None) -> JobStatus:
        from ascend import console

        job = self._jobs.get(handle)
        if job is None:
            return self._wait_foreign(handle, timeout)
        shown = console.current()
        if shown is None or not shown.logs or timeout == 0:
            return self._wait_own(job, timeout)
        console.report(console.RUNNING)
        for sink in job.sinks:
            sink.attach(shown)
        try:
            return self._wait_own(job, timeout)
        finally:
            for sink in job.sinks:
                sink.detach()

    def _wait_own(self, job: _LocalJob, timeout: float | None) -> JobStatus:
        backstop = job.deadline + GRACE_SECONDS
        limit = backstop - time.monotonic()
        if timeout is not None:
            limit = min(limit, timeout)
        try:
            code = job.process.wait(max(limit, 0))
        except subprocess.TimeoutExpired:
            if time.monotonic() < backstop:
                return JobStatus(RUNNING)
            job.timed_out = True
            self._stop(job)
            code = job.process.wait()
        for thread in job.forwarders:
            thread.join(2.0)
        job.forwarders = [t for t in job.forwarders if t.is_alive()]  # a grandchild holds a pipe
        return self._status(job, code)

    def shows_output(self, handle: str) -> bool:
        """Its own jobs' output comes through their pipes; a job another process started (an
        attached one) writes to that process's pipes, so its output is followed in storage."""
        return handle in self._jobs

    def release(self, handle: str) -> None:
        """The caller has the outcome: forget the finished job, so no call leaves anything
        behind (its process object, its forwarder threads)."""
        with self._lock:
            job = self._jobs.get(handle)
            if job is not None and job.process.returncode is not None:
                del self._jobs[handle]

    def _status(self, job: _LocalJob, code: int) -> JobStatus:
        if job.cancelled:
            return JobStatus(CANCELLED, code, "Cancelled", "the job was cancelled")
        if job.timed_out or code == EXIT_DEADLINE:
            return JobStatus(TIMED_OUT, code, "DeadlineExceeded", "the job ran past its timeout")
        if code == 0:
            return JobStatus(SUCCEEDED, 0)
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            return JobStatus(FAILED, code, "Killed", f"the runner was killed by {name}")
        return JobStatus(FAILED, code, "Error", f"the runner exited with code {code}")

    def cancel(self, handle: str) -> None:
        """Stop the job. A runner another process started is signalled only when its pid, start
        time and command line all match (see :func:`_unverified`); otherwise nothing is, and
        :class:`PermissionDeniedError` says why (a runner that has ended: nothing to do)."""
        job = self._jobs.get(handle)
        if job is None:
            self._cancel_foreign(handle)
            return
        if job.process.poll() is None:
            job.cancelled = True
            self._stop(job)

    def _stop(self, job: _LocalJob) -> None:
        """SIGTERM the job's process group, then SIGKILL what is left after the grace period."""
        pid = job.process.pid
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            job.process.wait(GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(pid, signal.SIGKILL)  # children that outlived the runner, too
        except ProcessLookupError:
            pass

    def _cancel_foreign(self, handle: str) -> None:
        from ascend.errors import PermissionDeniedError

        pid = _pid_of(handle)
        if pid is None or not _alive(pid):
            return  # no runner recorded yet, or it has ended: nothing to signal
        reason = _unverified(pid, _ticks_of(handle))
        if reason is None:
            _kill_group(pid)
            return
        if reason == GONE:
            return
        job_id = handle.rsplit("@", 1)[0]
        raise PermissionDeniedError(
            f"job {job_id}: pid {pid}, which the job's record names as its runner, was not "
            f"signalled: {reason}",
            fix="nothing was stopped. If the job still runs, stop it from the process that "
            "submitted it (Ctrl-C), or by hand after checking the process ('ps -o pid,lstart,"
            f"args -p {pid}'); a record naming another process means someone changed the job "
            "storage: check who can write it"
            if reason != NO_PROC
            else "on this system (no /proc) Ascend cannot tell its runner from another process "
            "that got the same pid, so it stops only the jobs this process started: cancel it "
            f"from the process that submitted it (Ctrl-C), or check 'ps -o pid,lstart,args -p "
            f"{pid}' and stop it by hand (kill -TERM -{pid})",
        )

    def _wait_foreign(self, handle: str, timeout: float | None) -> JobStatus:
        """Wait for a runner started by another process (attach) without polling. A pid that
        is another process now (reused, or a record that was altered) is a runner that ended.
        Without /proc only liveness can be followed: waiting signals nothing."""
        pid = _pid_of(handle)
        if pid is None or not _alive(pid):
            return JobStatus(FAILED, None, "Exited", "the runner process is no longer running")
        try:
            fd = os.pidfd_open(pid)  # before the check: it then names the process checked
        except (AttributeError, OSError):
            return self._poll_foreign(pid, handle, timeout)
        try:
            reason = _unverified(pid, _ticks_of(handle))
            if reason not in (None, NO_PROC):
                return JobStatus(
                    FAILED,
                    None,
                    "Exited",
                    f"the runner process is no longer running (pid {pid}: {reason})",
                )
            ready, _, _ = select.select([fd], [], [], timeout)
        finally:
            os.close(fd)
        if not ready:
            return JobStatus(RUNNING)
        return JobStatus(FAILED, None, "Exited", "the runner process ended")

    def _poll_foreign(self, pid: int, handle: str, timeout: float | None) -> JobStatus:
        """Fallback where pidfd is missing (macOS): check every 100 ms that the runner still
        runs (only that the pid is alive, without /proc)."""
        end = None if timeout is None else time.monotonic() + timeout
        while _alive(pid) and _unverified(pid, _ticks_of(handle)) in (None, NO_PROC):
            if end is not None and time.monotonic() >= end:
                return JobStatus(RUNNING)
            time.sleep(0.1)
        return JobStatus(FAILED, None, "Exited", "the runner process ended")


def _pid_of(handle: str) -> int | None:
    """The runner's pid in a handle ``<job id>@<pid>:<start ticks>``; ``None`` without one."""
    try:
        pid = int(handle.rsplit("@", 1)[1].split(":")[0])
    except (IndexError, ValueError):
        return None
    return pid if pid > 0 else None  # 0 and -1 would name process groups, not a process


def _ticks_of(handle: str) -> int | None:
    """The runner's recorded start time (clock ticks since boot) in a handle, if any."""
    try:
        return int(handle.rsplit("@", 1)[1].split(":", 1)[1])
    except (IndexError, ValueError):
        return None


def _is_count(value: object) -> bool:
    """A positive int from JSON (``True`` is an int too, and is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


PROC_ROOT = "/proc"  # where a process's start time and command line are read (Linux)
RUNNER_MODULE = "ascend.runner"  # the runner runs as `python -m ascend.runner ...`
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})  # ascend.metadata.FINAL
NO_PROC = (
    f"there is no {PROC_ROOT} on this system, so Ascend cannot tell the job's runner from "
    "another process that got the same pid"
)
GONE = "it is not running"


class RunnerNotVerifiedWarning(RuntimeWarning):
    """A running job's record names, as its runner, a process that is not it (a pid reused
    since, or a record someone altered): that process is left alone."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and never ours to signal
        return True
    except OSError:
        return False
    return True


def _start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot, field 22 of ``/proc/<pid>/stat``)."""
    try:
        with open(os.path.join(PROC_ROOT, str(pid), "stat"), "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _command_line(pid: int) -> list[str] | None:
    try:
        with open(os.path.join(PROC_ROOT, str(pid), "cmdline"), "rb") as cmdline:
            data = cmdline.read()
    except OSError:
        return None
    if not data:  # a zombie, or a kernel thread
        return []
    return [part.decode("utf-8", errors="replace") for part in data.rstrip(b"\0").split(b"\0")]


def _runs_the_runner(command: list[str]) -> bool:
    """``python -m ascend.runner ...``: the interpreter is any, the module must be the runner."""
    from itertools import pairwise

    return any(first == "-m" and second == RUNNER_MODULE for first, second in pairwise(command[1:]))


def _unverified(pid: int, recorded_ticks: int | None) -> str | None:
    """Why ``pid`` cannot be shown to be a job's runner started at ``recorded_ticks`` (``None``
    when it is): its start time and its command line must match, and it must lead its own
    process group (the group a cancel signals). :data:`NO_PROC` where nothing can be checked,
    :data:`GONE` when the process has ended."""
    if not os.path.isdir(os.path.join(PROC_ROOT, "self")):
        return NO_PROC
    if recorded_ticks is None:
        return (
            "no start time is recorded for it, so a process that got the same pid later "
            "cannot be told apart"
        )
    started = _start_ticks(pid)
    if started is None:
        return GONE
    if started != recorded_ticks:
        return (
            f"it started at tick {started} since boot, not at tick {recorded_ticks} as "
            "recorded: it is another process that got the same pid"
        )
    command = _command_line(pid)
    if command is None:
        return GONE
    if not _runs_the_runner(command):
        shown = " ".join(command)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return (
            f"its command line is {shown!r}, not an ascend runner's "
            f"('python -m {RUNNER_MODULE} ...')"
        )
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return GONE
    except OSError as error:
        return f"its process group cannot be read ({error})"
    if group != pid:
        return f"it does not lead its own process group (it is in group {group})"
    return None


def _kill_group(pid: int) -> None:
    """SIGTERM a runner we did not start, give it the grace period to record its end, then
    SIGKILL what is left."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < end:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
