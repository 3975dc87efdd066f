"""What a person sees while an image is resolved, built and pushed: one line per step with its
time, the builder's log lines indented under it; styled on a terminal, plain otherwise, and
nothing at all when the call says ``stream_logs=False``."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.steps: list[tuple[str, float]] = []  # (step, seconds), also when silent
        self._console = None
        if enabled and self.stream.isatty():
            from rich.console import Console

            self._console = Console(file=self.stream, highlight=False)

    def _print(self, text: str, style: str = "") -> None:
        if not self.enabled:
            return
        if self._console is not None:
            self._console.print(text, style=style, markup=False)
        else:
            print(text, file=self.stream, flush=True)

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        """``[ascend] image: <what> ...`` then the same line with its time, or ``failed``."""
        self._print(f"[ascend] image: {what} ...", "bold")
        start = time.monotonic()
        try:
            yield
        except BaseException:
            self._print(
                f"[ascend] image: {what} failed after {time.monotonic() - start:.1f} s", "red"
            )
            raise
        took = time.monotonic() - start
        self.steps.append((what, took))
        self._print(f"[ascend] image: {what} done in {took:.1f} s", "green")

    def line(self, text: str) -> None:
        """A line of the builder's own output."""
        self._print(f"    {text.rstrip()}", "dim")

    def note(self, text: str) -> None:
        self._print(f"[ascend] image: {text}")
