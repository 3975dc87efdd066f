"""Every error Ascend raises on purpose, in one hierarchy under :class:`AscendError`.

Each error says what went wrong, on which value, and how to fix it, so that a user can act on
the message alone. Catch :class:`AscendError` to catch them all.
"""

from __future__ import annotations

from typing import Any, NamedTuple

NO_BACKEND_MESSAGE = (
    "No cloud backend installed. Install one with: pip install ascend[azure]\n"
    "Or select a built-in provider instead:\n"
    "  - local (runs functions as local processes, no cloud needed):\n"
    "      export ASCEND_CLOUD_PROVIDER=local   or   cloud_provider: local   in .ascend.yaml\n"
    "  - kubernetes (any cluster plus any fsspec storage):\n"
    "      export ASCEND_CLOUD_PROVIDER=kubernetes ASCEND_STORAGE_URL=s3://bucket/prefix\n"
    "Run 'ascend plugins' to see what is installed."
)


class AscendError(Exception):
    """Base of every error Ascend raises deliberately.

    ``fix`` is the action that resolves the error, when one is known; it is part of ``str()``.
    """

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(message)

    def __str__(self) -> str:
        if self.fix:
            return f"{self.message}\n  fix: {self.fix}"
        return self.message


class NoBackendError(AscendError, ImportError):
    """No cloud provider is installed and none is selected (raised by ``import ascend``)."""

    def __init__(self, message: str = NO_BACKEND_MESSAGE) -> None:
        super().__init__(message)


class ConfigProblem(NamedTuple):
    """One bad configuration value: where it came from, what is wrong, and the fix."""

    key: str
    value: Any
    source: str
    message: str
    fix: str | None = None

    def __str__(self) -> str:
        text = f"{self.source}: {self.key} = {self.value!r}: {self.message}"
        return f"{text} (fix: {self.fix})" if self.fix else text


class ConfigError(AscendError):
    """The configuration is invalid. ``problems`` lists every bad value found."""

    def __init__(
        self, message: str, *, problems: list[ConfigProblem] | None = None, fix: str | None = None
    ) -> None:
        self.problems = list(problems or [])
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message, fix=fix)


class ProviderError(ConfigError):
    """The selected cloud provider is unknown, unavailable, or ambiguous."""


class BackendNotAvailableError(AscendError):
    """No installed plugin provides a part of the backend (storage, compute, ...)."""


class PluginError(AscendError):
    """A plugin failed to load, register, validate, or run one of its hooks."""

    def __init__(
        self,
        message: str,
        *,
        plugin: str | None = None,
        distribution: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.plugin = plugin
        self.distribution = distribution
        super().__init__(message, fix=fix)


class PluginHookError(PluginError):
    """A hook implementation raised; the original exception is ``__cause__``."""

    def __init__(self, *, plugin: str, distribution: str | None, hook: str, error: BaseException):
        self.hook = hook
        self.error = error
        origin = f"{plugin!r}" + (f" ({distribution})" if distribution else "")
        super().__init__(
            f"ascend plugin {origin} failed in hook {hook}: {type(error).__name__}: {error}",
            plugin=plugin,
            distribution=distribution,
            fix=f"disable it with ASCEND_DISABLED_PLUGINS={plugin} or report it to its author",
        )


class CommandClashError(PluginError):
    """Two sources contribute a CLI command with the same name; ``command`` is that name."""

    def __init__(self, message: str, *, command: str, **kwargs: Any) -> None:
        self.command = command
        super().__init__(message, **kwargs)


class StorageError(AscendError):
    """A storage operation failed."""


class StorageNotFoundError(StorageError, FileNotFoundError):
    """The object asked for does not exist in storage."""


class StorageExistsError(StorageError, FileExistsError):
    """The object exists and overwriting was not allowed."""


class InvalidStoragePathError(StorageError, ValueError):
    """A storage path escapes the storage root or is otherwise malformed."""


class RegistryError(AscendError):
    """The container registry could not be asked (unreachable, refused credentials, ...)."""


class ImageNotFoundError(RegistryError):
    """The registry answered, and has no such image (a base image never pushed, say)."""


class ImageBuildError(AscendError):
    """An image could not be built: a requirement that does not resolve, an install that
    fails, a base image that does not fit, a build past ``images.build_timeout``."""


class ComputeError(AscendError):
    """The compute backend failed to run a job."""


class ClusterUnreachableError(ComputeError):
    """The client lost contact with the cluster for longer than it may wait to reconnect.

    Not a :class:`JobError` on purpose: the job may well still be running, and the runtime
    records a verdict only for a ``JobError``; this one leaves the job's record as it was, and
    ``result()`` may be called again (or ``ascend.attach(job_id).result()`` later).
    """

    def __init__(
        self,
        message: str,
        *,
        job_id: str | None = None,
        unreachable_for: float | None = None,
        fix: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.unreachable_for = unreachable_for
        super().__init__(message, fix=fix)


class ClusterForbiddenError(ComputeError):
    """The cluster's RBAC refused the caller (403). ``permission`` is what was refused
    (``create jobs.batch``), ``user`` who the cluster says the caller is, ``namespace`` where;
    the message says whether the namespace is someone else's or not set up yet, and ``fix``
    who can grant it."""

    def __init__(
        self,
        message: str,
        *,
        namespace: str,
        user: str | None = None,
        permission: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.namespace = namespace
        self.user = user
        self.permission = permission
        super().__init__(message, fix=fix)


# -- running jobs -------------------------------------------------------------------------------


class InvalidJobIdError(AscendError, ValueError):
    """A string is not an Ascend job id."""


class PermissionDeniedError(AscendError):
    """Ascend refuses to act: on another user's job that the caller did not name on purpose,
    or on a Job or process that cannot be shown to be the job's own (a handle read from
    storage is never trusted: anyone who can write the storage can change it)."""


class GitError(AscendError):
    """The git check could not run or failed (not a repository with ``project=True``, ...)."""


class GitDirtyError(GitError):
    """The working tree has uncommitted changes and ``git_check`` is on; ``files`` lists them."""

    def __init__(self, message: str, *, files: tuple[str, ...] = (), fix: str | None = None):
        self.files = files
        super().__init__(message, fix=fix)


class SerializationError(AscendError, TypeError):
    """A function, argument or result cannot be pickled to travel to or from the job."""


class IntegrityError(AscendError):
    """A package or result failed verification (corrupted, truncated or tampered with)."""


class VersionMismatchError(AscendError):
    """Client and runner differ in Python minor version or cloudpickle version."""


class JobError(AscendError):
    """A job did not produce a result. ``job_id`` names it; ``evidence`` says why."""

    def __init__(
        self,
        message: str,
        *,
        job_id: str | None = None,
        evidence: dict[str, Any] | None = None,
        fix: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.evidence = dict(evidence or {})
        super().__init__(message, fix=fix)

    def __reduce__(self) -> Any:
        return _rebuild_job_error, (type(self), self.message, self.job_id, self.evidence, self.fix)


def _rebuild_job_error(
    cls: type[JobError], message: str, job_id: str | None, evidence: dict[str, Any], fix: str | None
) -> JobError:
    return cls(message, job_id=job_id, evidence=evidence, fix=fix)


class JobTimeoutError(JobError, TimeoutError):
    """The job ran past its ``timeout`` and was stopped."""


class OutOfMemoryError(JobError, MemoryError):
    """The job exceeded its ``memory`` limit."""


class JobCancelledError(JobError):
    """The job was cancelled (``handle.cancel()``, Ctrl-C, or ``ascend jobs cancel``)."""


class ImagePullError(JobError):
    """The job's image could not be pulled (missing, misspelled, or no access)."""


class UnschedulableError(JobError):
    """No node can take the job (not enough CPU, memory or GPUs, or no matching node pool)."""


class JobEvictedError(JobError):
    """The job's pod was evicted or preempted by the cluster."""


class JobFailedError(JobError):
    """The job ended without writing a result (the runner crashed or was killed)."""


class RemoteError(AscendError):
    """An exception raised by the remote function that could not travel back as itself.

    Carries the original type's name, its message and the remote traceback.
    """

    def __init__(self, type_name: str, message: str, remote_traceback: str = "") -> None:
        self.type_name = type_name
        self.remote_message = message
        self.remote_traceback = remote_traceback
        super().__init__(f"{type_name}: {message}")

    def __reduce__(self) -> Any:
        return RemoteError, (self.type_name, self.remote_message, self.remote_traceback)

    def __str__(self) -> str:
        text = f"{self.type_name}: {self.remote_message}"
        if self.remote_traceback:
            text += "\n\nRemote traceback:\n" + self.remote_traceback.rstrip()
        return text
