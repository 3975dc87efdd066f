"""Build an image without a daemon: a base image plus one reproducible layer, pushed through
the OCI distribution API (blobs first, the tagged manifest last, so a failed build never leaves
a tag behind).

The same code runs on the client (``images.builder: local``) and in the cluster's builder Job
(``python -m ascend.build``).
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ascend.errors import ImageBuildError, ImageNotFoundError, RegistryError
from ascend.images.layer import OCI_LAYER, Layer, write_layer
from ascend.images.lock import PLATFORM, IndexOptions, Lock, run_uv
from ascend.images.progress import Progress
from ascend.images.spec import ImageSpec, python_minor
from ascend.registry import (
    DOCKER_HUB,
    DOCKER_HUB_API,
    OCI_INDEX,
    OCI_MANIFEST,
    ContainerRegistry,
    Manifest,
    OCIRegistry,
    sha256_digest,
    split_reference,
)

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
FIXED_CREATED = "1970-01-01T00:00:00Z"
LOCK_ANNOTATION = "org.ascend.lock"
REQUIREMENTS_ANNOTATION = "org.ascend.requirements"
PYTHON_LABEL = "org.ascend.python"
RUNNER_LABEL = "org.ascend.runner"  # the ascend version whose runner the image holds
RUNNER_COMMAND = ["python", "-m", "ascend.runner"]


@dataclass(frozen=True)
class BaseImage:
    """A base image as read from its registry: the linux/amd64 manifest and its config."""

    reference: str
    registry: OCIRegistry
    repository: str
    manifest: Manifest
    config: dict[str, Any]

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def has_runner(self) -> bool:
        return bool(self.labels.get(RUNNER_LABEL))

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.config.get("config") or {}).get("Labels") or {})

    @property
    def python_version(self) -> str:
        """The base's Python, from ``PYTHON_VERSION`` (python:X.Y images) or our label."""
        env = env_dict(self.config)
        version = env.get("PYTHON_VERSION") or self.labels.get(PYTHON_LABEL)
        if not version:
            raise ImageBuildError(
                f"cannot tell which Python base image {self.reference} has: its config sets "
                f"neither PYTHON_VERSION nor the label {PYTHON_LABEL}",
                fix=f"build the base with ENV PYTHON_VERSION=X.Y.Z (python:X.Y images have it) "
                f"or LABEL {PYTHON_LABEL}=X.Y",
            )
        return str(version)


def registry_for(host: str, target: ContainerRegistry | None) -> OCIRegistry:
    """The client for ``host``: the target registry's own (its plugin's credentials) when the
    base lives there, else a plain OCI client with docker-config credentials."""
    if target is not None and isinstance(target, OCIRegistry) and target.registry_url() == host:
        return target
    return OCIRegistry(DOCKER_HUB_API if host == DOCKER_HUB else host)


def open_base(reference: str, target: ContainerRegistry | None = None) -> BaseImage:
    """Read ``reference``'s manifest (linux/amd64 from an index) and config."""
    host, repository, ref = split_reference(reference)
    registry = registry_for(host, target)
    try:
        manifest = registry.manifest(repository, ref)
        if manifest.media_type in (OCI_INDEX, DOCKER_LIST):
            manifest = registry.manifest(repository, _amd64(manifest, reference))
        config = json.loads(registry.blob(repository, manifest.json()["config"]["digest"]))
    except ImageNotFoundError as error:
        raise ImageBuildError(
            f"base image {reference} is not in registry {host}",
            fix="push it first ('ascend images build-runtime' pushes the runtime image), or "
            "name another base_image",
        ) from error
    except RegistryError as error:
        raise ImageBuildError(
            f"cannot read base image {reference}: {error.message}", fix=error.fix
        ) from error
    return BaseImage(reference, registry, repository, manifest, config)


def _amd64(index: Manifest, reference: str) -> str:
    for entry in index.json().get("manifests", []):
        platform = entry.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
            return str(entry["digest"])
    raise ImageBuildError(
        f"base image {reference} has no linux/amd64 variant",
        fix="pick a base image built for linux/amd64",
    )


def env_dict(config: dict[str, Any]) -> dict[str, str]:
    items = (config.get("config") or {}).get("Env") or []
    return dict(item.split("=", 1) for item in items if "=" in item)


def check_python(base: BaseImage, python_version: str) -> None:
    """A base with another Python minor version could not unpickle the call: refuse early."""
    theirs = python_minor(base.python_version)
    if theirs != python_minor(python_version):
        raise ImageBuildError(
            f"base image {base.reference} has Python {theirs} and this client runs Python "
            f"{python_minor(python_version)}; cloudpickle needs the same minor version on both "
            "sides",
            fix=f"use a base image with Python {python_minor(python_version)}, or run the client "
            f"on Python {theirs}",
        )


def install(
    lock: Lock,
    target: Path,
    python_version: str,
    index: IndexOptions,
    timeout: float,
    progress: Progress,
    platform: str | None = PLATFORM,
) -> None:
    """Install exactly the lock into ``target`` with uv, for linux x86_64 (or, with
    ``platform=None``, for this machine)."""
    with tempfile.TemporaryDirectory(prefix="ascend-lock-") as scratch:
        requirements = Path(scratch) / "lock.txt"
        requirements.write_text(lock.text)
        args = [
            "pip",
            "install",
            "--target",
            str(target),
            "--no-deps",
            "--python-version",
            python_minor(python_version),
            *(["--python-platform", platform] if platform else []),
            "-r",
            str(requirements),
            *index.uv_args(),
        ]
        if lock.has_hashes():
            args.append("--require-hashes")
        if platform and not _native(python_version):
            args += [
                "--only-binary",
                ":all:",
            ]  # an sdist built here would be for the wrong platform
        try:
            done = run_uv(args, timeout=timeout)
        except ImageBuildError as error:
            raise ImageBuildError(
                f"installing {len(lock.pins)} packages did not finish within {timeout:g} s",
                fix="raise images.build_timeout, or build in the cluster (images.builder: cluster)",
            ) from error
    for line in (done.stderr or "").splitlines():
        if line.strip():
            progress.line(line)
    if done.returncode != 0:
        tail = [line for line in done.stderr.splitlines() if line.strip()][-15:]
        raise ImageBuildError(
            f"installing the lock failed: {_failed_package(done.stderr, lock)}\n" + "\n".join(tail),
            fix="the lines above say why; a package that must be compiled needs its build "
            "tools in the builder (images.builder_image), or pin a version with a manylinux wheel",
        )


def _native(python_version: str) -> bool:
    import platform

    return (
        sys.platform == "linux"
        and platform.machine() in ("x86_64", "AMD64")
        and python_minor(python_version) == f"{sys.version_info.major}.{sys.version_info.minor}"
    )


def _failed_package(stderr: str, lock: Lock) -> str:
    for name, version in lock.pins:
        if name in stderr:
            return f"{name}=={version}"
    return "see the last lines below"


def push_image(
    base: BaseImage,
    layer: Layer,
    registry: OCIRegistry,
    repository: str,
    tag: str,
    *,
    env: dict[str, str],
    labels: dict[str, str],
    annotations: dict[str, str],
    entrypoint: list[str] | None = None,
    extra_tags: tuple[str, ...] = (),
) -> str:
    """Push base layers + ``layer`` with an updated config; tag last. Returns the reference."""
    config = json.loads(json.dumps(base.config))
    settings = config.setdefault("config", {})
    current = env_dict(config)
    current.update(env)
    settings["Env"] = [f"{k}={v}" for k, v in current.items()]
    settings["Labels"] = {**(settings.get("Labels") or {}), **labels}
    if entrypoint is not None:
        settings["Entrypoint"] = entrypoint
        settings["Cmd"] = None
    config["created"] = FIXED_CREATED
    config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(
        layer.diff_id
    )
    config.setdefault("history", []).append(
        {
            "created": FIXED_CREATED,
            "created_by": f"ascend: {annotations.get('org.opencontainers.image.title', 'layer')}",
        }
    )
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_digest = sha256_digest(config_bytes)

    base_layers = base.manifest.json().get("layers", [])
    same_registry = base.registry.registry_url() == registry.registry_url()
    for entry in base_layers:
        _copy_blob(base, registry, repository, entry["digest"], same_registry)
    registry.push_blob(repository, layer.digest, layer.path)
    registry.push_blob(repository, config_digest, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [
            *base_layers,
            {"mediaType": OCI_LAYER, "digest": layer.digest, "size": layer.size},
        ],
        "annotations": {
            "org.opencontainers.image.base.name": base.reference,
            "org.opencontainers.image.base.digest": base.digest,
            **annotations,
        },
    }
    body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    for extra in extra_tags:
        registry.put_manifest(repository, extra, body)
    registry.put_manifest(repository, tag, body)
    return registry.image_ref(repository, tag)


def _copy_blob(
    base: BaseImage, registry: OCIRegistry, repository: str, digest: str, same_registry: bool
) -> None:
    if registry.blob_exists(repository, digest):
        return
    if same_registry and registry.mount_blob(repository, digest, base.repository):
        return  # linked from the base's repository: no bytes moved
    with tempfile.TemporaryDirectory(prefix="ascend-blob-") as scratch:
        path = Path(scratch) / "blob"
        base.registry.download_blob(base.repository, digest, path)
        registry.push_blob(repository, digest, path)


def build_env_image(
    spec: ImageSpec,
    registry: ContainerRegistry,
    *,
    index: IndexOptions,
    timeout: float,
    progress: Progress,
) -> str:
    """Build ``spec`` (its base plus a layer with the lock installed) and push it as
    ``spec.repository:spec.tag``."""
    if not isinstance(registry, OCIRegistry):
        raise ImageBuildError(
            f"registry {registry.registry_url()} is answered by a plugin whose client cannot "
            "push images through the OCI API",
            fix="that plugin should also implement ascend_build_image",
        )
    base = open_base(spec.base_image, registry)
    check_python(base, spec.python_version)
    with tempfile.TemporaryDirectory(prefix="ascend-build-") as scratch:
        root = Path(scratch) / "packages"
        root.mkdir()
        count = len(spec.lock.pins)
        with progress.step(f"install {count} package{'s' if count != 1 else ''}"):
            if spec.lock.pins:
                install(spec.lock, root, spec.python_version, index, timeout, progress)
            if spec.with_runner:
                copy_runner(root)
        with progress.step("pack the layer"):
            layer = write_layer(root, spec.prefix, Path(scratch) / "layer.tar.gz")
        with progress.step(
            f"push {registry.image_ref(spec.repository, spec.tag)} ({layer.size / 1e6:.1f} MB)"
        ):
            try:
                return push_image(
                    base,
                    layer,
                    registry,
                    spec.repository,
                    spec.tag,
                    env=_prepend_paths(base, spec.prefix) | _RUNNER_ENV,
                    labels={
                        PYTHON_LABEL: python_minor(spec.python_version),
                        **({RUNNER_LABEL: spec.ascend_version} if spec.with_runner else {}),
                    },
                    entrypoint=RUNNER_COMMAND if spec.with_runner else None,
                    annotations={
                        LOCK_ANNOTATION: spec.lock.text,
                        REQUIREMENTS_ANNOTATION: json.dumps(list(spec.requirements)),
                        "org.ascend.ascend-version": spec.ascend_version,
                        "org.ascend.cloudpickle-version": spec.cloudpickle_version,
                        "org.opencontainers.image.title": "packages " + " ".join(spec.requirements),
                    },
                )
            except RegistryError as error:
                raise ImageBuildError(
                    f"registry {registry.registry_url()} refused the push of "
                    f"{spec.repository}:{spec.tag}: {error.message}",
                    fix=error.fix or "check that your credentials may push to this registry",
                ) from error


_RUNNER_ENV = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def copy_runner(root: Path) -> None:
    """Put this client's ascend package (what ``python -m ascend.runner`` imports) into
    ``root``, with a dist-info so the pod reports the same ascend version."""
    import shutil

    import ascend
    from ascend._version import __version__

    source = Path(ascend.__file__).parent
    shutil.copytree(
        source,
        root / "ascend",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "testing"),
        dirs_exist_ok=True,
    )
    info = root / f"ascend-{__version__}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: ascend\nVersion: {__version__}\n")
    (info / "INSTALLER").write_text("ascend\n")


def retag(registry: OCIRegistry, repository: str, source: str, tag: str) -> str:
    """Point ``tag`` at the manifest of ``source`` (``py3.11`` at the newest runtime)."""
    manifest = registry.manifest(repository, source)
    registry.put_manifest(repository, tag, manifest.body, manifest.media_type or OCI_MANIFEST)
    return registry.image_ref(repository, tag)


def _prepend_paths(base: BaseImage, prefix: str) -> dict[str, str]:
    env = env_dict(base.config)
    python_path = env.get("PYTHONPATH")
    path = env.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return {
        "PYTHONPATH": f"{prefix}:{python_path}" if python_path else prefix,
        "PATH": f"{prefix}/bin:{path}",
    }
