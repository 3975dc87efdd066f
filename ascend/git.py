"""Where a job's code came from: the git commit, branch and dirty state of the caller's tree.

Ascend records this with every job so a result can be traced back to the code that produced it,
and refuses to run from a dirty tree when ``git_check`` is on (the commit would not describe
the code). Only the ``git`` binary is used, with a timeout on every call, without prompting
and without taking optional locks, so that a slow or odd repository fails loudly instead of
hanging a job submission.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.parse
import warnings
from dataclasses import dataclass

from ascend.errors import GitDirtyError, GitError
from ascend.secrets import redact_url

__all__ = [
    "GitInfo",
    "GitWarning",
    "check_clean",
    "git_info",
    "repository_name",
    "resolve_git",
]

TIMEOUT_FIX = (
    "check the repository (a network filesystem or a huge untracked tree?) or pass git_check=False"
)
DIRTY_FIX = "commit or stash your changes, or pass git_check=False"
PROJECT_FIX = "run inside a git repository or drop project=True"

# How many dirty files the error message names, and how many the job metadata keeps.
MESSAGE_FILES = 10
METADATA_FILES = 50

# Variables that make git ignore the directory it runs in (set inside git hooks, for example);
# the repository must be the one containing ``path``, not one inherited from the environment.
_LOCATION_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)
# ``[user@]host:path`` (git's scp-like syntax): a colon before any slash.
_SCP_LIKE = re.compile(r"^(?:[^@/]*@)?[^/:]+:")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


class GitWarning(UserWarning):
    """Git could not be asked, and nothing required it, so the job runs without provenance."""


@dataclass(frozen=True)
class GitInfo:
    """The state of a git work tree when a job was submitted."""

    commit: str  # full sha of HEAD; "" in a repository without commits
    branch: str | None  # None when HEAD is detached
    dirty: bool
    dirty_files: tuple[str, ...]  # repo-relative; an untracked directory is listed once, "dir/"
    repository: str | None  # from the origin URL, else the top-level directory's name
    remote_url: str | None  # origin URL without credentials, query or fragment (redact_url)
    root: str  # absolute path of the work tree's top level

    def as_metadata(self) -> dict[str, object]:
        """A JSON-safe summary for job metadata; the local ``root`` path is left out."""
        return {
            "commit": self.commit,
            "branch": self.branch,
            "dirty": self.dirty,
            "repository": self.repository,
            "remote_url": self.remote_url,
            "dirty_files": list(self.dirty_files[:METADATA_FILES]),
        }


class _NotARepository(Exception):
    """Internal: there is no work tree to describe; ``args[0]`` says why."""


def _child_env() -> dict[str, str]:
    """The environment for git: never prompt, never lock, plain-English errors, our path only."""
    env = {k: v for k, v in os.environ.items() if k not in _LOCATION_VARIABLES}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_OPTIONAL_LOCKS"] = "0"
    # stderr is matched below ("not a git repository"); translated messages would not match.
    env["LC_ALL"] = "C"
    env["LANGUAGE"] = "C"
    return env


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill git and anything it started (hooks, fsmonitor, a fake git's ``sleep``)."""
    if sys.platform == "win32":  # no process groups; git alone
        process.kill()
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def _run(args: list[str], cwd: str, timeout: float) -> tuple[int, bytes, bytes]:
    """Run ``git *args`` in ``cwd``; raises GitError on timeout, _NotARepository if no git."""
    command = ["git", *args]
    try:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_child_env(),
            # Its own process group, so a timeout kills git's children too.
            start_new_session=sys.platform != "win32",
        )
    except FileNotFoundError as exc:
        raise _NotARepository("git is not installed (not found on PATH)") from exc
    except OSError as exc:
        raise GitError(
            f"could not run git: {exc}", fix="check the git installation or pass git_check=False"
        ) from exc
    with process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(process)
            process.wait()
            raise GitError(
                f"`{shlex.join(command)}` did not finish within the {timeout:g} s timeout in {cwd}",
                fix=TIMEOUT_FIX,
            ) from None
    return process.returncode, out, err


def _failed(args: list[str], cwd: str, err: bytes) -> GitError:
    """An error for a git command that failed for a reason we do not expect."""
    detail = err.decode("utf-8", "replace").strip() or "no message"
    return GitError(
        f"`{shlex.join(['git', *args])}` failed in {cwd}: {detail}",
        fix="fix the repository (see git's message) or pass git_check=False",
    )


def _start_dir(path: str | os.PathLike[str] | None) -> str:
    """The directory git runs in: ``path`` itself, or the directory of a file."""
    start = os.path.abspath(os.fspath(path) if path is not None else os.getcwd())
    if os.path.isdir(start):
        return start
    if os.path.isfile(start):
        return os.path.dirname(start)
    raise _NotARepository(f"{start} does not exist")


def _top_level(cwd: str, timeout: float) -> str:
    """The work tree's top level; _NotARepository outside one (or inside ``.git``, or bare)."""
    args = ["rev-parse", "--show-toplevel"]
    code, out, err = _run(args, cwd, timeout)
    if code != 0:
        message = err.decode("utf-8", "replace")
        if "not a git repository" in message or "must be run in a work tree" in message:
            raise _NotARepository(f"{cwd} is not inside a git work tree")
        raise _failed(args, cwd, err)
    top = out.rstrip(b"\r\n")
    if not top:  # inside the .git directory of a repository, some gits print nothing
        raise _NotARepository(f"{cwd} is not inside a git work tree")
    return os.path.normpath(os.fsdecode(top))


def _status(cwd: str, timeout: float) -> tuple[str, str | None, tuple[str, ...]]:
    """Commit, branch and changed paths, from one ``git status --porcelain=v2 --branch -z``."""
    # untracked-files=normal: the config may hide untracked files; "all" could walk huge trees.
    args = ["status", "--porcelain=v2", "--branch", "-z", "--untracked-files=normal"]
    code, out, err = _run(args, cwd, timeout)
    if code != 0:
        raise _failed(args, cwd, err)
    commit = ""
    branch: str | None = None
    files: list[str] = []
    records = out.split(b"\0")
    i = 0
    while i < len(records):
        record = records[i]
        i += 1
        if record.startswith(b"# branch.oid "):
            oid = record[len(b"# branch.oid ") :].decode("ascii", "replace")
            commit = "" if oid == "(initial)" else oid
        elif record.startswith(b"# branch.head "):
            head = record[len(b"# branch.head ") :].decode("utf-8", "replace")
            branch = None if head == "(detached)" else head
        elif record.startswith(b"1 "):  # changed: 8 fields, then the path
            files.append(_path(record.split(b" ", 8)[8]))
        elif record.startswith(b"2 "):  # renamed or copied: 9 fields, the path, then the origin
            files.append(_path(record.split(b" ", 9)[9]))
            i += 1  # the original path is the next NUL-separated record
        elif record.startswith(b"u "):  # unmerged: 10 fields, then the path
            files.append(_path(record.split(b" ", 10)[10]))
        elif record.startswith(b"? "):  # untracked
            files.append(_path(record[2:]))
    return commit, branch, tuple(files)


def _path(raw: bytes) -> str:
    """A path for display and JSON: always valid text, undecodable bytes shown as escapes."""
    return raw.decode("utf-8", "backslashreplace")


def _origin_url(cwd: str, timeout: float) -> str | None:
    """The configured ``remote.origin.url``, or None (git exits 1 when it is unset)."""
    args = ["config", "--get", "remote.origin.url"]
    code, out, err = _run(args, cwd, timeout)
    if code == 1:
        return None
    if code != 0:
        raise _failed(args, cwd, err)
    return out.decode("utf-8", "replace").strip() or None


def repository_name(remote_url: str) -> str | None:
    """The repository's name from any git remote URL form, or None if there is none.

    Only a literal ``.git`` suffix (any case) is removed: ``rstrip(".git")`` would turn
    ``digit`` into ``d``.
    """
    url = remote_url.strip()
    if not url:
        return None
    if "://" in url:
        try:
            path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
        except ValueError:  # e.g. an unclosed IPv6 bracket
            return None
    elif _SCP_LIKE.match(url) and not _WINDOWS_DRIVE.match(url):
        path = url.split(":", 1)[1]  # [user@]host:path
    else:  # a local path, POSIX or Windows
        path = url
    segments = [s for s in re.split(r"[\\/]+", path) if s]
    while segments and segments[-1].lower() == ".git":  # /path/to/repo/.git -> repo
        segments.pop()
    if not segments:
        return None
    name = segments[-1]
    if name.lower().endswith(".git"):
        name = name[: -len(".git")]
    if name in ("", ".", ".."):
        return None
    return name


def _inspect(path: str | os.PathLike[str] | None, timeout: float) -> GitInfo:
    """git_info's work; raises _NotARepository instead of returning None, to keep the reason."""
    cwd = _start_dir(path)
    root = _top_level(cwd, timeout)
    commit, branch, files = _status(cwd, timeout)
    raw_url = _origin_url(cwd, timeout)
    # A remote may carry a token (https://user:token@host/..., ?access_token=...): job
    # metadata is read by everyone who can read the storage, so only the location is kept.
    remote_url = redact_url(raw_url) if raw_url else None
    repository = (repository_name(remote_url) if remote_url else None) or (
        os.path.basename(root) or None
    )
    return GitInfo(
        commit=commit,
        branch=branch,
        dirty=bool(files),
        dirty_files=files,
        repository=repository,
        remote_url=remote_url,
        root=root,
    )


def git_info(path: str | os.PathLike[str] | None = None, timeout: float = 5.0) -> GitInfo | None:
    """Describe the git work tree containing ``path`` (default: the working directory).

    None when ``path`` is not inside a work tree or git is not installed: running outside git is
    allowed. Raises GitError when git times out (each of its three calls has ``timeout``
    seconds) or fails for another reason, such as a repository git refuses to read.
    """
    try:
        return _inspect(path, timeout)
    except _NotARepository:
        return None


def check_clean(info: GitInfo) -> None:
    """Raise GitDirtyError if the tree has changes: the recorded commit would not be the code."""
    if not info.dirty:
        return
    files = info.dirty_files
    shown = "\n".join(f"  {name}" for name in files[:MESSAGE_FILES])
    more = len(files) - MESSAGE_FILES
    if more > 0:
        shown += f"\n  ... and {more} more"
    count = f"{len(files)} uncommitted change" + ("" if len(files) == 1 else "s")
    raise GitDirtyError(
        f"the git work tree {info.root} has {count}:\n{shown}", files=files, fix=DIRTY_FIX
    )


def resolve_git(
    git_check: bool,
    project: bool,
    path: str | os.PathLike[str] | None = None,
    timeout: float = 5.0,
) -> GitInfo | None:
    """The git policy applied on each call of a decorated function.

    Outside a repository the check is skipped (None), unless ``project=True``, whose name comes
    from the repository. When neither ``git_check`` nor ``project`` needs git, a git failure
    (a timeout, say) is a GitWarning and None, so ``git_check=False`` is always a way out.
    """
    try:
        info = _inspect(path, timeout)
    except _NotARepository as exc:
        if project:
            raise GitError(
                f"project=True needs a git repository: the project name comes from it ({exc})",
                fix=PROJECT_FIX,
            ) from None
        return None
    except GitError as exc:
        if git_check or project:
            raise
        warnings.warn(f"job provenance not recorded: {exc.message}", GitWarning, stacklevel=2)
        return None
    if git_check:
        check_clean(info)
    return info
