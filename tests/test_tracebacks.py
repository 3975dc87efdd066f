"""Remote tracebacks name the user's own files, lines and source, whatever the code's origin.

Each origin (a ``__main__`` script run as ``python script.py``, a script run with runpy, a
notebook cell, a local module) runs on the local provider and on the Kubernetes emulator. The
user's code is ``tests/traceback_cases/pipeline.py``: imported, or its text run another way, so
every origin raises from the same lines. Exceptions that cannot be rebuilt with ``cls(*args)``
come back as themselves; ``BaseException`` subclasses come back as ``RemoteError``.
"""

from __future__ import annotations

import importlib
import io
import json
import linecache
import os
import pickle
import runpy
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import ascend
from ascend import wire
from ascend.decorator import ascend as remote
from ascend.errors import RemoteError
from ascend.testing.kube.users import set_up_namespace
from tests.traceback_cases import failures, pipeline

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = Path(pipeline.__file__)
PIPELINE_SOURCE = PIPELINE.read_text()
FAILURES = Path(failures.__file__)
FAILURES_SOURCE = FAILURES.read_text()
KUBE_USER = "alice"
DEV_RUNTIME_IMAGE = "ascend-runtime:dev"  # preloaded on the emulator's node: this checkout
NOTE_HEAD = "Remote traceback (from the Ascend job):\n"


# -- helpers -------------------------------------------------------------------------------------


def marked_line(source: str, marker: str) -> tuple[int, str]:
    """Line number of the line carrying ``marker`` and that line as a traceback prints it."""
    for number, text in enumerate(source.splitlines(), start=1):
        if marker in text:
            return number, "    " + text.strip()
    raise AssertionError(f"{marker!r} is not in the source")


def frames_of(text: str) -> list[tuple[str, str]]:
    """``(File line, source line)`` of each frame of the first traceback in ``text``."""
    lines = text.splitlines()
    start = lines.index("Traceback (most recent call last):")
    found = []
    for index in range(start + 1, len(lines)):
        if lines[index].startswith('  File "'):
            following = lines[index + 1] if index + 1 < len(lines) else ""
            found.append((lines[index], following))
    return found


def assert_pipeline_frames(text: str, filename: str) -> None:
    """Exactly the user's two frames, with real file, line and source, and no runner frame."""
    call, call_source = marked_line(PIPELINE_SOURCE, "# CALL-LINE")
    raised, raise_source = marked_line(PIPELINE_SOURCE, "# RAISE-LINE")
    assert frames_of(text) == [
        (f'  File "{filename}", line {call}, in load_and_check', call_source),
        (f'  File "{filename}", line {raised}, in validate', raise_source),
    ], text
    assert "ascend/runner.py" not in text
    assert text.rstrip().endswith("DataQualityError: 1 bad rows")


def call_pipeline(namespace: dict[str, Any], filename: str) -> None:
    """Run the pipeline's ``load_and_check`` remotely and check what the caller gets."""
    error_class = namespace["DataQualityError"]
    with pytest.raises(error_class) as caught:
        remote(timeout=60, stream_logs=False)(namespace["load_and_check"])([1, -2, 3])
    error = caught.value
    assert type(error) is error_class
    assert str(error) == "1 bad rows"
    assert (error.rows, error.table) == (1, "orders")
    notes = error.__notes__
    assert len(notes) == 1
    assert notes[0].startswith(NOTE_HEAD)
    assert_pipeline_frames(notes[0], filename)


def runner_env(package: Path, result: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASCEND_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["ASCEND_PACKAGE_URI"] = f"file://{package}"
    env["ASCEND_RESULT_URI"] = f"file://{result}"
    env["ASCEND_ALLOW_UNSIGNED"] = "1"  # packages made by hand here; signing: tests/security
    return env


def run_runner(package: Path) -> tuple[subprocess.CompletedProcess[str], str, Any]:
    """Run the real runner on ``package``; returns the process and the outcome it wrote."""
    result = package.parent / "result.pkl"
    process = subprocess.run(
        [sys.executable, "-m", "ascend.runner"],
        env=runner_env(package, result),
        cwd=package.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    with open(result, "rb") as file:
        kind, value = wire.load_outcome(file, wire.verify(file, "test result"))
    return process, kind, value


def write_envelope(path: Path, header: dict[str, Any], values: list[Any]) -> None:
    """An envelope built from the documented layout, with the given header and pickles."""
    head = json.dumps(header).encode()
    buffer = io.BytesIO()
    pickler = wire._Pickler(buffer, protocol=wire.PROTOCOL)
    for value in values:
        pickler.dump(value)
    payload = buffer.getvalue()
    import hashlib

    digest = hashlib.sha256(head + payload).digest()
    path.write_bytes(
        wire.MAGIC
        + len(head).to_bytes(4, "big")
        + head
        + payload
        + wire.TRAILER_MAGIC
        + digest
        + len(payload).to_bytes(8, "big")
    )


VANISHING_SOURCE = textwrap.dedent("""\
    import os
    import time


    def wait_then_fail(path):
        while os.path.exists(path):
            time.sleep(0.02)
        raise RuntimeError("its file is gone")  # VANISH-LINE
""")


def vanishing_module(directory: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Path]:
    """A local module in its own directory, imported under a fresh name; delete its file to
    make sure the job cannot read it."""
    name = f"vanishing_{uuid.uuid4().hex[:10]}"
    directory.mkdir()
    path = directory / f"{name}.py"
    path.write_text(VANISHING_SOURCE)
    monkeypatch.syspath_prepend(str(directory))
    module = importlib.import_module(name)
    monkeypatch.delitem(sys.modules, name)
    return module, path


def delete_module_file(path: Path) -> None:
    path.unlink()
    shutil.rmtree(path.parent / "__pycache__", ignore_errors=True)


# -- providers -----------------------------------------------------------------------------------


@pytest.fixture(params=["local", "kubernetes"])
def provider(
    request: pytest.FixtureRequest, ascend_pm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The local provider, or the generic kubernetes provider on the emulator running this
    checkout's runner (``ascend-runtime:dev``)."""
    if request.param == "local":
        monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "local")
        monkeypatch.setenv("ASCEND_LOCAL_STORAGE_DIR", str(tmp_path / "jobs"))
    else:
        kube = request.getfixturevalue("make_kube_emulator")()
        monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "kubernetes")
        monkeypatch.setenv("ASCEND_STORAGE_URL", f"file://{tmp_path}/store")
        monkeypatch.setenv("ASCEND_KUBERNETES_KUBECONFIG", str(kube.kubeconfig))
        monkeypatch.setenv("ASCEND_IMAGES_RUNTIME", DEV_RUNTIME_IMAGE)
        monkeypatch.setenv("ASCEND_USERNAME", KUBE_USER)
        set_up_namespace(kube, f"ascend-users-{KUBE_USER}")
    return str(request.param)


# -- 1. one test per origin, on both providers ---------------------------------------------------


MAIN_BLOCK = """

if __name__ == "__main__":
    import json

    from ascend import ascend

    try:
        ascend(timeout=60, stream_logs=False)(load_and_check)([1, -2, 3])
    except DataQualityError as error:
        kind = type(error)
        caught = {
            "type": f"{kind.__module__}.{kind.__qualname__}",
            "str": str(error),
            "rows": error.rows,
            "table": error.table,
        }
        print(json.dumps(caught), flush=True)
        raise
"""


def test_main_script_shows_its_own_frames(provider: str, tmp_path: Path) -> None:
    # python script.py: the function is __main__'s, like the runner's own module; only the
    # runner's frames may go.
    script = tmp_path / "main_pipeline.py"
    script.write_text(PIPELINE_SOURCE + MAIN_BLOCK)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    process = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert process.returncode == 1, process.stderr
    assert json.loads(process.stdout.splitlines()[-1]) == {
        "type": "__main__.DataQualityError",
        "str": "1 bad rows",
        "rows": 1,
        "table": "orders",
    }
    assert process.stderr.count(NOTE_HEAD) == 1, process.stderr
    local_part, remote_part = process.stderr.split(NOTE_HEAD)
    assert "DataQualityError: 1 bad rows" in local_part
    assert_pipeline_frames(remote_part, str(script))


def test_script_run_with_runpy_shows_its_frames(provider: str, tmp_path: Path) -> None:
    path = tmp_path / "pipeline_script.py"
    path.write_text(PIPELINE_SOURCE)
    call_pipeline(runpy.run_path(str(path)), str(path))


@pytest.mark.parametrize("cell", ["ipython-input", "exec-compiled-file"])
def test_notebook_cell_shows_its_frames(
    provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cell: str
) -> None:
    if cell == "ipython-input":
        # IPython compiles a cell under a made-up name and keeps its lines in linecache: no
        # file exists, on this side or in the job.
        filename = f"<ipython-input-3-{uuid.uuid4().hex[:12]}>"
        lines = PIPELINE_SOURCE.splitlines(keepends=True)
        monkeypatch.setitem(
            linecache.cache, filename, (len(PIPELINE_SOURCE), None, lines, filename)
        )
    else:
        filename = str(tmp_path / "cell.py")
        Path(filename).write_text(PIPELINE_SOURCE)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(PIPELINE_SOURCE, filename, "exec"), namespace)
    call_pipeline(namespace, filename)


def test_local_module_shows_its_frames(provider: str) -> None:
    assert wire.is_local_module(pipeline.__name__)  # travels by value
    call_pipeline(vars(pipeline), str(PIPELINE))


def test_source_lines_travel_with_the_package(
    provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The job cannot read the module's file (it is deleted once the call is packaged), yet
    # the traceback shows its lines: they came in the package.
    module, path = vanishing_module(tmp_path / "src", monkeypatch)
    handle = remote(timeout=60, stream_logs=False)(module.wait_then_fail).submit(str(path))
    delete_module_file(path)
    with pytest.raises(RuntimeError, match="its file is gone") as caught:
        handle.result(timeout=60)
    line, source = marked_line(VANISHING_SOURCE, "# VANISH-LINE")
    assert frames_of(caught.value.__notes__[0]) == [
        (f'  File "{path}", line {line}, in wait_then_fail', source)
    ]


# -- 2. exceptions with their own __init__ come back as themselves --------------------------------


def test_keyword_only_exception_keeps_its_attributes(local: Path) -> None:
    with pytest.raises(failures.Tracked) as caught:
        remote(stream_logs=False)(failures.raise_tracked)()
    error = caught.value
    assert type(error) is failures.Tracked
    assert str(error) == "code 7: late data"
    assert (error.code, error.reason, error.retry_after) == (7, "late data", 30)
    line, source = marked_line(FAILURES_SOURCE, "# TRACKED-LINE")
    assert frames_of(error.__notes__[0]) == [
        (f'  File "{FAILURES}", line {line}, in raise_tracked', source)
    ]


def test_exception_that_no_reconstruction_rebuilds_is_remote_error(local: Path) -> None:
    # Neither cls(*args) nor cls.__new__(cls, *args) works: the runner's round trip says so.
    handle = remote(stream_logs=False)(failures.raise_strict_new).submit()
    with pytest.raises(RemoteError) as caught:
        handle.result(timeout=30)
    error = caught.value
    assert error.type_name == "tests.traceback_cases.failures.StrictNewError"
    assert error.remote_message == "3 rows in orders"
    line, source = marked_line(FAILURES_SOURCE, "# STRICT-NEW-LINE")
    assert frames_of(error.remote_traceback) == [
        (f'  File "{FAILURES}", line {line}, in raise_strict_new', source)
    ]
    assert handle.metadata()["failure"]["type"] == "StrictNewError"


def test_exception_the_caller_cannot_rebuild_is_remote_error_from_the_header(local: Path) -> None:
    with pytest.raises(RemoteError) as caught:
        remote(stream_logs=False)(failures.raise_job_only)()
    error = caught.value
    assert error.type_name == "tests.traceback_cases.failures.JobOnlyError"
    assert error.remote_message == "made in the job"
    line, source = marked_line(FAILURES_SOURCE, "# JOB-ONLY-LINE")
    assert frames_of(error.remote_traceback) == [
        (f'  File "{FAILURES}", line {line}, in raise_job_only', source)
    ]
    assert error.__notes__ == [
        "The exception could not be rebuilt here: RuntimeError: this exception can only be "
        "rebuilt inside the job"
    ]


# -- 3. BaseException subclasses come back as RemoteError ----------------------------------------


@pytest.mark.parametrize(
    ("function", "type_name", "message", "original", "marker"),
    [
        (
            "raise_halt",
            "tests.traceback_cases.failures.Halt",
            "stop the pipeline",
            "stop the pipeline",
            "# HALT-LINE",
        ),
        (
            "raise_generator_exit",
            "GeneratorExit",
            "generator closed",
            "generator closed",
            "# GENERATOR-EXIT-LINE",
        ),
        (
            "raise_keyboard_interrupt",
            "KeyboardInterrupt",
            "the function was interrupted: pressed ctrl-c",
            "pressed ctrl-c",
            "# KEYBOARD-INTERRUPT-LINE",
        ),
        (
            "exit_early",
            "SystemExit",
            "the function called sys.exit(4) instead of returning; return a value or raise an "
            "exception",
            "4",
            "# SYSTEM-EXIT-LINE",
        ),
    ],
    ids=["BaseException-subclass", "GeneratorExit", "KeyboardInterrupt", "SystemExit"],
)
def test_base_exception_comes_back_as_remote_error(
    provider: str, function: str, type_name: str, message: str, original: str, marker: str
) -> None:
    handle = remote(timeout=60, stream_logs=False)(getattr(failures, function)).submit()
    with pytest.raises(RemoteError) as caught:
        handle.result(timeout=60)
    error = caught.value
    assert (error.type_name, error.remote_message) == (type_name, message)
    assert str(error).startswith(f"{type_name}: {message}\n\nRemote traceback:\n")
    line, source = marked_line(FAILURES_SOURCE, marker)
    assert frames_of(error.remote_traceback) == [
        (f'  File "{FAILURES}", line {line}, in {function}', source)
    ]
    assert error.remote_traceback.rstrip().endswith(f": {original}")
    record = handle.metadata()
    assert record["status"] == "failed"
    assert record["failure"]["type"] == type_name.rsplit(".", 1)[-1]


# -- 4. the runner still stops on real signals ---------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_runner_stops_on_a_real_signal(tmp_path: Path, signum: int) -> None:
    job = tmp_path / "job"
    job.mkdir()
    package = job / "package.pkl"
    marker = tmp_path / "running"
    with open(package, "wb") as target:
        wire.dump_package(target, failures.sleep_after_marker, (str(marker), 60), {})
    runner = subprocess.Popen(
        [sys.executable, "-m", "ascend.runner"],
        env=runner_env(package, job / "result.pkl"),
        cwd=job,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not marker.exists():
            assert time.monotonic() < deadline, "the function never started"
            assert runner.poll() is None, "the runner ended early"
            time.sleep(0.02)
        runner.send_signal(signum)
        code = runner.wait(20)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    record = json.loads((job / "status.json").read_text())
    assert record["status"] == "failed"
    if signum == signal.SIGTERM:
        assert code == 143
        assert record["failure"]["reason"] == "Terminated"
        assert not (job / "result.pkl").exists()
    else:
        assert code == 1
        with open(job / "result.pkl", "rb") as file:
            kind, value = wire.load_outcome(file, wire.verify(file, "result"))
        assert kind == "exception"
        assert type(value) is RemoteError
        assert value.type_name == "KeyboardInterrupt"


# -- 5. the envelope: what is shipped, and both directions of compatibility ----------------------


def load_packaged(fn: Callable[..., Any], *args: Any) -> tuple[wire.Envelope, dict[str, str]]:
    buffer = io.BytesIO()
    wire.dump_package(buffer, fn, args, {})
    buffer.seek(0)
    envelope = wire.verify(buffer, "package")
    return envelope, wire.load_call(buffer, envelope)[3]


def test_package_ships_the_source_of_the_users_files_only() -> None:
    envelope, sources = load_packaged(pipeline.load_and_check, [1])
    assert envelope.header["format"] == 1
    assert envelope.header["format_minor"] == wire.FORMAT_MINOR
    assert sources == {str(PIPELINE): PIPELINE_SOURCE}
    # a function whose file can be read nowhere ships no source
    namespace: dict[str, Any] = {}
    exec(compile("def nowhere(x):\n    return x\n", "<string>", "exec"), namespace)
    assert load_packaged(namespace["nowhere"], 1)[1] == {}
    # an installed function travels by reference: nothing of it is shipped
    assert load_packaged(json.dumps, 1)[1] == {}


def test_a_file_too_big_to_ship_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big_cell.py"
    source = "def big(x):\n    return x\n" + "# padding\n" * (wire.MAX_SOURCES // 10 + 1)
    path.write_text(source)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(source, str(path), "exec"), namespace)
    assert load_packaged(namespace["big"], 1)[1] == {}


def test_sources_are_read_once_per_file_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "read_once.py"
    path.write_text("def once(x):\n    return x + 1\n")
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    reads: list[str] = []
    original = linecache.getlines

    def counting(filename: str, module_globals: Any = None) -> list[str]:
        reads.append(filename)
        return original(filename, module_globals)

    monkeypatch.setattr(linecache, "getlines", counting)
    for _ in range(3):
        assert load_packaged(namespace["once"], 1)[1] == {str(path): path.read_text()}
    assert reads.count(str(path)) == 1
    # an edited file (a reloaded module) is read again
    path.write_text("def once(x):\n    return x + 2  # edited\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert load_packaged(namespace["once"], 1)[1] == {str(path): path.read_text()}
    assert reads.count(str(path)) == 2


def test_a_reader_of_minor_0_reads_a_new_package(tmp_path: Path) -> None:
    # What a runner from before FORMAT_MINOR 1 does: check the format, read the function and
    # its arguments, and never look further. The sources after them do not disturb it.
    buffer = io.BytesIO()
    wire.dump_package(buffer, pipeline.validate, ([1, 2], "orders"), {})
    buffer.seek(0)
    envelope = wire.verify(buffer, "package")
    assert envelope.header["format"] == 1
    buffer.seek(envelope.payload_offset)
    unpickler = pickle.Unpickler(buffer)
    fn = unpickler.load()
    n_args, keys = unpickler.load()
    args = [unpickler.load() for _ in range(n_args)]
    assert (n_args, keys) == (2, [])
    assert fn(*args) == 2


def test_a_package_from_before_sources_runs_and_still_names_the_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A package of an older client: no format_minor, no sources. The runner runs it; with
    # the file gone the frame is named, without its line (which only a newer client ships).
    module, path = vanishing_module(tmp_path / "src", monkeypatch)
    job = tmp_path / "job"
    job.mkdir()
    header = {
        "format": 1,
        "kind": wire.KIND_PACKAGE,
        "ascend": ascend.__version__,
        "python": wire.python_version(),
        "cloudpickle": cloudpickle.__version__,
    }
    write_envelope(job / "package.pkl", header, [module.wait_then_fail, (1, []), str(path)])
    delete_module_file(path)
    linecache.checkcache(str(path))
    process, kind, error = run_runner(job / "package.pkl")
    assert process.returncode == 1, process.stderr
    assert kind == "exception"
    assert type(error) is RuntimeError
    line, _ = marked_line(VANISHING_SOURCE, "# VANISH-LINE")
    frames = frames_of(error.__notes__[0])
    assert [frame for frame, _ in frames] == [f'  File "{path}", line {line}, in wait_then_fail']
    assert "VANISH-LINE" not in error.__notes__[0]
