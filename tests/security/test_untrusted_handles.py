"""Handles read from storage are never trusted (issue 11).

A job's record (``metadata.json``, ``status.json``) is written to the job storage, and anyone
who can write the storage can change it. ``jobs cancel`` and ``attach(...).cancel()`` must
therefore never signal a process, nor delete a Kubernetes Job, because a record names it:

- local: only a process whose pid, start time *and* command line (``python -m ascend.runner``)
  all match is signalled; an unrelated process, a reused pid, a missing start time, or a
  system without ``/proc`` is refused with a reason;
- Kubernetes: the Job is the one derived from the job id (``ascend-<id>`` in the user's
  namespace), whatever ``compute.handle`` says, and it is deleted only when its labels say
  Ascend made it for that very job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ascend
from ascend import metadata
from ascend.errors import PermissionDeniedError
from ascend.job_ids import parse_job_id
from ascend.runner import process_start_ticks

USER = "alice"
HAS_PROC = os.path.isdir("/proc/self")
needs_proc = pytest.mark.skipif(not HAS_PROC, reason="reads /proc to tell processes apart")


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process in its own session (a process group of its own), the kind of
    target a crafted record points at."""
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def assert_alive(process: subprocess.Popen[bytes]) -> None:
    """Still running half a second later: no signal reached it (``sleep`` dies of SIGTERM)."""
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(0.5)


@pytest.fixture
def jobs(local: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The local provider, user alice, jobs in ``<tmp>/jobs`` (returned)."""
    monkeypatch.setenv("ASCEND_USERNAME", USER)
    return local


def job_directory(storage: Path, job_id: str) -> Path:
    return storage / "users" / parse_job_id(job_id).user / "jobs" / job_id


def crafted_local_job(storage: Path, pid: int, ticks: int | None) -> str:
    """A running job of alice whose records name ``pid`` (started at ``ticks``) as its runner,
    in both the client's ``compute.handle`` and the runner's own ``status.json``."""
    from tests.test_records import write_job

    job_id = write_job(storage, user=USER, runner_status="running")
    directory = job_directory(storage, job_id)
    record = json.loads((directory / metadata.METADATA_FILE).read_text())
    record["compute"] = {"backend": "local", "handle": f"{job_id}@{pid}:{ticks}"}
    (directory / metadata.METADATA_FILE).write_text(json.dumps(record))
    status = json.loads((directory / metadata.STATUS_FILE).read_text())
    status["runner"] = {"pid": pid, "start_ticks": ticks}
    (directory / metadata.STATUS_FILE).write_text(json.dumps(status))
    return job_id


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from ascend.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- local: a crafted record -------------------------------------------------------------------


def test_cli_cancel_does_not_signal_a_process_a_crafted_record_names(
    jobs: Path, stranger: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """The adversary's record: an unrelated process, no start time (which used to fall back
    to a liveness check and kill its process group)."""
    job_id = crafted_local_job(jobs, stranger.pid, None)
    code, _, err = cli(capsys, "jobs", "cancel", job_id)
    assert_alive(stranger)
    assert code == 1
    assert err.startswith("ascend: error: ")
    assert f"pid {stranger.pid}" in err and "not signalled" in err
    assert "no start time" in err
    assert "fix:" in err
    assert "Traceback" not in err
    assert not (job_directory(jobs, job_id) / metadata.VERDICT_FILE).exists()


def test_attach_cancel_does_not_signal_a_process_a_crafted_record_names(
    jobs: Path, stranger: subprocess.Popen[bytes]
) -> None:
    from ascend.local.compute import RunnerNotVerifiedWarning

    job_id = crafted_local_job(jobs, stranger.pid, None)
    with pytest.warns(RunnerNotVerifiedWarning, match=rf"pid {stranger.pid}.*not signalled"):
        handle = ascend.attach(job_id)
    handle.cancel()
    assert_alive(stranger)


@needs_proc
@pytest.mark.parametrize(
    ("shift", "why"),
    [
        pytest.param(1, "it started at", id="start-time-differs"),
        pytest.param(0, "its command line is", id="command-line-differs"),
    ],
)
def test_a_reused_pid_is_not_signalled(
    jobs: Path,
    stranger: subprocess.Popen[bytes],
    capsys: pytest.CaptureFixture[str],
    shift: int,
    why: str,
) -> None:
    """Same pid as the recorded runner, but another process: started later, or (same start
    time) not ``python -m ascend.runner``."""
    ticks = process_start_ticks(stranger.pid)
    assert ticks is not None
    job_id = crafted_local_job(jobs, stranger.pid, ticks + shift)
    code, _, err = cli(capsys, "jobs", "cancel", job_id)
    assert_alive(stranger)
    assert code == 1 and why in err and "Traceback" not in err

    with pytest.warns(Warning, match=why):
        handle = ascend.attach(job_id)
    handle.cancel()
    assert_alive(stranger)


@needs_proc
@pytest.mark.parametrize("shift", [None, 1, 0], ids=["no-start-time", "start-time", "cmdline"])
def test_the_local_compute_refuses_to_signal_what_it_cannot_verify(
    stranger: subprocess.Popen[bytes], shift: int | None
) -> None:
    from ascend.local.compute import LocalCompute

    ticks = process_start_ticks(stranger.pid)
    assert ticks is not None
    recorded = None if shift is None else ticks + shift
    handle = f"20260101-000000000-abcde--alice--default@{stranger.pid}:{recorded}"
    with pytest.raises(PermissionDeniedError) as caught:
        LocalCompute(warm_start=False).cancel(handle)
    assert f"pid {stranger.pid}" in caught.value.message
    assert caught.value.fix
    assert_alive(stranger)


def test_without_proc_a_cancel_refuses_rather_than_checking_liveness(
    stranger: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No /proc (macOS): a live pid proves nothing, so nothing is signalled."""
    from ascend.local import compute

    monkeypatch.setattr(compute, "PROC_ROOT", "/nonexistent-proc")
    ticks = process_start_ticks(stranger.pid)
    handle = f"20260101-000000000-abcde--alice--default@{stranger.pid}:{ticks}"
    with pytest.raises(PermissionDeniedError, match="no /proc"):
        compute.LocalCompute(warm_start=False).cancel(handle)
    assert_alive(stranger)


# -- Kubernetes: a crafted record --------------------------------------------------------------

NAMESPACE = f"ascend-users-{USER}"


@pytest.fixture
def kube(
    make_kube_emulator: Any, ascend_pm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Any:
    from tests.test_e2e_kubernetes import configure

    emulator = make_kube_emulator()
    configure(monkeypatch, emulator, f"file://{tmp_path}/store")
    return emulator


def foreign_job(kube: Any, name: str, labels: dict[str, str] | None = None) -> None:
    """A Job made directly through the API (not by Ascend), suspended so that nothing runs."""
    from kubernetes import client

    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "suspend": True,
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox:1.36", "command": ["true"]}],
                }
            },
        },
    }
    batch = client.BatchV1Api(kube.api_client())
    batch.create_namespaced_job(NAMESPACE, manifest)
    deadline = time.monotonic() + 10
    while batch.read_namespaced_job(name, NAMESPACE).status is None:  # as a real one has
        assert time.monotonic() < deadline, f"the emulator never gave Job {name} a status"
        time.sleep(0.02)


def job_exists(kube: Any, name: str) -> bool:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        client.BatchV1Api(kube.api_client()).read_namespaced_job(name, NAMESPACE)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def crafted_kube_job(handle: str | None = None) -> str:
    """A running job of alice in the configured storage; ``handle``: its ``compute.handle``."""
    from ascend.backend import get_backend
    from tests.test_records import write_job

    storage = get_backend().storage
    job_id = write_job(storage, user=USER, runner_status="running")
    prefix = metadata.job_prefix(USER, job_id)
    record = json.loads(storage.read(f"{prefix}/{metadata.METADATA_FILE}"))
    record["provider"] = "kubernetes"
    if handle is not None:
        record["compute"] = {"backend": "kubernetes", "handle": handle}
    metadata.write_record(storage, prefix, record)
    return job_id


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "handle", [f"{NAMESPACE}/nightly-etl", "nightly-etl", f"{NAMESPACE}/nightly-etl/x"]
)
def test_a_crafted_handle_never_deletes_a_job_ascend_did_not_make(
    kube: Any, capsys: pytest.CaptureFixture[str], handle: str
) -> None:
    foreign_job(kube, "nightly-etl")
    job_id = crafted_kube_job(handle)

    ascend.attach(job_id).cancel()  # the job's own Job does not exist: nothing to cancel
    assert job_exists(kube, "nightly-etl")

    code, out, err = cli(capsys, "jobs", "cancel", job_id)
    assert code == 0, err
    assert out.strip() == f"{job_id}: running -> running"
    assert job_exists(kube, "nightly-etl")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("labels", "why"),
    [
        pytest.param({}, "app.kubernetes.io/managed-by", id="no-labels"),
        pytest.param(
            {"app.kubernetes.io/managed-by": "helm", "ascend.io/job-id": "JOB"},
            "app.kubernetes.io/managed-by",
            id="managed-by-someone-else",
        ),
        pytest.param(
            {
                "app.kubernetes.io/managed-by": "ascend",
                "ascend.io/job-id": "20260101-000000000-abcde--alice--default",
            },
            "ascend.io/job-id",
            id="another-job-id",
        ),
    ],
)
def test_a_job_with_the_derived_name_but_not_our_labels_is_not_deleted(
    kube: Any, capsys: pytest.CaptureFixture[str], labels: dict[str, str], why: str
) -> None:
    from ascend.kubernetes.manifest import job_name

    job_id = crafted_kube_job()
    name = job_name(job_id)
    foreign_job(kube, name, {key: value.replace("JOB", job_id) for key, value in labels.items()})

    with pytest.raises(PermissionDeniedError) as caught:
        ascend.attach(job_id).cancel()
    assert f"{NAMESPACE}/{name}" in caught.value.message and why in caught.value.message
    assert caught.value.fix
    assert job_exists(kube, name)
    assert ascend.attach(job_id).status() == "running"  # no verdict left behind

    code, _, err = cli(capsys, "jobs", "cancel", job_id)
    assert code == 1
    assert f"{NAMESPACE}/{name}" in err and why in err and "Traceback" not in err
    assert job_exists(kube, name)


@pytest.mark.timeout(60)
def test_the_handle_is_derived_from_the_job_id(kube: Any) -> None:
    """``compute.handle`` counts only when it is exactly what the job id gives (a project
    namespace); anything else is replaced by the user's namespace and the id's Job name."""
    from ascend.backend import get_backend
    from ascend.kubernetes.manifest import job_name

    compute = get_backend().compute
    job_id = "20260101-000000000-abcde--alice--fraud-detect"
    name = job_name(job_id)
    derived = f"{NAMESPACE}/{name}"
    project = f"ascend-projects-fraud-detect/{name}"
    for recorded, expected in (
        (None, derived),
        (derived, derived),
        (project, project),
        (f"{NAMESPACE}/nightly-etl", derived),
        (f"kube-system/{name}", derived),
        (f"ascend-projects-other/{name}", derived),
    ):
        record = {"compute": {"handle": recorded}} if recorded else {}
        assert compute.handle_for(job_id, record) == expected, recorded
