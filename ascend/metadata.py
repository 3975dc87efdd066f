"""``metadata.json``: one job's record, written by the client and updated by the runner.

Status moves queued -> running -> succeeded | failed | cancelled and never leaves a final
state, so whichever side writes last cannot undo the other's verdict (a runner finishing after
the client cancelled keeps the job cancelled). Standard library only: the runner uses it.
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
PACKAGE_FILE = "package.pkl"
RESULT_FILE = "result.pkl"
LOG_FILE = "logs.txt"


class _Storage(Protocol):
    def read(self, path: str) -> bytes: ...
    def write(self, path: str, data: bytes, overwrite: bool = True) -> str: ...
    def exists(self, path: str) -> bool: ...


def now() -> str:
    """UTC timestamp in ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def job_prefix(user: str, job_id: str) -> str:
    """Where everything about a job lives, relative to the storage root."""
    return posixpath.join("users", user, "jobs", job_id)


def read(storage: _Storage, prefix: str) -> dict[str, Any]:
    data = json.loads(storage.read(posixpath.join(prefix, METADATA_FILE)))
    if not isinstance(data, dict):
        raise ValueError("metadata.json does not hold an object")
    return data


def write(storage: _Storage, prefix: str, record: dict[str, Any]) -> None:
    record["updated_at"] = now()
    storage.write(posixpath.join(prefix, METADATA_FILE), json.dumps(record, indent=2).encode())


def update(
    storage: _Storage, prefix: str, status: str | None = None, **fields: Any
) -> dict[str, Any]:
    """Merge ``fields`` (dicts merge one level deep) and move to ``status`` if allowed.

    A final status is never replaced; the other fields are still recorded.
    """
    try:
        record = read(storage, prefix)
    except FileNotFoundError:
        record = {"status": QUEUED}
    final = record.get("status") in FINAL
    for key, value in fields.items():
        if final and key == "failure" and record.get("failure"):
            continue  # the verdict and its reason stay together
        if isinstance(value, dict) and isinstance(record.get(key), dict):
            record[key] = {**record[key], **value}
        else:
            record[key] = value
    if status is not None and record.get("status") not in FINAL:
        record["status"] = status
        if status == RUNNING:
            record.setdefault("started_at", now())
        if status in FINAL:
            record["finished_at"] = now()
            started = record.get("started_at")
            if isinstance(started, str):
                record["duration_seconds"] = round(_elapsed(started), 3)
    write(storage, prefix, record)
    return record


def _elapsed(started: str) -> float:
    try:
        begin = datetime.fromisoformat(started)
    except ValueError:
        return 0.0
    return max(0.0, (datetime.now(UTC) - begin).total_seconds())
