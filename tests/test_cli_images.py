"""`ascend images`: build, build-runtime, list, inspect and prune against the real local
registry (.ci/services.sh), resolving offline from the test wheelhouse (tests/wheelhouse.py).

The registry is shared (other tests, other people's runs), and these commands work on the fixed
repositories ascend-env and ascend-runtime at its root; prune deletes every ascend-env image it
sees. So each test talks to the registry through a proxy that moves every repository under a
namespace of its own (``ascend-env`` -> ``test-cli-images/<uuid>/ascend-env`` upstream): the
bytes are stored by the real registry, and no test can see or delete another's images.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cloudpickle
import pytest
from click.testing import CliRunner

from ascend.cli import main
from ascend.images.build import LOCK_ANNOTATION, env_dict
from ascend.images.choose import clear_cache
from ascend.registry import OCIRegistry

from . import services
from .image_helpers import push_python_base
from .registry_proxy import counting_proxy

MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"
service = pytest.mark.service("registry")


# -- a private corner of the shared registry ---------------------------------------------------


@pytest.fixture
def registry() -> Iterator[str]:
    """``127.0.0.1:PORT``: the real registry, seen through a namespace of this test's own."""
    upstream = services.require("registry")
    namespace = f"test-cli-images/{uuid.uuid4().hex[:12]}"
    with counting_proxy(upstream, namespace) as (address, _):
        yield address


@pytest.fixture
def configured(
    ascend_pm: object,
    registry: str,
    wheelhouse_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """The kubernetes provider on that registry, resolving only from the wheelhouse and
    building on this machine; returns the registry address."""
    for name, value in {
        "ASCEND_CLOUD_PROVIDER": "kubernetes",
        "ASCEND_STORAGE_URL": f"file://{tmp_path}/store",
        "ASCEND_REGISTRY_URL": registry,
        "ASCEND_IMAGES_BUILDER": "local",
        "ASCEND_IMAGES_NO_INDEX": "true",
        "ASCEND_IMAGES_FIND_LINKS": str(wheelhouse_dir),
        "COLUMNS": "300",  # rich tables: no folded cells
    }.items():
        monkeypatch.setenv(name, value)
    clear_cache()
    yield registry
    clear_cache()


@pytest.fixture
def base(configured: str) -> str:
    """A python:X.Y-slim stand-in in the test's namespace (no runner: builds add one)."""
    return push_python_base(configured)


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str


def ascend(*args: str, input: str | None = None) -> Ran:
    """The CLI as its console script runs it (``main``: errors printed, exit codes returned),
    with stdout and stderr apart."""
    with CliRunner().isolation(input=input) as (out, err, _):
        code = main(list(args))
    return Ran(code, out.getvalue().decode(), err.getvalue().decode())


def ok(*args: str, input: str | None = None) -> Ran:
    ran = ascend(*args, input=input)
    assert ran.code == 0, f"ascend {' '.join(args)} exited {ran.code}:\n{ran.stderr}"
    return ran


def pins(lock: str) -> dict[str, str]:
    from ascend.images.lock import Lock

    return dict(Lock((), lock).pins)


# -- help ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["build", "build-runtime", "list", "inspect", "prune"])
def test_every_command_has_help_with_an_example(ascend_pm: object, command: str) -> None:
    ran = ok("images", command, "--help")
    assert "Examples:" in ran.stdout
    assert f"ascend images {command}" in ran.stdout.split("Examples:", 1)[1]


def test_prune_help_says_space_is_freed_by_the_registry(ascend_pm: object) -> None:
    assert "garbage collection" in " ".join(ok("images", "prune", "--help").stdout.split())


# -- build: requirements from arguments, files and pyproject ----------------------------------


@service
def test_build_prints_only_the_reference_and_reuses_the_image(
    base: str, configured: str, tmp_path: Path
) -> None:
    """As CI runs it: a separate process, stdout captured apart (IMAGE=$(...))."""
    command = [sys.executable, "-m", "ascend", "images", "build", "--base", base]
    first = subprocess.run(
        [*command, "ascend-demo-tiny==1.0"], capture_output=True, text=True, timeout=240
    )
    assert first.returncode == 0, first.stderr
    reference = first.stdout.strip()
    assert first.stdout == reference + "\n"  # nothing else on stdout
    assert reference.startswith(f"{configured}/ascend-env:py{MINOR}-")
    assert "push " in first.stderr and "install " in first.stderr
    assert OCIRegistry(configured).image_exists("ascend-env", reference.rsplit(":", 1)[1])

    # Spelled differently, the same requirement is the same image, and nothing is built.
    second = subprocess.run(
        [*command, "Ascend_Demo_Tiny == 1.0"], capture_output=True, text=True, timeout=240
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert "install " not in second.stderr and "push " not in second.stderr
    assert "resolve " in second.stderr  # progress still goes to stderr

    quiet = ok("images", "build", "--base", base, "--quiet", "ascend-demo-tiny==1.0")
    assert quiet.stdout == first.stdout
    assert quiet.stderr == ""


@service
def test_build_from_a_requirements_file_with_an_include_and_comments(
    base: str, configured: str, tmp_path: Path
) -> None:
    (tmp_path / "reqs").mkdir()
    (tmp_path / "reqs" / "common.txt").write_text("ascend-demo-tiny==1.0  # the old one\n")
    main_file = tmp_path / "reqs" / "requirements.txt"
    main_file.write_text(
        "# what the job needs\n"
        "\n"
        "-r common.txt\n"  # relative to this file, not to the working directory
        "ascend-demo-needs \\\n"
        "    >=1.0\n"
    )
    ran = ok("images", "build", "--base", base, "-r", str(main_file))
    tag = ran.stdout.strip().rsplit(":", 1)[1]
    manifest = OCIRegistry(configured).manifest("ascend-env", tag).json()
    locked = pins(manifest["annotations"][LOCK_ANNOTATION])
    assert locked["ascend-demo-tiny"] == "1.0"
    assert locked["ascend-demo-needs"] == "1.0"
    asked = json.loads(manifest["annotations"]["org.ascend.requirements"])
    assert "ascend-demo-needs>=1.0" in asked and "ascend-demo-tiny==1.0" in asked


def test_an_index_option_in_a_requirements_file_is_refused_naming_the_line(
    ascend_pm: object, tmp_path: Path
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "ascend-demo-tiny\n--index-url https://deploy:t0ken@pypi.example.com/simple\n"
    )
    ran = ascend("images", "build", "-r", str(requirements))
    assert ran.code == 1
    assert f"{requirements}:2" in ran.stderr
    assert "--index-url" in ran.stderr
    assert "images.index_url" in ran.stderr and "ASCEND_IMAGES_INDEX_URL" in ran.stderr
    assert "t0ken" not in ran.stderr  # credentials in the URL are not printed
    assert "Traceback" not in ran.stderr
    assert ran.stdout == ""


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("--extra-index-url https://mirror.example/simple", "images.extra_index_urls"),
        ("-f ./wheels", "images.find_links"),
        ("--no-index", "images.no_index"),
        ("-e ./my-project", "-e"),
        ("-c constraints.txt", "-c"),
        ("ascend-demo-tiny==1.0 --hash=sha256:" + "0" * 64, "--hash"),
    ],
)
def test_other_option_lines_are_refused(
    ascend_pm: object, tmp_path: Path, line: str, named: str
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(line + "\n")
    ran = ascend("images", "build", "-r", str(requirements))
    assert ran.code == 1
    assert f"{requirements}:1" in ran.stderr and named in ran.stderr


def test_an_include_that_is_missing_or_loops_is_named(ascend_pm: object, tmp_path: Path) -> None:
    first = tmp_path / "a.txt"
    first.write_text("-r b.txt\n")
    ran = ascend("images", "build", "-r", str(first))
    assert ran.code == 1 and "b.txt" in ran.stderr and f"{first}" in ran.stderr
    (tmp_path / "b.txt").write_text("--requirement=a.txt\n")
    ran = ascend("images", "build", "-r", str(first))
    assert ran.code == 1 and "includes itself" in ran.stderr


def test_no_requirements_at_all_is_a_usage_error(ascend_pm: object, tmp_path: Path) -> None:
    empty = tmp_path / "requirements.txt"
    empty.write_text("# nothing yet\n")
    for args in ((), ("-r", str(empty))):
        ran = ascend("images", "build", *args)
        assert ran.code == 2
        assert "no requirements" in ran.stderr and "build-runtime" in ran.stderr


def test_extra_without_pyproject_is_a_usage_error(ascend_pm: object) -> None:
    ran = ascend("images", "build", "--extra", "plots")
    assert ran.code == 2 and "--pyproject" in ran.stderr


def test_requirements_file_forms_pip_accepts(tmp_path: Path) -> None:
    from ascend.images.sources import read_requirements_file

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "more.txt").write_text("Ascend_Demo_Tiny>=1.0\n")
    (tmp_path / "sub" / "last.txt").write_text("six\n")
    (tmp_path / "sub" / "other.txt").write_text("-r last.txt\n")
    main_file = tmp_path / "requirements.txt"
    main_file.write_text(
        "-rsub/more.txt\n"
        "--requirement=sub/other.txt   # nested, relative to sub/\n"
        "pkg @ https://example.com/pkg-1.0.tar.gz#sha256=abc\n"  # '#' inside a URL stays
        "numpy >= 1.26 ; python_version < '3.12'\n"
    )
    assert read_requirements_file(main_file) == [
        "ascend-demo-tiny>=1.0",
        "six",
        "pkg @ https://example.com/pkg-1.0.tar.gz#sha256=abc",
        'numpy>=1.26; python_version < "3.12"',
    ]


def test_a_line_that_is_not_a_requirement_is_named(tmp_path: Path) -> None:
    from ascend.errors import ImageBuildError
    from ascend.images.sources import read_requirements_file

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six\n\n>=1.0\n")
    with pytest.raises(ImageBuildError, match=rf"^{requirements}:3: requirement '>=1.0'"):
        read_requirements_file(requirements)


def test_pyproject_self_reference_keeps_markers_and_dynamic_is_refused(tmp_path: Path) -> None:
    from ascend.errors import ImageBuildError
    from ascend.images.sources import read_pyproject

    path = tmp_path / "pyproject.toml"
    path.write_text(
        "[project]\n"
        'name = "me"\n'
        "dependencies = []\n"
        "[project.optional-dependencies]\n"
        "a = [\"six; os_name == 'posix'\"]\n"
        'b = ["me[a]; python_version >= \'3.10\'", "me[b]"]\n'
    )
    assert read_pyproject(path, ("b",)) == ['six; python_version >= "3.10" and os_name == "posix"']
    path.write_text('[project]\nname = "me"\ndynamic = ["dependencies"]\n')
    with pytest.raises(ImageBuildError, match="dynamic"):
        read_pyproject(path, ())


PYPROJECT = """\
[project]
name = "Demo_Project"
version = "1.0"
dependencies = ["ascend-demo-tiny>=1.0"]

[project.optional-dependencies]
shout = ["ascend-demo-needs"]
all = ["demo-project[shout]"]
"""


@service
def test_build_from_pyproject_with_an_extra(base: str, configured: str, tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "pyproject.toml").write_text(PYPROJECT)
    ran = ok("images", "build", "--base", base, "--pyproject", str(tmp_path / "proj"))
    plain = ran.stdout.strip()
    tag = plain.rsplit(":", 1)[1]
    annotations = OCIRegistry(configured).manifest("ascend-env", tag).json()["annotations"]
    assert "ascend-demo-needs" not in pins(annotations[LOCK_ANNOTATION])

    # --extra adds the extra; one that names the project itself is expanded, not looked up.
    with_extra = []
    for extra in ("shout", "all"):
        ran = ok(
            "images",
            "build",
            "--base",
            base,
            "--pyproject",
            str(tmp_path / "proj" / "pyproject.toml"),
            "--extra",
            extra,
        )
        with_extra.append(ran.stdout)
    assert with_extra[0] == with_extra[1]
    assert with_extra[0].strip() != plain
    tag = with_extra[0].strip().rsplit(":", 1)[1]
    annotations = OCIRegistry(configured).manifest("ascend-env", tag).json()["annotations"]
    assert pins(annotations[LOCK_ANNOTATION])["ascend-demo-needs"] == "1.0"

    unknown = ascend("images", "build", "--pyproject", str(tmp_path / "proj"), "--extra", "nope")
    assert unknown.code == 1
    assert "no extra 'nope'" in unknown.stderr and "all, shout" in unknown.stderr


@service
def test_an_unknown_package_fails_fast_with_uvs_reason_and_pushes_nothing(
    base: str, configured: str
) -> None:
    registry = OCIRegistry(configured)
    before = registry.tags("ascend-env")
    start = time.monotonic()
    ran = ascend("images", "build", "--base", base, "ascend-demo-no-such-thing")
    assert ran.code == 1
    assert time.monotonic() - start < 60
    assert "ascend-demo-no-such-thing" in ran.stderr
    assert "do not resolve" in ran.stderr
    assert "not found" in ran.stderr.lower() or "no solution" in ran.stderr.lower()  # uv's words
    assert "Traceback" not in ran.stderr
    assert ran.stdout == ""
    assert registry.tags("ascend-env") == before


@service
def test_a_missing_runtime_image_names_build_runtime(configured: str) -> None:
    ran = ascend("images", "build", "ascend-demo-tiny")
    assert ran.code == 1
    assert f"{configured}/ascend-runtime:py{MINOR}" in ran.stderr
    assert "build-runtime" in ran.stderr


# -- build-runtime, then what a call builds on it: list and inspect -----------------------------


@service
def test_build_runtime_then_a_requirements_image_on_it_listed_and_inspected(
    base: str, configured: str
) -> None:
    registry = OCIRegistry(configured)
    ran = ok("images", "build-runtime", "--base", base, "--with", "ascend-demo-tiny==2.0")
    runtime = f"{configured}/ascend-runtime:py{MINOR}"
    assert ran.stdout == runtime + "\n"
    content_tags = [t for t in registry.tags("ascend-runtime") if t != f"py{MINOR}"]
    assert len(content_tags) == 1 and content_tags[0] in ran.stderr
    assert (
        registry.manifest("ascend-runtime", f"py{MINOR}").digest
        == registry.manifest("ascend-runtime", content_tags[0]).digest
    )
    manifest = registry.manifest("ascend-runtime", f"py{MINOR}").json()
    config = json.loads(registry.blob("ascend-runtime", manifest["config"]["digest"]))
    assert env_dict(config)["PYTHONPATH"] == "/opt/ascend/runtime"

    shown = json.loads(ok("images", "inspect", runtime, "--json").stdout)
    assert shown["packages"]["cloudpickle"] == cloudpickle.__version__
    assert shown["packages"]["ascend-demo-tiny"] == "2.0"
    assert "uv" in shown["packages"]
    assert shown["base_image"] == base
    assert shown["python"] == MINOR
    assert shown["cloudpickle_version"] == cloudpickle.__version__

    again = ok("images", "build-runtime", "--base", base, "--with", "ascend-demo-tiny==2.0")
    assert again.stdout == ran.stdout
    assert "install " not in again.stderr and "not rebuilt" in again.stderr

    # A call's image: on the runtime image by default (images.runtime is unset).
    image = ok("images", "build", "ascend-demo-needs").stdout.strip()
    tag = image.rsplit(":", 1)[1]
    built = registry.manifest("ascend-env", tag).json()["annotations"]
    assert built["org.opencontainers.image.base.name"] == runtime

    listed = json.loads(ok("images", "list", "--json").stdout)
    by_reference = {entry["reference"]: entry for entry in listed}
    assert by_reference[image]["requirements"] == ["ascend-demo-needs"]
    assert by_reference[image]["python"] == MINOR
    assert by_reference[image]["size"] > by_reference[runtime]["size"] > 0
    assert runtime in by_reference
    table = ok("images", "list").stdout
    assert image in table and "ascend-demo-needs" in table

    lock = ok("images", "inspect", tag, "--lock").stdout
    assert lock == built[LOCK_ANNOTATION]
    assert pins(lock) == {"ascend-demo-needs": "1.0", "ascend-demo-tiny": "2.0"}
    summary = ok("images", "inspect", tag).stdout
    assert f"base image   {runtime}" in summary
    assert "packages     2" in summary

    missing = ascend("images", "inspect", f"py{MINOR}-{'0' * 20}")
    assert missing.code == 1 and f"py{MINOR}-{'0' * 20}" in missing.stderr
    gone = ascend("images", "inspect", f"{configured}/ascend-env:nope")
    assert gone.code == 1 and f"{configured}/ascend-env:nope" in gone.stderr


# -- prune --------------------------------------------------------------------------------------


@service
def test_prune_dry_run_confirmation_keep_and_delete(base: str, configured: str) -> None:
    registry = OCIRegistry(configured)
    old = ok("images", "build", "--base", base, "-q", "ascend-demo-tiny==1.0").stdout.strip()
    new = ok("images", "build", "--base", base, "-q", "ascend-demo-tiny==2.0").stdout.strip()
    old_tag, new_tag = old.rsplit(":", 1)[1], new.rsplit(":", 1)[1]

    dry = ok("images", "prune", "--dry-run")
    assert old_tag in dry.stdout and new_tag in dry.stdout and "would delete" in dry.stdout
    assert registry.image_exists("ascend-env", old_tag)
    assert registry.image_exists("ascend-env", new_tag)

    refused = ascend("images", "prune", input="n\n")
    assert refused.code == 130
    assert registry.image_exists("ascend-env", old_tag)

    pruned = ok("images", "prune", "--keep", new_tag, "--yes")
    assert old_tag in pruned.stdout and new_tag not in pruned.stdout
    assert not registry.image_exists("ascend-env", old_tag)
    assert registry.image_exists("ascend-env", new_tag)
    assert "garbage collection" in pruned.stderr

    confirmed = ok("images", "prune", input="y\n")
    assert new_tag in confirmed.stdout
    assert not registry.image_exists("ascend-env", new_tag)
    assert ok("images", "prune").stdout == "nothing to prune\n"


@service
def test_prune_keeps_the_runtime_image_unless_all(base: str, configured: str) -> None:
    registry = OCIRegistry(configured)
    ok("images", "build-runtime", "--base", base, "-q")
    content_tags = [t for t in registry.tags("ascend-runtime") if t != f"py{MINOR}"]
    assert "nothing to prune" in ok("images", "prune", "--yes").stdout
    assert registry.image_exists("ascend-runtime", f"py{MINOR}")
    pruned = ok("images", "prune", "--all", "--yes")
    assert f"py{MINOR}" in pruned.stdout
    assert not registry.image_exists("ascend-runtime", f"py{MINOR}")
    assert not any(registry.image_exists("ascend-runtime", t) for t in content_tags)
