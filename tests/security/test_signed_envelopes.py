"""Packages and results are authenticated both ways: a co-tenant who can write the job storage
can no longer run code on the caller's machine or in the job.

Every attack leaves a payload that would create a marker file when unpickled
(``TouchOnUnpickle``); the marker never appearing is the proof that nothing was unpickled.
Jobs run on the local provider and on the Kubernetes emulator; the runner is also run by hand.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import ascend
from ascend import IntegrityError, wire
from ascend.signing import KeyRing, env_for

from .. import e2e_functions as f

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]


def result_path(storage: Path, job_id: str) -> Path:
    return next(storage.rglob(f"{job_id}/result.pkl"))


def evil_envelope(marker: Path, kind: str, key: Any = None, job_id: str | None = None) -> bytes:
    """An envelope whose payload creates ``marker`` when unpickled."""
    buffer = io.BytesIO()
    header = {} if job_id is None else {"job_id": job_id}
    with wire.envelope_writer(buffer, kind, key, **header) as pickler:
        pickler.dump(f.TouchOnUnpickle(str(marker)))
    return buffer.getvalue()


@pytest.fixture
def finished(local: Path) -> tuple[str, Path]:
    """A finished local job: (job id, its result file)."""
    handle = ascend.ascend(timeout=60, stream_logs=False)(f.add).submit(2, 3)
    assert handle.result(timeout=30) == 5
    return handle.job_id, result_path(local, handle.job_id)


# -- results --------------------------------------------------------------------------------


def test_a_forged_unsigned_result_is_refused_before_unpickling(
    finished: tuple[str, Path], tmp_path: Path, ascend_cli: Any
) -> None:
    job_id, path = finished
    marker = tmp_path / "CODE-EXECUTED-ON-CALLER"
    path.write_bytes(evil_envelope(marker, wire.KIND_RESULT, job_id=job_id))
    with pytest.raises(IntegrityError, match="is not signed") as caught:
        ascend.attach(job_id).result(timeout=10)
    assert f"the result of job {job_id}" in str(caught.value)
    cli = ascend_cli("jobs", "result", job_id)
    assert cli.exit_code == 1
    assert "is not signed" in cli.output
    assert not marker.exists()


def test_a_result_signed_with_someone_elses_key_is_refused(
    finished: tuple[str, Path], tmp_path: Path
) -> None:
    job_id, path = finished
    marker = tmp_path / "CODE-EXECUTED-ON-CALLER"
    attacker = KeyRing.new().current
    path.write_bytes(evil_envelope(marker, wire.KIND_RESULT, attacker, job_id))
    with pytest.raises(IntegrityError, match=f"signed with key '{attacker.key_id}'"):
        ascend.attach(job_id).result(timeout=10)
    assert not marker.exists()


def test_another_jobs_valid_result_is_refused(local: Path) -> None:
    remote = ascend.ascend(timeout=60, stream_logs=False)(f.add)
    first, second = remote.submit(1, 1), remote.submit(20, 22)
    assert (first.result(timeout=30), second.result(timeout=30)) == (2, 42)
    result_path(local, first.job_id).write_bytes(result_path(local, second.job_id).read_bytes())
    with pytest.raises(IntegrityError, match=f"belongs to another job \\({second.job_id}\\)"):
        ascend.attach(first.job_id).result(timeout=10)


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "re-hashed as unsigned"])
def test_a_damaged_or_re_signed_result_is_refused(finished: tuple[str, Path], damage: str) -> None:
    job_id, path = finished
    data = bytearray(path.read_bytes())
    if damage == "flipped byte":
        data[-wire.TRAILER_SIZE - 3] ^= 0x01
        expected = "failed its signature check"
    elif damage == "truncated":
        data = data[:-10]
        expected = "truncated"
    else:  # what an attacker without the key can do: recompute a plain SHA-256
        start = len(wire.MAGIC) + 4
        length = int.from_bytes(data[len(wire.MAGIC) : start], "big")
        header = json.loads(data[start : start + length])
        header["mac"] = wire.MAC_PLAIN
        header.pop("key_id")
        head = json.dumps(header).encode()
        payload = bytes(data[start + length : -wire.TRAILER_SIZE])
        data = bytearray(
            wire.MAGIC
            + len(head).to_bytes(4, "big")
            + head
            + payload
            + wire.TRAILER_MAGIC
            + hashlib.sha256(head + payload).digest()
            + len(payload).to_bytes(8, "big")
        )
        expected = "is not signed"
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=expected):
        ascend.attach(job_id).result(timeout=10)


def test_unsigned_results_pass_only_when_allowed_and_then_warn(
    finished: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, path = finished
    buffer = io.BytesIO()
    wire.dump_result(buffer, "unsigned but allowed", job_id=job_id)
    path.write_bytes(buffer.getvalue())
    monkeypatch.setenv("ASCEND_SECURITY_ALLOW_UNSIGNED", "true")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ascend.attach(job_id).result(timeout=10) == "unsigned but allowed"
    assert any("security.allow_unsigned is on" in str(w.message) for w in caught)


# -- packages (the runner run by hand, as a pod runs it) -----------------------------------


def run_runner(
    package: Path, keys: KeyRing | None, job_id: str
) -> tuple[subprocess.CompletedProcess[str], Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASCEND_")}
    env["PYTHONPATH"] = str(ROOT)
    env["ASCEND_PACKAGE_URI"] = f"file://{package}"
    env["ASCEND_RESULT_URI"] = f"file://{package.parent / 'result.pkl'}"
    env["ASCEND_JOB_ID"] = job_id
    if keys is not None:
        env.update(env_for(keys))
    process = subprocess.run(
        [sys.executable, "-m", "ascend.runner"],
        env=env,
        cwd=package.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    with open(package.parent / "result.pkl", "rb") as file:
        trust = wire.Trust(keys, job_id, allow_unsigned=keys is None)
        outcome = wire.load_outcome(file, wire.verify(file, "result", trust))
    return process, outcome


def evil_package(path: Path, marker: Path, key: Any, job_id: str | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as target:
        header = {} if job_id is None else {"job_id": job_id}
        wire.dump_package(target, f.write_marker, (str(marker),), {}, key=key, **header)


@pytest.mark.parametrize(
    ("signed_with", "for_job", "expected"),
    [
        ("nobody", "job-a", "is not signed"),
        ("attacker", "job-a", "is not one of your keys"),
        ("victim", "job-b", "belongs to another job (job-b)"),
    ],
    ids=["unsigned", "another key", "another job's"],
)
def test_the_runner_refuses_a_forged_package(
    tmp_path: Path, signed_with: str, for_job: str, expected: str
) -> None:
    victim = KeyRing.new()
    key = {"nobody": None, "attacker": KeyRing.new().current, "victim": victim.current}
    marker = tmp_path / "CODE-EXECUTED-IN-JOB"
    package = tmp_path / "job" / "package.pkl"
    evil_package(package, marker, key[signed_with], for_job)
    process, (kind, error) = run_runner(package, victim, "job-a")
    assert process.returncode == 3, process.stderr  # EXIT_INTEGRITY
    assert kind == "exception" and isinstance(error, IntegrityError)
    assert expected in error.message
    assert "the package of job job-a" in error.message
    assert not marker.exists()


def test_the_runner_without_a_key_refuses_a_signed_package(tmp_path: Path) -> None:
    marker = tmp_path / "CODE-EXECUTED-IN-JOB"
    package = tmp_path / "job" / "package.pkl"
    evil_package(package, marker, KeyRing.new().current, "job-a")
    process, (_, error) = run_runner(package, None, "job-a")
    assert process.returncode == 3
    assert "no signing key is available here" in error.message
    assert "ascend admin add-user" in (error.fix or "")
    assert not marker.exists()


def test_the_runner_runs_a_package_signed_with_a_previous_key(tmp_path: Path) -> None:
    old = KeyRing.new()
    package = tmp_path / "job" / "package.pkl"
    package.parent.mkdir()
    with open(package, "wb") as target:
        wire.dump_package(target, f.add, (2, 3), {}, key=old.current, job_id="job-a")
    process, outcome = run_runner(package, old.rotated(), "job-a")
    assert process.returncode == 0, process.stderr
    assert outcome == ("result", 5)


# -- keys ----------------------------------------------------------------------------------


def test_the_local_key_is_private_and_rotation_keeps_old_results(
    finished: tuple[str, Path], ascend_cli: Any
) -> None:
    from ascend.local import keys

    job_id, _ = finished
    path = keys.key_path()
    assert path.stat().st_mode & 0o777 == 0o600
    before = keys.load().current.key_id
    rotated = ascend_cli("admin", "rotate-key", "me")
    assert rotated.exit_code == 0, rotated.output
    assert f"previous keys kept: {before}" in rotated.output
    keys._cache.clear()  # another process would read the file afresh
    assert keys.load().current.key_id != before
    assert ascend.attach(job_id).result(timeout=10) == 5  # signed with the previous key


def test_a_readable_local_key_is_refused(local: Path) -> None:
    from ascend.errors import ConfigError
    from ascend.local import keys

    path = keys.key_path()
    keys.load()
    path.chmod(0o644)
    keys._cache.clear()
    with pytest.raises(ConfigError, match="may be read by other users") as caught:
        ascend.ascend(timeout=60, stream_logs=False)(f.add).submit(1, 2)
    assert "chmod 600" in (caught.value.fix or "")


# -- Kubernetes: the Secret ----------------------------------------------------------------


@pytest.fixture
def kube(make_kube_emulator: Any, ascend_pm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from ..test_e2e_kubernetes import configure

    emulator = make_kube_emulator()
    configure(monkeypatch, emulator, f"file://{tmp_path}/store")
    return emulator


def test_the_key_reaches_the_pod_only_by_reference_and_never_lands_anywhere(
    kube: Any, tmp_path: Path
) -> None:
    import base64

    from kubernetes import client

    from ..test_e2e_kubernetes import NAMESPACE

    secret = client.CoreV1Api(kube.api_client()).read_namespaced_secret(
        "ascend-signing-key", NAMESPACE
    )
    canary = base64.b64decode(secret.data["current"]).decode().split(":", 1)[1]
    handle = ascend.ascend(timeout=60)(f.print_everywhere).submit()
    assert handle.result(timeout=60) == "printed"
    job = client.BatchV1Api(kube.api_client()).read_namespaced_job(
        f"ascend-{handle.job_id}", NAMESPACE
    )
    manifest = json.dumps(kube.api_client().sanitize_for_serialization(job))
    assert canary not in manifest
    refs = [
        e.value_from.secret_key_ref
        for e in job.spec.template.spec.containers[0].env
        if e.value_from and e.value_from.secret_key_ref
    ]
    assert {(r.name, r.key) for r in refs} >= {("ascend-signing-key", "current")}
    for file in (tmp_path / "store").rglob("*"):
        if file.is_file():
            assert canary.encode() not in file.read_bytes(), file
    assert canary not in handle.logs()


def test_a_user_without_the_secret_is_told_what_to_run(
    make_kube_emulator: Any, ascend_pm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ..test_e2e_kubernetes import NAMESPACE, configure

    emulator = make_kube_emulator()
    configure(monkeypatch, emulator, f"file://{tmp_path}/store")
    from kubernetes import client

    client.CoreV1Api(emulator.api_client()).delete_namespaced_secret(
        "ascend-signing-key", NAMESPACE
    )
    with pytest.raises(ascend.ComputeError) as caught:
        ascend.ascend(timeout=60, stream_logs=False)(f.add).submit(1, 2)
    assert f"there is no signing key (Secret ascend-signing-key) in namespace {NAMESPACE}" in str(
        caught.value
    )
    assert caught.value.fix == "ask a cluster admin to run: ascend admin add-user alice"
    assert not list((tmp_path / "store").rglob("package.pkl"))  # refused before any upload


def test_rotate_key_on_kubernetes_keeps_old_results_verifiable(kube: Any, ascend_cli: Any) -> None:
    from ascend.kubernetes import keys

    handle = ascend.ascend(timeout=60, stream_logs=False)(f.add).submit(2, 3)
    assert handle.result(timeout=60) == 5
    rotated = ascend_cli("admin", "rotate-key", "alice")
    assert rotated.exit_code == 0, rotated.output
    assert "namespace ascend-users-alice: new signing key" in rotated.output
    # this process keeps the keys it read for a minute; another process reads them afresh
    keys.KEEP_SECONDS, kept = 0.0, keys.KEEP_SECONDS
    try:
        again = ascend.ascend(timeout=60, stream_logs=False)(f.add).submit(20, 22)
        assert again.result(timeout=60) == 42
        assert ascend.attach(handle.job_id).result(timeout=10) == 5
    finally:
        keys.KEEP_SECONDS = kept


def test_both_directions_are_signed_for_their_job_on_the_local_provider(
    finished: tuple[str, Path],
) -> None:
    from ascend.local import keys

    job_id, result = finished
    for path in (result.parent / "package.pkl", result):
        data = path.read_bytes()
        start = len(wire.MAGIC) + 4
        length = int.from_bytes(data[len(wire.MAGIC) : start], "big")
        header = json.loads(data[start : start + length])
        assert header["mac"] == "hmac-sha256"
        assert header["key_id"] == keys.load().current.key_id
        assert header["job_id"] == job_id


def test_a_package_swapped_between_submit_and_pod_start_never_runs(
    make_kube_emulator: Any, ascend_pm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The node is busy, so the victim's pod waits; meanwhile a co-tenant who can write the
    storage replaces its package (with one of their own, or with another job's valid one)."""
    from ..test_e2e_kubernetes import configure

    emulator = make_kube_emulator(cpu="1")
    configure(monkeypatch, emulator, f"file://{tmp_path}/store")
    store = tmp_path / "store"
    nap = ascend.ascend(timeout=60, cpu="1", stream_logs=False)(f.sleep_then_return)
    busy = nap.submit(4, "busy")
    deadline = time.monotonic() + 30
    while busy.status() != "running":  # the node's one CPU is taken: the victims must wait
        assert time.monotonic() < deadline
        time.sleep(0.05)
    victims = [nap.submit(0, "victim"), nap.submit(0, "victim")]
    marker = tmp_path / "CODE-EXECUTED-IN-JOB"
    forged = tmp_path / "forged.pkl"
    evil_package(forged, marker, KeyRing.new().current, victims[0].job_id)
    next(store.rglob(f"{victims[0].job_id}/package.pkl")).write_bytes(forged.read_bytes())
    next(store.rglob(f"{victims[1].job_id}/package.pkl")).write_bytes(
        next(store.rglob(f"{busy.job_id}/package.pkl")).read_bytes()
    )
    assert busy.result(timeout=60) == "busy"
    causes = ("is not one of your keys", "belongs to another job")
    for victim, cause in zip(victims, causes, strict=True):
        with pytest.raises(IntegrityError, match=cause) as caught:
            victim.result(timeout=60)
        assert f"the package of job {victim.job_id}" in caught.value.message
        assert victim.status() == "failed"
    assert not marker.exists()
