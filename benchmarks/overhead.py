"""What faithful tracebacks and progress lines cost a trivial call on the local provider.

Run by hand: ``python benchmarks/overhead.py [--calls 40]``. One process makes trivial calls
(``add(1, 2)``) in four configurations, interleaved call by call so that drift hits them all
alike (in a shuffled order, after a pause that lets the next warm runner start), and prints each
median against the baseline measured in the same run:

- baseline: no status lines (``ASCEND_QUIET=1``) and no source shipped for tracebacks;
- tracebacks: the user's source files travel with the call (the default);
- plain progress: status lines on a stderr that is not a terminal (the default in CI);
- live progress: status lines on a terminal (a stand-in TTY that discards what it gets).

Target (issue 10): each at most 1.05x the baseline.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

from _common import compile_bytecode

TARGET = 1.05
SETTLE = 0.4  # seconds between calls: the next warm runner has started, on 2 cores too


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, and keeps nothing."""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


@contextlib.contextmanager
def configuration(name: str) -> Iterator[None]:
    from ascend import wire

    shipped = wire.collect_sources
    quiet = os.environ.get("ASCEND_QUIET")
    stderr = sys.stderr
    try:
        if name in ("baseline", "tracebacks"):
            os.environ["ASCEND_QUIET"] = "1"
        else:
            os.environ.pop("ASCEND_QUIET", None)
        if name == "baseline":
            wire.collect_sources = lambda pickler: {}  # type: ignore[assignment]
        if name == "plain progress":
            sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - closed below
        if name == "live progress":
            sys.stderr = _Terminal()
        yield
    finally:
        if sys.stderr is not stderr:
            sys.stderr.close()
            sys.stderr = stderr
        wire.collect_sources = shipped  # type: ignore[assignment]
        if quiet is None:
            os.environ.pop("ASCEND_QUIET", None)
        else:
            os.environ["ASCEND_QUIET"] = quiet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40, help="calls per configuration")
    options = parser.parse_args()
    compile_bytecode()
    os.environ["ASCEND_CLOUD_PROVIDER"] = "local"
    os.environ.setdefault("ASCEND_LOCAL_STORAGE_DIR", tempfile.mkdtemp(prefix="ascend-bench-"))

    from ascend import ascend

    @ascend(timeout=60)
    def add(a: int, b: int) -> int:
        return a + b

    cases = ["baseline", "tracebacks", "plain progress", "live progress"]
    times: dict[str, list[float]] = {case: [] for case in cases}
    call: Callable[[], int] = lambda: add(1, 2)  # noqa: E731
    for case in cases:  # warm up: imports, the warm runner
        with configuration(case):
            call()
    order = random.Random(10)
    for _ in range(options.calls):
        for case in order.sample(cases, len(cases)):  # no case always follows another
            time.sleep(SETTLE)
            with configuration(case):
                start = time.perf_counter()
                assert call() == 3
                times[case].append(time.perf_counter() - start)
    base = statistics.median(times["baseline"])
    print(f"trivial local call, median of {options.calls} (interleaved); target <= {TARGET}x")
    for case in cases:
        median = statistics.median(times[case])
        verdict = "" if case == "baseline" else ("  ok" if median / base <= TARGET else "  OVER")
        print(f"  {case:16s} {median * 1000:7.1f} ms  {median / base:5.2f}x{verdict}")


if __name__ == "__main__":
    main()
