"""What signing costs a large payload: a 256 MB round trip through the envelope, signed
(HMAC-SHA256) against unsigned (plain SHA-256), measured in the same run.

Run by hand: ``python benchmarks/signing.py [--size-mb 256] [--runs 5]``. Each run writes a
package holding a ``size``-byte argument to a file (the MAC computed while the payload streams
out, as the client uploads it), verifies it (as the runner does before unpickling) and loads
it; the medians are compared, and the peak RSS growth of the signed case is printed as a
fraction of the payload (the MAC is never computed over a second copy in memory).

Target (issue 11): signed <= 1.1x unsigned.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time

TARGET = 1.1


def round_trip(path: str, payload: bytes, signed: bool) -> float:
    from ascend import wire
    from ascend.signing import KeyRing

    keys = KeyRing.new() if signed else None
    start = time.perf_counter()
    with open(path, "wb") as target:
        wire.dump_package(
            target, len, (payload,), {}, key=keys.current if keys else None, job_id="bench"
        )
    trust = wire.Trust(keys, "bench", allow_unsigned=not signed)
    with open(path, "rb") as file:
        envelope = wire.verify(file, "the package", trust)
        fn, args, _, _ = wire.load_call(file, envelope)
    assert fn(*args) == len(payload)
    del args
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    payload = os.urandom(options.size_mb * 1024 * 1024)
    times: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "package.pkl")
        round_trip(path, payload, True)  # warm up: imports, page cache
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        for _ in range(options.runs):
            for signed in (False, True):
                times[signed].append(round_trip(path, payload, signed))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    unsigned, signed = statistics.median(times[False]), statistics.median(times[True])
    print(f"{options.size_mb} MB round trip (write, verify, load), median of {options.runs}")
    print(f"  unsigned (SHA-256)      {unsigned:6.2f} s")
    print(f"  signed (HMAC-SHA256)    {signed:6.2f} s   {signed / unsigned:.2f}x (target <= {TARGET}x)")
    print(f"  peak RSS growth after warm-up: {(peak - before) / len(payload):.2f}x the payload")


if __name__ == "__main__":
    main()
