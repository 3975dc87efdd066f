"""The local runner process: children end with the job; start-up variables take effect."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ascend import ascend


@pytest.fixture
def local(ascend_pm, monkeypatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "local")
    monkeypatch.setenv("ASCEND_LOCAL_STORAGE_DIR", str(tmp_path / "jobs"))
    return tmp_path


@ascend(timeout=60, stream_logs=False)
def start_background_sleeper() -> int:
    import subprocess

    child = subprocess.Popen(["sleep", "60"])
    return child.pid


def test_background_children_are_stopped_when_the_function_returns(local: Path) -> None:
    started = time.monotonic()
    pid = start_background_sleeper()
    assert time.monotonic() - started < 3  # not held up by the child keeping the log open
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{pid}/stat") as stat:  # a zombie waiting for init counts as gone
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.05)
    else:
        pytest.fail(f"the job's child process {pid} outlived the job")


@ascend(timeout=60, stream_logs=False, env={"PYTHONHASHSEED": "0"})
def seeded_hash() -> int:
    return hash("abc")


def test_startup_variables_in_env_take_effect(local: Path) -> None:
    assert seeded_hash() == seeded_hash()  # a warm runner would have ignored PYTHONHASHSEED
