"""A container as a local process: its own session (so its whole tree can be signalled), its
output kept as timestamped log lines (stdout and stderr read from pipes of their own, as a
container runtime does, so that their lines never run into each other), and a memory watch
that SIGKILLs a session whose resident memory goes over its limit (the emulator's cgroup OOM
killer).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable

from ascend.testing.kube.util import rfc3339_nano

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class ContainerLog:
    """Whole lines with the time they were written; followers wait on it.

    Each stream (stdout, stderr) keeps its own unfinished line until its newline arrives, so
    a line is always from one stream: an unterminated ``print(..., end="")`` on stdout and a
    line on stderr are two entries, not one glued line.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._entries: list[tuple[float, bytes]] = []
        self._partial: dict[str, bytes] = {}
        self.closed = False

    def feed(self, data: bytes, stream: str = "stdout") -> None:
        with self._cond:
            *lines, self._partial[stream] = (self._partial.get(stream, b"") + data).split(b"\n")
            stamp = time.time()
            for line in lines:
                self._entries.append((stamp, line + b"\n"))
            if lines:
                self._cond.notify_all()

    def close(self) -> None:
        """The container exited: keep its unfinished lines. Only the last may stay without a
        newline (as the container left it); an earlier one would run into the next."""
        with self._cond:
            partials = [line for line in self._partial.values() if line]
            self._partial.clear()
            stamp = time.time()
            for index, line in enumerate(partials):
                last = index == len(partials) - 1
                self._entries.append((stamp, line if last else line + b"\n"))
            self.closed = True
            self._cond.notify_all()

    def entries(self) -> list[tuple[float, bytes]]:
        with self._cond:
            return list(self._entries)

    def wait_after(self, index: int, timeout: float) -> tuple[list[tuple[float, bytes]], bool]:
        """Entries from ``index`` on (waiting up to ``timeout`` for some) and whether the log
        is complete."""
        with self._cond:
            if len(self._entries) <= index and not self.closed:
                self._cond.wait(timeout)
            return self._entries[index:], self.closed


def render(entries: list[tuple[float, bytes]], timestamps: bool) -> bytes:
    if not timestamps:
        return b"".join(line for _, line in entries)
    return b"".join(rfc3339_nano(stamp).encode() + b" " + line for stamp, line in entries)


def session_members(session: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and stat[0] == session:
                members.append(int(entry))
    return members


def _stat(pid: int) -> tuple[int, int] | None:
    """(session, rss bytes) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return int(fields[3]), int(fields[21]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None


def signal_session(session: int, sig: int) -> None:
    """Signal every process of a session: its process group and any strays."""
    try:
        os.killpg(session, sig)
    except OSError:
        pass
    for pid in session_members(session):
        try:
            os.kill(pid, sig)
        except OSError:
            pass


class ContainerProcess:
    """One running container. ``argv`` runs in a new session with ``env`` in ``cwd``."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, log: ContainerLog) -> None:
        self.log = log
        self.oom_killed = False
        self.popen = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
        self.pid = self.popen.pid
        self._reader = threading.Thread(target=self._read, name=f"kube-log-{self.pid}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        """Drain stdout and stderr (one thread for both) into the log, each as its stream."""
        assert self.popen.stdout is not None and self.popen.stderr is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.popen.stdout.fileno(), selectors.EVENT_READ, "stdout")
            selector.register(self.popen.stderr.fileno(), selectors.EVENT_READ, "stderr")
            while selector.get_map():
                for key, _ in selector.select():
                    try:
                        chunk = os.read(key.fd, 65536)
                    except OSError:
                        chunk = b""
                    if chunk:
                        self.log.feed(chunk, key.data)
                    else:
                        selector.unregister(key.fd)
        self.log.close()

    def poll(self) -> int | None:
        return self.popen.poll()

    def signal(self, sig: int) -> None:
        if self.popen.returncode is None:
            signal_session(self.pid, sig)

    def finish(self) -> int:
        """After the main process exits: kill what is left of the tree (as a runtime does when
        a container's PID 1 exits), drain the output. Returns the container's exit code."""
        code = self.popen.wait()
        signal_session(self.pid, signal.SIGKILL)
        self._reader.join(5)
        for pipe in (self.popen.stdout, self.popen.stderr):
            if pipe is not None:
                pipe.close()
        if self.oom_killed:
            return 137
        return 128 - code if code < 0 else code


class MemoryWatch:
    """Every ``interval`` seconds, sums the RSS of each watched session; calls the session's
    callback once when the sum goes over its limit."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._watched: dict[int, tuple[int, Callable[[int], None]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kube-memory-watch", daemon=True)
        self._thread.start()

    def add(self, session: int, limit: int, exceeded: Callable[[int], None]) -> None:
        with self._lock:
            self._watched[session] = (limit, exceeded)

    def remove(self, session: int) -> None:
        with self._lock:
            self._watched.pop(session, None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                watched = dict(self._watched)
            if not watched:
                continue
            usage: dict[int, int] = {}
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    stat = _stat(int(entry))
                    if stat is not None and stat[0] in watched:
                        usage[stat[0]] = usage.get(stat[0], 0) + stat[1]
            for session, used in usage.items():
                limit, exceeded = watched[session]
                if used > limit:
                    self.remove(session)
                    exceeded(used)
