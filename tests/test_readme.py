"""The README's quick start stays true: two commands, the example runs, CI runs the tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the quick start has a bash block"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_quick_start_is_two_commands() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2
    assert "examples/" in commands[0] and "ASCEND_CLOUD_PROVIDER=local" in commands[0]
    assert commands[1].endswith("python -m pytest")


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    test_command = quick_start_commands()[1].split("&&")[-1].strip()
    assert re.search(rf"^{re.escape(test_command)}$", ci, re.M)


def test_the_example_in_the_first_command_runs_and_prints_its_result(tmp_path: Path) -> None:
    first = quick_start_commands()[0]
    example = re.search(r"python (examples/\S+\.py)", first)
    assert example
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASCEND_")}
    env.update(
        ASCEND_CLOUD_PROVIDER="local",
        ASCEND_LOCAL_STORAGE_DIR=str(tmp_path / "jobs"),
        ASCEND_CONFIG_DIR=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, example.group(1)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "summing 100 numbers" in result.stdout
    assert "result: {'total': 5050" in result.stdout
