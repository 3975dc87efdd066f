"""Runtime images: requirement normalization, the content-addressed tag, the uv lock, the
reproducible layer, and daemonless builds pushed to the real local registry (.ci/services.sh).

Resolution and installs use uv against a local wheelhouse (tests/wheelhouse.py): no internet.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import re
import tarfile
import time
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ascend.errors import ImageBuildError
from ascend.images import ImageSpec, normalize_requirement
from ascend.images.build import LOCK_ANNOTATION, build_env_image, env_dict
from ascend.images.layer import write_layer
from ascend.images.lock import IndexOptions, Lock, resolve
from ascend.images.progress import Progress
from ascend.registry import OCIRegistry

from . import services
from .image_helpers import push_python_base
from .registry_proxy import counting_proxy

OCI_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")


# -- normalize_requirement ----------------------------------------------------------------------


class TestNormalizeRequirement:
    @pytest.mark.parametrize(
        ("requirement", "expected"),
        [
            ("NumPy>=1.26", "numpy>=1.26"),
            ("scikit_learn == 1.5", "scikit-learn==1.5"),
            ("Foo.Bar", "foo-bar"),
            ("foo", "foo"),
            ("  numpy  ", "numpy"),
            ("numpy >= 1.26, < 2", "numpy<2,>=1.26"),
            ("Foo__Bar--Baz..Qux", "foo-bar-baz-qux"),
            ("requests [security] >= 2", "requests[security]>=2"),
            ("numpy>=1.26 ; python_version < '3.12'", 'numpy>=1.26; python_version < "3.12"'),
            ("zope.interface~=6.0", "zope-interface~=6.0"),
            ("torch==2.3.0+cu121", "torch==2.3.0+cu121"),
            (
                "pkg @ https://example.com/pkg-1.0.tar.gz",
                "pkg @ https://example.com/pkg-1.0.tar.gz",
            ),
        ],
    )
    def test_cases(self, requirement: str, expected: str) -> None:
        assert normalize_requirement(requirement) == expected

    @pytest.mark.parametrize("requirement", ["", "   ", ">=1", "==1.0", "-foo", "[extra]", "@x"])
    def test_not_a_requirement(self, requirement: str) -> None:
        with pytest.raises(ImageBuildError) as caught:
            normalize_requirement(requirement)
        assert repr(requirement) in caught.value.message
        assert caught.value.fix is not None and "numpy>=1.26" in caught.value.fix

    @pytest.mark.parametrize(
        "requirement",
        [
            "NumPy>=1.26",
            "scikit_learn == 1.5",
            "requests [security] >= 2",
            "numpy>=1.26 ; python_version < '3.12'",
            "pkg @ https://example.com/pkg-1.0.tar.gz",
        ],
    )
    def test_result_is_still_a_requirement(self, requirement: str) -> None:
        requirements = pytest.importorskip("packaging.requirements")
        original = requirements.Requirement(requirement)
        normalized = requirements.Requirement(normalize_requirement(requirement))
        assert str(normalized.specifier) == str(original.specifier)
        assert normalized.extras == original.extras
        assert str(normalized.marker) == str(original.marker)
        assert normalized.url == original.url

    @pytest.mark.parametrize(
        "requirement",
        [
            "foo>=1; python_version >= '3.8' and sys_platform == 'linux'",
            "foo; sys_platform not in 'win32'",
        ],
    )
    def test_compound_markers_survive(self, requirement: str) -> None:
        requirements = pytest.importorskip("packaging.requirements")
        original = requirements.Requirement(requirement)
        normalized = requirements.Requirement(normalize_requirement(requirement))
        assert str(normalized.marker) == str(original.marker)

    @given(
        st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?", fullmatch=True),
        st.sampled_from(["", ">=1.0", " == 2.3 ", "[extra]>=1", "<2,>=1"]),
    )
    def test_name_is_pep503_canonical_and_idempotent(self, name: str, rest: str) -> None:
        normalized = normalize_requirement(name + rest)
        canonical = re.sub(r"[-_.]+", "-", name).lower()
        assert normalized == canonical + "".join(rest.split())
        assert normalize_requirement(normalized) == normalized


# -- ImageSpec: the content address -----------------------------------------------------------

LOCK = Lock(("pandas",), "pandas==2.2.3 \\\n    --hash=sha256:aa\nnumpy==2.1.0\n")
SPEC = ImageSpec(
    base_image="registry.example.com/ascend-runtime:py3.11",
    base_digest="sha256:" + "1" * 64,
    python_version="3.11.9",
    lock=LOCK,
    ascend_version="0.1.0",
    cloudpickle_version="3.1.1",
)


class TestImageSpec:
    @pytest.mark.parametrize(
        "change",
        [
            {"base_digest": "sha256:" + "2" * 64},
            {"python_version": "3.12.1"},
            {"lock": Lock(("pandas",), "pandas==2.2.2\nnumpy==2.1.0\n")},
            {"ascend_version": "0.2.0"},
            {"cloudpickle_version": "3.1.2"},
            {"with_runner": True},
        ],
    )
    def test_every_input_of_the_content_changes_the_tag(self, change: dict[str, Any]) -> None:
        assert dataclasses.replace(SPEC, **change).tag != SPEC.tag

    @pytest.mark.parametrize(
        "change",
        [
            {"base_image": "other.example.com/mirror/ascend-runtime:py3.11"},
            {"python_version": "3.11.4"},
            {"repository": "team/ascend-env"},
            {
                "lock": Lock(
                    ("pandas",), "# a comment\nnumpy==2.1.0\n\npandas==2.2.3 --hash=sha256:aa\n"
                )
            },
        ],
    )
    def test_names_layout_and_patch_versions_do_not(self, change: dict[str, Any]) -> None:
        assert dataclasses.replace(SPEC, **change).tag == SPEC.tag

    @given(
        st.sampled_from(["3.11.0", "3.12.7", "3.13.1"]),
        st.lists(st.from_regex(r"[a-z]{1,8}==[0-9]{1,2}\.[0-9]", fullmatch=True), max_size=6),
        st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    )
    def test_tag_is_a_valid_oci_tag_and_deterministic(
        self, python: str, pins: list[str], digest: str
    ) -> None:
        lock = Lock((), "\n".join(pins))
        spec = dataclasses.replace(
            SPEC, python_version=python, lock=lock, base_digest="sha256:" + digest
        )
        again = dataclasses.replace(spec, lock=Lock((), "\n".join(reversed(pins))))
        assert OCI_TAG.fullmatch(spec.tag)
        assert spec.tag.startswith("py" + ".".join(python.split(".")[:2]) + "-")
        assert again.tag == spec.tag


# -- the lock: uv on the client, offline ------------------------------------------------------


class TestResolve:
    def test_pins_exact_versions_with_hashes(self, wheelhouse: IndexOptions) -> None:
        lock = resolve(["ascend-demo-needs"], "3.11", wheelhouse)
        assert dict(lock.pins) == {"ascend-demo-needs": "1.0", "ascend-demo-tiny": "2.0"}
        assert lock.has_hashes()

    def test_spelling_and_order_of_requirements_give_one_lock(
        self, wheelhouse: IndexOptions
    ) -> None:
        first = resolve(["Ascend_Demo.Tiny<2", "ascend-demo-needs"], "3.11", wheelhouse)
        second = resolve(["ascend-demo-needs", "ascend-demo-tiny <2"], "3.11", wheelhouse)
        assert first.content_key() == second.content_key()
        assert dict(first.pins)["ascend-demo-tiny"] == "1.0"

    @pytest.mark.parametrize(
        ("requirements", "named"),
        [
            (["ascend-demo-missing-zzz"], "ascend-demo-missing-zzz"),
            (["ascend-demo-conflict", "ascend-demo-tiny>=1"], "ascend-demo-conflict"),
            (["ascend-demo-native"], "ascend-demo-native"),
        ],
    )
    def test_what_does_not_resolve_fails_within_seconds_naming_it(
        self, wheelhouse: IndexOptions, requirements: list[str], named: str
    ) -> None:
        start = time.monotonic()
        with pytest.raises(ImageBuildError) as caught:
            resolve(requirements, "3.11", wheelhouse)
        assert time.monotonic() - start < 10
        assert named in caught.value.message
        assert "Python 3.11 on linux x86_64" in caught.value.message

    def test_a_constraint_the_runner_needs_wins(self, wheelhouse: IndexOptions) -> None:
        with pytest.raises(ImageBuildError, match="ascend-demo-tiny"):
            resolve(
                ["ascend-demo-tiny>=2"], "3.11", wheelhouse, constraints=("ascend-demo-tiny<2",)
            )


# -- the layer ----------------------------------------------------------------------------------


def _tree(root: Path) -> None:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("X = 1\n")
    (root / "pkg" / "sub" / "b.py").write_text("Y = 2\n")
    (root / "bin").mkdir()
    tool = root / "bin" / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o775)
    (root / "pkg" / "__pycache__").mkdir()
    (root / "pkg" / "__pycache__" / "x.pyc").write_bytes(b"junk")


class TestLayer:
    def test_two_builds_of_one_tree_give_one_digest(self, tmp_path: Path) -> None:
        first, second = tmp_path / "a", tmp_path / "b"
        for root in (first, second):
            _tree(root)
        (second / "pkg" / "__init__.py").touch()  # another mtime, same content
        one = write_layer(first, "/opt/ascend/packages", tmp_path / "1.tar.gz")
        two = write_layer(second, "/opt/ascend/packages", tmp_path / "2.tar.gz")
        assert (one.digest, one.diff_id) == (two.digest, two.diff_id)
        assert one.path.read_bytes() == two.path.read_bytes()

    def test_entries_are_sorted_owned_by_root_timeless_and_without_caches(
        self, tmp_path: Path
    ) -> None:
        _tree(tmp_path / "t")
        layer = write_layer(tmp_path / "t", "/opt/ascend/packages", tmp_path / "l.tar.gz")
        raw = gzip.decompress(layer.path.read_bytes())
        assert "sha256:" + __import__("hashlib").sha256(raw).hexdigest() == layer.diff_id
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            members = tar.getmembers()
        names = [m.name for m in members]
        assert names[:3] == ["opt", "opt/ascend", "opt/ascend/packages"]
        assert names == sorted(names)
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        assert {(m.mtime, m.uid, m.gid, m.uname) for m in members} == {(0, 0, 0, "")}
        modes = {m.name: m.mode for m in members}
        assert modes["opt/ascend/packages/bin/tool"] == 0o755
        assert modes["opt/ascend/packages/pkg/__init__.py"] == 0o644


# -- builds against the real registry -----------------------------------------------------------


@pytest.fixture
def registry() -> str:
    return services.require("registry")


def _spec(base: str, registry: OCIRegistry, lock: Lock, **changes: Any) -> ImageSpec:
    from ascend.images.build import open_base

    opened = open_base(base, registry)
    fields: dict[str, Any] = {
        "base_image": base,
        "base_digest": opened.digest,
        "python_version": opened.python_version,
        "lock": lock,
        "ascend_version": "0.1.0",
        "cloudpickle_version": "3.1.1",
        "repository": f"test/env-{uuid.uuid4().hex[:8]}",
    }
    fields.update(changes)
    return ImageSpec(**fields)


@pytest.mark.service("registry")
class TestBuild:
    def test_build_pushes_base_plus_one_layer_with_the_lock(
        self, registry: str, wheelhouse: IndexOptions
    ) -> None:
        base = push_python_base(registry, repository=f"test/python-{uuid.uuid4().hex[:8]}")
        client = OCIRegistry(registry)
        lock = resolve(["ascend-demo-needs"], "3.11", wheelhouse)
        spec = _spec(base, client, lock)
        progress = Progress(enabled=False)
        image = build_env_image(spec, client, index=wheelhouse, timeout=120, progress=progress)
        assert image == f"{registry}/{spec.repository}:{spec.tag}"
        manifest = client.manifest(spec.repository, spec.tag).json()
        assert len(manifest["layers"]) == 2  # the base's and ours
        assert manifest["annotations"][LOCK_ANNOTATION] == lock.text
        config = json.loads(client.blob(spec.repository, manifest["config"]["digest"]))
        assert env_dict(config)["PYTHONPATH"] == "/opt/ascend/packages"
        assert env_dict(config)["PYTHON_VERSION"]  # the base's environment is kept
        assert progress.steps[0][0] == "install 2 packages"
        layer = client.blob(spec.repository, manifest["layers"][-1]["digest"])
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
            names = tar.getnames()
        assert "opt/ascend/packages/ascend_demo_needs/__init__.py" in names
        assert "opt/ascend/packages/ascend_demo_tiny/__init__.py" in names

    def test_two_builds_of_one_lock_give_one_digest(
        self, registry: str, wheelhouse: IndexOptions
    ) -> None:
        base = push_python_base(registry, repository=f"test/python-{uuid.uuid4().hex[:8]}")
        client = OCIRegistry(registry)
        lock = resolve(["ascend-demo-tiny==1.0"], "3.11", wheelhouse)
        digests = []
        for _ in range(2):
            spec = _spec(base, client, lock)
            build_env_image(
                spec, client, index=wheelhouse, timeout=120, progress=Progress(enabled=False)
            )
            digests.append(client.manifest(spec.repository, spec.tag).digest)
        assert digests[0] == digests[1]

    def test_a_failing_install_names_the_package_and_leaves_no_tag(
        self, registry: str, wheelhouse: IndexOptions
    ) -> None:
        base = push_python_base(registry, repository=f"test/python-{uuid.uuid4().hex[:8]}")
        client = OCIRegistry(registry)
        tampered = Lock(
            ("ascend-demo-tiny",), "ascend-demo-tiny==1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"
        )
        spec = _spec(base, client, tampered)
        with pytest.raises(ImageBuildError) as caught:
            build_env_image(
                spec, client, index=wheelhouse, timeout=120, progress=Progress(enabled=False)
            )
        assert "ascend-demo-tiny==1.0" in caught.value.message
        assert not client.image_exists(spec.repository, spec.tag)

    def test_a_base_with_another_python_is_refused_before_building(
        self, registry: str, wheelhouse: IndexOptions
    ) -> None:
        base = push_python_base(
            registry, repository=f"test/python-{uuid.uuid4().hex[:8]}", python_version="3.9.18"
        )
        client = OCIRegistry(registry)
        with pytest.raises(
            ImageBuildError, match=r"has Python 3\.9 and this client runs Python 3\.11"
        ):
            spec = _spec(base, client, Lock((), ""), python_version="3.11.7")
            build_env_image(
                spec, client, index=wheelhouse, timeout=120, progress=Progress(enabled=False)
            )

    def test_a_missing_base_is_named(self, registry: str) -> None:
        from ascend.images.build import open_base

        with pytest.raises(ImageBuildError, match="is not in registry") as caught:
            open_base(f"{registry}/test/never-pushed:{uuid.uuid4().hex[:8]}")
        assert "build-runtime" in (caught.value.fix or "")

    def test_a_registry_that_refuses_the_push_names_it_and_the_fix(
        self,
        registry: str,
        wheelhouse: IndexOptions,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        auth = services.require("auth-registry")
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # no credentials at all
        (tmp_path / "config.json").write_text("{}")
        base = push_python_base(registry, repository=f"test/python-{uuid.uuid4().hex[:8]}")
        lock = resolve(["ascend-demo-tiny==1.0"], "3.11", wheelhouse)
        spec = _spec(base, OCIRegistry(registry), lock)
        with pytest.raises(ImageBuildError) as caught:
            build_env_image(
                spec,
                OCIRegistry(auth),
                index=wheelhouse,
                timeout=120,
                progress=Progress(enabled=False),
            )
        assert auth in caught.value.message
        assert "docker login" in (caught.value.fix or "")


@pytest.mark.service("registry")
def test_a_build_pushes_to_a_registry_that_wants_basic_credentials(
    registry: str,
    wheelhouse: IndexOptions,
    auth_credentials: tuple[str, str],
    tmp_path: Path,
) -> None:
    """The registry answers 401 to an unauthenticated upload before reading its body: once it
    has asked, the credentials go with every request, uploads included."""
    import os

    from .wheelhouse import build_wheel

    private = services.require("auth-registry")
    base = push_python_base(registry, repository=f"test/python-{uuid.uuid4().hex[:8]}")
    big = tmp_path / "wheels"  # 16 MB that do not compress: more than a socket buffer holds
    build_wheel(
        big,
        "ascend-demo-big",
        "1.0",
        {"ascend_demo_big/data.txt": os.urandom(12 << 20).hex()[: 16 << 20]},
    )
    index = IndexOptions(no_index=True, find_links=(*wheelhouse.find_links, str(big)))
    lock = resolve(["ascend-demo-big"], "3.11", index)
    client = OCIRegistry(private, credentials=auth_credentials)
    spec = _spec(base, OCIRegistry(registry), lock)
    image = build_env_image(
        spec, client, index=index, timeout=120, progress=Progress(enabled=False)
    )
    assert image == f"{private}/{spec.repository}:{spec.tag}"
    assert client.image_exists(spec.repository, spec.tag)


@pytest.mark.service("registry")
def test_reuse_costs_one_registry_request(registry: str, wheelhouse: IndexOptions) -> None:
    base = push_python_base(registry, repository=f"test/python-{uuid.uuid4().hex[:8]}")
    lock = resolve(["ascend-demo-tiny==2.0"], "3.11", wheelhouse)
    with counting_proxy(registry) as (address, seen):
        client = OCIRegistry(address)
        spec = _spec(base.replace(registry, address), client, lock)
        from ascend.images.spec import ImageBuilder

        class Builder(ImageBuilder):
            built = 0

            def build(self, spec: ImageSpec, progress: Progress | None = None) -> str:
                Builder.built += 1
                return build_env_image(
                    spec, client, index=wheelhouse, timeout=120, progress=Progress(enabled=False)
                )

        first = Builder().get_or_build(spec, client)
        seen.clear()
        second = Builder().get_or_build(spec, client)
    assert first == second
    assert Builder.built == 1
    assert seen.requests == [("HEAD", f"/v2/{spec.repository}/manifests/{spec.tag}")]


# -- timeouts -----------------------------------------------------------------------------------


class _Hanging(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(4)
        self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_an_install_past_the_build_timeout_is_stopped_with_the_setting_named(
    tmp_path: Path,
) -> None:
    from ascend.images.build import install

    from .httpserve import serving

    lock = Lock(("ascend-demo-tiny",), "ascend-demo-tiny==1.0\n")
    with serving(_Hanging) as port:
        index = IndexOptions(no_index=True, find_links=(f"http://127.0.0.1:{port}/",))
        start = time.monotonic()
        with pytest.raises(ImageBuildError) as caught:
            install(lock, tmp_path / "t", "3.11", index, 1.0, Progress(enabled=False))
    assert time.monotonic() - start < 4
    assert "did not finish within 1 s" in caught.value.message
    assert "images.build_timeout" in (caught.value.fix or "")


@pytest.mark.service("registry")
def test_two_local_builds_of_one_missing_tag_share_one_build(
    registry: str, wheelhouse: IndexOptions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from ascend.plugins import core

    class Config(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            return super().get(key, default)

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the build locks live there
    base = push_python_base(registry, repository=f"test/python-{uuid.uuid4().hex[:8]}")
    lock = resolve(["ascend-demo-tiny==2.0"], "3.11", wheelhouse)
    config = Config(
        {
            "images.builder": "local",
            "images.no_index": True,
            "images.find_links": list(wheelhouse.find_links),
        }
    )
    with counting_proxy(registry) as (address, seen):
        client = OCIRegistry(address)
        spec = _spec(base.replace(registry, address), client, lock)
        images: list[str] = []

        def build() -> None:
            images.append(
                core.ascend_build_image(config, spec, client, Progress(enabled=False), None)  # type: ignore[arg-type]
            )

        callers = [threading.Thread(target=build) for _ in range(3)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(60)
    assert images == [f"{address}/{spec.repository}:{spec.tag}"] * 3
    assert seen.count("PUT", f"/manifests/{spec.tag}") == 1  # one build pushed the tag
