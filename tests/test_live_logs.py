"""Live logs: the runner saves a job's output while it runs, as chunks appended under
``<job>/logs/`` (never rewritten), and ``ascend jobs logs --follow`` tails it from storage.

Real runs on the local provider (the runner subprocess, its files), the command line as a
subprocess, and the chunk protocol on every storage backend (S3 and Azure Blob with their local
stand-ins, skipped without them outside CI).
"""

from __future__ import annotations

import json
import os
import posixpath
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

from ascend import logstore, metadata
from ascend.decorator import ascend as remote
from ascend.errors import JobFailedError, StorageError
from ascend.job_ids import parse_job_id
from ascend.storage.base import CloudStorage
from ascend.storage.fsspec_storage import FsspecStorage
from ascend.storage.local_files import LocalFileStorage

from . import services

ROOT = Path(__file__).resolve().parents[1]


# -- helpers ------------------------------------------------------------------------------------


def prefix_of(job_id: str) -> str:
    return metadata.job_prefix(parse_job_id(job_id).user, job_id)


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def chunks_of(storage: CloudStorage, prefix: str) -> dict[int, bytes]:
    """Offset -> bytes of every chunk of the job's log (legacy logs.txt excluded)."""
    found = {}
    for chunk in logstore.list_chunks(storage, prefix):
        if not chunk.legacy:
            found[chunk.offset] = storage.read(chunk.path)
    return found


def assert_contiguous(chunks: dict[int, bytes], log: bytes) -> None:
    """Each chunk holds exactly the log's bytes from its offset on, and they leave no hole."""
    expected = 0
    for offset in sorted(chunks):
        assert offset == expected, f"chunk at {offset}, previous ended at {expected}"
        assert chunks[offset], f"empty chunk at {offset}"
        assert log[offset : offset + len(chunks[offset])] == chunks[offset]
        expected = offset + len(chunks[offset])
    assert expected == len(log)


def cli_env(storage: Path) -> dict[str, str]:
    """The environment of an ``ascend`` subprocess: this test's, plus the repository."""
    env = dict(os.environ)
    env["ASCEND_CLOUD_PROVIDER"] = "local"
    env["ASCEND_LOCAL_STORAGE_DIR"] = str(storage)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Lines:
    """Reads a subprocess's stream in a thread, each line with when it arrived."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: list[tuple[float, bytes]] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            self.lines.append((time.time(), line))

    def join(self) -> bytes:
        self._thread.join(10)
        return b"".join(line for _, line in self.lines)


def follow_process(job_id: str, storage: Path, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ascend", "jobs", "logs", "--follow", job_id],
        env=cli_env(storage),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


# -- functions that run as jobs -----------------------------------------------------------------


def tick(count: int, pause: float) -> int:
    for number in range(count):
        print(f"tick {number} printed at {time.time():.3f}", flush=True)
        time.sleep(pause)
    return count


def tick_then_sleep(seconds: float) -> str:
    print("started", flush=True)
    time.sleep(seconds)
    return "slept"


def refused_then_allowed() -> str:
    """Makes the log's chunks unwritable (a file where their directory goes), prints, waits
    until the runner records that, lets writes through again, prints more."""
    job = os.path.dirname(os.environ["ASCEND_RESULT_URI"].removeprefix("file://"))
    blocker = os.path.join(job, "logs")
    with open(blocker, "w"):
        pass
    for number in range(6):
        print(f"line {number}", flush=True)
        time.sleep(0.2)
    end = time.monotonic() + 20
    seen = ""
    while time.monotonic() < end and not seen:
        try:
            with open(os.path.join(job, "status.json")) as status:
                seen = json.load(status).get("logs_error", "")
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    os.unlink(blocker)
    for number in range(6, 12):
        print(f"line {number}", flush=True)
        time.sleep(0.2)
    time.sleep(2.5)  # a chunk is saved while the job runs: the error is cleared then
    with open(os.path.join(job, "status.json")) as status:
        cleared = "logs_error" not in json.load(status)
    return f"{seen}|cleared={cleared}"


def chatter(count: int, pause: float) -> int:
    for number in range(count):
        print(f"chatter {number}", flush=True)
        time.sleep(pause)
    return count


# -- 1. the log is saved while the job runs -----------------------------------------------------


@pytest.mark.timeout(90)
def test_a_running_job_s_output_is_saved_within_seconds_in_chunks_never_rewritten(
    local: Path,
) -> None:
    handle = remote(timeout=60, stream_logs=False)(tick).submit(12, 0.5)
    reader = LocalFileStorage(str(local))  # another storage object, as on another machine
    prefix = prefix_of(handle.job_id)
    first_seen: dict[int, bytes] = {}
    lag: dict[int, float] = {}
    seen_while_running = 0
    end = time.monotonic() + 60
    while time.monotonic() < end:
        running = not handle.done()
        now = time.time()
        for offset, data in chunks_of(reader, prefix).items():
            first_seen.setdefault(offset, data)
        text = logstore.read_logs(reader, prefix).decode()
        for line in text.splitlines():
            number, printed = int(line.split()[1]), float(line.split()[-1])
            if number not in lag:
                lag[number] = now - printed
                seen_while_running += running
        if not running and len(lag) == 12:
            break
        time.sleep(0.1)
    assert handle.result() == 12
    assert sorted(lag) == list(range(12))
    assert seen_while_running >= 6  # most lines were readable while the job still ran
    assert max(lag.values()) < 4.0, lag  # ~2 s behind at most; generous for a loaded machine
    log = logstore.read_logs(reader, prefix)
    chunks = chunks_of(reader, prefix)
    assert len(chunks) >= 3  # appended piece by piece, not written once at the end
    assert {offset: chunks[offset] for offset in first_seen} == first_seen  # never rewritten
    assert_contiguous(chunks, log)
    assert not reader.exists(f"{prefix}/logs.txt")
    assert handle.metadata()[logstore.SIZE_FIELD] == len(log)
    assert handle.logs() == log.decode()


# -- 2. ascend jobs logs --follow ---------------------------------------------------------------


@pytest.mark.timeout(90)
def test_follow_tails_a_running_job_and_exits_by_itself_when_it_ends(
    local: Path, tmp_path: Path
) -> None:
    handle = remote(timeout=60, stream_logs=False)(tick).submit(12, 0.5)
    reader = LocalFileStorage(str(local))
    wait_until(lambda: logstore.read_logs(reader, prefix_of(handle.job_id)), 30, "a first chunk")
    started = time.time()
    follower = follow_process(handle.job_id, local, tmp_path)
    assert follower.stdout is not None
    lines = Lines(follower.stdout)
    assert handle.result() == 12
    ended = time.time()
    code = follower.wait(30)
    output = lines.join()
    assert code == 0, follower.stderr.read() if follower.stderr else ""
    printed_later = [
        (arrived, line)
        for arrived, line in lines.lines
        if float(line.split()[-1]) > started + 0.5  # printed after the follower started
    ]
    assert printed_later
    assert any(arrived < ended for arrived, _ in printed_later)  # live, not at the end
    assert output == logstore.read_logs(reader, prefix_of(handle.job_id))
    assert output.decode() == handle.logs()
    assert [int(line.split()[1]) for line in output.decode().splitlines()] == list(range(12))


@pytest.mark.timeout(90)
def test_ctrl_c_stops_following_and_the_job_keeps_running(local: Path, tmp_path: Path) -> None:
    handle = remote(timeout=60, stream_logs=False)(tick_then_sleep).submit(30)
    try:
        follower = follow_process(handle.job_id, local, tmp_path)
        assert follower.stdout is not None and follower.stderr is not None
        lines = Lines(follower.stdout)
        wait_until(lambda: lines.lines, 30, "the follower to print the job's first line")
        follower.send_signal(signal.SIGINT)
        code = follower.wait(15)
        stderr = follower.stderr.read().decode()
        assert lines.join() == b"started\n"
        assert code == 130
        assert "Traceback" not in stderr
        assert len(stderr.strip().splitlines()) == 1
        assert f"stopped following job {handle.job_id}; the job keeps running" in stderr
        assert handle.status() == "running"
        assert not handle.done()
    finally:
        handle.cancel()


def test_follow_of_a_finished_job_prints_its_log_and_returns(local: Path, ascend_cli: Any) -> None:
    handle = remote(timeout=60, stream_logs=False)(chatter).submit(3, 0.0)
    assert handle.result() == 3
    start = time.monotonic()
    ran = ascend_cli("jobs", "logs", "-f", handle.job_id)
    assert ran.exit_code == 0
    assert ran.stdout == "chatter 0\nchatter 1\nchatter 2\n"
    assert time.monotonic() - start < 2.5  # logs_size says the log is complete: no grace wait


def test_follow_is_explained_in_help(ascend_cli: Any) -> None:
    text = ascend_cli("jobs", "logs", "--help").stdout
    assert "-f, --follow" in text
    assert "Ctrl-C stops following" in text
    assert "keeps running" in text
    assert "any machine" in text


# -- 3. chunks that cannot be written -----------------------------------------------------------


@pytest.mark.timeout(90)
def test_refused_chunk_writes_lose_no_bytes_and_the_error_is_recorded_then_cleared(
    local: Path,
) -> None:
    handle = remote(timeout=60, stream_logs=False)(refused_then_allowed).submit()
    seen, cleared = handle.result().split("|")
    assert "logs/000000000000.txt" in seen  # recorded, naming the chunk that failed
    assert cleared == "cleared=True"  # and cleared while the job ran, once a chunk got through
    record = handle.metadata()
    assert "logs_error" not in record
    storage = LocalFileStorage(str(local))
    log = logstore.read_logs(storage, prefix_of(handle.job_id))
    lines = [line for line in log.decode().splitlines() if line.startswith("line ")]
    assert lines == [f"line {number}" for number in range(12)]
    assert log.decode().count("ascend runner: could not save logs") == 1  # said once
    assert_contiguous(chunks_of(storage, prefix_of(handle.job_id)), log)
    assert record[logstore.SIZE_FIELD] == len(log)


def never_saves_its_logs() -> int:
    job = os.path.dirname(os.environ["ASCEND_RESULT_URI"].removeprefix("file://"))
    with open(os.path.join(job, "logs"), "w"):
        pass  # a file where the log's chunks go
    print("this line is not saved")
    return 7


def test_follow_warns_like_logs_when_the_job_could_not_save_its_logs(
    local: Path, ascend_cli: Any
) -> None:
    handle = remote(timeout=60, stream_logs=False)(never_saves_its_logs).submit()
    assert handle.result() == 7
    ran = ascend_cli("jobs", "logs", "--follow", handle.job_id)
    assert ran.exit_code == 0
    assert ran.stdout == ""
    warning = f"ascend: warning: job {handle.job_id} could not save its logs: "
    assert ran.stderr.count(warning) == 1
    assert "logs/000000000000.txt" in ran.stderr
    assert "what is shown may be incomplete" in ran.stderr


class RefusesWrites(CloudStorage):
    """A storage whose writes number ``refused`` (1-based) fail as a full disk would."""

    def __init__(self, inner: CloudStorage, refused: set[int]) -> None:
        self.inner = inner
        self.refused = refused
        self.writes = 0
        self.paths: list[str] = []

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        if mode == "wb" and path.startswith("logs/"):
            self.writes += 1
            self.paths.append(path)
            if self.writes in self.refused:
                raise StorageError(f"storage full: could not write {path}")
        return self.inner.open(path, mode)

    def get_filesystem(self) -> Any:
        return self.inner.get_filesystem()

    def storage_uri(self, path: str = "") -> str:
        return self.inner.storage_uri(path)

    def exists(self, path: str) -> bool:
        return self.inner.exists(path)

    def list(self, prefix: str = "") -> list[str]:
        return self.inner.list(prefix)

    def delete(self, path: str, recursive: bool = False) -> None:
        self.inner.delete(path, recursive)

    def ensure_container(self, name: str | None = None) -> None:
        self.inner.ensure_container(name)


class _Tee:
    size = 0


def test_the_runner_retries_a_refused_chunk_with_the_next_and_records_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ascend import runner

    job = tmp_path / "job"
    job.mkdir()
    monkeypatch.setenv("ASCEND_PACKAGE_URI", f"file://{job}/package.pkl")
    monkeypatch.setenv("ASCEND_RESULT_URI", f"file://{job}/result.pkl")
    run = runner.Runner(dict(os.environ))
    plain = run.store
    flaky = RefusesWrites(plain, refused={2, 3})
    run._log_writer.storage = flaky
    run.tee = _Tee()  # type: ignore[assignment]
    written = b""

    def emit(text: str) -> None:
        nonlocal written
        data = text.encode()
        with open(run.log_path, "ab") as log:
            log.write(data)
        written += data
        run.tee.size = len(written)  # type: ignore[union-attr]
        run.upload_logs()

    def status() -> dict[str, Any]:
        return (
            json.loads((job / "status.json").read_text()) if (job / "status.json").exists() else {}
        )

    emit("one\n")
    assert "logs_error" not in status()
    emit("two\n")  # refused
    assert status()["logs_error"] == "storage full: could not write logs/000000000004.txt"
    emit("three\n")  # the retry of "two" refused again
    assert status()["logs_error"].startswith("storage full")
    emit("four\n")  # "two" again, then "three\nfour\n"
    assert "logs_error" not in status()
    assert flaky.paths == [
        "logs/000000000000.txt",
        "logs/000000000004.txt",
        "logs/000000000004.txt",
        "logs/000000000004.txt",
        "logs/000000000008.txt",
    ]
    run.upload_logs()  # nothing new: nothing written
    assert flaky.writes == 5
    run.upload_logs(last=True)
    assert status()[logstore.SIZE_FIELD] == len(written)
    chunks = chunks_of(plain, "")
    assert chunks == {0: b"one\n", 4: b"two\n", 8: b"three\nfour\n"}
    assert logstore.read_logs(plain, "") == written


# -- 4. the backend's copy when the runner was killed -------------------------------------------


def chatter_with_a_copy(count: int, pause: float, copy: str) -> int:
    """Prints, and keeps a copy of what it printed, as a cluster keeps a pod's output."""
    for number in range(count):
        print(f"chatter {number}", flush=True)
        with open(copy, "a") as kept:
            kept.write(f"chatter {number}\n")
        time.sleep(pause)
    return count


@pytest.mark.timeout(90)
def test_a_killed_runner_s_unsaved_output_is_appended_from_the_backend_s_copy(
    local: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ascend.local.compute import LocalCompute

    copy = tmp_path / "backend-copy.txt"  # the local provider keeps none: this stands for it
    monkeypatch.setattr(LocalCompute, "logs", lambda self, handle: copy.read_text())
    call = remote(timeout=60, stream_logs=False)(chatter_with_a_copy)
    handle = call.submit(2000, 0.02, str(copy))
    storage = LocalFileStorage(str(local))
    prefix = prefix_of(handle.job_id)
    wait_until(lambda: len(chunks_of(storage, prefix)) >= 2, 30, "two chunks")
    before = chunks_of(storage, prefix)
    wait_until(lambda: len(chunks_of(storage, prefix)) > len(before), 10, "a third chunk")
    time.sleep(0.4)  # more output, not saved yet: the next chunk is a second away
    before = chunks_of(storage, prefix)
    os.killpg(handle.metadata()["runner"]["pid"], signal.SIGKILL)
    with pytest.raises(JobFailedError, match="SIGKILL"):
        handle.result(timeout=30)
    after = chunks_of(storage, prefix)
    assert {offset: after[offset] for offset in before} == before  # nothing rewritten
    appended = sorted(set(after) - set(before))
    assert len(appended) == 1  # the tail the runner could not save, as one more chunk
    assert appended[0] == sum(len(data) for data in before.values())
    everything = copy.read_text()
    assert everything.startswith("chatter 0\n") and everything.count("chatter") > 40
    assert handle.logs() == everything
    assert_contiguous(after, everything.encode())


def test_append_missing_lines_up_a_backend_copy_with_a_preamble(tmp_path: Path) -> None:
    storage = LocalFileStorage(str(tmp_path))
    storage.write(logstore.chunk_path("job", 0), b"a\nb\n")
    storage.write(logstore.chunk_path("job", 4), b"c\n")
    held = b"container starting\na\nb\nc\nd\ne\n"  # the cluster's copy starts earlier
    assert logstore.append_missing(storage, "job", held) == 4
    assert logstore.read_logs(storage, "job") == b"a\nb\nc\nd\ne\n"
    assert logstore.append_missing(storage, "job", held) == 0  # nothing more to save
    assert logstore.append_missing(storage, "job", b"") == 0


# -- 5. jobs from older runners: logs.txt -------------------------------------------------------


def test_a_legacy_job_with_only_logs_txt_still_reads(local: Path, ascend_cli: Any) -> None:
    handle = remote(timeout=60, stream_logs=False)(chatter).submit(2, 0.0)
    assert handle.result() == 2
    storage = LocalFileStorage(str(local))
    prefix = prefix_of(handle.job_id)
    # what an older runner left: one logs.txt, and a status without logs_size
    storage.delete(f"{prefix}/logs", recursive=True)
    storage.write(f"{prefix}/logs.txt", b"old line 1\nold line 2\n")
    status = json.loads(storage.read(f"{prefix}/status.json"))
    del status[logstore.SIZE_FIELD]
    storage.write(f"{prefix}/status.json", json.dumps(status).encode())

    assert handle.logs() == "old line 1\nold line 2\n"
    assert ascend_cli("jobs", "logs", handle.job_id).stdout == "old line 1\nold line 2\n"
    followed = ascend_cli("jobs", "logs", "--follow", handle.job_id)
    assert followed.exit_code == 0
    assert followed.stdout == "old line 1\nold line 2\n"
    # the backend's copy of such a job appends after logs.txt, which stays as it is
    logstore.append_missing(storage, prefix, b"old line 1\nold line 2\nlost line\n")
    assert storage.read(f"{prefix}/logs.txt") == b"old line 1\nold line 2\n"
    assert handle.logs() == "old line 1\nold line 2\nlost line\n"


# -- 6. what cannot be read is said, not skipped ------------------------------------------------


def test_a_missing_chunk_is_reported_where_its_bytes_were(tmp_path: Path) -> None:
    storage = LocalFileStorage(str(tmp_path))
    for offset, data in ((0, b"one\n"), (4, b"two\n"), (8, b"three\n")):
        storage.write(logstore.chunk_path("job", offset), data)
    storage.delete(logstore.chunk_path("job", 4))
    text = logstore.read_logs(storage, "job").decode()
    assert text == (
        "one\n\n[ascend: bytes 4-7 of the log are missing (no chunk holds them)]\nthree\n"
    )
    assert logstore.read_logs(storage, "job", start=8) == b"three\n"
    assert logstore.read_logs(storage, "job", start=2).startswith(b"e\n")


class RefusesReads(LocalFileStorage):
    """A storage that cannot read one object (a permission, a flaky network)."""

    def __init__(self, root: str, unreadable: str) -> None:
        super().__init__(root)
        self.unreadable = unreadable

    def read(self, path: str) -> bytes:
        if path == self.unreadable:
            raise StorageError(f"the storage refused to let this process read {path}")
        return super().read(path)


def test_an_unreadable_chunk_is_reported_and_the_rest_still_reads(tmp_path: Path) -> None:
    storage = RefusesReads(str(tmp_path), logstore.chunk_path("job", 4))
    storage.write(logstore.chunk_path("job", 0), b"one\n")
    storage.write(logstore.chunk_path("job", 4), b"two\n")
    storage.write(logstore.chunk_path("job", 8), b"three\n")
    text = logstore.read_logs(storage, "job").decode()
    assert text == (
        "one\n\n[ascend: bytes 4-7 of the log are missing (job/logs/000000000004.txt could not "
        "be read: StorageError: the storage refused to let this process read "
        "job/logs/000000000004.txt)]\nthree\n"
    )
    storage.unreadable = logstore.chunk_path("job", 8)  # the last one: its end is unknown
    text = logstore.read_logs(storage, "job").decode()
    assert text.startswith("one\ntwo\n\n[ascend: the log from byte 8 on is missing (")


def test_follow_waits_for_the_last_chunk_after_the_final_status(tmp_path: Path) -> None:
    """The runner records the final status, then writes its last chunk and logs_size: the
    follower reads until it has logs_size bytes, however late the chunk."""
    storage = LocalFileStorage(str(tmp_path))
    metadata.write_status(storage, "job", {"status": "running"})
    storage.write(logstore.chunk_path("job", 0), b"early\n")
    looks = []

    def sleep(seconds: float) -> None:
        looks.append(seconds)
        if len(looks) == 1:
            metadata.write_status(storage, "job", {"status": "succeeded"})
        if len(looks) == 3:
            storage.write(logstore.chunk_path("job", 6), b"late\n")
            metadata.write_status(storage, "job", {"status": "succeeded", "logs_size": 11})

    pieces = list(logstore.follow(storage, "job", sleep=sleep, clock=lambda: 0.0))
    assert pieces == [b"early\n", b"late\n"]
    assert len(looks) == 3


def test_follow_gives_up_on_a_last_chunk_that_never_comes(tmp_path: Path) -> None:
    storage = LocalFileStorage(str(tmp_path))
    storage.write(logstore.chunk_path("job", 0), b"early\n")
    metadata.write_status(storage, "job", {"status": "failed"})  # killed: no logs_size
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    pieces = list(logstore.follow(storage, "job", sleep=sleep, clock=lambda: now[0]))
    assert pieces == [b"early\n"]
    assert logstore.END_GRACE <= now[0] <= logstore.END_GRACE + 2 * logstore.FOLLOW_INTERVAL


# -- 7. retention counts and deletes the chunks -------------------------------------------------


def test_prune_counts_and_deletes_a_job_s_chunks(local: Path, ascend_cli: Any) -> None:
    from ascend.cli.jobs_cmd import _job_size

    handle = remote(timeout=60, stream_logs=False)(chatter).submit(5, 0.8)
    assert handle.result() == 5
    storage = LocalFileStorage(str(local))
    prefix = prefix_of(handle.job_id)
    chunks = chunks_of(storage, prefix)
    assert len(chunks) >= 2
    everything = sum(p.stat().st_size for p in (local / prefix).rglob("*") if p.is_file())
    assert _job_size(storage, prefix) == everything
    assert everything >= sum(map(len, chunks.values())) + len(storage.read(f"{prefix}/result.pkl"))
    ran = ascend_cli("jobs", "prune", "--older-than", "0s", "--yes")
    assert f"deleted {handle.job_id}" in ran.stdout
    assert not (local / prefix).exists()

    memory = FsspecStorage(f"memory://prune-{uuid.uuid4().hex}")
    for offset, data in chunks.items():
        memory.write(logstore.chunk_path(prefix, offset), data)
    memory.write(f"{prefix}/status.json", b"{}")
    assert _job_size(memory, prefix) == sum(map(len, chunks.values())) + 2


# -- 8. every storage backend -------------------------------------------------------------------


def _s3() -> tuple[str, dict[str, Any]]:
    endpoint = services.require("moto")
    pytest.importorskip("s3fs")
    options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    bucket = f"ascend-logs-{uuid.uuid4().hex[:12]}"
    FsspecStorage(f"s3://{bucket}", **options).ensure_container()
    return f"s3://{bucket}/root", options


def _azure() -> tuple[str, dict[str, Any]]:
    connection = services.require("azurite")
    pytest.importorskip("adlfs")
    container = f"logs-{uuid.uuid4().hex[:16]}"
    FsspecStorage(f"az://{container}", connection_string=connection).ensure_container()
    return f"az://{container}/root", {"connection_string": connection}


@pytest.fixture(params=["memory", "local-files", "fsspec-file", "s3", "azure"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """(url, options) of an empty store; open it as often as wanted: each is another client."""
    kind = request.param
    if kind == "memory":
        return f"memory://logs-{uuid.uuid4().hex}", {}
    if kind == "local-files":
        return f"file://{tmp_path}/plain", {}
    if kind == "fsspec-file":
        return f"file://{tmp_path}/fsspec", {"auto_mkdir": True}
    return _s3() if kind == "s3" else _azure()


def open_store(url: str, options: dict[str, Any]) -> CloudStorage:
    if url.startswith("file://") and not options:
        return LocalFileStorage(url)
    return FsspecStorage(url, **options)


def test_chunks_round_trip_on_every_backend(
    backend: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    url, options = backend
    writer_store, reader_store = open_store(url, options), open_store(url, options)
    prefix = "users/u/jobs/job-1"
    source = tmp_path / "output.log"
    source.write_bytes(b"")
    writer = logstore.ChunkWriter(writer_store, prefix, str(source))
    metadata.write_status(writer_store, prefix, {"status": "running"})
    followed: list[bytes] = []
    sleeps = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:  # the job prints and its runner saves, while the follower follows
            for text in (b"a\n", b"\xc3\xa9t\xc3\xa9\n", b"c" * 5000 + b"\n"):
                with open(source, "ab") as log:
                    log.write(text)
                assert writer.flush(source.stat().st_size)
            metadata.write_status(
                writer_store, prefix, {"status": "succeeded", "logs_size": writer.end}
            )

    assert logstore.read_logs(reader_store, prefix) == b""
    for piece in logstore.follow(reader_store, prefix, sleep=sleep, interval=0.0):
        followed.append(piece)
    log = source.read_bytes()
    assert b"".join(followed) == log
    assert logstore.read_logs(reader_store, prefix) == log
    assert logstore.read_logs(reader_store, prefix, start=2) == log[2:]
    names = [posixpath.basename(c.path) for c in logstore.list_chunks(reader_store, prefix)]
    assert names == ["000000000000.txt", "000000000002.txt", "000000000008.txt"]
    assert_contiguous(chunks_of(reader_store, prefix), log)
    assert not writer.flush(len(log))  # nothing new: nothing written
    # a re-run of the job (retries) appends after what is there
    again = logstore.ChunkWriter(open_store(url, options), prefix, str(source))
    assert again.flush(2)
    assert logstore.read_logs(reader_store, prefix) == log + b"a\n"


@pytest.fixture(params=["local-files", "s3", "azure"])
def runner_backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    if request.param == "local-files":
        return f"file://{tmp_path}/plain", {}
    return _s3() if request.param == "s3" else _azure()


@pytest.mark.timeout(90)
def test_a_runner_s_log_is_readable_while_it_runs_on_every_backend(
    runner_backend: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    from ascend import wire

    url, options = runner_backend
    store = open_store(url, options)
    prefix = "users/u/jobs/job-2"
    with store.open(f"{prefix}/package.pkl", "wb") as target:
        wire.dump_package(target, tick, (8, 0.5), {}, job_id="job-2")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASCEND_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["ASCEND_PACKAGE_URI"] = store.storage_uri(f"{prefix}/package.pkl")
    env["ASCEND_RESULT_URI"] = store.storage_uri(f"{prefix}/result.pkl")
    env["ASCEND_ALLOW_UNSIGNED"] = "1"  # a package made by hand; signing: tests/security
    if options:
        env["ASCEND_STORAGE_OPTIONS"] = json.dumps(options)
    process = subprocess.Popen(
        [sys.executable, "-m", "ascend.runner"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        reader = open_store(url, options)
        seen_live = wait_until(
            lambda: process.poll() is None and logstore.read_logs(reader, prefix), 30, "a chunk"
        )
        assert seen_live.startswith(b"tick 0 ")
        followed = b"".join(logstore.follow(reader, prefix, interval=0.2))
        assert process.wait(30) == 0, process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = logstore.read_logs(reader, prefix)
    assert followed == log
    assert [int(line.split()[1]) for line in log.decode().splitlines()] == list(range(8))
    assert_contiguous(chunks_of(reader, prefix), log)
    status = json.loads(reader.read(f"{prefix}/status.json"))  # no client: the runner's own
    assert status["status"] == "succeeded"
    assert status[logstore.SIZE_FIELD] == len(log)
