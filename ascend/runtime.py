"""One remote call, end to end: package -> storage -> compute -> wait -> result or exception.

This is the path every provider runs; only the backend parts differ.
"""

from __future__ import annotations

import getpass
import os
import posixpath
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ascend import metadata
from ascend.compute import CANCELLED, RUNNING, TIMED_OUT, JobRequest, JobStatus
from ascend.errors import (
    AscendError,
    IntegrityError,
    JobCancelledError,
    JobError,
    JobFailedError,
    JobTimeoutError,
    StorageNotFoundError,
)

if TYPE_CHECKING:
    from ascend.backend import CloudBackend
    from ascend.git import GitInfo

LOG_TAIL_LINES = 20


class LogsNotSavedWarning(UserWarning):
    """The job's runner could not save its logs to storage (a full disk, say)."""


@dataclass(frozen=True)
class CallOptions:
    """The decorator's options, validated once at decoration time.

    ``cpu``/``memory`` are ``None`` when not given: :func:`resolve_resources` picks them when
    the call is made, from the node type of the selected provider or the defaults.
    """

    cpu: str | None = None
    memory: str | None = None
    timeout: int = 3600
    stream_logs: bool = True
    retries: int = 0
    requirements: tuple[str, ...] | None = None
    sync_requirements: bool = False  # requirements="local": pin what the call imports
    node_type: str | None = None
    project: bool = False
    git_check: bool | None = None
    base_image: str | None = None
    env: dict[str, str] = field(default_factory=dict)


DEFAULT_CPU = "1"
DEFAULT_MEMORY = "2Gi"


def resolve_resources(options: CallOptions, provider: str) -> tuple[str, str]:
    """The (cpu, memory) a call asks for: what the decorator was given, else the node type's
    defaults when the node type belongs to ``provider`` (or to any), else 1 CPU and 2Gi.

    A node type from another provider's catalog warns (except on the local provider, which
    ignores node types): its selector may still match (an AKS cluster run through the generic
    kubernetes provider), but its defaults do not apply.
    """
    cpu, memory = options.cpu, options.memory
    if options.node_type:
        from ascend.plugins.manager import get_plugin_manager

        found = get_plugin_manager().node_types().get(options.node_type)
        kind = found[0] if found else None
        if kind is not None and kind.provider in (None, provider):
            cpu = kind.cpu if cpu is None else cpu
            memory = kind.memory if memory is None else memory
        elif kind is not None and provider != "local":
            import warnings

            from ascend.backend import ConfigWarning

            warnings.warn(
                f"@ascend(node_type={options.node_type!r}) comes from provider "
                f"{kind.provider!r}'s catalog and the selected provider is {provider!r}: its "
                "node selector is used, its cpu/memory defaults are not (select its provider "
                "with cloud_provider if that is what you meant)",
                ConfigWarning,
                stacklevel=3,
            )
    return cpu or DEFAULT_CPU, memory or DEFAULT_MEMORY


def current_user(config: Any) -> str:
    from ascend.job_ids import USER_MAX, sanitize_name

    configured = config.get("username")
    if configured:
        return sanitize_name(configured, USER_MAX)
    try:
        name = getpass.getuser()
    except Exception:  # no login name (some containers)
        name = "default"
    return sanitize_name(name, USER_MAX)


class JobHandle:
    """A submitted call: wait for its result, cancel it, or read its logs.

    ``result()`` returns the function's value, or raises the function's exception (with the
    remote traceback attached as a note), or a :class:`ascend.errors.JobError` saying why the
    job produced neither.
    """

    def __init__(
        self,
        job_id: str,
        backend: CloudBackend,
        prefix: str,
        handle: str,
        function: str,
        *,
        owned: bool = False,
        stream_logs: bool = True,
    ) -> None:
        self.job_id = job_id
        self.function = function
        #: Submitted by this process (Ctrl-C cancels it), not attached to (Ctrl-C detaches).
        self.owned = owned
        self.stream_logs = stream_logs
        self._backend = backend
        self._prefix = prefix
        self._handle = handle
        self._outcome: tuple[str, Any] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"JobHandle(job_id={self.job_id!r}, function={self.function!r})"

    @property
    def storage_prefix(self) -> str:
        return self._backend.storage.storage_uri(self._prefix)

    def metadata(self) -> dict[str, Any]:
        return metadata.read(self._backend.storage, self._prefix)

    def status(self) -> str:
        """The recorded status: queued, running, succeeded, failed or cancelled."""
        return str(self.metadata().get("status"))

    def done(self) -> bool:
        if self._outcome is not None:
            return True
        return self._backend.compute.status(self._handle).finished

    def cancel(self) -> None:
        """Stop the job; it is recorded as cancelled, with who cancelled it. Cancelling a
        finished job does nothing.

        The verdict is written before the job is stopped, so whoever is waiting for the job
        (this process or another) finds it when the job ends and raises
        :class:`JobCancelledError` naming the canceller. A verdict already there (another
        cancel, say) is kept: the verdict has one writer.
        """
        if self._outcome is not None or self._backend.compute.status(self._handle).finished:
            return
        storage = self._backend.storage
        who = _who_am_i(self._backend.config)
        wrote = metadata.write_verdict(
            storage,
            self._prefix,
            metadata.CANCELLED,
            "Cancelled",
            f"cancelled by {_describe(who)}",
            by=who,
            overwrite=False,
        )
        try:
            self._backend.compute.cancel(self._handle)
        except BaseException:
            if wrote:  # the job was not stopped: the record must not say it was
                try:
                    storage.delete(posixpath.join(self._prefix, metadata.VERDICT_FILE))
                except Exception:
                    pass
            raise

    def logs(self) -> str:
        """Everything the function printed (stdout and stderr), as saved with the job.

        When the job could not save (all of) its logs, a :class:`LogsNotSavedWarning` says
        why, so what comes back is not taken for all there was.
        """
        from ascend import logstore

        try:
            text = logstore.read_logs(self._backend.storage, self._prefix).decode(
                "utf-8", errors="replace"
            )
        except StorageNotFoundError:  # the job's storage went away while it was read
            text = ""
        try:
            lost = self.metadata().get("logs_error")
        except (FileNotFoundError, ValueError):
            lost = None
        if lost:
            import warnings

            warnings.warn(
                f"job {self.job_id} could not save its logs: {lost}; what is shown may be "
                "incomplete",
                LogsNotSavedWarning,
                stacklevel=2,
            )
        return text

    def result(
        self, timeout: float | None = None, *, cancel_on_interrupt: bool | None = None
    ) -> Any:
        """Wait for the job (at most ``timeout`` seconds) and return its result.

        :raises TimeoutError: ``timeout`` passed and the job still runs (it keeps running).
        :raises KeyboardInterrupt: on Ctrl-C. A job this process submitted is cancelled first
            (``cancel_on_interrupt`` says otherwise); from an attached job the caller only
            detaches, and a line says how to wait again or cancel it.
        """
        if cancel_on_interrupt is None:
            cancel_on_interrupt = self.owned
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError(f"job {self.job_id} is still running after {timeout:g} s")
        try:
            if self._outcome is None:
                self._outcome = self._wait(timeout, cancel_on_interrupt)
        finally:
            self._lock.release()
        kind, value = self._outcome
        if kind == "exception":
            raise value
        return value

    def _wait(self, timeout: float | None, cancel_on_interrupt: bool = True) -> tuple[str, Any]:
        from ascend import console

        with console.reuse_or_show(self.function, logs=self.stream_logs, job_id=self.job_id):
            outcome = self._wait_for_outcome(timeout, cancel_on_interrupt)
        try:
            self._backend.compute.release(self._handle)
        except Exception:  # cleanup is the backend's business; the outcome stands
            pass
        return outcome

    def _keep_logs(self) -> None:
        """Save the backend's copy of the output when the runner could not (killed, OOM):
        called only when the job produced no result. What the backend holds beyond the saved
        log is appended as one more chunk; nothing saved is rewritten."""
        from ascend import logstore

        try:
            held = self._backend.compute.logs(self._handle).encode("utf-8")
            if held:
                logstore.append_missing(self._backend.storage, self._prefix, held)
        except Exception:  # the logs are a convenience; never mask the outcome
            pass

    def _wait_for_outcome(
        self, timeout: float | None, cancel_on_interrupt: bool = True
    ) -> tuple[str, Any]:
        from ascend import interrupts

        interrupts.install()
        try:
            if cancel_on_interrupt:  # Ctrl-C in the main thread cancels it from any thread
                with interrupts.guarding(self):
                    status = self._compute_wait(timeout)
            else:
                status = self._compute_wait(timeout)
        except KeyboardInterrupt:
            self._interrupted(cancel_on_interrupt)
            raise
        except JobError as error:  # the backend saw the job cannot finish: record why
            error.job_id = error.job_id or self.job_id
            self._keep_logs()
            self._record_verdict(error)
            return "exception", error
        if status.state == RUNNING:
            raise TimeoutError(
                f"job {self.job_id} is still running after {timeout:g} s; it keeps running "
                f"(ascend.attach({self.job_id!r}).result() waits again)"
            )
        from ascend import console

        console.report(console.DOWNLOADING)
        outcome = self._read_outcome()
        if outcome is not None:
            return outcome
        self._keep_logs()  # a killed runner (OOM, deadline) may have saved only part of them
        failure = self._no_result_error(status)
        self._record_verdict(failure)
        return "exception", failure

    def _compute_wait(self, timeout: float | None) -> JobStatus:
        """The backend's wait; the job's output shown from its saved log meanwhile when the
        backend cannot pass it on itself (a local job another process started, say)."""
        from ascend import console

        compute = self._backend.compute
        shown = console.current()
        if shown is None or not shown.logs or timeout == 0 or compute.shows_output(self._handle):
            return compute.wait(self._handle, timeout)
        follower = _SavedOutput(self._backend.storage, self._prefix, shown)
        finished = False
        try:
            status = compute.wait(self._handle, timeout)
            finished = status.finished
            return status
        finally:
            follower.close(finished)

    def _interrupted(self, cancel: bool) -> None:
        """Ctrl-C while waiting: cancel the job (or only detach from it), and say which."""
        from ascend import interrupts

        if not cancel:
            interrupts.say(
                f"[ascend] Ctrl-C: stopped waiting for job {self.job_id}; it keeps running. "
                f"ascend.attach({self.job_id!r}).result() waits again; "
                f"'ascend jobs cancel {self.job_id}' stops it."
            )
            return
        interrupts.cancel_and_say(self)

    def _record_verdict(self, error: JobError) -> None:
        """Write why the job ended without a result, unless the runner already said so."""
        try:
            record = self.metadata()
            runner_knew = (record.get("failure") or {}).get("reason") != "Terminated"
            if record.get("status") in metadata.FINAL and runner_knew:
                return  # the runner recorded the real cause; "Terminated" is only how it felt
            final = metadata.CANCELLED if isinstance(error, JobCancelledError) else metadata.FAILED
            reason = str(error.evidence.get("reason") or type(error).__name__)
            metadata.write_verdict(
                self._backend.storage,
                self._prefix,
                final,
                reason,
                error.message,
                by=_who_am_i(self._backend.config),
                overwrite=False,  # a canceller's verdict, written first, stands
            )
        except Exception:  # the error matters more than its record
            pass

    def _read_outcome(self) -> tuple[str, Any] | None:
        """The job's result or exception. An exception that cannot be rebuilt here (its class
        needs a module only the job has, say) becomes a ``RemoteError`` from the summary the
        runner put in the envelope's header, rather than an unpickling error."""
        from ascend import wire
        from ascend.errors import IntegrityError, RemoteError, VersionMismatchError

        storage = self._backend.storage
        path = posixpath.join(self._prefix, metadata.RESULT_FILE)
        what = f"the result of job {self.job_id}"
        try:
            with wire.open_envelope(
                lambda: storage.open(path, "rb"), storage.local_path(path), what, self._trust()
            ) as (file, envelope):
                wire.check_versions(envelope, what)
                try:
                    kind, value = wire.load_outcome(file, envelope)
                except (IntegrityError, VersionMismatchError):
                    raise
                except Exception as error:
                    header = envelope.header
                    if envelope.kind != wire.KIND_EXCEPTION or "exception_type" not in header:
                        raise
                    module = str(header.get("exception_module") or "")
                    name = str(header["exception_type"])
                    value = RemoteError(
                        name if module in ("", "builtins") else f"{module}.{name}",
                        str(header.get("exception_message") or ""),
                        str(header.get("remote_traceback") or ""),
                    )
                    value.add_note(
                        f"The exception could not be rebuilt here: {type(error).__name__}: {error}"
                    )
                    kind = "exception"
        except FileNotFoundError:
            return None
        if kind == "exception" and isinstance(value, BaseException):
            value.__traceback__ = None
            if isinstance(value, JobError) and value.job_id is None:
                value.job_id = self.job_id
        return kind, value

    def _trust(self) -> Any:
        """What a result must be to be unpickled here: signed with this user's key (from the
        compute: a Secret on Kubernetes, a file locally) for this very job."""
        from ascend import wire

        keys = self._backend.compute.signing_keys(handle=self._handle)
        return wire.Trust(keys, self.job_id, allow_unsigned(self._backend.config))

    def _no_result_error(self, status: JobStatus) -> JobError:
        record: dict[str, Any] = {}
        try:
            record = self.metadata()
        except (FileNotFoundError, ValueError):
            pass
        failure = record.get("failure") or {}
        reason = failure.get("reason") or status.reason
        if reason == "Terminated" and status.reason:
            reason = status.reason  # the runner only saw a SIGTERM; the backend knows why
        evidence = {
            "exit_code": status.exit_code,
            "reason": reason,
            "message": failure.get("message") or status.message,
            **status.evidence,
            "last_log_lines": self.logs().splitlines()[-LOG_TAIL_LINES:],
        }
        if status.state == CANCELLED or record.get("status") == metadata.CANCELLED:
            by = record.get("cancelled_by")
            who = "" if not isinstance(by, dict) or _is_me(by) else f" by {_describe(by)}"
            if isinstance(by, dict):
                evidence["cancelled_by"] = by
            return JobCancelledError(
                f"job {self.job_id} was cancelled{who}", job_id=self.job_id, evidence=evidence
            )
        if status.state == TIMED_OUT or reason == "DeadlineExceeded":
            limit = record.get("resources", {}).get("timeout")
            return JobTimeoutError(
                f"job {self.job_id} ran past its timeout of {limit} s and was stopped",
                job_id=self.job_id,
                evidence=evidence,
                fix="raise timeout= in @ascend(...), or make the function faster",
            )
        tail = "\n".join(evidence["last_log_lines"])
        cause = evidence["message"] or reason or f"the runner exited with code {status.exit_code}"
        return JobFailedError(
            f"job {self.job_id} ended without a result: {cause}"
            + (f"\nlast output:\n{tail}" if tail else ""),
            job_id=self.job_id,
            evidence=evidence,
            fix=f"'ascend jobs logs {self.job_id}' shows the whole output",
        )


class _SavedOutput:
    """Shows a job's output as its runner saves it (:func:`ascend.logstore.follow`), while a
    wait lasts: for jobs whose compute cannot pass the output on live."""

    JOIN_SECONDS = 10.0  # a finished job's last output is still being read: wait that long

    def __init__(self, storage: Any, prefix: str, shown: Any) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._show, args=(storage, prefix, shown), name="ascend-follow", daemon=True
        )
        self._thread.start()

    def _show(self, storage: Any, prefix: str, shown: Any) -> None:
        import codecs

        from ascend import logstore

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            for data in logstore.follow(storage, prefix, sleep=self._stop.wait):
                shown.write(decoder.decode(data))
                if self._stop.is_set():
                    return
        except Exception as error:  # the output is a courtesy: the outcome is what counts
            shown.write(f"[ascend] could not follow the job's saved output: {error}\n", "stderr")

    def close(self, finished: bool) -> None:
        """Stop following; a finished job's last output is shown first."""
        if not finished:
            self._stop.set()
        self._thread.join(self.JOIN_SECONDS if finished else 2.0)
        self._stop.set()


class _Counting:
    """A package being written, counting its bytes for the status line ("uploading 12.3 MB")."""

    def __init__(self, target: Any, call: Any) -> None:
        self._target = target
        self._call = call

    def write(self, data: bytes) -> int:
        written = self._target.write(data)
        self._call.uploaded += len(data)
        return int(written if written is not None else len(data))


def allow_unsigned(config: Any) -> bool:
    """``security.allow_unsigned``: accept envelopes without a signature (warned about)."""
    if not config.get("security.allow_unsigned", False):
        return False
    import warnings

    from ascend.backend import ConfigWarning

    warnings.warn(
        "security.allow_unsigned is on: unsigned packages and results are accepted, so anyone "
        "who can write the job storage can run code in your jobs and on this machine",
        ConfigWarning,
        stacklevel=3,
    )
    return True


def _unsigned_env(config: Any) -> dict[str, str]:
    from ascend.signing import ALLOW_UNSIGNED_ENV

    return {ALLOW_UNSIGNED_ENV: "1"} if allow_unsigned(config) else {}


def _who_am_i(config: Any) -> dict[str, Any]:
    """Who stops a job, as its verdict records it."""
    return {"user": current_user(config), "host": socket.gethostname(), "pid": os.getpid()}


def _is_me(who: dict[str, Any]) -> bool:
    return who.get("pid") == os.getpid() and who.get("host") == socket.gethostname()


def _describe(who: dict[str, Any]) -> str:
    """``alice on build-7 (pid 4242)``."""
    return f"{who.get('user', '?')} on {who.get('host', '?')} (pid {who.get('pid', '?')})"


def submit(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: CallOptions,
    backend: CloudBackend | None = None,
) -> JobHandle:
    """Package the call, store it, start it, and return its handle (does not wait)."""
    from ascend import console, wire
    from ascend.backend import get_backend
    from ascend.job_ids import PROJECT_MAX, new_job_id, sanitize_name

    backend = backend or get_backend()
    config = backend.config
    git = _git(options, config)
    project = "default"
    if options.project and git is not None and git.repository:
        project = git.repository
    elif config.get("project"):
        project = str(config.get("project"))
    user = current_user(config)
    job_id = new_job_id(user, sanitize_name(project, PROJECT_MAX))
    shown = console.current()  # a direct call shows its progress from here; submit() does not
    if shown is not None and shown.job_id is None:
        shown.set_job(job_id)
    prefix = metadata.job_prefix(user, job_id)
    storage = backend.storage
    cpu, memory = resolve_resources(options, backend.name)
    compute = backend.compute
    requirements = tuple(options.requirements or ())
    if options.sync_requirements:
        from ascend.images.sync import local_requirements

        requirements = local_requirements(fn, args, kwargs)
    image = _image(backend, options, requirements) if compute.runs_images else None
    request = JobRequest(
        job_id=job_id,
        package_uri=storage.storage_uri(posixpath.join(prefix, metadata.PACKAGE_FILE)),
        result_uri=storage.storage_uri(posixpath.join(prefix, metadata.RESULT_FILE)),
        image=image,
        cpu=cpu,
        memory=memory,
        timeout=options.timeout,
        node_type=options.node_type,
        stream_logs=options.stream_logs,
        retries=options.retries,
        requirements=requirements,
        env=dict(options.env) | _unsigned_env(config),
        labels={"user": user, "project": sanitize_name(project, PROJECT_MAX)},
        extra={"project_scoped": options.project},
    )
    compute.check(request)
    backend.validate_job(request)
    keys = compute.signing_keys(request=request)  # before any upload: no key, no job
    if keys is None and not allow_unsigned(config):
        raise IntegrityError(
            f"the {compute.name} compute has no signing keys, so the job's package and result "
            "could not be authenticated",
            fix="use a compute that provides them (local, kubernetes), or set "
            "security.allow_unsigned: true (anyone who can write the storage can then run code "
            "in your jobs and on your machine)",
        )
    key = keys.current if keys is not None else None
    wire.check_arguments(fn, args, kwargs)
    console.report(console.UPLOADING)
    with storage.open(posixpath.join(prefix, metadata.PACKAGE_FILE), "wb") as target:
        counted = target if shown is None else _Counting(target, shown)
        wire.dump_package(counted, fn, args, kwargs, key=key, job_id=job_id)  # type: ignore[arg-type]
    function = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
    record: dict[str, Any] = {
        "job_id": job_id,
        "status": metadata.QUEUED,
        "function": function,
        "user": user,
        "project": project,
        "provider": backend.name,
        "created_at": metadata.now(),
        "resources": {
            "cpu": cpu,
            "memory": memory,
            "timeout": options.timeout,
            "node_type": options.node_type,
        },
        "requirements": list(requirements),
        "image": image,
        "versions": wire.versions(),
        "git": git.as_metadata() if git is not None else None,
        "client": {"host": socket.gethostname(), "pid": os.getpid()},
    }
    metadata.write_record(storage, prefix, record)
    try:
        handle = compute.submit(request)
    except BaseException as error:
        record.update(
            status=metadata.FAILED, failure={"reason": "SubmitFailed", "message": str(error)}
        )
        metadata.write_record(storage, prefix, record)
        raise
    console.report(console.QUEUED)
    record["compute"] = {"backend": compute.name, "handle": handle}
    try:
        metadata.write_record(storage, prefix, record)  # the client is this file's only writer
    except Exception:  # the job runs: return its handle rather than orphan it
        pass
    submitted = JobHandle(
        job_id, backend, prefix, handle, function, owned=True, stream_logs=options.stream_logs
    )
    from ascend import interrupts

    interrupts.adopt(submitted)  # a direct call in a worker thread: Ctrl-C reaches it now
    return submitted


def attach(
    job_id: str, backend: CloudBackend | None = None, *, user: str | None = None
) -> JobHandle:
    """The handle of an earlier job, from its id, on any machine with the same configuration.

    Only the caller's own jobs (the user in the job id is :func:`current_user`), unless
    ``user`` names the job's owner on purpose (and the storage lets the caller read it).

    :raises PermissionDeniedError: the job is another user's and ``user`` does not name them.
    """
    from ascend.backend import get_backend
    from ascend.errors import PermissionDeniedError
    from ascend.job_ids import USER_MAX, parse_job_id, sanitize_name

    parts = parse_job_id(job_id)
    backend = backend or get_backend()
    if user is None:
        caller = current_user(backend.config)
        if parts.user != caller:
            raise PermissionDeniedError(
                f"job {job_id} belongs to user {parts.user!r} (the user in its id), and you "
                f"are {caller!r} (the username setting)",
                fix=f"to act on another user's job on purpose, name its owner: "
                f"ascend.attach({job_id!r}, user={parts.user!r})",
            )
    elif sanitize_name(user, USER_MAX) != parts.user:
        raise PermissionDeniedError(
            f"attach(user={user!r}): job {job_id} belongs to user {parts.user!r} (the user in "
            "its id), not to the user named",
            fix=f"pass user={parts.user!r} to act on that user's job, or leave user out for "
            "one of your own",
        )
    prefix = metadata.job_prefix(parts.user, job_id)
    try:
        record = metadata.read(backend.storage, prefix)
    except FileNotFoundError:
        raise AscendError(
            f"job {job_id} is not in {backend.storage.storage_uri()}",
            fix="check cloud_provider and storage settings: jobs are found in the storage "
            "they were submitted to",
        ) from None
    handle = backend.compute.handle_for(job_id, record)
    return JobHandle(job_id, backend, prefix, handle, str(record.get("function", "?")))


def _image(backend: CloudBackend, options: CallOptions, requirements: tuple[str, ...]) -> str:
    """The image the job runs: built for its requirements when the registry lacks it."""
    from ascend.images.choose import image_for_call
    from ascend.images.progress import Progress

    base = options.base_image
    if base is None and requirements and options.node_type:
        from ascend.plugins.manager import get_plugin_manager

        found = get_plugin_manager().node_types().get(options.node_type)
        base = found[0].base_image if found else None
    return image_for_call(
        backend,
        requirements,
        base,
        Progress(enabled=options.stream_logs),
    )


def _git(options: CallOptions, config: Any) -> GitInfo | None:
    from ascend.git import resolve_git

    check = options.git_check
    if check is None:
        check = bool(config.get("git_check", False))
    return resolve_git(check, options.project)
