"""The compute interface: something that runs a packaged job and reports how it ended.

The pod (or process) receives storage URIs, never payloads: the package is already in
storage when :meth:`ComputeBackend.submit` is called, and the runner writes the result there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


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
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class ComputeBackend(ABC):
    """Runs jobs. Implementations: the built-in Kubernetes and local computes, or a plugin's."""

    name: str = "compute"

    @abstractmethod
    def submit(self, request: JobRequest) -> str:
        """Start the job; return a handle (the backend's job name) without waiting."""

    @abstractmethod
    def wait(self, handle: str, timeout: float | None = None) -> str:
        """Block until the job ends; return its final state (``succeeded``/``failed``/...).

        Raises a typed :class:`ascend.errors.AscendError` carrying the evidence when the job
        cannot finish (image pull failure, unschedulable, out of memory, deadline).
        """

    @abstractmethod
    def cancel(self, handle: str) -> None:
        """Stop the job and everything it started; cancelling a finished job is a no-op."""

    def logs(self, handle: str) -> str:
        """The job's output so far (backends that stream logs elsewhere may return ``''``)."""
        return ""
