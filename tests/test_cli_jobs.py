"""`ascend jobs`: list, status, logs, result and cancel on real local jobs."""

from __future__ import annotations

import json
import time
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
