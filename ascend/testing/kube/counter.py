"""A thread-safe count of API requests by (method, path), for "requests per call" benchmarks."""

from __future__ import annotations

import threading
from collections import Counter


class RequestCounts:
    """Queries over a snapshot of request counts by (method, path); subclasses say where the
    counts come from (the emulator counts as it serves; the real API server's audit log)."""

    def snapshot(self) -> dict[tuple[str, str], int]:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    @property
    def total(self) -> int:
        return sum(self.snapshot().values())

    def by_method(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (method, _), count in self.snapshot().items():
            totals[method] += count
        return dict(totals)

    def matching(self, method: str | None = None, contains: str = "") -> int:
        """How many requests had this method (any when None) and a path containing ``contains``."""
        return sum(
            count
            for (m, path), count in self.snapshot().items()
            if (method is None or m == method) and contains in path
        )

    def as_json(self) -> dict[str, object]:
        items = sorted(self.snapshot().items())
        return {
            "total": sum(count for _, count in items),
            "requests": [{"method": m, "path": p, "count": c} for (m, p), c in items],
        }


class RequestCounter(RequestCounts):
    """Every request the API served, except ``/debug/...``. Paths have no query string."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def count(self, method: str, path: str) -> None:
        with self._lock:
            self._counts[(method, path)] += 1

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
