"""What a person sees while calls wait: one status line per call, and the calls' output.

On a terminal (stderr is a TTY) each waiting call has one live line at the bottom (its job tag,
function, phase and time in that phase), redrawn twice a second, and the calls' output scrolls
above those lines. Elsewhere (a log file, CI) each change of phase is one plain line on stderr.
Status lines are silent with ``stream_logs=False`` or ``ASCEND_QUIET=1``; the function's own
output is silent only with ``stream_logs=False``.

When calls of this process stream output at the same time, each of their output lines starts
with the short tag of its job (``[k3x9q] ...``, the nonce of the job id), and lines are passed
on whole, so concurrent calls' lines can be told apart and never mix.

Computes report phases with :func:`report`; it reaches the call waiting in the current thread
(a context variable), so a compute plugin needs no new parameter to show its phases.
"""

from __future__ import annotations

import contextvars
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

QUIET_ENV = "ASCEND_QUIET"
REFRESH_SECONDS = 0.5  # how often live lines are redrawn
SHOW_AFTER = 0.3  # a call's live line appears once it has waited this long (no flicker)
PENDING_MAX = 65536  # a line without its end is let through at this size

UPLOADING = "uploading"
QUEUED = "queued"
WAITING_FOR_NODE = "waiting for a node"
PULLING = "pulling the image"
STARTING = "starting"
RUNNING = "running"
DOWNLOADING = "downloading the result"
LIVE_ONLY = frozenset({UPLOADING, DOWNLOADING})  # brief: not worth a plain line each call

_current: contextvars.ContextVar[Call | None] = contextvars.ContextVar("ascend_call", default=None)


def quiet() -> bool:
    """Whether ``ASCEND_QUIET`` asks for no status lines."""
    return os.environ.get(QUIET_ENV, "").strip().lower() not in ("", "0", "false", "no")


def current() -> Call | None:
    """The call waiting in this thread, if it shows anything."""
    return _current.get()


def report(phase: str, detail: str = "") -> None:
    """Tell the call waiting in this thread (if any) that its job is now in ``phase``."""
    call = _current.get()
    if call is not None:
        call.phase(phase, detail)


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Call:
    """One call's view: its phase for the status line, and its output for the screen."""

    def __init__(
        self, console: Console, function: str, status: bool, logs: bool, job_id: str | None
    ) -> None:
        self.console = console
        self.function = function.rsplit(".", 1)[-1]
        self.status = status
        self.logs = logs
        self.job_id: str | None = None
        self.tag = ""
        self.started = time.monotonic()
        self.name = ""  # the phase
        self.detail = ""
        self.since = self.started
        self.uploaded = 0  # bytes, while uploading
        self.shared = False  # its output has been concurrent with another call's: tag lines
        self._pending: dict[str, str] = {"stdout": "", "stderr": ""}
        if job_id:
            self.set_job(job_id)

    # -- what the call is doing -----------------------------------------------------------------

    def set_job(self, job_id: str) -> None:
        from ascend.job_ids import parse_job_id

        self.job_id = job_id
        try:
            self.tag = parse_job_id(job_id).nonce
        except ValueError:
            self.tag = job_id[-5:]

    def phase(self, name: str, detail: str = "") -> None:
        if name == self.name and detail == self.detail:
            return
        changed = name != self.name
        self.name, self.detail = name, detail
        if changed:
            self.since = time.monotonic()
        if self.status:
            self.console.changed(self, changed)

    def line(self, width: int | None = None) -> str:
        """The status line: ``[ascend] k3x9q train: running 42s``."""
        what = self.name
        if self.name == UPLOADING:
            what = f"uploading {_megabytes(self.uploaded)}"
        elif self.detail:
            what = f"{self.name}: {self.detail}"
        text = f"[ascend] {self.tag or '-----'} {self.function}: {what}"
        if self.name in (RUNNING, WAITING_FOR_NODE, PULLING, QUEUED, STARTING):
            text += f" ({_clock(time.monotonic() - self.since)})"
        if self.job_id:
            text += f" - job {self.job_id}"
        if width is not None and len(text) > width:
            text = text[: max(0, width - 3)] + "..."
        return text

    def plain(self) -> str:
        """The line a phase change prints when stderr is not a terminal."""
        what = f"{self.name}: {self.detail}" if self.detail else self.name
        if self.name == QUEUED and self.job_id:
            what = f"queued (job {self.job_id})" + (f": {self.detail}" if self.detail else "")
        return f"[ascend] {self.tag or '-----'} {self.function}: {what}"

    # -- output ---------------------------------------------------------------------------------

    def write(self, text: str, stream: str = "stdout") -> None:
        """Output of the job. Lines get the job's tag while other calls stream output too."""
        if not self.logs or not text:
            return
        if not self.shared:
            self.console.emit(text, stream)
            return
        text = self._pending[stream] + text
        *lines, rest = text.split("\n")
        prefix = f"[{self.tag}] " if self.tag else ""
        out = "".join(f"{prefix}{line}\n" for line in lines)
        if len(rest) < PENDING_MAX:
            self._pending[stream] = rest  # only whole lines, so two calls never share one
        else:
            out, self._pending[stream] = out + prefix + rest, ""
        if out:
            self.console.emit(out, stream)

    def flush(self) -> None:
        for stream, rest in self._pending.items():
            if rest:
                self._pending[stream] = ""
                self.console.emit(f"[{self.tag}] {rest}\n" if self.tag else rest, stream)

    @contextmanager
    def active(self) -> Iterator[Call]:
        """Make this the call that :func:`report` reaches in this thread."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)


class Console:
    """The process's status lines and the calls' output, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._calls: list[Call] = []
        self._drawn = 0  # live lines on screen now
        self._partial = False  # the last output did not end its line: do not draw under it
        self._refresher: threading.Thread | None = None

    @staticmethod
    def _err() -> TextIO:
        return sys.stderr

    def _live(self) -> bool:
        try:
            return self._err().isatty()
        except (AttributeError, ValueError):
            return False

    # -- calls ----------------------------------------------------------------------------------

    def start(self, call: Call) -> None:
        with self._lock:
            streaming = [other for other in self._calls if other.logs]
            if call.logs and streaming:  # from now on, every line says whose it is
                for other in (*streaming, call):
                    other.shared = True
            self._calls.append(call)
            if call.status and self._live() and self._refresher is None:
                self._refresher = threading.Thread(
                    target=self._refresh, name="ascend-status", daemon=True
                )
                self._refresher.start()

    def end(self, call: Call, outcome: str | None) -> None:
        call.flush()
        with self._lock:
            if call in self._calls:
                self._clear()
                self._calls.remove(call)
                if call.status and outcome and not self._live():
                    self._print_plain(f"[ascend] {call.tag or '-----'} {call.function}: {outcome}")
                self._draw()

    def changed(self, call: Call, new_phase: bool) -> None:
        if not new_phase:
            return  # the next redraw shows a new detail
        with self._lock:
            if call not in self._calls:
                return
            if self._live():
                self._clear()
                self._draw()
            elif call.name not in LIVE_ONLY:
                self._print_plain(call.plain())

    # -- the screen -----------------------------------------------------------------------------

    def emit(self, text: str, stream: str) -> None:
        with self._lock:
            self._clear()
            target = sys.stdout if stream == "stdout" else sys.stderr
            try:
                target.write(text)
                target.flush()
            except (OSError, ValueError):
                pass  # our own output is gone; the job saves its log anyway
            self._partial = not text.endswith("\n")
            self._draw()

    def _print_plain(self, text: str) -> None:
        try:
            self._err().write(text + "\n")  # one write: threads' lines never run together
            self._err().flush()
        except (OSError, ValueError):
            pass

    def _shown(self) -> list[Call]:
        now = time.monotonic()
        return [c for c in self._calls if c.status and c.name and now - c.started >= SHOW_AFTER]

    def _draw(self) -> None:
        if self._drawn or self._partial or not self._live():
            return
        calls = self._shown()
        if not calls:
            return
        width = shutil.get_terminal_size((100, 20)).columns - 1
        text = "".join(f"\x1b[2m{call.line(width)}\x1b[0m\n" for call in calls)
        try:
            self._err().write(text)
            self._err().flush()
        except (OSError, ValueError):
            return
        self._drawn = len(calls)

    def _clear(self) -> None:
        if not self._drawn:
            return
        try:
            self._err().write(f"\x1b[{self._drawn}F\x1b[J")  # up to the first live line, erase
            self._err().flush()
        except (OSError, ValueError):
            pass
        self._drawn = 0

    def _refresh(self) -> None:
        while True:
            time.sleep(REFRESH_SECONDS)
            with self._lock:
                if not any(call.status for call in self._calls):
                    self._clear()
                    self._refresher = None
                    return
                self._clear()
                self._draw()


_console: Console | None = None
_console_lock = threading.Lock()


def console() -> Console:
    global _console
    with _console_lock:
        if _console is None:
            _console = Console()
        return _console


@contextmanager
def showing(function: str, *, logs: bool, job_id: str | None = None) -> Iterator[Call | None]:
    """The display of one call while it waits (``None`` when it shows nothing at all): active
    for :func:`report` in this thread, removed from the screen when the block ends."""
    status = logs and not quiet()  # stream_logs=False silences the status line too
    if not status and not logs:
        yield None
        return
    screen = console()
    call = Call(screen, function, status, logs, job_id)
    screen.start(call)
    outcome: str | None = None
    try:
        with call.active():
            yield call
        outcome = f"done in {_clock(time.monotonic() - call.started)}"
    except BaseException as error:
        outcome = f"{type(error).__name__} after {_clock(time.monotonic() - call.started)}"
        raise
    finally:
        screen.end(call, outcome)


def reuse_or_show(function: str, *, logs: bool, job_id: str) -> Any:
    """The call already shown in this thread (a direct call that submitted ``job_id``), or a
    new display for a handle waited on by itself."""
    call = _current.get()
    if call is not None and call.job_id in (None, job_id):
        if call.job_id is None:
            call.set_job(job_id)
        return _reused(call)
    return showing(function, logs=logs, job_id=job_id)


@contextmanager
def _reused(call: Call) -> Iterator[Call]:
    yield call
