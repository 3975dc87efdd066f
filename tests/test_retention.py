"""`ascend jobs prune` and the jobs.retention setting, on the local provider's real storage.

Old jobs are laid out by ``write_job`` (the real record writers, with past times); a running
job is a real one.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from ascend import ascend
from ascend.retention import age_text, parse_duration

from . import services
from .test_records import job_dir, write_job

DAY = timedelta(days=1)


@pytest.fixture
def local(ascend_pm, monkeypatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "local")
    monkeypatch.setenv("ASCEND_LOCAL_STORAGE_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("ASCEND_USERNAME", "cli-user")
    return tmp_path / "jobs"


@ascend(timeout=60, stream_logs=False)
def nap(seconds: float) -> str:
    time.sleep(seconds)
    return "rested"


def size_of(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def shown(size: int) -> str:
    """Sizes as people read them: bytes, then decimal kB."""
    return f"{size} B" if size < 1000 else f"{size / 1000:.1f} kB"


def exists(local: Path, job_id: str) -> bool:
    return job_dir(local, job_id).exists()


@pytest.fixture
def jobs(local: Path) -> dict[str, str]:
    """Old finished jobs, recent ones, and old ones that are not finished."""
    return {
        "old_succeeded": write_job(local, age=10 * DAY, runner_status="succeeded"),
        "old_failed": write_job(
            local, age=9 * DAY, runner_status="failed", failure_reason="FunctionFailed"
        ),
        "old_cancelled": write_job(
            local, age=8 * DAY, runner_status="running", verdict="cancelled"
        ),
        # metadata.json still says running; the runner's status.json says it ended.
        "stale_record": write_job(
            local, age=11 * DAY, record_status="running", runner_status="succeeded"
        ),
        "recent": write_job(local, age=2 * DAY, runner_status="succeeded"),
        "old_running": write_job(local, age=30 * DAY, runner_status="running"),
        "old_queued": write_job(local, age=40 * DAY),
    }


GONE = ("old_succeeded", "old_failed", "old_cancelled", "stale_record")
KEPT = ("recent", "old_running", "old_queued")


def test_old_finished_jobs_go_and_recent_running_and_queued_ones_stay(
    local, jobs, ascend_cli
) -> None:
    sizes = {name: size_of(job_dir(local, job_id)) for name, job_id in jobs.items()}
    result = ascend_cli("jobs", "prune", "--older-than", "7d", "--yes")
    assert result.exit_code == 0, result.output
    for name in GONE:
        assert not exists(local, jobs[name]), name
    for name in KEPT:
        assert exists(local, jobs[name]), name
    lines = result.stdout.splitlines()
    # Ages count from each job's end (seconds after its creation), in whole units.
    assert lines == [
        f"deleted {jobs['old_cancelled']} (cancelled 7d ago, {shown(sizes['old_cancelled'])})",
        f"deleted {jobs['old_failed']} (failed 8d ago, {shown(sizes['old_failed'])})",
        f"deleted {jobs['old_succeeded']} (succeeded 9d ago, {shown(sizes['old_succeeded'])})",
        f"deleted {jobs['stale_record']} (succeeded 10d ago, {shown(sizes['stale_record'])})",
        f"deleted 4 job(s), {shown(sum(sizes[name] for name in GONE))}",
    ]
    assert f"keeping {jobs['old_running']}: it is running, and only finished jobs are pruned" in (
        result.stderr
    )
    assert f"keeping {jobs['old_queued']}: it is queued" in result.stderr
    # Everything under a deleted job's prefix went, and the other jobs still list.
    listed = ascend_cli("jobs", "list", "--json").stdout
    assert all(jobs[name] in listed for name in KEPT)
    assert not any(jobs[name] in listed for name in GONE)


def test_a_running_job_is_never_pruned_whatever_the_age(local, ascend_cli) -> None:
    handle = nap.submit(30)
    deadline = time.monotonic() + 10
    while handle.status() != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        result = ascend_cli("jobs", "prune", "--older-than", "0s", "--yes")
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == (
            "nothing to prune: no finished job of cli-user ended more than 0s ago"
        )
        assert f"keeping {handle.job_id}: it is running" in result.stderr
        assert exists(local, handle.job_id)
    finally:
        handle.cancel()


def test_dry_run_deletes_nothing_and_says_what_would_go(local, jobs, ascend_cli) -> None:
    before = sorted(str(path) for path in local.rglob("*"))
    result = ascend_cli("jobs", "prune", "--older-than", "7d", "--dry-run")
    assert result.exit_code == 0, result.output
    assert sorted(str(path) for path in local.rglob("*")) == before
    lines = result.stdout.splitlines()
    would = sorted(line.split()[2] for line in lines if " ago, " in line)
    assert would == sorted(jobs[name] for name in GONE)
    assert lines[-1].startswith("would delete 4 job(s), ")
    assert lines[-1].endswith("; nothing was deleted")


def test_the_status_filter_prunes_only_those_states(local, jobs, ascend_cli) -> None:
    result = ascend_cli("jobs", "prune", "--older-than", "7d", "--status", "failed", "--yes")
    assert result.exit_code == 0, result.output
    assert not exists(local, jobs["old_failed"])
    assert all(exists(local, jobs[name]) for name in jobs if name != "old_failed")
    ascend_cli(
        "jobs",
        "prune",
        "--older-than",
        "7d",
        "--status",
        "cancelled",
        "--status",
        "succeeded",
        "-y",
    )
    assert all(not exists(local, jobs[name]) for name in GONE)
    assert all(exists(local, jobs[name]) for name in KEPT)
    again = ascend_cli("jobs", "prune", "--older-than", "7d", "--status", "failed", "--yes")
    assert again.stdout == "nothing to prune: no failed job of cli-user ended more than 7d ago\n"


def test_without_yes_it_asks_first(local, jobs, ascend_cli) -> None:
    refused = ascend_cli("jobs", "prune", "--older-than", "7d", input="n\n")
    assert refused.exit_code == 1
    assert f"will delete {jobs['old_failed']} (failed 8d ago, " in refused.stdout
    assert "Delete 4 job(s), " in refused.stdout and "Aborted" in refused.output
    assert all(exists(local, job_id) for job_id in jobs.values())
    accepted = ascend_cli("jobs", "prune", "--older-than", "7d", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert f"deleted {jobs['old_failed']} (failed 8d ago, " in accepted.stdout
    assert all(not exists(local, jobs[name]) for name in GONE)


def test_the_retention_setting_is_the_default_age(local, jobs, ascend_cli, monkeypatch) -> None:
    Path(".ascend.yaml").write_text("jobs:\n  retention: 9d12h\n")
    result = ascend_cli("jobs", "prune", "--yes")
    assert result.exit_code == 0, result.output
    gone = {name for name, job_id in jobs.items() if not exists(local, job_id)}
    assert gone == {"old_succeeded", "stale_record"}  # ended 10 and 11 days ago
    again = ascend_cli("jobs", "prune", "--yes")
    assert again.stdout == (
        "nothing to prune: no finished job of cli-user ended more than 9d12h ago (jobs.retention)\n"
    )
    monkeypatch.setenv("ASCEND_JOBS_RETENTION", "1w")  # the environment wins over the file
    result = ascend_cli("jobs", "prune", "--dry-run")
    assert result.stdout.splitlines()[-1].startswith("would delete 2 job(s), ")
    # --older-than wins over the setting.
    result = ascend_cli("jobs", "prune", "--older-than", "1d", "--dry-run")
    assert result.stdout.splitlines()[-1].startswith("would delete 3 job(s), ")


def test_without_the_setting_or_an_age_nothing_is_pruned(local, jobs, ascend_cli) -> None:
    result = ascend_cli("jobs", "prune", "--yes")
    assert result.exit_code == 2
    assert (
        "say how old a job must be: pass --older-than (e.g. 30d), or set jobs.retention "
        "(unset, jobs are kept forever)"
    ) in result.output
    assert all(exists(local, job_id) for job_id in jobs.values())


@pytest.mark.parametrize("value", ["7x", "7", "d", "-1d", "1d 2h", "", "seven days"])
def test_a_bad_duration_names_the_value_and_the_forms(local, jobs, ascend_cli, value) -> None:
    result = ascend_cli("jobs", "prune", "--older-than", value, "--yes")
    assert result.exit_code == 2
    assert (
        f"Invalid value for '--older-than': {value!r} is not a duration: write a number and a "
        "unit: s, m, h, d or w (seconds to weeks), e.g. 30d, 12h, 1d12h"
    ) in result.output
    assert all(exists(local, job_id) for job_id in jobs.values())


def test_a_bad_retention_setting_is_a_configuration_error(local, jobs, capsys, monkeypatch) -> None:
    from ascend.cli import main

    monkeypatch.setenv("ASCEND_JOBS_RETENTION", "30 days")
    assert main(["jobs", "prune", "--yes"]) == 1
    err = capsys.readouterr().err
    assert (
        "ASCEND_JOBS_RETENTION: jobs.retention = '30 days': '30 days' is not a duration: write a "
        "number and a unit"
    ) in err
    assert all(exists(local, job_id) for job_id in jobs.values())


def test_damaged_records_are_kept_and_named(local, ascend_cli) -> None:
    damaged = write_job(local, age=20 * DAY, files={"status.json": b"[" * 100_000})
    finished = write_job(local, age=20 * DAY, runner_status="succeeded")
    result = ascend_cli("jobs", "prune", "--older-than", "7d", "--yes")
    assert result.exit_code == 0, result.output
    assert exists(local, damaged) and not exists(local, finished)
    assert (
        f"keeping {damaged}: its record is damaged, so its state is unknown (status.json: it is "
        "nested more than 32 levels deep (not an ascend record))"
    ) in result.stderr


def test_prune_looks_only_at_the_chosen_users_jobs(local, ascend_cli) -> None:
    mine = write_job(local, age=20 * DAY, runner_status="succeeded")
    theirs = write_job(local, age=20 * DAY, runner_status="succeeded", user="bob")
    ascend_cli("jobs", "prune", "--older-than", "7d", "--user", "bob", "--yes")
    assert exists(local, mine) and not job_dir(local, theirs, user="bob").exists()


def test_durations() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("45s") == timedelta(seconds=45)
    assert parse_duration("2w") == timedelta(weeks=2)
    assert parse_duration("1d12h") == timedelta(days=1, hours=12)
    assert parse_duration("1.5d") == timedelta(hours=36)
    assert parse_duration(" 7D ") == timedelta(days=7)
    with pytest.raises(ValueError, match="'99999999999w' is too long a duration"):
        parse_duration("99999999999w")
    assert [age_text(timedelta(seconds=s)) for s in (5, 300, 7200, 3 * 86400, 30 * 86400)] == [
        "5s",
        "5m",
        "2h",
        "3d",
        "4w",
    ]


def test_sizes_are_what_is_on_disk(local, ascend_cli) -> None:
    job_id = write_job(local, age=20 * DAY, runner_status="succeeded", files={"big": b"x" * 12345})
    expected = size_of(job_dir(local, job_id))
    result = ascend_cli("jobs", "prune", "--older-than", "7d", "--dry-run")
    assert f"would delete {job_id} (succeeded 2w ago, {shown(expected)})" in result.stdout
    assert os.path.isdir(job_dir(local, job_id))


def test_prune_on_s3_deletes_every_object_under_the_prefix(ascend_pm, ascend_cli, monkeypatch):
    """The same prune on an object store (moto): sizes from its listing, prefixes deleted."""
    endpoint = services.require("moto")
    pytest.importorskip("s3fs")
    from ascend.storage.fsspec_storage import FsspecStorage

    options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    url = f"s3://ascend-prune-{uuid.uuid4().hex[:12]}/root"
    storage = FsspecStorage(url, **options)
    storage.ensure_container()
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "kubernetes")
    monkeypatch.setenv("ASCEND_STORAGE_URL", url)
    monkeypatch.setenv("ASCEND_STORAGE_OPTIONS", json.dumps(options))
    monkeypatch.setenv("ASCEND_USERNAME", "cli-user")
    old = write_job(
        storage, age=20 * DAY, runner_status="failed", files={"result.pkl": b"r" * 1500}
    )
    running = write_job(storage, age=20 * DAY, runner_status="running")
    recent = write_job(storage, age=DAY, runner_status="succeeded")
    prefix = f"users/cli-user/jobs/{old}"
    size = sum(len(storage.read(path)) for path in storage.list(prefix))

    dry = ascend_cli("jobs", "prune", "--older-than", "7d", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"would delete {old} (failed 2w ago, {shown(size)})" in dry.stdout
    assert storage.list(prefix)
    result = ascend_cli("jobs", "prune", "--older-than", "7d", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"deleted 1 job(s), {shown(size)}"
    assert storage.list(prefix) == []
    for kept in (running, recent):
        assert storage.list(f"users/cli-user/jobs/{kept}")
