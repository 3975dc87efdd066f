"""The compute interface: something that runs a packaged job and reports how it ended.

The job receives storage URIs, never payloads: the package is already in storage when
:meth:`ComputeBackend.submit` is called, and the runner writes the result there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ascend.signing import KeyRing

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
TIMED_OUT = "timed_out"


@dataclass(frozen=True)
class JobRequest:
    """What compute needs to start one job."""

    job_id: str
    package_uri: str
    result_uri: str
    image: str | None = None
    cpu: str = "1"
    memory: str = "2Gi"
    timeout: int = 3600
    node_type: str | None = None
    stream_logs: bool = True
    retries: int = 0
    requirements: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobStatus:
    """How a job ended (or that it still runs), with the evidence the backend saw."""

    state: str
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state != RUNNING


class ComputeBackend(ABC):
    """Runs jobs. Implementations: the built-in local and Kubernetes computes, or a plugin's."""

    name: str = "compute"
    runs_images: bool = True  # the call's image is chosen (and built) before submit

    def check(self, request: JobRequest) -> None:  # noqa: B027 - optional hook, no-op default
        """Refuse a request this backend cannot run, before anything is uploaded."""

    @abstractmethod
    def submit(self, request: JobRequest) -> str:
        """Start the job; return a handle (the backend's job name) without waiting."""

    @abstractmethod
    def wait(self, handle: str, timeout: float | None = None) -> JobStatus:
        """Block until the job ends, or ``timeout`` seconds pass (then ``state`` is running).

        Raises a typed :class:`ascend.errors.JobError` carrying the evidence when the job
        cannot finish (image pull failure, unschedulable, ...).
        """

    @abstractmethod
    def cancel(self, handle: str) -> None:
        """Stop the job and everything it started; cancelling a finished job is a no-op."""

    def logs(self, handle: str) -> str:
        """The job's output as the backend holds it ('' when it keeps none)."""
        return ""

    def signing_keys(
        self, request: JobRequest | None = None, handle: str | None = None
    ) -> KeyRing | None:
        """The keys that sign and check the packages and results of the user's jobs (for a
        job about to be submitted, ``request``, or an existing one, ``handle``), and that the
        job itself gets. ``None``: this compute provides none (``security.allow_unsigned``
        is then needed; see :mod:`ascend.signing`)."""
        return None

    def shows_output(self, handle: str) -> bool:
        """Whether :meth:`wait` passes the job's output on live itself (to the call shown by
        :mod:`ascend.console`). When it does not, the caller follows the log the runner saves
        in storage instead, a second or two behind."""
        return False

    def release(self, handle: str) -> None:  # noqa: B027 - optional hook, no-op default
        """The caller has saved what it needs (logs, result): the backend may clean up."""

    def handle_for(self, job_id: str, record: dict[str, Any]) -> str:
        """The handle of a job submitted elsewhere (``attach``), from its merged record."""
        handle = (record.get("compute") or {}).get("handle")
        return str(handle) if handle else job_id

    def status(self, handle: str) -> JobStatus:
        """The job's state now, without blocking."""
        return self.wait(handle, timeout=0)
