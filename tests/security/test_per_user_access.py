"""Per-user access (issue 11): the username is more than a label.

With ``ASCEND_USERNAME=bob``, a job of alice in the same storage is refused by ``ascend jobs
status/logs/result/cancel`` and by ``ascend.attach`` unless bob names alice on purpose
(``--user alice``, ``user="alice"``); ``ascend jobs list`` shows bob's jobs only, and
``--user alice`` shows hers.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import ascend
from ascend import ascend as remote
from ascend.errors import PermissionDeniedError

pytestmark = pytest.mark.timeout(120)


@remote(timeout=60, stream_logs=False)
def shout(text: str) -> str:
    print(f"shouting {text}")
    return text.upper()


@remote(timeout=60, stream_logs=False)
def nap(seconds: float) -> str:
    time.sleep(seconds)
    return "rested"


@pytest.fixture
def as_user(local: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """``as_user(name)``: act as ``name`` from here on (one storage for everybody)."""

    def switch(name: str) -> None:
        monkeypatch.setenv("ASCEND_USERNAME", name)

    return switch


@pytest.fixture
def alice_job(as_user: Callable[[str], None]) -> str:
    """A finished job of alice (result 'A', log 'shouting a'); the caller is bob after it."""
    as_user("alice")
    handle = shout.submit("a")
    assert handle.result(timeout=60) == "A"
    as_user("bob")
    return handle.job_id


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from ascend.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code: int, err: str, job_id: str) -> None:
    assert code == 1, err
    assert err.startswith("ascend: error: ")
    assert "Traceback" not in err
    assert job_id in err
    assert "'alice'" in err and "'bob'" in err  # both users, by name
    assert "fix: " in err and "--user alice" in err


@pytest.mark.parametrize("command", ["status", "logs", "result", "cancel"])
def test_another_users_job_is_refused(
    alice_job: str, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code, out, err = cli(capsys, "jobs", command, alice_job)
    assert_refused(code, err, alice_job)
    assert "shouting" not in out and "'A'" not in out and "succeeded" not in out


def test_logs_follow_is_refused_too(alice_job: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "jobs", "logs", "--follow", alice_job)
    assert_refused(code, err, alice_job)
    assert "shouting" not in out


def test_naming_the_owner_reads_her_job(alice_job: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "jobs", "status", alice_job, "--user", "alice", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "succeeded"
    code, out, err = cli(capsys, "jobs", "logs", alice_job, "--user", "alice")
    assert (code, out) == (0, "shouting a\n"), err
    code, out, err = cli(capsys, "jobs", "result", alice_job, "--user", "alice")
    assert (code, out.strip()) == (0, "'A'"), err


def test_naming_someone_else_is_refused(alice_job: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "jobs", "status", alice_job, "--user", "carol")
    assert code == 1 and "Traceback" not in err
    assert "'alice'" in err and "'carol'" in err


def test_list_shows_only_the_callers_jobs(
    alice_job: str, capsys: pytest.CaptureFixture[str], local: Path
) -> None:
    own = shout.submit("b")  # bob's
    assert own.result(timeout=60) == "B"
    code, out, _ = cli(capsys, "jobs", "list", "--json")
    assert code == 0
    assert [job["job_id"] for job in json.loads(out)] == [own.job_id]
    code, out, _ = cli(capsys, "jobs", "list", "--json", "--user", "alice")
    assert [job["job_id"] for job in json.loads(out)] == [alice_job]

    # A directory of alice's job copied among bob's is still alice's job, not listed as his.
    shutil.copytree(
        local / "users" / "alice" / "jobs" / alice_job, local / "users" / "bob" / "jobs" / alice_job
    )
    code, out, _ = cli(capsys, "jobs", "list", "--json")
    assert [job["job_id"] for job in json.loads(out)] == [own.job_id]


def test_cancel_of_another_users_running_job(
    as_user: Callable[[str], None], capsys: pytest.CaptureFixture[str]
) -> None:
    as_user("alice")
    handle = nap.submit(30)
    deadline = time.monotonic() + 15
    while handle.status() != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    as_user("bob")
    code, _, err = cli(capsys, "jobs", "cancel", handle.job_id)
    assert_refused(code, err, handle.job_id)
    assert handle.status() == "running"
    assert not handle.done()

    code, out, err = cli(capsys, "jobs", "cancel", handle.job_id, "--user", "alice")
    assert code == 0, err
    assert out.strip() == f"{handle.job_id}: running -> cancelled"
    with pytest.raises(ascend.JobCancelledError):
        handle.result(timeout=15)


def test_attach_refuses_another_users_job_unless_named(alice_job: str) -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        ascend.attach(alice_job)
    message = str(caught.value)
    assert alice_job in message and "'alice'" in message and "'bob'" in message
    assert caught.value.fix and "user='alice'" in caught.value.fix

    handle = ascend.attach(alice_job, user="alice")
    assert handle.result(timeout=10) == "A"
    assert handle.logs() == "shouting a\n"

    with pytest.raises(PermissionDeniedError, match="'carol'"):
        ascend.attach(alice_job, user="carol")


def test_attach_to_ones_own_job_needs_no_user(as_user: Callable[[str], None]) -> None:
    as_user("bob")
    handle = shout.submit("c")
    assert ascend.attach(handle.job_id).result(timeout=60) == "C"
    assert ascend.attach(handle.job_id, user="bob").result(timeout=60) == "C"
