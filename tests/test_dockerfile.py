"""The runtime Dockerfile: pins survive the shell, and the image runs the runner."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[1] / "docker" / "Dockerfile.runtime"


def run_instructions() -> list[str]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    return [line[4:] for line in text.splitlines() if line.startswith("RUN ")]


def test_every_version_pin_is_quoted_so_the_shell_cannot_redirect() -> None:
    for command in run_instructions():
        for word in shlex.split(command, posix=False):
            if re.search(r"[<>=]=|[<>]", word):
                assert word[0] in "\"'", f"unquoted requirement {word!r} in: RUN {command}"


def test_runner_is_the_entrypoint_and_user_is_unprivileged() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert 'ENTRYPOINT ["python", "-m", "ascend.runner"]' in text
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert "--trusted-host" not in text


def test_the_builder_can_tell_the_runner_is_in_the_image() -> None:
    from ascend.images.build import RUNNER_LABEL

    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(rf'^LABEL {re.escape(RUNNER_LABEL)}="\S+"$', text, re.MULTILINE)
    assert '"uv>=' in text  # the image doubles as the cluster builder
