"""Functions and classes run remotely by ``tests/test_e2e_local.py``.

This module is local (not installed), so everything defined here travels to the runner by
value, exactly as a user's own script or notebook code does.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

# -- values ------------------------------------------------------------------------------------


@dataclass
class Point:
    x: int
    y: int
    tags: list[str] = field(default_factory=list)

    def norm2(self) -> int:
        return self.x * self.x + self.y * self.y


class Counter:
    """A plain class with state and methods."""

    def __init__(self, start: int) -> None:
        self.value = start

    def increment(self, by: int = 1) -> Counter:
        self.value += by
        return self

    def doubled(self) -> int:
        return self.value * 2


def identity(value):
    return value


def add(a, b):
    return a + b


def return_none():
    return None


def make_point(x, y):
    return Point(x, y, tags=[f"{x}", f"{y}"])


def make_counter(start):
    return Counter(start).increment(2)


def make_adder(n):
    offset = n * 10

    def adder(x):
        return x + offset + n

    return adder


def apply(fn, value):
    return fn(value)


def use_counter(counter, times):
    for _ in range(times):
        counter.increment()
    return counter.doubled()


def length_of(data):
    return len(data)


def megabyte():
    return bytes(range(256)) * 4096  # 1 MiB


def my_pid():
    return os.getpid()


def write_marker(path, _unused=None):
    with open(path, "w") as file:
        file.write("ran")
    return "written"


class TouchOnUnpickle:
    """Creates the file ``path`` when it is *unpickled*: proof that unpickling happened."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def loaded_modules():
    return sorted(sys.modules)


# -- exceptions --------------------------------------------------------------------------------


class CustomError(Exception):
    """A user-defined exception that pickles normally."""

    def __init__(self, message, code=0):
        super().__init__(message, code)
        self.code = code


class TwoArgError(Exception):
    """Two required arguments, but ``args`` holds one string: unpickling fails."""

    def __init__(self, left, right):
        super().__init__(f"{left} and {right}")
        self.left = left
        self.right = right


class LockHoldingError(Exception):
    """Holds a lock, so it cannot be pickled at all."""

    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()


def raise_value_error(x):
    raise ValueError(f"bad value {x}")  # RAISE-VALUE-ERROR


def raise_key_error():
    return {}["missing-key"]


def raise_custom_error():
    raise CustomError("custom failure", code=17)


def raise_two_arg_error():
    raise TwoArgError("left", "right")


def raise_lock_holding_error():
    raise LockHoldingError("holds a lock")


def exit_with(code):
    sys.exit(code)


# -- time, processes and output ----------------------------------------------------------------


def sleep_then_return(seconds, value):
    time.sleep(seconds)
    return value


def sleep_with_child(seconds, pid_file):
    child = subprocess.Popen(["sleep", "60"])
    with open(pid_file, "w") as file:
        file.write(str(child.pid))
    time.sleep(seconds)
    return "not reached"


def allocate_mib(mib):
    block = bytearray(mib * 1024 * 1024)
    return len(block) // (1024 * 1024)


def two_lines_with_pause():
    print("line 1", flush=True)
    time.sleep(1)
    print("line 2", flush=True)
    return "done"


def count_lines(letter, n, pause=0.01):
    for i in range(n):
        print(f"{letter} {i}", flush=True)
        time.sleep(pause)
    return n


def print_everywhere():
    print("out from function", flush=True)
    print("err from function", file=sys.stderr, flush=True)
    subprocess.run(["echo", "from child"], check=True)
    return "printed"


# -- many distinct functions, for the thread test ----------------------------------------------


def square(x):
    return x * x


def cube(x):
    return x * x * x


def negate(x):
    return -x


def reverse_text(text):
    return text[::-1]


def upper_text(text):
    return text.upper()


def sum_list(values):
    return sum(values)


def pair_up(a, b):
    return (a, b)


def point_norm(x, y):
    return Point(x, y).norm2()


def interleave_output(count, pause):
    for i in range(count):
        print(f"stdout line {i}")
        print(f"stderr line {i}", file=sys.stderr)
        time.sleep(pause)
    return count
