"""A job's record: who ran what, with which resources, and how it ended.

Each file of the record has exactly one writer, so no update can be lost to a race between
the client and the runner (object stores have no compare-and-swap):

- ``metadata.json``: the client, once, at submission (function, user, resources, versions,
  git); status ``queued``.
- ``status.json``: the runner, which owns the job's life: ``running``, then ``succeeded`` or
  ``failed`` with the failure's reason, times and exit code. It is right even when the client
  died.
- ``verdict.json``: whoever stopped the job (cancelled, or killed after its deadline), written
  once: the first verdict stands, and a canceller writes it before stopping the job, so the
  job's waiter finds it and names the canceller.

:func:`read` merges them into one view (:mod:`ascend.records` parses and checks each file
into typed records first). A verdict counts unless the runner had already finished before it.
Standard library only: the runner uses this module.
"""

from __future__ import annotations

import json
import posixpath
from datetime import UTC, datetime
from typing import Any, Protocol

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
FINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)

METADATA_FILE = "metadata.json"
STATUS_FILE = "status.json"
VERDICT_FILE = "verdict.json"
PACKAGE_FILE = "package.pkl"
RESULT_FILE = "result.pkl"
LOG_FILE = "logs.txt"


class _Storage(Protocol):
    def read(self, path: str) -> bytes: ...
    def exists(self, path: str) -> bool: ...
    def write(self, path: str, data: bytes, overwrite: bool = True) -> str: ...


def now() -> str:
    """UTC timestamp in ISO 8601 (microseconds: it orders the client's and runner's writes)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def job_prefix(user: str, job_id: str) -> str:
    """Where everything about a job lives, relative to the storage root."""
    return posixpath.join("users", user, "jobs", job_id)


def _write_json(storage: _Storage, path: str, record: dict[str, Any]) -> None:
    storage.write(path, json.dumps(record, indent=2).encode())


def write_record(storage: _Storage, prefix: str, record: dict[str, Any]) -> None:
    """The client's record, written at submission."""
    _write_json(storage, posixpath.join(prefix, METADATA_FILE), record)


def write_status(storage: _Storage, prefix: str, status: dict[str, Any]) -> None:
    """The runner's view of the job, rewritten whole each time (its only writer)."""
    status["updated_at"] = now()
    _write_json(storage, posixpath.join(prefix, STATUS_FILE), status)


def write_verdict(
    storage: _Storage,
    prefix: str,
    status: str,
    reason: str,
    message: str,
    *,
    by: dict[str, Any] | None = None,
    overwrite: bool = True,
) -> bool:
    """A client stopped the job: record why (``cancelled``, or ``failed`` past deadline) and
    who (``by``: user, host, pid). With ``overwrite=False`` a verdict already there stands (the
    first to stop a job is its one writer) and nothing is written. Returns whether it wrote."""
    path = posixpath.join(prefix, VERDICT_FILE)
    if not overwrite and storage.exists(path):
        return False
    verdict: dict[str, Any] = {
        "status": status,
        "at": now(),
        "failure": {"reason": reason, "message": message},
    }
    if by is not None:
        verdict["by"] = by
    _write_json(storage, path, verdict)
    return True


def read(storage: _Storage, prefix: str) -> dict[str, Any]:
    """The merged record, every file checked (:mod:`ascend.records`).

    :raises FileNotFoundError: the job does not exist.
    :raises ascend.records.DamagedRecordError: a file is damaged (a ``ValueError``); it names
        the file and what is wrong, instead of a ``TypeError`` deep in whatever read it.
    """
    from ascend import records

    return records.read(storage, prefix).as_dict()


def elapsed_seconds(started: str) -> float:
    """Seconds since an ISO timestamp written by :func:`now`."""
    try:
        begin = datetime.fromisoformat(started)
    except ValueError:
        return 0.0
    return max(0.0, (datetime.now(UTC) - begin).total_seconds())
