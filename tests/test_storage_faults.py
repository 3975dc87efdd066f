"""Storage faults are storage errors: a full disk says so and names the object, nothing
half-written is left, and logs that could not be saved are reported, not silently lost."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ascend.decorator import ascend as remote
from ascend.errors import StorageError
from ascend.runtime import LogsNotSavedWarning
from ascend.storage.base import storage_error


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (errno.ENOSPC, "storage full: could not write"),
        (errno.EDQUOT, "storage full: could not write"),
        (errno.EROFS, "the storage refused to let this process write"),
        (errno.EACCES, "the storage refused to let this process write"),
        (errno.ECONNRESET, "could not write"),
    ],
)
def test_os_errors_become_storage_errors_that_say_what_happened(code: int, says: str) -> None:
    error = storage_error(
        "s3://bucket/jobs/x/package.pkl", "write", OSError(code, os.strerror(code))
    )
    assert isinstance(error, StorageError)
    assert error.message.startswith(says)
    assert "s3://bucket/jobs/x/package.pkl" in error.message
    assert error.fix


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: a disk that fills up for real (needs root, as CI has)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def takes(data: bytes) -> int:
    return len(data)


def test_a_full_disk_is_a_storage_error_naming_the_package_and_leaves_nothing(
    ascend_pm: Any, full_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "local")
    monkeypatch.setenv("ASCEND_LOCAL_STORAGE_DIR", str(full_disk))
    call = remote(stream_logs=False)(takes)
    with pytest.raises(StorageError) as caught:
        call(os.urandom(1 << 20))  # 1 MiB that does not compress, on a 256 KiB disk
    assert caught.value.message.startswith("storage full: could not write file://")
    assert "package.pkl" in caught.value.message
    assert "cannot be pickled" not in str(caught.value)
    assert "ascend jobs prune" in (caught.value.fix or "")
    left = [p for p in full_disk.rglob("*") if p.is_file()]
    assert left == []  # no partial package, no record of a job that never ran


def loses_its_logs() -> int:
    result = os.environ["ASCEND_RESULT_URI"].removeprefix("file://")
    with open(os.path.join(os.path.dirname(result), "logs"), "w"):
        pass  # a file where the log's chunks go: the logs cannot land
    print("this line is not saved")
    return 42


def test_logs_that_could_not_be_saved_are_in_the_record_and_told_to_the_caller(
    ascend_pm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from ascend.cli import cli

    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "local")
    monkeypatch.setenv("ASCEND_LOCAL_STORAGE_DIR", str(tmp_path / "jobs"))
    handle = remote(stream_logs=False)(loses_its_logs).submit()
    assert handle.result(timeout=60) == 42  # the result is not lost with the logs
    assert "logs/000000000000.txt" in handle.metadata()["logs_error"]
    with pytest.warns(LogsNotSavedWarning, match=f"job {handle.job_id} could not save its logs"):
        assert handle.logs() == ""
    ran = CliRunner().invoke(cli, ["jobs", "logs", handle.job_id])
    assert ran.exit_code == 0
    assert f"ascend: warning: job {handle.job_id} could not save its logs" in ran.stderr
