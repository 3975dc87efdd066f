"""Progress while a call waits, as a person sees it: the lines on stderr (plain when it is not a
terminal, live on a terminal), the function's output on stdout, tags on concurrent output,
silence when asked, nothing from ``submit()`` until someone waits, and streaming for attached
handles. Clients run as real processes; jobs on the local provider and the Kubernetes emulator.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ascend import ascend as ascend_decorator

from .clients import client_env, run, run_on_terminal

pytestmark = pytest.mark.timeout(120)
TAG = r"[0-9a-z]{5}"


def status_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("[ascend] ")]


# -- plain lines ------------------------------------------------------------------------------


def test_a_direct_call_prints_its_job_and_phases_as_plain_lines(
    local: Path, tmp_path: Path
) -> None:
    stdout, stderr = run(
        tmp_path,
        """
        greet = ascend.ascend(timeout=60)(f.print_everywhere)
        greet()
        """,
    )
    lines = status_lines(stderr)
    assert len(lines) == 3, stderr
    queued = re.fullmatch(rf"\[ascend\] ({TAG}) print_everywhere: queued \(job (\S+)\)", lines[0])
    assert queued, lines
    tag, job_id = queued.groups()
    assert job_id.split("--")[0].endswith(tag)  # the tag is the job id's nonce
    assert lines[1] == f"[ascend] {tag} print_everywhere: running"
    assert re.fullmatch(rf"\[ascend\] {tag} print_everywhere: done in \d+s", lines[2])
    assert "out from function" in stdout  # the function's own output stays on its streams
    assert "[ascend]" not in stdout


def test_a_failed_call_ends_its_lines_with_the_error(local: Path, tmp_path: Path) -> None:
    _, stderr = run(
        tmp_path,
        """
        fail = ascend.ascend(timeout=60)(f.raise_value_error)
        try:
            fail(3)
        except ValueError:
            pass
        """,
    )
    assert re.fullmatch(
        rf"\[ascend\] {TAG} raise_value_error: ValueError after \d+s", status_lines(stderr)[-1]
    ), stderr


@pytest.mark.parametrize(
    ("decorator", "env", "output_shown"),
    [
        ("ascend.ascend(timeout=60)", {"ASCEND_QUIET": "1"}, True),
        ("ascend.ascend(timeout=60, stream_logs=False)", {}, False),
    ],
    ids=["ASCEND_QUIET", "stream_logs=False"],
)
def test_quiet_calls_print_no_status(
    local: Path, tmp_path: Path, decorator: str, env: dict[str, str], output_shown: bool
) -> None:
    stdout, stderr = run(
        tmp_path,
        f"""
        greet = {decorator}(f.print_everywhere)
        greet()
        """,
        client_env(**env),
    )
    assert "[ascend]" not in stderr
    assert ("out from function" in stdout) is output_shown


# -- submit, result, attach -------------------------------------------------------------------


def test_submit_prints_nothing_until_result_is_called(local: Path, tmp_path: Path) -> None:
    stdout, stderr = run(
        tmp_path,
        """
        handle = ascend.ascend(timeout=60)(f.print_everywhere).submit()
        time.sleep(2.0)  # the job has long printed everything
        print("MARK", flush=True)
        handle.result()
        never = ascend.ascend(timeout=60)(f.print_everywhere).submit()
        time.sleep(2.0)
        never.cancel()
        """,
    )
    assert stdout.index("MARK") < stdout.index("out from function"), stdout
    assert stdout.count("out from function") == 1  # the job never waited for printed nothing
    assert len([line for line in status_lines(stderr) if "running" in line]) == 1


def test_concurrent_calls_tag_each_output_line(local: Path, tmp_path: Path) -> None:
    stdout, stderr = run(
        tmp_path,
        """
        count = ascend.ascend(timeout=60)(f.count_lines)
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            print(list(pool.map(count, ["a", "b", "c"], [40, 40, 40])), flush=True)
        """,
    )
    tags = {
        re.fullmatch(rf"\[ascend\] ({TAG}) count_lines: queued \(job \S+\)", line).group(1)  # type: ignore[union-attr]
        for line in status_lines(stderr)
        if ": queued" in line
    }
    assert len(tags) == 3
    lines = [line for line in stdout.splitlines() if not line.startswith("[40,")]
    by_tag: dict[str, list[str]] = {}
    for line in lines:
        tagged = re.fullmatch(rf"\[({TAG})\] (\w) (\d+)", line)
        assert tagged, f"an untagged or broken line: {line!r}"
        by_tag.setdefault(tagged.group(1), []).append(f"{tagged.group(2)} {tagged.group(3)}")
    assert set(by_tag) == tags
    for got in by_tag.values():  # every line of a call, whole, in order, under one tag
        letter = got[0][0]
        assert got == [f"{letter} {i}" for i in range(40)]


def test_result_of_an_attached_kubernetes_job_streams_its_output(
    make_kube_emulator: Any,
    ascend_pm: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from .test_e2e_kubernetes import configure

    kube = make_kube_emulator()
    configure(monkeypatch, kube, f"file://{tmp_path}/store")
    stdout, stderr = run(
        tmp_path,
        """
        handle = ascend.ascend(timeout=60)(f.count_lines).submit("x", 5)
        again = ascend.attach(handle.job_id)
        print(again.result(), flush=True)
        """,
    )
    assert [line for line in stdout.splitlines()] == [f"x {i}" for i in range(5)] + ["5"]
    phases = [line.split(": ", 1)[1] for line in status_lines(stderr)]
    assert phases[-2] == "running" and phases[-1].startswith("done in "), stderr


def test_result_of_an_attached_local_job_streams_its_saved_output(
    local: Path, tmp_path: Path
) -> None:
    """The job's process writes to the pipes of the client that started it (which has
    exited): an attached client shows the output from the log the runner saves."""
    submitter, _ = run(
        tmp_path,
        """
        print(ascend.ascend(timeout=60)(f.count_lines).submit("y", 6, 0.5).job_id)
        """,
    )
    job_id = submitter.strip()
    stdout, stderr = run(tmp_path, f"print(ascend.attach({job_id!r}).result(), flush=True)")
    assert stdout.splitlines() == [f"y {i}" for i in range(6)] + ["6"], stderr


def test_waiting_for_a_node_shows_the_schedulers_reason(
    make_kube_emulator: Any,
    ascend_pm: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The node has 2 CPUs: the second 2-CPU call waits for the first, and says why."""
    from .test_e2e_kubernetes import configure

    kube = make_kube_emulator(cpu="2")
    configure(monkeypatch, kube, f"file://{tmp_path}/store")
    _, stderr = run(
        tmp_path,
        """
        nap = ascend.ascend(timeout=60, cpu="2")(f.sleep_then_return)
        first = nap.submit(4, "first")
        time.sleep(1.5)
        print(nap(0, "second"), first.result(), flush=True)
        """,
    )
    waiting = [line for line in status_lines(stderr) if "waiting for a node" in line]
    assert waiting, stderr
    assert "Insufficient cpu" in waiting[0]
    second = waiting[0].split()[1]
    mine = [line.split(": ", 1)[1] for line in status_lines(stderr) if line.split()[1] == second]
    assert mine[0].startswith("queued (job ")
    assert mine.index(waiting[0].split(": ", 1)[1]) < mine.index("running")


# -- a terminal -------------------------------------------------------------------------------


def test_on_a_terminal_the_status_line_is_live_and_erased(local: Path, tmp_path: Path) -> None:
    screen = run_on_terminal(
        tmp_path,
        """
        nap = ascend.ascend(timeout=60)(f.two_lines_with_pause)
        nap()
        """,
    ).decode()
    live = re.findall(
        rf"\x1b\[2m\[ascend\] ({TAG}) two_lines_with_pause: running \(\d+s\) - job (\S+)\x1b",
        screen,
    )
    assert live, repr(screen)
    tag, job_id = live[0]
    assert job_id.split("--")[0].endswith(tag)
    assert "\x1b[1F\x1b[J" in screen  # each redraw erases the line it drew
    assert "line 1" in screen and "line 2" in screen
    tail = screen[screen.rindex("line 2") :]
    assert "[ascend]" not in tail.split("\x1b[J")[-1]  # nothing of the status is left at the end


# -- the upload counter -----------------------------------------------------------------------


def test_the_upload_phase_counts_the_package_bytes(local: Path) -> None:
    from ascend import console

    from . import e2e_functions as f

    with console.showing("length_of", logs=True) as call:
        assert call is not None
        handle = ascend_decorator(f.length_of).submit(b"x" * 5_000_000)
        assert call.job_id == handle.job_id  # submit() names the job on the shown call
        package = next(local.rglob(f"{handle.job_id}/package.pkl"))
        assert call.uploaded == package.stat().st_size > 5_000_000
        call.phase(console.UPLOADING)
        assert call.line() == (
            f"[ascend] {call.tag} length_of: uploading {call.uploaded / 1e6:.1f} MB"
            f" - job {handle.job_id}"
        )
        assert handle.result(timeout=30) == 5_000_000
