"""Ctrl-C and cancel, seen from the caller: only this process's jobs are cancelled (from worker
threads too), an attached handle only detaches, every outcome is said in one line, and a cancel
from another process arrives as JobCancelledError naming who cancelled.

Clients run as real processes that get a real SIGINT; jobs run on the local provider and on the
Kubernetes API emulator.
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest

import ascend
from ascend.job_ids import sanitize_name

from .clients import client_env, finish, start
from .test_e2e_local import (
    alive,
    job_dir,
    read_metadata,
    wait_gone,
    wait_running,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)
SLEEPER = "ascend.ascend(timeout=120, stream_logs=False)(f.sleep_then_return)"


def running_jobs(storage: Path) -> list[str]:
    jobs = storage / "users"
    found = []
    for directory in jobs.glob("*/jobs/*") if jobs.exists() else []:
        try:
            record = read_metadata(storage, directory.name)
        except (FileNotFoundError, ValueError):
            continue
        if record.get("status") == "running" and (record.get("runner") or {}).get("pid"):
            found.append(directory.name)
    return found


def me() -> str:
    return sanitize_name(getpass.getuser(), 32)


# -- worker threads ------------------------------------------------------------------------


def test_ctrl_c_cancels_calls_waiting_in_worker_threads(local: Path, tmp_path: Path) -> None:
    process = start(
        tmp_path,
        f"""
        sleeper = {SLEEPER}
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(sleeper, 60, i) for i in range(3)]
            for future in futures:
                print(future.result())
        """,
        client_env(),
    )
    try:
        wait_until(lambda: len(running_jobs(local)) == 3, 30, "three running jobs")
        jobs = running_jobs(local)
        pids = [read_metadata(local, job)["runner"]["pid"] for job in jobs]
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = finish(process)
        took = time.monotonic() - interrupted
    finally:
        for job in running_jobs(local):  # a failed test must not leave sleepers behind
            ascend.attach(job).cancel()
    assert took < 20, f"the client took {took:.1f} s to stop (the jobs sleep 60 s)"
    assert "KeyboardInterrupt" in stderr
    for job in jobs:
        assert f"[ascend] Ctrl-C: cancelled job {job}\n" in stderr
        assert read_metadata(local, job)["status"] == "cancelled"
    for pid in pids:
        wait_gone(pid)


def test_ctrl_c_in_the_main_thread_says_which_job_it_cancelled(local: Path, tmp_path: Path) -> None:
    process = start(
        tmp_path,
        f"""
        handle = {SLEEPER}.submit(60, "never")
        print(handle.job_id, flush=True)
        handle.result()
        """,
        client_env(),
    )
    assert process.stdout is not None
    job_id = process.stdout.readline().strip()
    pid = wait_running(local, job_id)["runner"]["pid"]
    process.send_signal(signal.SIGINT)
    _, stderr = finish(process)
    assert f"[ascend] Ctrl-C: cancelled job {job_id}\n" in stderr
    assert stderr.count("Ctrl-C:") == 1  # the main thread's job is cancelled once
    record = read_metadata(local, job_id)
    assert record["status"] == "cancelled"
    assert record["failure"]["message"].startswith(f"cancelled by {me()} on ")
    wait_gone(pid)


def test_a_handler_the_program_installed_is_left_alone(local: Path, tmp_path: Path) -> None:
    process = start(
        tmp_path,
        f"""
        import signal
        signal.signal(signal.SIGINT, lambda *_: print("mine", flush=True))
        handle = {SLEEPER}.submit(1, "done")
        print(handle.job_id, flush=True)
        print(handle.result(), flush=True)
        """,
        client_env(),
    )
    assert process.stdout is not None
    job_id = process.stdout.readline().strip()
    wait_running(local, job_id)
    process.send_signal(signal.SIGINT)
    stdout, stderr = finish(process)
    assert stdout.split() == ["mine", "done"], stderr
    assert read_metadata(local, job_id)["status"] == "succeeded"


# -- attached handles ----------------------------------------------------------------------


def start_detached_job(local: Path, tmp_path: Path) -> tuple[str, int]:
    """A job whose submitting client has exited: it belongs to no waiting process."""
    process = start(
        tmp_path,
        f"print({SLEEPER}.submit(60, 'never').job_id)",
        client_env(),
        name="submitter.py",
    )
    stdout, stderr = finish(process)
    job_id = stdout.strip()
    assert job_id, stderr
    return job_id, wait_running(local, job_id)["runner"]["pid"]


def test_ctrl_c_on_an_attached_handle_detaches_and_says_how_to_come_back(
    local: Path, tmp_path: Path
) -> None:
    job_id, pid = start_detached_job(local, tmp_path)
    try:
        process = start(
            tmp_path,
            f"""
            print("waiting", flush=True)
            ascend.attach({job_id!r}).result()
            """,
            client_env(),
        )
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "waiting"
        time.sleep(1.0)  # let it reach the wait
        process.send_signal(signal.SIGINT)
        _, stderr = finish(process)
        assert (
            f"[ascend] Ctrl-C: stopped waiting for job {job_id}; it keeps running. "
            f"ascend.attach('{job_id}').result() waits again; "
            f"'ascend jobs cancel {job_id}' stops it." in stderr
        )
        assert "cancelled job" not in stderr
        assert read_metadata(local, job_id)["status"] == "running"
        assert alive(pid)
        assert not (job_dir(local, job_id) / "verdict.json").exists()
    finally:
        ascend.attach(job_id).cancel()
        wait_gone(pid)


# -- a cancel from elsewhere ---------------------------------------------------------------


def wait_for_cancel_by_someone_else(
    env: dict[str, str], tmp_path: Path, canceller: Any, job_ready: Any
) -> tuple[str, str]:
    """A client waits for its job; this process cancels it; returns (job id, client output)."""
    process = start(
        tmp_path,
        f"""
        handle = {SLEEPER}.submit(60, "never")
        print(handle.job_id, flush=True)
        try:
            handle.result()
        except JobCancelledError as error:
            print(type(error).__name__, error.message, error.evidence.get("cancelled_by"))
        """,
        env,
    )
    assert process.stdout is not None
    job_id = process.stdout.readline().strip()
    job_ready(job_id)
    canceller(job_id)
    stdout, stderr = finish(process, 60)
    assert process.returncode == 0, stderr
    return job_id, stdout


def expected_line(job_id: str, user: str) -> str:
    who = {"user": user, "host": socket.gethostname(), "pid": os.getpid()}
    return (
        f"JobCancelledError job {job_id} was cancelled by {user} on {socket.gethostname()} "
        f"(pid {os.getpid()}) {who}"
    )


def test_a_cancel_from_another_process_names_who_cancelled(local: Path, tmp_path: Path) -> None:
    job_id, stdout = wait_for_cancel_by_someone_else(
        client_env(),
        tmp_path,
        lambda job: ascend.attach(job).cancel(),
        lambda job: wait_running(local, job),
    )
    assert stdout.splitlines()[-1] == expected_line(job_id, me())
    record = read_metadata(local, job_id)
    assert record["status"] == "cancelled"
    assert record["cancelled_by"]["pid"] == os.getpid()


def test_a_cancel_from_another_process_on_kubernetes(
    make_kube_emulator: Any, ascend_pm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from .test_e2e_kubernetes import NAMESPACE, USER, configure

    kube = make_kube_emulator()
    configure(monkeypatch, kube, f"file://{tmp_path}/store")
    env = client_env()

    def running(job_id: str) -> None:
        from kubernetes import client as kube_client

        core = kube_client.CoreV1Api(kube.api_client())

        def started() -> bool:
            pods = core.list_namespaced_pod(NAMESPACE).items
            return any(
                p.metadata.labels.get("job-name") == f"ascend-{job_id}"
                and p.status.phase == "Running"
                for p in pods
            )

        wait_until(started, 60, f"the pod of {job_id} to run")

    job_id, stdout = wait_for_cancel_by_someone_else(
        env, tmp_path, lambda job: ascend.attach(job).cancel(), running
    )
    assert stdout.splitlines()[-1] == expected_line(job_id, USER)


def test_the_first_verdict_stands(local: Path) -> None:
    """A waiter that sees a cancelled job end never overwrites the canceller's verdict."""
    from ascend import metadata
    from ascend.storage.local_files import LocalFileStorage

    from . import e2e_functions as f

    handle = ascend.ascend(timeout=60, stream_logs=False)(f.sleep_then_return).submit(30, 0)
    wait_running(local, handle.job_id)
    store = LocalFileStorage(str(job_dir(local, handle.job_id)))
    assert metadata.write_verdict(
        store, "", "cancelled", "Cancelled", "by the first", by={"user": "x"}, overwrite=False
    )
    assert not metadata.write_verdict(
        store, "", "failed", "Other", "by the second", overwrite=False
    )
    handle.cancel()  # keeps the first verdict, still stops the job
    with pytest.raises(ascend.JobCancelledError):
        handle.result(timeout=30)
    record = read_metadata(local, handle.job_id)
    assert record["failure"]["message"] == "by the first"
