"""Ctrl-C while calls wait: the jobs this process started are cancelled, in every thread.

Python delivers Ctrl-C (SIGINT) to the main thread only. A call waiting there sees
``KeyboardInterrupt`` and cancels its own job; a call waiting in a worker thread (a thread pool
of calls) would never hear of it, and the program would hang in the pool's shutdown until every
job had finished. So :func:`install` (run when a function is decorated, normally in the main
thread) wraps Python's default SIGINT handler: before raising ``KeyboardInterrupt`` in the main
thread, it cancels the jobs that calls in other threads are making (in a thread of its own,
which the interpreter waits for at exit); a call still submitting its job cancels it as soon as
it is submitted. Each of those calls then ends with :class:`ascend.errors.JobCancelledError`.

Only jobs this process submitted are cancelled: a handle from :func:`ascend.attach` is someone's
job (or an earlier run's), and Ctrl-C only detaches from it. A handler the program installed
itself is left alone: the program then owns Ctrl-C.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol


class _Cancellable(Protocol):
    job_id: str

    def cancel(self) -> None: ...


@dataclass
class _Slot:
    """One thread's call in progress: its job once submitted, and whether Ctrl-C came first."""

    thread: threading.Thread
    handle: _Cancellable | None = None
    interrupted: bool = False


_lock = threading.Lock()
_slots: dict[int, _Slot] = {}
_local = threading.local()
_installed = False


def install() -> None:
    """Wrap the default SIGINT handler (from the main thread only; once)."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return  # the program (or a notebook kernel) owns Ctrl-C
        signal.signal(signal.SIGINT, _on_interrupt)
    except (ValueError, OSError):  # no signals here (an embedded interpreter)
        return
    _installed = True


@contextmanager
def guarding(handle: _Cancellable | None = None) -> Iterator[None]:
    """While the current thread makes a call (``handle``: its job, or ``None`` until it is
    submitted, see :func:`adopt`), Ctrl-C in the main thread cancels that job."""
    current: _Slot | None = getattr(_local, "slot", None)
    if current is not None and current.handle in (None, handle):
        if handle is not None:
            adopt(handle)
        yield
        return
    slot = _Slot(threading.current_thread(), handle)
    with _lock:
        _slots[id(slot)] = slot
    _local.slot = slot
    try:
        yield
    finally:
        _local.slot = current
        with _lock:
            _slots.pop(id(slot), None)


def adopt(handle: _Cancellable) -> None:
    """The current thread's call has submitted ``handle``: guard it. When Ctrl-C came while it
    was being submitted, cancel it now."""
    slot: _Slot | None = getattr(_local, "slot", None)
    if slot is None or slot.handle is not None:
        return
    with _lock:
        slot.handle = handle
        interrupted = slot.interrupted
    if interrupted:
        cancel_and_say(handle)


def _on_interrupt(signum: int, frame: Any) -> None:
    main = threading.main_thread()
    elsewhere: list[_Cancellable] = []
    with _lock:
        for slot in _slots.values():
            if slot.thread is main:
                continue  # its KeyboardInterrupt does it
            if slot.handle is None:
                slot.interrupted = True  # still submitting: adopt() cancels it
            else:
                elsewhere.append(slot.handle)
    if elsewhere:
        # Not a daemon: the interpreter waits for it, so the program cannot exit (and leave
        # the jobs running) before the cancels are sent.
        threading.Thread(
            target=_cancel_all, args=(elsewhere,), name="ascend-interrupt", daemon=False
        ).start()
    signal.default_int_handler(signum, frame)


def _cancel_all(handles: list[_Cancellable]) -> None:
    threads = [
        threading.Thread(target=cancel_and_say, args=(handle,), name="ascend-cancel")
        for handle in handles
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def cancel_and_say(handle: _Cancellable) -> None:
    """Cancel a job because of Ctrl-C, and say in one line what happened."""
    try:
        handle.cancel()
    except Exception as error:
        say(
            f"[ascend] Ctrl-C: could not cancel job {handle.job_id}: {error} "
            f"(ascend jobs cancel {handle.job_id} stops it)"
        )
        return
    say(f"[ascend] Ctrl-C: cancelled job {handle.job_id}")


def say(line: str) -> None:
    """One line on stderr in one write: lines from several threads never run together
    (``print`` writes the text and its newline separately)."""
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
