"""Typed job records: each file parsed and checked, merged as the runner and client intend.

``write_job`` lays out a job's record the way the client, the runner and a verdict do (through
``ascend.metadata``'s own writers), so the CLI tests can make old, running and damaged jobs
without waiting days.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ascend import metadata, records
from ascend.job_ids import new_job_id
from ascend.records import DamagedRecordError
from ascend.storage.base import CloudStorage
from ascend.storage.local_files import LocalFileStorage


def write_job(
    storage_dir: Path | CloudStorage,
    *,
    age: timedelta = timedelta(0),
    user: str = "cli-user",
    project: str = "default",
    record_status: str = metadata.QUEUED,
    runner_status: str | None = None,
    verdict: str | None = None,
    failure_reason: str | None = None,
    files: dict[str, bytes] | None = None,
) -> str:
    """A job created ``age`` ago that ran three seconds (when it ran), as the real writers lay
    it out; ``files`` then replaces or adds files under its prefix (damage). Returns its id.

    ``storage_dir`` is the local provider's directory, or any storage."""
    storage = LocalFileStorage(str(storage_dir)) if isinstance(storage_dir, Path) else storage_dir
    created = datetime.now(UTC) - age
    job_id = new_job_id(user, project, now=created)
    prefix = metadata.job_prefix(user, job_id)
    storage.write(f"{prefix}/{metadata.PACKAGE_FILE}", b"package " * 64)
    record: dict[str, Any] = {
        "job_id": job_id,
        "status": record_status,
        "function": "tests.jobs.work",
        "user": user,
        "project": project,
        "provider": "local",
        "created_at": created.isoformat(timespec="microseconds"),
        "resources": {"cpu": "1", "memory": "2Gi", "timeout": 60, "node_type": None},
        "requirements": [],
        "git": None,
    }
    metadata.write_record(storage, prefix, record)
    if runner_status is not None:
        status: dict[str, Any] = {
            "status": runner_status,
            "started_at": created.isoformat(timespec="microseconds"),
            "runner": {"pid": 1, "start_ticks": 1},
        }
        if runner_status in metadata.FINAL:
            status["finished_at"] = (created + timedelta(seconds=3)).isoformat()
            status["duration_seconds"] = 3.0
            status["exit_code"] = 0 if runner_status == metadata.SUCCEEDED else 1
            if failure_reason:
                status["failure"] = {"reason": failure_reason, "message": "it broke"}
        metadata.write_status(storage, prefix, status)
        storage.write(f"{prefix}/{metadata.LOG_FILE}", b"working\n")
    if verdict is not None:
        at = (created + timedelta(seconds=5)).isoformat(timespec="microseconds")
        storage.write(
            f"{prefix}/{metadata.VERDICT_FILE}",
            json.dumps(
                {"status": verdict, "at": at, "failure": {"reason": "Cancelled", "message": "x"}}
            ).encode(),
        )
    for name, data in (files or {}).items():
        storage.write(f"{prefix}/{name}", data)
    return job_id


def job_dir(storage_dir: Path, job_id: str, user: str = "cli-user") -> Path:
    return storage_dir / "users" / user / "jobs" / job_id


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "jobs"


def read(store: Path, job_id: str) -> records.JobRecord:
    return records.load(LocalFileStorage(str(store)), job_id)


# -- typed fields ---------------------------------------------------------------------------


def test_a_sound_record_becomes_typed_fields(store: Path) -> None:
    job_id = write_job(
        store, age=timedelta(hours=2), runner_status="failed", failure_reason="FunctionFailed"
    )
    record = read(store, job_id)
    assert record.job_id == job_id
    assert record.status == "failed" and record.finished
    assert record.function == "tests.jobs.work"
    assert isinstance(record.created_at, datetime) and record.created_at.tzinfo is not None
    assert record.finished_at == record.created_at + timedelta(seconds=3)
    assert record.ended_at == record.finished_at
    assert record.duration_seconds == 3.0 and record.exit_code == 1
    assert record.failure == records.Failure("FunctionFailed", "it broke")
    assert record.resources == records.Resources("1", "2Gi", 60.0, None)
    # The merged dict keeps every key, for --json and JobHandle.metadata().
    assert record.as_dict()["runner"] == {"pid": 1, "start_ticks": 1}


def test_metadata_read_returns_the_same_merged_dict(store: Path) -> None:
    job_id = write_job(store, runner_status="succeeded")
    merged = metadata.read(LocalFileStorage(str(store)), metadata.job_prefix("cli-user", job_id))
    assert merged == read(store, job_id).as_dict()
    assert merged["status"] == "succeeded" and merged["job_id"] == job_id


# -- merging --------------------------------------------------------------------------------


def test_the_runner_status_wins_over_the_submission(store: Path) -> None:
    job_id = write_job(store, record_status="running", runner_status="succeeded")
    assert read(store, job_id).status == "succeeded"


def test_a_verdict_counts_while_the_runner_has_not_finished(store: Path) -> None:
    job_id = write_job(store, runner_status="running", verdict="cancelled")
    record = read(store, job_id)
    assert record.status == "cancelled"
    assert record.failure == records.Failure("Cancelled", "x")
    assert record.finished_at == record.created_at + timedelta(seconds=5)


def test_a_verdict_after_the_runner_finished_on_its_own_does_not_count(store: Path) -> None:
    job_id = write_job(store, runner_status="succeeded", verdict="cancelled")
    assert read(store, job_id).status == "succeeded"


def test_a_terminated_runner_is_explained_by_the_verdict(store: Path) -> None:
    job_id = write_job(
        store, runner_status="failed", failure_reason="Terminated", verdict="cancelled"
    )
    assert read(store, job_id).status == "cancelled"


# -- damage ---------------------------------------------------------------------------------


def damaged(store: Path, name: str, data: bytes | dict[str, Any], **job: Any) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return write_job(store, files={name: raw}, **job)


def problem(store: Path, job_id: str) -> DamagedRecordError:
    with pytest.raises(DamagedRecordError) as caught:
        read(store, job_id)
    return caught.value


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("metadata.json", b"\xff\xd8\xff\xe0 JFIF", "it is not UTF-8 text (byte 0 is 0xff)"),
        ("status.json", b'{"status": "running",', "it is not valid JSON"),
        ("verdict.json", b"", "it is not valid JSON"),
        ("status.json", b'["running"]', "it holds a list, not a JSON object"),
        ("metadata.json", b"42", "it holds a number, not a JSON object"),
        ("status.json", {"status": ["running"]}, "'status' is a list, expected a string"),
        ("status.json", {"status": "running", "failure": "x"}, "'failure' is a string"),
        (
            "status.json",
            {"status": "failed", "failure": {"reason": 7}},
            "'failure.reason' is a number (7), expected a string",
        ),
        ("status.json", {"status": "failed", "exit_code": "1"}, "'exit_code' is a string"),
        ("status.json", {"status": "failed", "exit_code": True}, "'exit_code' is a boolean"),
        ("status.json", {"status": "exploded"}, "'status' is 'exploded', expected one of"),
        ("status.json", {"started_at": "2026-01-01T00:00:00"}, "'status' is missing"),
        ("verdict.json", {"status": "cancelled"}, "'at' is missing"),
        ("verdict.json", {"status": "running", "at": "2026-01-01"}, "expected one of cancelled"),
        ("status.json", {"status": "running", "started_at": "soon"}, "expected an ISO 8601 time"),
        (
            "status.json",
            {"status": "running", "requirements": [1]},
            "'requirements[0]' is a number",
        ),
    ],
)
def test_a_damaged_file_names_itself_and_the_problem(
    store: Path, name: str, data: bytes | dict[str, Any], expected: str
) -> None:
    job_id = damaged(store, name, data)
    error = problem(store, job_id)
    assert error.path == f"file://{job_dir(store, job_id)}/{name}"
    assert error.file == name
    assert expected in error.problem
    assert str(error).startswith(f"damaged job record file://{job_dir(store, job_id)}/{name}: ")
    assert isinstance(error, ValueError)  # callers that caught the old ValueError still do


@pytest.mark.parametrize("key", ["job_id", "status", "function", "user", "created_at"])
def test_metadata_without_a_required_key_is_damaged(store: Path, key: str) -> None:
    job_id = write_job(store)
    path = job_dir(store, job_id) / "metadata.json"
    record = json.loads(path.read_text())
    del record[key]
    path.write_text(json.dumps(record))
    assert problem(store, job_id).problem == f"'{key}' is missing"


def test_a_job_id_field_that_disagrees_with_the_directory_is_damage(store: Path) -> None:
    other = new_job_id("mallory", "default")
    job_id = write_job(store)
    path = job_dir(store, job_id) / "metadata.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "job_id": other}))
    error = problem(store, job_id)
    assert error.problem == (
        f"'job_id' is '{other}', but the record is in the directory of job {job_id}"
    )
    # Read without a directory to compare with (the runner's own view), it is the field.
    assert metadata.read(LocalFileStorage(str(job_dir(store, job_id))), "")["job_id"] == other


@pytest.mark.parametrize("depth", [33, 100_000])
def test_deep_nesting_is_refused_before_the_parser_recurses(store: Path, depth: int) -> None:
    bomb = b'{"status": "running", "runner": ' + b"[" * depth + b"]" * depth + b"}"
    job_id = damaged(store, "status.json", bomb)
    assert problem(store, job_id).problem == (
        "it is nested more than 32 levels deep (not an ascend record)"
    )
    # Brackets inside strings are text, not nesting.
    text = {"status": "failed", "failure": {"reason": "x", "message": "[" * 100_000}}
    job_id = damaged(store, "status.json", text)
    assert read(store, job_id).failure == records.Failure("x", "[" * 100_000)


def test_an_oversized_file_is_refused_unread_as_json(store: Path) -> None:
    job_id = damaged(store, "status.json", b" " * (records.MAX_BYTES + 1))
    assert "more than the 4194304 a record may have" in problem(store, job_id).problem


def test_metadata_read_raises_the_named_error_not_a_type_error(store: Path) -> None:
    job_id = damaged(store, "status.json", {"status": "failed", "failure": ["Terminated"]})
    with pytest.raises(DamagedRecordError, match="'failure' is a list"):
        metadata.read(LocalFileStorage(str(store)), metadata.job_prefix("cli-user", job_id))


def test_a_missing_record_is_still_file_not_found(store: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read(store, new_job_id("cli-user", "default"))
