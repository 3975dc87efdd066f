"""`ascend jobs`: list, status, logs, result and cancel on real local jobs; damaged records
(written beside real jobs) never crash it, and job ids stay whole at 80 columns."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest

from ascend import ascend


@pytest.fixture
def local(ascend_pm, monkeypatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "local")
    monkeypatch.setenv("ASCEND_LOCAL_STORAGE_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("ASCEND_USERNAME", "cli-user")
    return tmp_path / "jobs"


@ascend(timeout=60, stream_logs=False)
def shout(text: str) -> str:
    print(f"shouting {text}")
    return text.upper()


@ascend(timeout=60, stream_logs=False)
def fail(message: str) -> None:
    raise ValueError(message)


@ascend(timeout=60, stream_logs=False)
def nap(seconds: float) -> str:
    time.sleep(seconds)
    return "rested"


def test_list_status_logs_and_result(local, ascend_cli) -> None:
    first = shout.submit("a")
    assert first.result() == "A"
    second = shout.submit("b")
    assert second.result() == "B"
    listed = json.loads(ascend_cli("jobs", "list", "--json").stdout)
    assert [job["job_id"] for job in listed] == [second.job_id, first.job_id]
    assert all(job["status"] == "succeeded" for job in listed)
    limited = json.loads(ascend_cli("jobs", "list", "--json", "--limit", "1").stdout)
    assert [job["job_id"] for job in limited] == [second.job_id]

    status = json.loads(ascend_cli("jobs", "status", first.job_id, "--json").stdout)
    assert status["status"] == "succeeded"
    assert status["function"].endswith("shout")

    assert ascend_cli("jobs", "logs", first.job_id).stdout == "shouting a\n"
    result = ascend_cli("jobs", "result", first.job_id)
    assert result.exit_code == 0
    assert result.stdout.strip() == "'A'"


def test_result_of_a_failed_job_shows_the_remote_error_and_exits_1(local, ascend_cli) -> None:
    handle = fail.submit("broken input")
    with pytest.raises(ValueError):
        handle.result()
    result = ascend_cli("jobs", "result", handle.job_id)
    assert result.exit_code == 1
    assert "ValueError: broken input" in result.stderr
    assert "Remote traceback" in result.stderr
    failed = json.loads(ascend_cli("jobs", "list", "--json", "--status", "failed").stdout)
    assert [job["job_id"] for job in failed] == [handle.job_id]
    assert json.loads(ascend_cli("jobs", "list", "--json", "--status", "succeeded").stdout) == []


def test_cancel_from_the_command_line(local, ascend_cli) -> None:
    handle = nap.submit(30)
    deadline = time.monotonic() + 10
    while handle.status() != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    result = ascend_cli("jobs", "cancel", handle.job_id)
    assert result.exit_code == 0
    assert result.stdout.strip() == f"{handle.job_id}: running -> cancelled"
    from ascend import JobCancelledError

    with pytest.raises(JobCancelledError):
        handle.result(timeout=10)


def test_unknown_job_id_is_a_clear_error(local, ascend_cli) -> None:
    from ascend.cli import main

    assert main(["jobs", "status", "not-a-job-id"]) == 1
    assert main(["jobs", "status", "20260101-000000000-abcde--cli-user--default"]) == 1


def test_list_with_no_jobs_is_empty(local, ascend_cli) -> None:
    assert json.loads(ascend_cli("jobs", "list", "--json").stdout) == []


# -- damaged records ------------------------------------------------------------------------

DAMAGE = [
    pytest.param(
        "metadata.json", b"\x00\xffPK\x03\x04garbage", "it is not UTF-8 text", id="garbage"
    ),
    pytest.param("status.json", b'{"status": "running",', "it is not valid JSON", id="bad-json"),
    pytest.param(
        "verdict.json",
        b'["cancelled"]',
        "it holds a list, not a JSON object",
        id="list-not-object",
    ),
    pytest.param(
        "status.json",
        b'{"status": "failed", "failure": ["Terminated"]}',
        "'failure' is a list, expected an object or null",
        id="list-where-dict",
    ),
    pytest.param(
        "metadata.json",
        b'{"job_id": "JOB", "status": "queued", "function": 42, "user": "cli-user", '
        b'"created_at": "2026-01-01T00:00:00+00:00"}',
        "'function' is a number (42), expected a string",
        id="number-where-string",
    ),
    pytest.param(
        "metadata.json",
        b'{"job_id": "JOB", "function": "f", "user": "cli-user", '
        b'"created_at": "2026-01-01T00:00:00+00:00"}',
        "'status' is missing",
        id="missing-key",
    ),
    pytest.param(
        "verdict.json", b'{"status": "cancelled"}', "'at' is missing", id="verdict-missing-key"
    ),
    pytest.param(
        "status.json",
        b"[" * 100_000 + b"]" * 100_000,
        "it is nested more than 32 levels deep",
        id="json-bomb",
    ),
    pytest.param(
        "metadata.json",
        b'{"job_id": "20200101-000000000-aaaaa--mallory--default", "status": "queued", '
        b'"function": "f", "user": "cli-user", "created_at": "2026-01-01T00:00:00+00:00"}',
        "'job_id' is '20200101-000000000-aaaaa--mallory--default', but the record is in the "
        "directory of job JOB",
        id="job-id-mismatch",
    ),
]


def damage(local: Path, name: str, data: bytes) -> tuple[str, str]:
    """A finished job whose ``name`` is replaced by ``data`` (``JOB`` stands for its id);
    returns its id and the file's URI."""
    from .test_records import job_dir, write_job

    job_id = write_job(local, age=timedelta(hours=1), runner_status="succeeded")
    path = job_dir(local, job_id) / name
    path.write_bytes(data.replace(b"JOB", job_id.encode()))
    return job_id, f"file://{path}"


@pytest.mark.parametrize(("name", "data", "expected"), DAMAGE)
def test_a_damaged_record_is_a_row_and_every_other_job_still_lists(
    local, ascend_cli, name: str, data: bytes, expected: str
) -> None:
    from .test_records import write_job

    sound = shout.submit("a")
    assert sound.result() == "A"
    older = write_job(local, age=timedelta(days=2), runner_status="failed")
    job_id, uri = damage(local, name, data)
    expected = expected.replace("JOB", job_id)

    listed = ascend_cli("jobs", "list", env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[1]: line for line in listed.stdout.splitlines() if line.startswith("│")}
    assert "succeeded" in rows[sound.job_id]
    assert "failed" in rows[older]
    assert "damaged" in rows[job_id] and f"damaged record: {name}" in rows[job_id]
    assert "1 job record(s) cannot be read:" in listed.stdout
    assert f"  {job_id}: {uri}: {expected}" in listed.stdout
    assert set(rows) == {sound.job_id, older, job_id}  # directories name jobs, never a field

    as_json = json.loads(ascend_cli("jobs", "list", "--json").stdout)
    assert [job["job_id"] for job in as_json] == [sound.job_id, job_id, older]
    assert as_json[1]["status"] == "damaged"
    assert as_json[1]["file"] == uri
    assert as_json[1]["problem"].startswith(expected)
    only = json.loads(ascend_cli("jobs", "list", "--json", "--status", "damaged").stdout)
    assert [job["job_id"] for job in only] == [job_id]


@pytest.mark.parametrize(("name", "data", "expected"), DAMAGE)
@pytest.mark.parametrize("command", ["status", "result", "logs"])
def test_a_damaged_record_is_a_clear_error_for_one_job(
    local, capsys, command: str, name: str, data: bytes, expected: str
) -> None:
    from ascend.cli import main

    job_id, uri = damage(local, name, data)
    expected = expected.replace("JOB", job_id)
    capsys.readouterr()
    assert main(["jobs", command, job_id]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"ascend: error: damaged job record {uri}: {expected}")
    assert "fix: restore the file, or delete the job's directory" in err
    assert "Traceback" not in err


def test_a_job_without_metadata_json_lists_as_damaged(local, ascend_cli) -> None:
    from .test_records import job_dir, write_job

    job_id = write_job(local)
    (job_dir(local, job_id) / "metadata.json").unlink()
    listed = ascend_cli("jobs", "list", env={"COLUMNS": "200"})
    assert "metadata.json: it is missing (the job was never fully submitted)" in listed.stdout


def test_job_ids_are_never_wrapped_at_80_columns(local, ascend_cli) -> None:
    from .test_records import write_job

    real = shout.submit("a")
    assert real.result() == "A"
    ids = [real.job_id]
    ids.append(write_job(local, runner_status="failed", failure_reason="FunctionFailed"))
    ids.append(damage(local, "status.json", b"{")[0])
    listed = ascend_cli("jobs", "list", env={"COLUMNS": "80"})
    lines = listed.stdout.splitlines()
    table = [line for line in lines if line.startswith(("┃", "│", "┏", "┗", "└", "┡"))]
    assert table and all(len(line) <= 80 for line in table)
    for job_id in ids:
        assert sum(job_id in line for line in table) == 1, listed.stdout
    assert "│ succeeded " in listed.stdout and "│ damaged " in listed.stdout
    assert "…" in listed.stdout  # the other columns are cut, on one line each

    # The longest id there is (12-character user, 15-character project) still fits whole.
    longest = write_job(local, user="abcdefghijkl", project="abcdefghijklmno")
    assert len(longest) == 55
    listed = ascend_cli("jobs", "list", "--user", "abcdefghijkl", env={"COLUMNS": "80"})
    assert any(longest in line and len(line) <= 80 for line in listed.stdout.splitlines())


def test_status_shows_the_typed_record(local, ascend_cli) -> None:
    from .test_records import write_job

    job_id = write_job(
        local, age=timedelta(hours=1), runner_status="failed", failure_reason="FunctionFailed"
    )
    shown = ascend_cli("jobs", "status", job_id).stdout.splitlines()
    assert shown[0] == f"job_id            {job_id}"
    assert "status            failed" in shown
    assert "exit_code         1" in shown
    assert "duration_seconds  3.0" in shown
    assert "failure           {'reason': 'FunctionFailed', 'message': 'it broke'}" in shown
