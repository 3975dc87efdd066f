"""What a person reads while an image is resolved, built and pushed."""

from __future__ import annotations

import io

import pytest

from ascend.images.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_name_each_step_and_its_time() -> None:
    stream = io.StringIO()
    progress = Progress(stream=stream)
    with progress.step("resolve numpy"):
        progress.line("Resolved 1 package in 3ms\n")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[ascend] image: resolve numpy ..."
    assert lines[1] == "    Resolved 1 package in 3ms"
    assert lines[2].startswith("[ascend] image: resolve numpy done in ")
    assert lines[2].endswith(" s")
    assert "\x1b[" not in stream.getvalue()  # no escape codes in a log file
    assert [step for step, _ in progress.steps] == ["resolve numpy"]


def test_a_failed_step_says_so_and_the_error_goes_on() -> None:
    stream = io.StringIO()
    with pytest.raises(ValueError), Progress(stream=stream).step("install 3 packages"):
        raise ValueError("boom")
    assert "[ascend] image: install 3 packages failed after " in stream.getvalue()


def test_a_terminal_gets_styled_lines() -> None:
    stream = Terminal()
    with Progress(stream=stream).step("push"):
        pass
    assert "\x1b[" in stream.getvalue()
    assert "push done in" in stream.getvalue()


def test_silent_prints_nothing_but_still_times_the_steps() -> None:
    stream = io.StringIO()
    progress = Progress(enabled=False, stream=stream)
    with progress.step("build"):
        progress.line("noise")
        progress.note("more noise")
    assert stream.getvalue() == ""
    assert progress.steps[0][0] == "build"
