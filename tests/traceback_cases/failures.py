"""Exceptions that reach the caller as RemoteError, and the functions that raise them."""

import os
import sys


class Halt(BaseException):
    """A BaseException that is not an Exception: ``except Exception`` would miss it."""


def raise_halt():
    raise Halt("stop the pipeline")  # HALT-LINE


def raise_generator_exit():
    raise GeneratorExit("generator closed")  # GENERATOR-EXIT-LINE


def raise_keyboard_interrupt():
    raise KeyboardInterrupt("pressed ctrl-c")  # KEYBOARD-INTERRUPT-LINE


def exit_early():
    sys.exit(4)  # SYSTEM-EXIT-LINE


class StrictNewError(Exception):
    """Neither ``cls(*args)`` nor ``cls.__new__(cls, *args)`` rebuilds it."""

    def __new__(cls, rows, table):
        return super().__new__(cls, rows, table)

    def __init__(self, rows, table):
        super().__init__(f"{rows} rows in {table}")


def raise_strict_new():
    raise StrictNewError(3, "orders")  # STRICT-NEW-LINE


def _rebuild_only_in_the_job(message):
    if not os.environ.get("ASCEND_RESULT_URI"):
        raise RuntimeError("this exception can only be rebuilt inside the job")
    return JobOnlyError(message)


class JobOnlyError(Exception):
    """Rebuilt fine inside the job (its round trip passes), but not in the caller."""

    def __reduce__(self):
        return _rebuild_only_in_the_job, self.args


def raise_job_only():
    raise JobOnlyError("made in the job")  # JOB-ONLY-LINE


class Tracked(Exception):
    """Keyword-only and defaulted arguments, extra state set after construction."""

    def __init__(self, *, code, reason="unknown"):
        super().__init__(f"code {code}: {reason}")
        self.code = code
        self.reason = reason


def raise_tracked():
    error = Tracked(code=7, reason="late data")
    error.retry_after = 30
    raise error  # TRACKED-LINE


def sleep_after_marker(marker, seconds):
    import time

    with open(marker, "w") as handle:
        handle.write("running")
    time.sleep(seconds)
    return "slept"
