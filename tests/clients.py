"""Client programs run as real processes, as a user runs them: a script that imports ascend and
this repository's test functions (``f``), with pipes (or a pseudo-terminal) for its output."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = (
    "import concurrent.futures, sys, time\n"
    "import ascend\n"
    "from ascend.errors import JobCancelledError\n"
    "from tests import e2e_functions as f\n"
)


def client_env(**extra: str) -> dict[str, str]:
    """This test's environment (its ASCEND_* settings included), with the repository
    importable and unbuffered output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def write_script(tmp_path: Path, body: str, name: str = "client.py") -> Path:
    script = tmp_path / name
    script.write_text(HEADER + textwrap.dedent(body))
    return script


def start(
    tmp_path: Path, body: str, env: dict[str, str] | None = None, name: str = "client.py"
) -> subprocess.Popen[str]:
    """Start a client with its stdout and stderr on pipes."""
    return subprocess.Popen(
        [sys.executable, str(write_script(tmp_path, body, name))],
        env=env or client_env(),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 30) -> tuple[str, str]:
    """Its stdout and stderr once it has ended (killed if it takes longer than ``timeout``)."""
    try:
        return process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def run(
    tmp_path: Path, body: str, env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[str, str]:
    """Run a client to its end; its (stdout, stderr), after checking that it exited 0."""
    process = start(tmp_path, body, env)
    stdout, stderr = finish(process, timeout)
    assert process.returncode == 0, f"client exited {process.returncode}:\n{stderr}"
    return stdout, stderr


def run_on_terminal(
    tmp_path: Path, body: str, env: dict[str, str] | None = None, timeout: float = 60
) -> bytes:
    """Run a client with stdout and stderr on one pseudo-terminal, as in a shell; returns
    everything the terminal received."""
    script = write_script(tmp_path, body)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, str(script)],
        env={**(env or client_env()), "COLUMNS": "120", "TERM": "xterm"},
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    received = bytearray()
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the terminal closed: the client has ended
                    break
                if not chunk:
                    break
                received += chunk
            elif process.poll() is not None:
                break
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
        process.wait()
    assert process.returncode == 0, received.decode(errors="replace")
    return bytes(received)
