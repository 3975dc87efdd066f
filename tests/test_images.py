"""Runtime images: requirement normalization, the content-addressed tag, and get_or_build
against the real local registries (.ci/services.sh)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ascend.errors import ImageBuildError, RegistryError
from ascend.images import DEFAULT_REPOSITORY, ImageBuilder, ImageSpec, normalize_requirement
from ascend.registry import OCIRegistry

from . import services
from .test_registry import closed_port, push_oci_image, unique_repository

OCI_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
BASE: dict[str, Any] = {
    "base_image": "python:3.11-slim",
    "python_version": "3.11.9",
    "cloudpickle_version": "3.0.0",
}


def spec(**changes: Any) -> ImageSpec:
    return ImageSpec.create(**{**BASE, "requirements": ["numpy>=1.26", "pandas"], **changes})


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


# -- ImageSpec ----------------------------------------------------------------------------------


class TestImageSpec:
    def test_create_normalizes_sorts_and_dedupes(self) -> None:
        created = ImageSpec.create(
            **BASE, requirements=["pandas", "NumPy >= 1.26", "numpy>=1.26", "Pandas"]
        )
        assert created.requirements == ("numpy>=1.26", "pandas")
        assert created.repository == DEFAULT_REPOSITORY
        assert created.gpu is False

    def test_order_and_duplicates_do_not_change_the_tag(self) -> None:
        one = spec(requirements=["numpy>=1.26", "pandas"])
        other = spec(requirements=["pandas", "NumPy >= 1.26", "numpy>=1.26", "pandas"])
        assert one.tag == other.tag
        assert one.digest == other.digest
        assert one == other

    def test_requirements_accept_any_iterable(self) -> None:
        assert spec(requirements=iter(["pandas", "numpy>=1.26"])).tag == spec().tag

    @pytest.mark.parametrize(
        "change",
        [
            {"base_image": "python:3.11-bookworm"},
            {"python_version": "3.11.10"},
            {"python_version": "3.12.4"},
            {"cloudpickle_version": "3.0.1"},
            {"requirements": ["numpy>=1.26"]},
            {"requirements": ["numpy>=1.26", "pandas", "scipy"]},
            {"requirements": ["numpy>=1.27", "pandas"]},
            {"requirements": ["numpy>=1.26", "pandas[excel]"]},
            {"requirements": []},
            {"gpu": True},
        ],
    )
    def test_any_content_change_changes_the_tag(self, change: dict[str, Any]) -> None:
        assert spec(**change).tag != spec().tag

    def test_extra_changes_the_tag(self) -> None:
        changed = dataclasses.replace(spec(), extra=(("cuda", "12.1"),))
        assert changed.tag != spec().tag

    def test_repository_is_a_location_not_content(self) -> None:
        assert spec(repository="team/other-runtime").tag == spec().tag

    def test_tag_format(self) -> None:
        tag = spec().tag
        assert re.fullmatch(r"py3\.11-[0-9a-f]{16}", tag)
        assert OCI_TAG.fullmatch(tag)
        assert tag.endswith(spec().digest[:16])
        assert re.fullmatch(r"[0-9a-f]{64}", spec().digest)

    @pytest.mark.parametrize(
        ("python_version", "prefix"),
        [("3.11", "py3.11-"), ("3.11.9", "py3.11-"), ("3.12.0rc1", "py3.12-"), ("3", "py3-")],
    )
    def test_tag_prefix_is_major_minor(self, python_version: str, prefix: str) -> None:
        assert spec(python_version=python_version).tag.startswith(prefix)

    @given(
        st.tuples(st.integers(3, 3), st.integers(0, 20), st.integers(0, 30)),
        st.lists(st.sampled_from(["numpy>=1", "Pandas", "scikit_learn==1.5", "torch"])),
        st.booleans(),
    )
    def test_tag_is_always_a_valid_oci_tag(
        self, version: tuple[int, int, int], requirements: list[str], gpu: bool
    ) -> None:
        python_version = ".".join(map(str, version))
        tag = spec(python_version=python_version, requirements=requirements, gpu=gpu).tag
        assert OCI_TAG.fullmatch(tag)
        assert tag.startswith(f"py{version[0]}.{version[1]}-")

    def test_tag_is_stable_across_processes(self) -> None:
        """Content addressing only works if another process computes the same tag."""
        code = (
            "import json, sys\n"
            "from ascend.images import ImageSpec\n"
            "print(ImageSpec.create(**json.loads(sys.argv[1])).tag)\n"
        )
        kwargs = {**BASE, "requirements": ["pandas", "NumPy>=1.26"]}
        env = {**os.environ, "ASCEND_SKIP_BACKEND_CHECK": "1", "PYTHONHASHSEED": "12345"}
        out = subprocess.run(
            [sys.executable, "-c", code, json.dumps(kwargs)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[1],
        ).stdout.strip()
        assert out == spec().tag

    def test_invalid_requirement(self) -> None:
        with pytest.raises(ImageBuildError, match="'>=1'"):
            spec(requirements=["numpy", ">=1"])

    def test_spec_is_frozen(self) -> None:
        with pytest.raises(dataclasses.FrozenInstanceError):
            spec().gpu = True  # type: ignore[misc]


# -- ImageBuilder.get_or_build ------------------------------------------------------------------


class RecordingBuilder(ImageBuilder):
    """Records the specs it is asked to build; optionally pushes them for real."""

    def __init__(self, push_to: str | None = None, auth: tuple[str, str] | None = None) -> None:
        self.built: list[ImageSpec] = []
        self.push_to = push_to
        self.auth = auth

    def build(self, spec: ImageSpec) -> str:
        self.built.append(spec)
        if self.push_to is None:
            return f"built/{spec.repository}:{spec.tag}"
        push_oci_image(self.push_to, spec.repository, spec.tag, auth=self.auth)
        return f"{self.push_to}/{spec.repository}:{spec.tag}"


def test_image_builder_is_abstract() -> None:
    class NoBuild(ImageBuilder):
        pass

    with pytest.raises(TypeError):
        NoBuild()  # type: ignore[abstract]


class TestGetOrBuild:
    @pytest.fixture
    def open_registry(self) -> str:
        return services.require("registry")

    def test_existing_tag_is_not_built(self, open_registry: str) -> None:
        wanted = spec(repository=unique_repository("ascend-runtime"))
        push_oci_image(open_registry, wanted.repository, wanted.tag)
        builder = RecordingBuilder()

        ref = builder.get_or_build(wanted, OCIRegistry(open_registry))

        assert builder.built == []
        assert ref == f"{open_registry}/{wanted.repository}:{wanted.tag}"

    def test_missing_tag_is_built_once(self, open_registry: str) -> None:
        wanted = spec(repository=unique_repository("ascend-runtime"))
        # Another image in the same repository does not count.
        push_oci_image(open_registry, wanted.repository, spec(gpu=True).tag)
        builder = RecordingBuilder()

        ref = builder.get_or_build(wanted, OCIRegistry(open_registry))

        assert builder.built == [wanted]
        assert ref == f"built/{wanted.repository}:{wanted.tag}"

    def test_second_call_with_an_equal_spec_builds_nothing(self, open_registry: str) -> None:
        repository = unique_repository("ascend-runtime")
        registry = OCIRegistry(open_registry)
        builder = RecordingBuilder(push_to=open_registry)

        first = builder.get_or_build(
            spec(repository=repository, requirements=["numpy>=1.26", "pandas"]), registry
        )
        second = builder.get_or_build(
            spec(repository=repository, requirements=["Pandas", "NumPy >= 1.26"]), registry
        )
        changed = builder.get_or_build(
            spec(repository=repository, requirements=["numpy>=1.26"]), registry
        )

        assert len(builder.built) == 2
        assert first == second == registry.image_ref(repository, builder.built[0].tag)
        assert changed == registry.image_ref(repository, builder.built[1].tag)
        assert changed != first

    def test_auth_registry(self) -> None:
        address = services.require("auth-registry")
        credentials = (
            os.environ.get("ASCEND_TEST_REGISTRY_USER", "ascend"),
            os.environ.get("ASCEND_TEST_REGISTRY_PASSWORD", "s3cret"),
        )
        wanted = spec(repository=unique_repository("ascend-runtime"))
        registry = OCIRegistry(address, credentials=credentials)
        builder = RecordingBuilder(push_to=address, auth=credentials)

        expected = f"{address}/{wanted.repository}:{wanted.tag}"
        assert builder.get_or_build(wanted, registry) == expected
        assert builder.get_or_build(wanted, registry) == expected
        assert builder.built == [wanted]

    def test_unreachable_registry_does_not_build(self) -> None:
        builder = RecordingBuilder()
        registry = OCIRegistry(f"127.0.0.1:{closed_port()}", timeout=2)
        with pytest.raises(RegistryError, match="unreachable"):
            builder.get_or_build(spec(), registry)
        assert builder.built == []
