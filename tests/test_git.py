"""ascend.git against real repositories made with the real git binary (no subprocess mocks)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ascend.errors import GitDirtyError, GitError
from ascend.git import (
    GitInfo,
    GitWarning,
    check_clean,
    git_info,
    repository_name,
    resolve_git,
)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git binary")

POSIX = os.name == "posix"


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's git config and any inherited repository variables out of the tests."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_SYSTEM", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in (
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_COUNT",
    ):
        monkeypatch.delenv(name, raising=False)
    # tmp_path could itself sit inside some repository; never look above it.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.resolve()))


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, encoding="utf-8"
    )
    return result.stdout.strip()


def make_repo(path: Path, *, commit: bool = True) -> Path:
    """A repository on branch ``main``, with one committed file unless ``commit=False``."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "commit.gpgsign", "false")
    if commit:
        (path / "tracked.txt").write_text("one\n")
        (path / "other.txt").write_text("two\n")
        git(path, "add", ".")
        git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "myproject")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory in no repository (isolated_git's GIT_CEILING_DIRECTORIES stops the search)."""
    path = tmp_path / "plain"
    path.mkdir()
    return path


def fake_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    exe = bindir / "git"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return bindir


# -- git_info ------------------------------------------------------------------------------------


def test_clean_repository(repo: Path) -> None:
    info = git_info(repo)
    assert info is not None
    assert info.commit == git(repo, "rev-parse", "HEAD")
    assert len(info.commit) in (40, 64)
    assert info.branch == "main"
    assert info.dirty is False
    assert info.dirty_files == ()
    assert info.remote_url is None
    assert info.repository == "myproject"  # no origin: the top-level directory's name
    assert Path(info.root) == repo.resolve()


def test_default_path_is_the_working_directory(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    info = git_info()
    assert info is not None and Path(info.root) == repo.resolve()


def test_branch_name_follows_checkout(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feature/x-1")
    info = git_info(repo)
    assert info is not None and info.branch == "feature/x-1"


def test_modified_staged_untracked_deleted_are_dirty(repo: Path) -> None:
    (repo / "tracked.txt").write_text("changed\n")  # modified, unstaged
    (repo / "staged.txt").write_text("new\n")
    git(repo, "add", "staged.txt")  # added to the index
    (repo / "other.txt").unlink()  # deleted
    (repo / "untracked.txt").write_text("?\n")
    (repo / "newdir").mkdir()
    (repo / "newdir" / "inner.txt").write_text("?\n")
    info = git_info(repo)
    assert info is not None
    assert info.dirty is True
    assert set(info.dirty_files) == {
        "tracked.txt",
        "staged.txt",
        "other.txt",
        "untracked.txt",
        "newdir/",  # an untracked directory is listed once, as git status does
    }


@pytest.mark.parametrize(
    "change",
    ["modify", "stage", "untracked", "delete", "delete-staged"],
)
def test_each_kind_of_change_alone_makes_it_dirty(repo: Path, change: str) -> None:
    if change == "modify":
        (repo / "tracked.txt").write_text("changed\n")
        expected = "tracked.txt"
    elif change == "stage":
        (repo / "tracked.txt").write_text("changed\n")
        git(repo, "add", "tracked.txt")
        expected = "tracked.txt"
    elif change == "untracked":
        (repo / "fresh.txt").write_text("x\n")
        expected = "fresh.txt"
    elif change == "delete":
        (repo / "tracked.txt").unlink()
        expected = "tracked.txt"
    else:
        git(repo, "rm", "-q", "tracked.txt")
        expected = "tracked.txt"
    info = git_info(repo)
    assert info is not None
    assert info.dirty and info.dirty_files == (expected,)


def test_ignored_files_are_not_dirty(repo: Path) -> None:
    (repo / ".gitignore").write_text("*.log\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore logs")
    (repo / "run.log").write_text("noise\n")
    info = git_info(repo)
    assert info is not None and not info.dirty


def test_untracked_files_count_even_if_config_hides_them(repo: Path) -> None:
    git(repo, "config", "status.showUntrackedFiles", "no")
    (repo / "hidden.txt").write_text("x\n")
    info = git_info(repo)
    assert info is not None and info.dirty_files == ("hidden.txt",)


def test_rename_lists_the_new_path_only(repo: Path) -> None:
    git(repo, "mv", "tracked.txt", "renamed file.txt")
    (repo / "after.txt").write_text("x\n")
    info = git_info(repo)
    assert info is not None
    assert info.dirty_files == ("renamed file.txt", "after.txt")


@pytest.mark.skipif(not POSIX, reason="'?' is not allowed in Windows file names")
def test_rename_origin_is_not_read_as_an_entry(repo: Path) -> None:
    # The original path follows the new one as its own NUL-separated record; an origin that
    # looks like an untracked entry ("? ...") must not be listed.
    (repo / "? odd.txt").write_text("x\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "odd")
    git(repo, "mv", "? odd.txt", "even.txt")
    info = git_info(repo)
    assert info is not None and info.dirty_files == ("even.txt",)


def test_merge_conflict_is_dirty(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "other")
    (repo / "tracked.txt").write_text("theirs\n")
    git(repo, "commit", "-q", "-am", "theirs")
    git(repo, "checkout", "-q", "main")
    (repo / "tracked.txt").write_text("ours\n")
    git(repo, "commit", "-q", "-am", "ours")
    merge = subprocess.run(["git", "merge", "-q", "other"], cwd=repo, capture_output=True)
    assert merge.returncode != 0
    info = git_info(repo)
    assert info is not None
    assert info.dirty and info.dirty_files == ("tracked.txt",)


def test_names_with_spaces_and_unicode(repo: Path) -> None:
    names = ["with space.txt", "naïve ünïcode €.txt", "日本語 ファイル.txt", " leading space.txt"]
    if POSIX and sys.platform != "darwin":
        names.append("tab\tand\nnewline.txt")  # -z output: no quoting, no line splitting
    for name in names:
        (repo / name).write_text("x\n")
    (repo / "tracked.txt").write_text("changed\n")
    info = git_info(repo)
    assert info is not None
    assert set(info.dirty_files) == {*names, "tracked.txt"}


def test_unicode_in_branch_and_directory_names(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "projét ünï")
    git(repo, "checkout", "-q", "-b", "fonctionnalité")
    info = git_info(repo)
    assert info is not None
    assert info.branch == "fonctionnalité"
    assert info.repository == "projét ünï"
    assert Path(info.root) == repo.resolve()


def test_detached_head_has_no_branch(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "--detach")
    info = git_info(repo)
    assert info is not None
    assert info.branch is None
    assert info.commit == head
    assert not info.dirty


def test_repository_without_commits(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "empty", commit=False)
    info = git_info(repo)
    assert info is not None
    assert info.commit == ""
    assert info.branch == "main"  # the unborn branch
    assert not info.dirty
    (repo / "first.txt").write_text("x\n")
    info = git_info(repo)
    assert info is not None and info.commit == "" and info.dirty_files == ("first.txt",)


def test_outside_a_repository_is_none(outside: Path) -> None:
    assert git_info(outside) is None


def test_missing_path_is_none(tmp_path: Path) -> None:
    assert git_info(tmp_path / "does-not-exist") is None


def test_inside_the_git_directory_is_none(repo: Path) -> None:
    assert git_info(repo / ".git") is None


def test_subdirectory_reports_the_top_level(repo: Path) -> None:
    sub = repo / "a" / "b"
    sub.mkdir(parents=True)
    (sub / "file.txt").write_text("x\n")
    info = git_info(sub)
    assert info is not None
    assert Path(info.root) == repo.resolve()
    assert info.repository == "myproject"
    # Paths are relative to the top level, not to the directory asked about.
    assert info.dirty_files == ("a/",)
    git(repo, "add", ".")
    info = git_info(sub)
    assert info is not None and info.dirty_files == ("a/b/file.txt",)


def test_a_file_path_means_its_directory(repo: Path) -> None:
    info = git_info(repo / "tracked.txt")
    assert info is not None and Path(info.root) == repo.resolve()


def test_accepts_str_and_pathlike(repo: Path) -> None:
    assert git_info(str(repo)) == git_info(repo)


def test_inherited_git_dir_is_ignored(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = make_repo(tmp_path / "elsewhere")
    (elsewhere / "more.txt").write_text("x\n")
    git(elsewhere, "add", ".")
    git(elsewhere, "commit", "-q", "-m", "second")
    monkeypatch.setenv("GIT_DIR", str(elsewhere / ".git"))  # as inside a git hook
    monkeypatch.setenv("GIT_WORK_TREE", str(elsewhere))
    info = git_info(repo)
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_WORK_TREE")
    assert info is not None
    assert Path(info.root) == repo.resolve()
    assert info.commit == git(repo, "rev-parse", "HEAD") != git(elsewhere, "rev-parse", "HEAD")
    assert not info.dirty


def test_origin_remote_gives_repository_and_url(repo: Path) -> None:
    git(repo, "remote", "add", "origin", "git@github.com:acme/digit.git")
    info = git_info(repo)
    assert info is not None
    assert info.remote_url == "git@github.com:acme/digit.git"
    assert info.repository == "digit"


def test_other_remotes_are_not_origin(repo: Path) -> None:
    git(repo, "remote", "add", "upstream", "https://github.com/acme/upstream.git")
    info = git_info(repo)
    assert info is not None and info.remote_url is None and info.repository == "myproject"


@pytest.mark.parametrize(
    ("url", "stripped"),
    [
        ("https://user:token@host/org/repo.git", "https://host/org/repo.git"),
        ("https://ghp_secret@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("http://u:p%40ss@host:8080/org/repo", "http://host:8080/org/repo"),
        ("ssh://git:secret@host:2222/org/repo.git", "ssh://host:2222/org/repo.git"),
        ("ssh://git@host:2222/org/repo.git", "ssh://git@host:2222/org/repo.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("https://github.com/org/repo.git", "https://github.com/org/repo.git"),
    ],
)
def test_credentials_are_removed_from_remote_url(repo: Path, url: str, stripped: str) -> None:
    git(repo, "remote", "add", "origin", url)
    info = git_info(repo)
    assert info is not None
    assert info.remote_url == stripped
    assert info.repository == "repo"
    for secret in ("token", "ghp_secret", "p%40ss", "secret"):
        if secret in url:
            assert secret not in json.dumps(info.as_metadata())
            assert secret not in repr(info)


def test_as_metadata_is_json_safe(repo: Path) -> None:
    git(repo, "remote", "add", "origin", "https://github.com/org/repo.git")
    for i in range(60):
        (repo / f"file ü {i:02}.txt").write_text("x\n")
    info = git_info(repo)
    assert info is not None
    meta = info.as_metadata()
    assert set(meta) == {"commit", "branch", "dirty", "repository", "remote_url", "dirty_files"}
    assert json.loads(json.dumps(meta)) == meta
    json.dumps(meta, ensure_ascii=False).encode("utf-8")  # valid text, no lone surrogates
    assert meta["dirty"] is True
    assert isinstance(meta["dirty_files"], list) and len(meta["dirty_files"]) == 50
    assert len(info.dirty_files) == 60
    assert meta["repository"] == "repo" and meta["branch"] == "main"


@pytest.mark.skipif(sys.platform != "linux", reason="needs a filesystem that accepts any bytes")
def test_undecodable_file_name_is_still_json_safe(repo: Path) -> None:
    name = b"caf\xe9.txt"  # latin-1, not UTF-8
    with open(os.path.join(os.fsencode(repo), name), "wb") as f:
        f.write(b"x\n")
    info = git_info(repo)
    assert info is not None and info.dirty_files == ("caf\\xe9.txt",)
    json.dumps(info.as_metadata(), ensure_ascii=False).encode("utf-8")


def test_git_info_is_frozen(repo: Path) -> None:
    info = git_info(repo)
    assert info is not None
    with pytest.raises(AttributeError):
        info.commit = "x"  # type: ignore[misc]


# -- repository_name -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://github.com/org/repo.git", "repo"),
        ("https://github.com/org/repo", "repo"),
        ("https://host:8443/org/sub/repo", "repo"),
        ("https://host:8443/org/sub/repo.git", "repo"),
        ("https://github.com/org/repo.git/", "repo"),
        ("https://github.com/org/repo/", "repo"),
        ("https://user:token@github.com/org/repo.git", "repo"),
        ("https://github.com/org/repo.git?ref=main#frag", "repo"),
        ("https://github.com/org/my%20repo.git", "my repo"),
        ("http://[::1]:8080/org/repo.git", "repo"),
        ("git@github.com:org/repo.git", "repo"),
        ("git@github.com:repo.git", "repo"),
        ("github.com:org/repo", "repo"),
        ("ssh://git@host:2222/org/repo.git", "repo"),
        ("ssh://host/~user/repo.git", "repo"),
        ("git://host.xz/path/to/repo.git/", "repo"),
        ("file:///srv/git/repo.git", "repo"),
        ("/srv/git/repo.git", "repo"),
        ("/srv/git/repo.git/", "repo"),
        ("/home/me/repo/.git", "repo"),
        ("../sibling/repo.git", "repo"),
        ("C:\\Users\\me\\repo.git", "repo"),
        ("C:/Users/me/repo", "repo"),
        ("HTTPS://GITHUB.COM/ORG/REPO.GIT", "REPO"),
        ("https://github.com/Org/MyRepo.Git", "MyRepo"),
        ("https://github.com/org/legit.git", "legit"),
        ("https://github.com/org/legit", "legit"),
        ("git@github.com:org/digit.git", "digit"),
        ("https://github.com/org/digit", "digit"),
        ("https://github.com/org/widget", "widget"),
        ("https://github.com/org/git", "git"),
        ("https://github.com/org/git.git", "git"),
        ("https://github.com/org/tig", "tig"),
        ("https://github.com/org/repogit", "repogit"),
        ("https://github.com/org/my.git.project.git", "my.git.project"),
        ("https://github.com/org/my.git.project", "my.git.project"),
        ("  https://github.com/org/repo.git\n", "repo"),
    ],
)
def test_repository_name(url: str, name: str) -> None:
    assert repository_name(url) == name


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "https://github.com",
        "https://github.com/",
        "git@github.com:",
        "/",
        ".git",
        "http://[::1",
    ],
)
def test_repository_name_unparsable(url: str) -> None:
    assert repository_name(url) is None


# -- check_clean ---------------------------------------------------------------------------------


def info_with(files: tuple[str, ...]) -> GitInfo:
    return GitInfo(
        commit="a" * 40,
        branch="main",
        dirty=bool(files),
        dirty_files=files,
        repository="repo",
        remote_url=None,
        root="/src/repo",
    )


def test_check_clean_passes_a_clean_tree() -> None:
    check_clean(info_with(()))


def test_check_clean_names_the_files() -> None:
    with pytest.raises(GitDirtyError) as caught:
        check_clean(info_with(("a.py", "dir/b.py")))
    error = caught.value
    assert error.files == ("a.py", "dir/b.py")
    assert "a.py" in str(error) and "dir/b.py" in str(error)
    assert "more" not in str(error)
    assert error.fix == "commit or stash your changes, or pass git_check=False"
    assert "fix: commit or stash your changes" in str(error)


def test_check_clean_names_ten_files_and_counts_the_rest() -> None:
    files = tuple(f"file{i:02}.py" for i in range(13))
    with pytest.raises(GitDirtyError) as caught:
        check_clean(info_with(files))
    message = caught.value.message
    for name in files[:10]:
        assert name in message
    for name in files[10:]:
        assert name not in message
    assert "and 3 more" in message
    assert caught.value.files == files  # every file stays available to callers
    assert isinstance(caught.value, GitError)


def test_check_clean_exactly_ten_files_has_no_more() -> None:
    files = tuple(f"f{i}.py" for i in range(10))
    with pytest.raises(GitDirtyError) as caught:
        check_clean(info_with(files))
    assert "more" not in caught.value.message


def test_check_clean_on_a_real_dirty_repository(repo: Path) -> None:
    (repo / "tracked.txt").write_text("changed\n")
    info = git_info(repo)
    assert info is not None
    with pytest.raises(GitDirtyError) as caught:
        check_clean(info)
    assert caught.value.files == ("tracked.txt",)


# -- resolve_git ---------------------------------------------------------------------------------


@pytest.fixture
def dirty_repo(repo: Path) -> Path:
    (repo / "tracked.txt").write_text("changed\n")
    return repo


@pytest.mark.parametrize("git_check", [False, True])
def test_resolve_outside_without_project_skips(outside: Path, git_check: bool) -> None:
    assert resolve_git(git_check=git_check, project=False, path=outside) is None


@pytest.mark.parametrize("git_check", [False, True])
def test_resolve_outside_with_project_raises(outside: Path, git_check: bool) -> None:
    with pytest.raises(GitError) as caught:
        resolve_git(git_check=git_check, project=True, path=outside)
    assert "project=True needs a git repository: the project name comes from it" in str(
        caught.value
    )
    assert caught.value.fix == "run inside a git repository or drop project=True"
    assert not isinstance(caught.value, GitDirtyError)


@pytest.mark.parametrize("project", [False, True])
def test_resolve_dirty_without_check_returns_info(dirty_repo: Path, project: bool) -> None:
    info = resolve_git(git_check=False, project=project, path=dirty_repo)
    assert info is not None and info.dirty and info.dirty_files == ("tracked.txt",)


@pytest.mark.parametrize("project", [False, True])
def test_resolve_dirty_with_check_raises(dirty_repo: Path, project: bool) -> None:
    with pytest.raises(GitDirtyError) as caught:
        resolve_git(git_check=True, project=project, path=dirty_repo)
    assert caught.value.files == ("tracked.txt",)


@pytest.mark.parametrize("git_check", [False, True])
@pytest.mark.parametrize("project", [False, True])
def test_resolve_clean_returns_info(repo: Path, git_check: bool, project: bool) -> None:
    info = resolve_git(git_check=git_check, project=project, path=repo)
    assert info == git_info(repo)
    assert info is not None and not info.dirty


def test_resolve_defaults_to_the_working_directory(
    dirty_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(dirty_repo)
    with pytest.raises(GitDirtyError):
        resolve_git(git_check=True, project=False)


# -- git missing, hanging, or failing -----------------------------------------------------------


def test_git_not_installed_is_none(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "emptybin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert git_info(repo) is None
    assert resolve_git(git_check=True, project=False, path=repo) is None
    with pytest.raises(GitError, match="git is not installed"):
        resolve_git(git_check=False, project=True, path=repo)


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie awaiting its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.mark.skipif(not POSIX, reason="a shell-script git needs POSIX")
def test_timeout_raises_git_error(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = tmp_path / "sleeper.pid"
    fake_git(tmp_path, monkeypatch, f"sleep 10 &\necho $! > '{pidfile}'\nwait\n")
    start = time.monotonic()
    with pytest.raises(GitError) as caught:
        git_info(repo, timeout=0.5)
    elapsed = time.monotonic() - start
    assert elapsed < 5, f"git_info took {elapsed:.1f} s: the timeout did not stop git"
    message = str(caught.value)
    assert "git rev-parse --show-toplevel" in message  # names the command
    assert "0.5 s timeout" in message
    assert caught.value.fix == (
        "check the repository (a network filesystem or a huge untracked tree?) "
        "or pass git_check=False"
    )
    # git's own children die with it: no 10 s sleeper is left behind.
    if sys.platform == "linux" and pidfile.exists():
        pid = int(pidfile.read_text())
        deadline = time.monotonic() + 3
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _pid_alive(pid)


@pytest.mark.skipif(not POSIX, reason="a shell-script git needs POSIX")
def test_timeout_in_status_names_status(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = shutil.which("git")
    assert real is not None
    # Only `git status` hangs: the error must name the command that did.
    fake_git(
        tmp_path,
        monkeypatch,
        f'if [ "$1" = status ]; then exec sleep 10; fi\nexec "{real}" "$@"\n',
    )
    with pytest.raises(GitError, match=r"git status --porcelain=v2 --branch -z"):
        git_info(repo, timeout=0.5)


@pytest.mark.skipif(not POSIX, reason="a shell-script git needs POSIX")
def test_resolve_timeout_policy(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_git(tmp_path, monkeypatch, "exec sleep 10\n")
    # Nothing needs git: git_check=False is the way out the timeout error advises.
    with pytest.warns(GitWarning, match="timeout"):
        assert resolve_git(git_check=False, project=False, path=repo, timeout=0.3) is None
    with pytest.raises(GitError, match="timeout"):
        resolve_git(git_check=True, project=False, path=repo, timeout=0.3)
    with pytest.raises(GitError, match="timeout"):
        resolve_git(git_check=False, project=True, path=repo, timeout=0.3)


@pytest.mark.skipif(not POSIX, reason="a shell-script git needs POSIX")
def test_unexpected_git_failure_is_an_error_not_none(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # e.g. "detected dubious ownership": not "outside a repository", so not silently skipped.
    fake_git(tmp_path, monkeypatch, "echo 'fatal: detected dubious ownership' >&2\nexit 128\n")
    with pytest.raises(GitError, match="dubious ownership"):
        git_info(repo)


@pytest.mark.skipif(not POSIX, reason="a shell-script git needs POSIX")
def test_git_never_prompts_nor_locks(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "env.txt"
    real = shutil.which("git")
    fake_git(
        tmp_path,
        monkeypatch,
        # stdin is /dev/null (Linux shows it in /proc; elsewhere only the variables are checked)
        f"stdin=$(readlink /proc/$$/fd/0 2>/dev/null || echo /dev/null)\n"
        f"echo \"$GIT_TERMINAL_PROMPT $GIT_OPTIONAL_LOCKS $stdin\" >> '{record}'\n"
        f'exec "{real}" "$@"\n',
    )
    assert git_info(repo) is not None
    lines = record.read_text().splitlines()
    # three git calls, each with prompts and optional locks off, and nothing to read on stdin
    assert lines == [f"0 0 {os.devnull}"] * 3
