"""End to end on the local provider: every call goes through the real runner subprocess.

Nothing is mocked: ``@ascend`` packages the call, stores it under ``ASCEND_LOCAL_STORAGE_DIR``,
starts ``python -m ascend.runner`` and reads the result (or the exception) back. The functions
that run remotely live in ``tests/e2e_functions.py``, a local module, so they travel by value.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import ascend
from ascend import wire
from ascend.decorator import ascend as remote
from ascend.errors import (
    AscendError,
    ConfigError,
    ImageBuildError,
    IntegrityError,
    JobCancelledError,
    JobTimeoutError,
    OutOfMemoryError,
    RemoteError,
    SerializationError,
    VersionMismatchError,
)
from ascend.job_ids import new_job_id, parse_job_id
from ascend.runner import EXIT_INTEGRITY, EXIT_OK, EXIT_VERSION
from tests import e2e_functions as f

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_RUNNER = {
    "yaml",
    "pluggy",
    "click",
    "rich",
    "kubernetes",
    "docker",
    "platformdirs",
    "packaging",
}


# -- fixtures and helpers ------------------------------------------------------------------------


def job_dir(storage: Path, job_id: str) -> Path:
    return storage / "users" / parse_job_id(job_id).user / "jobs" / job_id


def read_metadata(storage: Path, job_id: str) -> dict[str, Any]:
    return record_in(job_dir(storage, job_id))


def record_in(directory: Path) -> dict[str, Any]:
    """The job's merged record (client, runner and verdict files), or the runner's alone when
    the runner was started by hand without a client record."""
    from ascend import metadata
    from ascend.storage.local_files import LocalFileStorage

    if not (directory / "metadata.json").exists():
        return json.loads((directory / "status.json").read_text())
    return metadata.read(LocalFileStorage(str(directory)), "")


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has exited: it only waits to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except OSError:  # pragma: no cover - no /proc
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in ("Z", "X")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def wait_gone(pid: int, timeout: float = 5.0) -> None:
    wait_until(lambda: not alive(pid), timeout, f"process {pid} to end")


def wait_running(storage: Path, job_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """Wait until the runner has recorded itself (status running, runner.pid)."""

    def started() -> bool:
        try:
            record = read_metadata(storage, job_id)
        except (FileNotFoundError, ValueError):
            return False
        return record.get("status") == "running" and "pid" in (record.get("runner") or {})

    wait_until(started, timeout, f"job {job_id} to be running")
    return read_metadata(storage, job_id)


def client_env(storage: Path, **extra: str) -> dict[str, str]:
    """The environment of a local-provider client subprocess keeping its jobs in ``storage``."""
    from tests import clients

    return clients.client_env(
        ASCEND_CLOUD_PROVIDER="local", ASCEND_LOCAL_STORAGE_DIR=str(storage), **extra
    )


def write_client(tmp_path: Path, body: str, name: str = "client.py") -> Path:
    script = tmp_path / name
    script.write_text(
        "from ascend import ascend\nfrom tests import e2e_functions as f\n\n"
        + textwrap.dedent(body)
    )
    return script


def start_client(script: Path, storage: Path, cwd: Path) -> subprocess.Popen[str]:
    """Run a client script written by :func:`write_client`, with pipes for its output."""
    return subprocess.Popen(
        [sys.executable, str(script)],
        env=client_env(storage),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def runner_env(package: Path, result: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASCEND_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["ASCEND_PACKAGE_URI"] = f"file://{package}"
    env["ASCEND_RESULT_URI"] = f"file://{result}"
    env["ASCEND_ALLOW_UNSIGNED"] = "1"  # packages made by hand here; signing: tests/security
    return env


def run_runner(package: Path, result: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ascend.runner"],
        env=runner_env(package, result),
        cwd=package.parent,
        capture_output=True,
        text=True,
        timeout=30,
    )


def read_outcome(path: Path) -> tuple[str, Any]:
    with open(path, "rb") as file:
        return wire.load_outcome(file, wire.verify(file, "test result"))


def line_of(fn: Callable[..., Any], marker: str) -> int:
    lines, start = inspect.getsourcelines(fn)
    for offset, text in enumerate(lines):
        if marker in text:
            return start + offset
    raise AssertionError(f"{marker!r} not in {fn.__name__}")


# -- 1. results of many types -------------------------------------------------------------------


NESTED = {
    "list": [1, 2.5, "three", None, True],
    "tuple": (1, (2, (3,))),
    "set": {1, 2, 3},
    "frozenset": frozenset({"a", "b"}),
    (1, "key"): {"inner": [{"deep": b"\x00\xff"}]},
}


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (42, int),
        ("héllo wörld ✓", str),
        (None, type(None)),
        (NESTED, dict),
        ((1, [2, {3: (4,)}]), tuple),
        ({1, 2, 3}, set),
    ],
    ids=["int", "str", "None", "nested-dict", "nested-tuple", "set"],
)
def test_values_round_trip_exactly(local: Path, value: Any, kind: type) -> None:
    result = remote(f.identity)(value)
    assert type(result) is kind
    assert result == value
    if kind is dict:
        assert type(result["tuple"]) is tuple
        assert type(result["set"]) is set
        assert type(result["frozenset"]) is frozenset
        assert result[(1, "key")]["inner"][0]["deep"] == b"\x00\xff"


def test_none_result_and_one_megabyte_of_bytes(local: Path) -> None:
    assert remote(f.return_none)() is None
    data = remote(f.megabyte)()
    assert type(data) is bytes
    assert len(data) == 1024 * 1024
    assert data == bytes(range(256)) * 4096


def test_dataclass_instance_comes_back_as_the_same_class(local: Path) -> None:
    point = remote(f.make_point)(3, 4)
    assert type(point) is f.Point
    assert point == f.Point(3, 4, tags=["3", "4"])
    assert point.norm2() == 25


def test_closure_returned_by_the_function_can_be_called_here(local: Path) -> None:
    adder = remote(f.make_adder)(2)
    assert callable(adder)
    assert adder.__name__ == "adder"
    assert adder(1) == 1 + 20 + 2


def test_lambda_argument_runs_remotely(local: Path) -> None:
    factor = 3
    assert remote(f.apply)(lambda v: v * factor + 1, 7) == 22


def test_class_instances_with_methods_travel_both_ways(local: Path) -> None:
    assert remote(f.use_counter)(f.Counter(1), 3) == (1 + 3) * 2
    counter = remote(f.make_counter)(5)
    assert type(counter) is f.Counter
    assert counter.value == 7
    assert counter.increment(3).doubled() == 20


def test_numpy_arrays_round_trip(local: Path) -> None:
    np = pytest.importorskip("numpy")
    array = np.arange(12, dtype=np.int32).reshape(3, 4)
    result = remote(f.identity)(array)
    assert isinstance(result, np.ndarray)
    assert result.dtype == np.int32
    assert result.shape == (3, 4)
    assert np.array_equal(result, array)


def test_twenty_megabyte_argument_arrives_whole(local: Path) -> None:
    data = os.urandom(1024) * (20 * 1024)
    handle = remote(f.length_of).submit(data)
    assert handle.result(timeout=30) == 20 * 1024 * 1024
    package = job_dir(local, handle.job_id) / "package.pkl"
    assert package.stat().st_size > 20 * 1024 * 1024


# -- 2. exceptions -------------------------------------------------------------------------------


def test_builtin_exception_is_raised_here_with_the_remote_traceback(local: Path) -> None:
    line = line_of(f.raise_value_error, "RAISE-VALUE-ERROR")
    try:
        remote(f.raise_value_error)(3)
    except ValueError as error:
        assert type(error) is ValueError
        assert str(error) == "bad value 3"
        notes = getattr(error, "__notes__", [])
        assert len(notes) == 1
        assert notes[0].startswith("Remote traceback (from the Ascend job):\nTraceback")
        assert f"line {line}, in raise_value_error" in notes[0]
        assert notes[0].rstrip().endswith("ValueError: bad value 3")
        assert "ascend/runner.py" not in notes[0]  # the runner's own frames are dropped
    else:
        pytest.fail("ValueError was not raised")


def test_key_error_keeps_its_type_and_key(local: Path) -> None:
    with pytest.raises(KeyError) as caught:
        remote(f.raise_key_error)()
    assert type(caught.value) is KeyError
    assert caught.value.args == ("missing-key",)
    assert "in raise_key_error" in caught.value.__notes__[0]


def test_user_defined_exception_is_caught_by_its_own_class(local: Path) -> None:
    try:
        remote(f.raise_custom_error)()
    except f.CustomError as error:
        assert type(error) is f.CustomError
        assert error.args == ("custom failure", 17)
        assert error.code == 17
        assert "in raise_custom_error" in error.__notes__[0]
    else:
        pytest.fail("CustomError was not raised")


def test_an_exception_with_its_own_init_comes_back_as_itself(local: Path) -> None:
    handle = remote(f.raise_two_arg_error).submit()
    with pytest.raises(f.TwoArgError) as caught:
        handle.result(timeout=30)
    assert (caught.value.left, caught.value.right) == ("left", "right")
    assert str(caught.value) == "left and right"
    record = read_metadata(local, handle.job_id)
    assert record["status"] == "failed"
    assert record["exit_code"] == 1
    assert record["failure"] == {
        "reason": "Exception",
        "type": "TwoArgError",
        "message": "TwoArgError: left and right",
    }


def test_exception_that_cannot_be_rebuilt_becomes_remote_error(local: Path) -> None:
    from tests.traceback_cases import failures

    handle = remote(failures.raise_strict_new).submit()
    with pytest.raises(RemoteError) as caught:
        handle.result(timeout=30)
    error = caught.value
    assert isinstance(error, AscendError)
    assert error.type_name == "tests.traceback_cases.failures.StrictNewError"
    assert error.remote_message == "3 rows in orders"
    assert "in raise_strict_new" in error.remote_traceback
    assert error.remote_traceback.rstrip().endswith(
        "tests.traceback_cases.failures.StrictNewError: 3 rows in orders"
    )
    assert str(error).startswith(
        "tests.traceback_cases.failures.StrictNewError: 3 rows in orders\n"
    )


def test_exception_holding_a_lock_becomes_remote_error(local: Path) -> None:
    with pytest.raises(RemoteError) as caught:
        remote(f.raise_lock_holding_error)()
    assert caught.value.type_name == "tests.e2e_functions.LockHoldingError"
    assert caught.value.remote_message == "holds a lock"
    assert "in raise_lock_holding_error" in caught.value.remote_traceback


@pytest.mark.parametrize("code", [3, 0])
def test_system_exit_in_the_function_does_not_exit_the_caller(local: Path, code: int) -> None:
    # sys.exit() inside the function must not exit the caller: it comes back as a RemoteError
    # saying what happened, and the job is recorded as failed.
    handle = remote(f.exit_with).submit(code)
    with pytest.raises(RemoteError) as caught:
        handle.result(timeout=30)
    assert not isinstance(caught.value, SystemExit)
    assert caught.value.type_name == "SystemExit"
    assert f"sys.exit({code})" in caught.value.remote_message
    assert "exit_with" in caught.value.remote_traceback
    assert "ascend/runner.py" not in caught.value.remote_traceback
    record = read_metadata(local, handle.job_id)
    assert record["status"] == "failed"
    assert "finished_at" in record


# -- 3. unpicklable arguments are refused before any upload -------------------------------------


class _ReduceTypeError:
    def __reduce__(self) -> Any:
        raise TypeError("refuses to be pickled")


class _ReduceRuntimeError:
    def __reduce__(self) -> Any:
        raise RuntimeError("refuses to be pickled")


def _generator() -> Any:
    return (i for i in range(3))


@pytest.mark.parametrize(
    ("make", "what", "type_name"),
    [
        (_generator, "a generator", "generator"),
        (threading.Lock, "a lock", "lock"),
        (lambda: [1, threading.Lock()], "a lock inside a list", "list"),
        (socket.socket, "a socket", "socket"),
    ],
    ids=["generator", "lock", "lock-in-list", "socket"],
)
def test_unsendable_argument_is_refused_by_name_before_upload(
    local: Path, make: Callable[[], Any], what: str, type_name: str
) -> None:
    value = make()
    try:
        with pytest.raises(SerializationError) as caught:
            remote(f.identity)(value)
    finally:
        if isinstance(value, socket.socket):
            value.close()
    assert isinstance(caught.value, TypeError)
    assert caught.value.message == (
        f"argument 'value' (position 0) of 'identity' cannot be sent to the job: it is {what} "
        f"({type_name}), which cannot be pickled"
    )
    assert files_under(local) == []


def test_open_file_keyword_argument_is_refused_by_name(local: Path, tmp_path: Path) -> None:
    with (
        open(tmp_path / "data.txt", "w") as handle,
        pytest.raises(SerializationError) as caught,
    ):
        remote(f.add)(1, b=handle)
    assert "argument 'b' of 'add' cannot be sent to the job: it is an open file or stream" in (
        caught.value.message
    )
    assert caught.value.fix == "pass the path (or the bytes) instead"
    assert files_under(local) == []


def test_argument_whose_reduce_raises_type_error_is_named(local: Path) -> None:
    with pytest.raises(SerializationError) as caught:
        remote(f.add)(1, _ReduceTypeError())
    assert caught.value.message == (
        "argument 'b' (position 1) cannot be pickled: TypeError: refuses to be pickled"
    )
    assert not [p for p in local.rglob("package.pkl")]
    assert not [p for p in local.rglob("metadata.json")]
    assert files_under(local) == []


def test_argument_whose_reduce_raises_any_error_is_named(local: Path) -> None:
    with pytest.raises(SerializationError) as caught:
        remote(f.add)(1, _ReduceRuntimeError())
    assert "argument 'b' (position 1)" in caught.value.message


def test_argument_whose_reduce_raises_any_error_uploads_nothing(local: Path) -> None:
    with pytest.raises(Exception, match="refuses to be pickled"):
        remote(f.add)(1, _ReduceRuntimeError())
    assert files_under(local) == []


# -- 4. corrupted packages and version mismatches (the runner run directly) ----------------------


def _good_package(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    package = directory / "package.pkl"
    with open(package, "wb") as target:
        wire.dump_package(target, f.add, (2, 3), {}, job_id="test")
    return package


def _assert_refused(
    directory: Path, process: subprocess.CompletedProcess[str], code: int, kind: type, text: str
) -> Any:
    assert process.returncode == code, process.stderr
    kind_name, value = read_outcome(directory / "result.pkl")
    assert kind_name == "exception"
    assert type(value) is kind
    assert text in value.message
    record = record_in(directory)
    assert record["status"] == "failed"
    assert record["exit_code"] == code
    return value


def test_runner_runs_an_intact_package(tmp_path: Path) -> None:
    package = _good_package(tmp_path / "job")
    process = run_runner(package, tmp_path / "job" / "result.pkl")
    assert process.returncode == EXIT_OK, process.stderr
    assert read_outcome(tmp_path / "job" / "result.pkl") == ("result", 5)


def test_runner_refuses_a_package_with_a_flipped_byte(tmp_path: Path) -> None:
    package = _good_package(tmp_path / "job")
    data = bytearray(package.read_bytes())
    header_length = int.from_bytes(data[len(wire.MAGIC) : len(wire.MAGIC) + 4], "big")
    payload_start = len(wire.MAGIC) + 4 + header_length
    middle = (payload_start + len(data) - wire.TRAILER_SIZE) // 2
    data[middle] ^= 0x01
    package.write_bytes(bytes(data))
    process = run_runner(package, tmp_path / "job" / "result.pkl")
    error = _assert_refused(
        tmp_path / "job", process, EXIT_INTEGRITY, IntegrityError, "failed its SHA-256 check"
    )
    assert error.message == (
        "the job package failed its SHA-256 check: the bytes were changed after they were written"
    )
    record = record_in(tmp_path / "job")
    assert record["failure"]["reason"] == "IntegrityError"


def test_runner_refuses_a_truncated_package(tmp_path: Path) -> None:
    package = _good_package(tmp_path / "job")
    package.write_bytes(package.read_bytes()[:-20])
    process = run_runner(package, tmp_path / "job" / "result.pkl")
    _assert_refused(tmp_path / "job", process, EXIT_INTEGRITY, IntegrityError, "truncated")


def test_runner_refuses_a_file_that_is_not_an_envelope(tmp_path: Path) -> None:
    (tmp_path / "job").mkdir()
    package = tmp_path / "job" / "package.pkl"
    package.write_bytes(pickle.dumps(("not", "an", "envelope")) * 10)
    process = run_runner(package, tmp_path / "job" / "result.pkl")
    _assert_refused(
        tmp_path / "job", process, EXIT_INTEGRITY, IntegrityError, "is not an Ascend envelope"
    )


def _hand_made_package(path: Path, python: str, ran: Path, unpickled: Path) -> None:
    """An envelope built byte by byte from the documented layout."""
    header = json.dumps(
        {
            "format": wire.FORMAT_VERSION,
            "kind": wire.KIND_PACKAGE,
            "ascend": ascend.__version__,
            "python": python,
            "cloudpickle": cloudpickle.__version__,
        }
    ).encode()
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.dump(f.write_marker)  # by reference: tests.e2e_functions is importable there
    pickler.dump((2, []))
    pickler.dump(str(ran))
    pickler.dump(f.TouchOnUnpickle(str(unpickled)))
    payload = buffer.getvalue()
    digest = hashlib.sha256(header + payload).digest()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        wire.MAGIC
        + len(header).to_bytes(4, "big")
        + header
        + payload
        + wire.TRAILER_MAGIC
        + digest
        + len(payload).to_bytes(8, "big")
    )


def test_hand_made_envelope_with_matching_versions_runs(tmp_path: Path) -> None:
    ran, unpickled = tmp_path / "ran", tmp_path / "unpickled"
    package = tmp_path / "job" / "package.pkl"
    _hand_made_package(package, wire.python_version(), ran, unpickled)
    process = run_runner(package, tmp_path / "job" / "result.pkl")
    assert process.returncode == EXIT_OK, process.stderr
    assert read_outcome(tmp_path / "job" / "result.pkl") == ("result", "written")
    assert ran.read_text() == "ran"
    assert unpickled.exists()


def test_runner_refuses_a_package_from_another_python_before_unpickling(tmp_path: Path) -> None:
    ran, unpickled = tmp_path / "ran", tmp_path / "unpickled"
    package = tmp_path / "job" / "package.pkl"
    _hand_made_package(package, "3.0.0", ran, unpickled)
    process = run_runner(package, tmp_path / "job" / "result.pkl")
    error = _assert_refused(
        tmp_path / "job", process, EXIT_VERSION, VersionMismatchError, "cannot be unpickled here"
    )
    assert f"Python 3.0.0 wrote it, this is Python {wire.python_version()}" in error.message
    assert not unpickled.exists()
    assert not ran.exists()
    record = record_in(tmp_path / "job")
    assert record["failure"]["reason"] == "VersionMismatch"


# -- 5. the runner imports only the standard library, ascend, cloudpickle and fsspec ------------


def test_runner_imports_nothing_beyond_stdlib_cloudpickle_and_fsspec(local: Path) -> None:
    startup = subprocess.run(
        [sys.executable, "-c", "import sys; print('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        env=client_env(local),
    ).stdout.split()
    modules = remote(f.loaded_modules)()
    tops = {name.split(".")[0] for name in modules}
    assert "ascend" in tops
    assert "cloudpickle" in tops
    allowed = (
        set(sys.stdlib_module_names)
        | set(sys.builtin_module_names)
        | {"ascend", "cloudpickle", "fsspec"}
        | {name.split(".")[0] for name in startup}  # what site puts in every interpreter
    )
    assert sorted(tops - allowed) == []
    assert sorted(tops & FORBIDDEN_IN_RUNNER) == []


# -- 6. timeout ----------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_timeout_stops_the_job_and_everything_it_started(local: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    handle = remote(timeout=2)(f.sleep_with_child).submit(30, str(pid_file))
    start = time.monotonic()
    with pytest.raises(JobTimeoutError) as caught:
        handle.result()
    elapsed = time.monotonic() - start
    assert elapsed < 10
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.job_id == handle.job_id
    assert caught.value.message == (
        f"job {handle.job_id} ran past its timeout of 2 s and was stopped"
    )
    record = read_metadata(local, handle.job_id)
    assert record["status"] == "failed"
    assert record["failure"]["reason"] == "DeadlineExceeded"
    assert record["failure"]["message"] == "the job ran longer than its timeout of 2 s"
    assert "timeout of 2 s reached" in handle.logs()
    wait_gone(record["runner"]["pid"])
    wait_gone(int(pid_file.read_text()))


# -- 7. memory -----------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_exceeding_the_memory_limit_is_out_of_memory(local: Path) -> None:
    handle = remote(memory="300Mi")(f.allocate_mib).submit(1024)
    with pytest.raises(OutOfMemoryError) as caught:
        handle.result(timeout=30)
    assert isinstance(caught.value, MemoryError)
    assert "300Mi" in caught.value.message
    assert caught.value.message == (
        "the job ran out of memory: it exceeded its memory limit of 300Mi"
    )
    assert caught.value.job_id == handle.job_id
    record = read_metadata(local, handle.job_id)
    assert record["status"] == "failed"
    assert record["exit_code"] == 6
    assert record["failure"] == {"reason": "OutOfMemory", "limit": "300Mi"}


def test_allocation_within_the_memory_limit_succeeds(local: Path) -> None:
    assert remote(memory="1Gi")(f.allocate_mib)(50) == 50


# -- 8. cancellation -----------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_cancel_stops_the_job_and_records_it(local: Path) -> None:
    handle = remote(f.sleep_then_return).submit(30, "never")
    record = wait_running(local, handle.job_id)
    assert not handle.done()
    handle.cancel()
    start = time.monotonic()
    with pytest.raises(JobCancelledError) as caught:
        handle.result(timeout=20)
    assert time.monotonic() - start < 10
    assert caught.value.job_id == handle.job_id
    assert caught.value.message == f"job {handle.job_id} was cancelled"
    assert handle.status() == "cancelled"
    assert handle.done()
    final = read_metadata(local, handle.job_id)
    assert final["failure"]["reason"] == "Cancelled"
    assert "finished_at" in final
    wait_gone(record["runner"]["pid"])
    handle.cancel()  # cancelling a finished job does nothing
    assert handle.status() == "cancelled"


@pytest.mark.timeout(60)
def test_ctrl_c_in_the_client_cancels_the_job(local: Path, tmp_path: Path) -> None:
    script = write_client(
        tmp_path,
        """
        handle = ascend(f.sleep_then_return).submit(30, "never")
        print(handle.job_id, flush=True)
        handle.result()
        """,
    )
    client = start_client(script, local, tmp_path)
    try:
        assert client.stdout is not None
        job_id = client.stdout.readline().strip()
        record = wait_running(local, job_id)
        client.send_signal(signal.SIGINT)
        _, stderr = client.communicate(timeout=20)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode != 0
    assert "KeyboardInterrupt" in stderr
    final = read_metadata(local, job_id)
    assert final["status"] == "cancelled"
    wait_gone(record["runner"]["pid"])


# -- 9. live output ------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_output_arrives_live_and_is_saved(local: Path, tmp_path: Path) -> None:
    script = write_client(
        tmp_path,
        """
        handle = ascend(f.two_lines_with_pause).submit()
        result = handle.result()
        print("RESULT", result, flush=True)
        print("LOGS", repr(handle.logs()), flush=True)
        """,
    )
    client = start_client(script, local, tmp_path)
    arrivals: list[tuple[float, str]] = []
    try:
        assert client.stdout is not None
        for line in client.stdout:
            arrivals.append((time.monotonic(), line.rstrip("\n")))
        client.wait(timeout=20)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, client.stderr.read() if client.stderr else ""
    lines = [text for _, text in arrivals]
    assert lines[:3] == ["line 1", "line 2", "RESULT done"]
    when = {text: at for at, text in arrivals}
    assert when["line 2"] - when["line 1"] >= 0.5
    assert when["RESULT done"] - when["line 1"] >= 0.5
    assert lines[3] == "LOGS " + repr("line 1\nline 2\n")


def test_stderr_and_child_output_reach_the_client_and_the_logs(local: Path, tmp_path: Path) -> None:
    script = write_client(
        tmp_path,
        """
        handle = ascend(f.print_everywhere).submit()
        print("RESULT", handle.result(), flush=True)
        print("JOB", handle.job_id, flush=True)
        """,
    )
    process = subprocess.run(
        [sys.executable, str(script)],
        env=client_env(local),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert process.returncode == 0, process.stderr
    out_lines = process.stdout.splitlines()
    assert "out from function" in out_lines
    assert "from child" in out_lines
    assert "RESULT printed" in out_lines
    assert "err from function" in process.stderr.splitlines()
    assert "err from function" not in out_lines
    job_id = out_lines[-1].removeprefix("JOB ")
    logs = ascend.attach(job_id).logs()
    for text in ("out from function", "err from function", "from child\n"):
        assert text in logs


def test_logs_of_a_handle_hold_everything_printed(local: Path) -> None:
    handle = remote(f.print_everywhere).submit()
    assert handle.result(timeout=30) == "printed"
    logs = handle.logs()
    for text in ("out from function", "err from function", "from child\n"):
        assert text in logs


def test_logs_keep_lines_whole_when_stdout_and_stderr_alternate(local: Path) -> None:
    handle = remote(stream_logs=False)(f.interleave_output).submit(300, 0.0005)
    assert handle.result(timeout=30) == 300
    expected = {f"stdout line {i}" for i in range(300)} | {f"stderr line {i}" for i in range(300)}
    broken = [line for line in handle.logs().splitlines() if line not in expected]
    assert broken == []


# -- 10. the client dies, the job goes on ---------------------------------------------------------


def _submit_and_kill_client(storage: Path, tmp_path: Path, seconds: float, value: Any) -> str:
    """A client subprocess submits ``sleep_then_return(seconds, value)``, prints the job id and
    is SIGKILLed right after; returns the job id."""
    script = write_client(
        tmp_path,
        f"""
        handle = ascend(f.sleep_then_return).submit({seconds!r}, {value!r})
        print(handle.job_id, flush=True)
        handle.result()
        """,
    )
    client = start_client(script, storage, tmp_path)
    try:
        assert client.stdout is not None
        job_id = client.stdout.readline().strip()
        client.send_signal(signal.SIGKILL)
        client.wait(timeout=10)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == -signal.SIGKILL
    parse_job_id(job_id)
    return job_id


@pytest.mark.timeout(60)
def test_job_survives_a_killed_client(local: Path, tmp_path: Path) -> None:
    job_id = _submit_and_kill_client(local, tmp_path, 2, 42)
    wait_until(
        lambda: read_metadata(local, job_id)["status"] == "succeeded", 20, "the job to succeed"
    )
    record = read_metadata(local, job_id)
    assert record["exit_code"] == 0
    wait_gone(record["runner"]["pid"])
    start = time.monotonic()
    handle = ascend.attach(job_id)
    assert handle.job_id == job_id
    assert handle.function == "tests.e2e_functions.sleep_then_return"
    assert handle.result() == 42  # finished: at once
    assert time.monotonic() - start < 1.0


@pytest.mark.timeout(60)
def test_attach_waits_for_a_running_job_of_a_killed_client(local: Path, tmp_path: Path) -> None:
    job_id = _submit_and_kill_client(local, tmp_path, 2, 42)
    assert ascend.attach(job_id).result(timeout=30) == 42
    assert read_metadata(local, job_id)["status"] == "succeeded"


@pytest.mark.timeout(60)
def test_attach_can_cancel_a_job_of_a_killed_client(local: Path, tmp_path: Path) -> None:
    job_id = _submit_and_kill_client(local, tmp_path, 30, "never")
    pid = wait_running(local, job_id)["runner"]["pid"]
    try:
        ascend.attach(job_id).cancel()
        assert read_metadata(local, job_id)["status"] == "cancelled"
        wait_gone(pid)
    finally:
        if alive(pid):  # the runner we started through the client: stop its process group
            os.killpg(pid, signal.SIGKILL)


def test_attach_to_a_finished_job_returns_its_result_at_once(local: Path) -> None:
    handle = remote(f.add).submit(20, 22)
    assert handle.result(timeout=30) == 42
    start = time.monotonic()
    again = ascend.attach(handle.job_id)
    assert again.done()
    assert again.result(timeout=0) == 42
    assert time.monotonic() - start < 1.0
    assert again.status() == "succeeded"


def test_attach_to_an_unknown_job_names_the_storage(local: Path) -> None:
    job_id = new_job_id("nobody", "nothing")
    with pytest.raises(AscendError) as caught:
        ascend.attach(job_id, user="nobody")  # another user's job, named on purpose
    assert caught.value.message == (f"job {job_id} is not in file://{local.resolve()}")


# -- 11. job records -----------------------------------------------------------------------------


def _timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None
    return value


def test_job_record_describes_the_run(local: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASCEND_USERNAME", "bob-x")
    monkeypatch.setenv("ASCEND_PROJECT", "my-proj")
    handle = remote(cpu="500m", memory="1Gi", timeout=60)(f.sleep_then_return).submit(0.5, 5)
    seen = [handle.status()]
    while not handle.done():
        status = handle.status()
        if status != seen[-1]:
            seen.append(status)
        time.sleep(0.02)
    assert handle.result() == 5
    if handle.status() != seen[-1]:
        seen.append(handle.status())
    assert seen[0] in ("queued", "running")
    assert "running" in seen
    assert seen[-1] == "succeeded"
    order = ["queued", "running", "succeeded"]
    assert seen == sorted(set(seen), key=order.index)  # each once, never backwards

    parts = parse_job_id(handle.job_id)
    assert (parts.user, parts.project) == ("bob-x", "my-proj")
    directory = local / "users" / "bob-x" / "jobs" / handle.job_id
    assert sorted(p.name for p in directory.iterdir()) == [  # it printed nothing: no log chunk
        "metadata.json",
        "package.pkl",
        "result.pkl",
        "status.json",
    ]
    record = record_in(directory)
    assert record["job_id"] == handle.job_id
    assert record["status"] == "succeeded"
    assert record["function"] == "tests.e2e_functions.sleep_then_return"
    assert record["user"] == "bob-x"
    assert record["project"] == "my-proj"
    assert record["provider"] == "local"
    created = _timestamp(record["created_at"])
    started = _timestamp(record["started_at"])
    finished = _timestamp(record["finished_at"])
    assert created <= started <= finished
    assert record["duration_seconds"] >= 0.5
    assert record["duration_seconds"] == pytest.approx(
        (finished - started).total_seconds(), abs=0.05
    )
    assert record["resources"] == {"cpu": "500m", "memory": "1Gi", "timeout": 60, "node_type": None}
    assert record["versions"] == {
        "ascend": ascend.__version__,
        "python": ".".join(map(str, sys.version_info[:3])),
        "cloudpickle": cloudpickle.__version__,
    }
    runner_pid = record["runner"]["pid"]
    assert isinstance(runner_pid, int) and runner_pid != os.getpid()
    # record["compute"] (the handle) is not asserted here: see the metadata race test below
    assert record["client"]["pid"] == os.getpid()
    assert record["exit_code"] == 0
    assert record["git"] is None
    assert "failure" not in record


class _SlowMetadataReads:
    """A storage plugin like a remote object store: reading metadata.json takes 0.5 s (the
    bytes are read first, so they are 0.5 s old when the caller gets them)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @ascend.hookimpl(tryfirst=True)
    def ascend_storage(self, config: Any) -> Any:
        class SlowMetadataStorage(ascend.FsspecStorage):
            def read(self, path: str) -> bytes:
                data = super().read(path)
                if path.endswith("metadata.json"):
                    time.sleep(0.5)
                return data

        return SlowMetadataStorage(f"file://{self.directory}")


@pytest.mark.timeout(60)
def test_job_record_keeps_both_sides_fields_with_slow_storage(
    local: Path, register_plugin: Callable[..., str]
) -> None:
    register_plugin(_SlowMetadataReads(local), "slow-metadata")
    handle = remote(f.sleep_then_return).submit(1.0, "ok")
    assert handle.result(timeout=30) == "ok"
    record = read_metadata(local, handle.job_id)
    assert record["status"] == "succeeded"
    assert record["compute"]["handle"].startswith(handle.job_id + "@")
    assert "started_at" in record
    assert record["compute"]["handle"].startswith(f"{handle.job_id}@{record['runner']['pid']}:")


# -- 12. the handle API and the decorator ---------------------------------------------------------


def test_submit_result_equals_a_direct_call(local: Path) -> None:
    adder = remote(f.add)
    handle = adder.submit(2, b=3)
    assert (
        repr(handle) == f"JobHandle(job_id={handle.job_id!r}, function='tests.e2e_functions.add')"
    )
    assert handle.result(timeout=30) == adder(2, b=3) == 5
    assert handle.result() == 5  # the outcome is kept


@pytest.mark.timeout(60)
def test_result_with_a_short_timeout_leaves_the_job_running(local: Path) -> None:
    handle = remote(f.sleep_then_return).submit(1.5, "late")
    assert not handle.done()
    start = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        handle.result(timeout=0.2)
    assert 0.15 <= time.monotonic() - start < 1.0
    assert type(caught.value) is TimeoutError  # not a JobTimeoutError: the job goes on
    assert handle.job_id in str(caught.value)
    assert not handle.done()
    assert handle.status() in ("queued", "running")
    assert handle.result(timeout=30) == "late"
    assert handle.done()
    assert handle.status() == "succeeded"


def test_local_runs_in_this_process(local: Path) -> None:
    pid = remote(f.my_pid)
    assert pid.local() == os.getpid()
    assert files_under(local) == []  # no job for a local run
    assert pid() != os.getpid()
    assert len(list(local.rglob("metadata.json"))) == 1


def documented(a: int, b: str = "x", *, c: float = 1.0) -> str:
    """Say something about a, b and c."""
    return f"{a}{b}{c}"


def test_wrapper_keeps_name_doc_and_signature() -> None:
    wrapped = remote(memory="2G")(documented)
    assert isinstance(wrapped, ascend.RemoteFunction)
    assert wrapped.__name__ == "documented"
    assert wrapped.__qualname__ == "documented"
    assert wrapped.__doc__ == "Say something about a, b and c."
    assert wrapped.__wrapped__ is documented
    assert inspect.signature(wrapped) == inspect.signature(documented)
    assert wrapped.local(1, "y", c=2.0) == "1y2.0"
    assert remote(documented).__name__ == "documented"  # bare @ascend


@pytest.mark.parametrize(
    ("options", "prefix"),
    [
        ({"cpu": "lots"}, "@ascend(cpu='lots'): "),
        ({"memory": "2GB"}, "@ascend(memory='2GB'): unknown unit 'GB'"),
        ({"timeout": 0}, "@ascend(timeout=0): must be a positive whole number of seconds"),
        ({"timeout": -1}, "@ascend(timeout=-1): must be a positive whole number of seconds"),
        ({"env": {"1BAD": "x"}}, "@ascend(env={'1BAD': 'x'}): '1BAD' is not a valid variable"),
        ({"requirements": "numpy"}, "@ascend(requirements='numpy'): must be a list"),
    ],
    ids=["cpu", "memory", "timeout-0", "timeout-negative", "env", "requirements-str"],
)
def test_bad_options_fail_at_decoration_naming_the_parameter(
    local: Path, options: dict[str, Any], prefix: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        remote(**options)  # the decorator factory itself: before any function or call
    assert caught.value.message.startswith(prefix)
    assert caught.value.fix
    assert files_under(local) == []


@pytest.fixture
def offline_index(wheelhouse_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Requirements resolve from the tests' wheelhouse; environments go to a fresh cache."""
    monkeypatch.setenv("ASCEND_IMAGES_NO_INDEX", "true")
    monkeypatch.setenv("ASCEND_IMAGES_FIND_LINKS", str(wheelhouse_dir))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "ascend" / "environments"


def tiny_greeting() -> tuple[str, str]:
    import ascend_demo_tiny  # type: ignore[import-not-found]

    return ascend_demo_tiny.greet("local"), ascend_demo_tiny.__file__


def test_an_unresolvable_requirement_is_refused_before_upload(
    local: Path, offline_index: Path
) -> None:
    wrapped = remote(requirements=["ascend-demo-missing-zzz"])(f.add)  # decorating is fine
    with pytest.raises(ImageBuildError) as caught:
        wrapped(1, 2)
    assert "ascend-demo-missing-zzz" in caught.value.message
    assert "this machine" in caught.value.message
    assert files_under(local) == []
    assert not offline_index.exists() or list(offline_index.iterdir()) == []


def test_requirements_run_in_an_environment_per_lock_made_once(
    local: Path, offline_index: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    wrapped = remote(requirements=["Ascend_Demo_Tiny==1.0"], stream_logs=False)(tiny_greeting)
    greeting, where = wrapped()
    assert "[ascend]" not in capfd.readouterr().err  # stream_logs=False: silent
    assert greeting == "hello local from tiny 1.0"
    (environment,) = offline_index.iterdir()
    assert Path(where).is_relative_to(environment)
    assert "ascend-demo-tiny==1.0" in (environment / "ascend-lock.txt").read_text()
    made = environment.stat().st_mtime_ns
    same = remote(requirements=["ascend-demo-tiny==1.0"])(tiny_greeting)
    assert same()[0] == greeting
    shown = capfd.readouterr().err
    assert "[ascend] image: resolve ascend-demo-tiny==1.0 for this machine done in" in shown
    assert "install" not in shown  # made once
    assert [p.name for p in offline_index.iterdir()] == [environment.name]
    assert environment.stat().st_mtime_ns == made


# -- 13. threads ---------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_eight_threads_calling_different_functions_get_their_own_results(local: Path) -> None:
    calls = [
        (f.square, (3,), 9),
        (f.cube, (3,), 27),
        (f.negate, (5,), -5),
        (f.reverse_text, ("abc",), "cba"),
        (f.upper_text, ("abc",), "ABC"),
        (f.sum_list, ([1, 2, 3],), 6),
        (f.pair_up, (1, "a"), (1, "a")),
        (f.point_norm, (3, 4), 25),
    ]
    barrier = threading.Barrier(len(calls))

    def call(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        wrapped = remote(fn)
        barrier.wait(timeout=10)
        return wrapped(*args)

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(call, fn, args) for fn, args, _ in calls]
        results = [future.result(timeout=50) for future in futures]
    assert results == [expected for _, _, expected in calls]
    assert len(list(local.rglob("result.pkl"))) == len(calls)


# -- 14. a storage plugin composed over the local provider ---------------------------------------


@pytest.mark.timeout(60)
def test_storage_plugin_layers_over_the_local_provider(local: Path, tmp_path: Path) -> None:
    recording = tmp_path / "recording"
    env = client_env(
        local,
        ASCEND_PLUGINS="tests.plugins.recording_storage",
        ASCEND_TEST_RECORDING_DIR=str(recording),
        ASCEND_USERNAME="carol",
    )
    script = write_client(
        tmp_path,
        """
        handle = ascend(f.add).submit(2, 3)
        print(handle.job_id, flush=True)
        print(handle.storage_prefix, flush=True)
        print(handle.result(), flush=True)
        """,
    )
    process = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert process.returncode == 0, process.stderr
    job_id, prefix, result = process.stdout.split()[-3:]
    assert result == "5"
    job = f"users/carol/jobs/{job_id}"
    assert prefix == f"file://{recording}/{job}"
    written = (recording / "writes.log").read_text().splitlines()
    assert written[0] == f"{job}/package.pkl"
    assert f"{job}/metadata.json" in written
    assert set(written) == {f"{job}/package.pkl", f"{job}/metadata.json"}
    assert sorted(p.name for p in (recording / job).iterdir()) == [  # nothing printed: no log
        "metadata.json",
        "package.pkl",
        "result.pkl",
        "status.json",
    ]
    assert record_in(recording / job)["status"] == "succeeded"
    assert files_under(local) == []

    report = subprocess.run(
        [sys.executable, "-m", "ascend", "plugins", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["cloud_provider"] == "local"
    assert data["backend"]["ascend_storage"] == {
        "plugin": "tests.plugins.recording_storage",
        "error": None,
    }
    assert data["backend"]["ascend_compute"] == {"plugin": "local", "error": None}
    plugin = next(p for p in data["plugins"] if p["name"] == "tests.plugins.recording_storage")
    assert plugin["status"] == "active"
    assert plugin["source"] == "ASCEND_PLUGINS"
    assert plugin["hooks"] == ["ascend_storage"]


def test_a_plugin_can_refuse_a_call_before_anything_is_uploaded(
    local: Path, register_plugin
) -> None:
    from ascend import hookimpl
    from ascend.errors import ConfigError

    seen = []

    class QuotaPlugin:
        @hookimpl
        def ascend_validate_job(self, config, request):
            seen.append(request.job_id)
            if request.cpu == "2":
                raise ConfigError("cpu = '2' is over your quota", fix="ask for cpu='1'")

    register_plugin(QuotaPlugin(), "quota")

    @remote(cpu="2")
    def greedy() -> int:
        return 1

    with pytest.raises(ConfigError, match="over your quota"):
        greedy()
    assert len(seen) == 1
    assert not local.exists() or not any(local.rglob("package.pkl"))
    assert greedy.local() == 1
