"""``ascend images``: build, list, inspect and prune the images jobs run, from a shell or CI.

``build`` goes through the same code a call with ``@ascend(requirements=[...])`` does
(``image_for_call``), so an image built ahead of time in CI is the one the first call finds,
and nothing is built twice. Progress goes to stderr and only the reference to stdout, so a
script can write ``IMAGE=$(ascend images build -r requirements.txt)``.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ascend.errors import AscendError, ImageNotFoundError, RegistryError
from ascend.images.sources import read_pyproject, read_requirements_file

if TYPE_CHECKING:
    from ascend.backend import CloudBackend
    from ascend.registry import ContainerRegistry, Manifest, OCIRegistry


def _minor() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _backend() -> CloudBackend:
    from ascend.backend import get_backend

    return get_backend()


def _oci(registry: ContainerRegistry) -> OCIRegistry:
    """Listing, reading and deleting images needs the OCI distribution API."""
    from ascend.registry import OCIRegistry

    if not isinstance(registry, OCIRegistry):
        raise RegistryError(
            f"registry {registry.registry_url()} is answered by a plugin client that does not "
            "speak the OCI distribution API, so its images cannot be listed or read here",
            fix="use the registry's own tools, or have the plugin's ascend_registry return an "
            "OCIRegistry",
        )
    return registry


def _progress(quiet: bool) -> Any:
    from ascend.images.progress import Progress

    return Progress(enabled=not quiet, stream=sys.stderr)


@click.group("images")
def images() -> None:
    """Build and manage the images jobs run: the runtime image and requirements images.

    Images live in the registry of the current configuration (registry_url, or the provider
    plugin's): ascend-runtime holds the runtime image jobs run by default, ascend-env the
    images built for requirements, tagged by a hash of their contents.
    """


# -- requirements from files --------------------------------------------------------------------


def gather_requirements(
    requirements: tuple[str, ...],
    files: tuple[Path, ...],
    pyproject: Path | None,
    extras: tuple[str, ...],
) -> tuple[str, ...]:
    """Every requirement from the arguments, files and pyproject, normalized, first kept."""
    from ascend.images.spec import normalize_requirement

    if extras and pyproject is None:
        raise click.UsageError("--extra names an extra of --pyproject; give --pyproject too")
    gathered = [normalize_requirement(r) for r in requirements]
    for path in files:
        gathered += read_requirements_file(path)
    if pyproject is not None:
        gathered += [normalize_requirement(r) for r in read_pyproject(pyproject, extras)]
    return tuple(dict.fromkeys(gathered))


# -- build --------------------------------------------------------------------------------------


@images.command("build")
@click.argument("requirements", nargs=-1, metavar="[REQUIREMENT]...")
@click.option(
    "-r",
    "--requirements",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A pip requirements file (repeatable); '-r other.txt' inside it is read relative to "
    "it. Index options in it are refused: set images.index_url and friends instead.",
)
@click.option(
    "--pyproject",
    type=click.Path(exists=True, path_type=Path),
    help="A pyproject.toml (or its directory): its [project].dependencies.",
)
@click.option(
    "--extra",
    "extras",
    multiple=True,
    metavar="NAME",
    help="Also [project.optional-dependencies] NAME of --pyproject (repeatable).",
)
@click.option(
    "--base",
    metavar="IMAGE",
    help="Build on this image instead of the runtime image jobs run (images.runtime, else "
    "<registry>/ascend-runtime:py<X.Y>), as base_image= does for a call.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def build(
    requirements: tuple[str, ...],
    files: tuple[Path, ...],
    pyproject: Path | None,
    extras: tuple[str, ...],
    base: str | None,
    quiet: bool,
) -> None:
    """Resolve requirements and build their image, or find it already built; print its reference.

    The image is the one a call with @ascend(requirements=[...]) runs: the same resolution (uv,
    for linux x86_64 and this client's Python), the same content-addressed tag, the same builder
    (images.builder). When the registry has it, nothing is built. Progress goes to stderr; stdout
    gets only the image reference.

    \b
    Examples:
      IMAGE=$(ascend images build -r requirements.txt)
      ascend images build 'numpy>=1.26' pandas
      ascend images build --pyproject . --extra plots
    """
    from ascend.images.choose import image_for_call

    needs = gather_requirements(requirements, files, pyproject, extras)
    if not needs:
        raise click.UsageError(
            "no requirements: name some as arguments, with -r FILE, or with --pyproject "
            "(without requirements a call runs the runtime image, which "
            "'ascend images build-runtime' builds)"
        )
    backend = _backend()
    click.echo(image_for_call(backend, needs, base, _progress(quiet)))


# -- build-runtime ------------------------------------------------------------------------------


@images.command("build-runtime")
@click.option(
    "--base",
    metavar="IMAGE",
    help="The Python image to build on (default: python:<X.Y>-slim from Docker Hub, X.Y being "
    "this client's Python); it must have this client's Python minor version.",
)
@click.option(
    "--with",
    "extra",
    multiple=True,
    metavar="REQUIREMENT",
    help="Also install this into the runtime image (repeatable), e.g. the fsspec backend of "
    "your storage: --with s3fs.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def build_runtime(base: str | None, extra: tuple[str, ...], quiet: bool) -> None:
    """Build the runtime image jobs run by default, push it, and tag it py<X.Y>.

    It holds the runner (this client's ascend package), cloudpickle pinned to this client's
    version, fsspec and uv (so it can serve as the cluster builder), plus any --with
    requirements, in one layer on the base. It is pushed under a content tag
    (ascend-runtime:py<X.Y>-<hash>, named on stderr) and then tagged
    <registry>/ascend-runtime:py<X.Y>, the reference printed on stdout, which is where jobs
    look unless images.runtime names another image. The build runs on this machine with uv
    and needs no Docker: the cluster builder runs in this very image, so it cannot build it.

    \b
    Examples:
      ascend images build-runtime
      ascend images build-runtime --with s3fs --with adlfs
      ascend images build-runtime --base registry.example.com/mirror/python:3.11-slim
    """
    from ascend.images.build import build_env_image, retag
    from ascend.images.choose import runtime_image, spec_for
    from ascend.images.local_build import one_build_at_a_time
    from ascend.images.lock import IndexOptions
    from ascend.images.spec import RUNTIME_REPOSITORY, normalize_requirement

    needs = tuple(normalize_requirement(r) for r in extra)
    backend = _backend()
    registry = _oci(backend.registry)
    progress = _progress(quiet)
    base = base or f"python:{_minor()}-slim"
    spec = spec_for(backend, base, needs, repository=RUNTIME_REPOSITORY, progress=progress)
    with one_build_at_a_time(spec.tag):
        if registry.image_exists(spec.repository, spec.tag):
            progress.note(f"{registry.image_ref(spec.repository, spec.tag)} exists; not rebuilt")
        else:
            build_env_image(
                spec,
                registry,
                index=IndexOptions.from_config(backend.config),
                timeout=float(backend.config.get("images.build_timeout", 1800.0)),
                progress=progress,
            )
    reference = retag(registry, spec.repository, spec.tag, f"py{_minor()}")
    if not quiet:
        click.echo(f"[ascend] image: {reference} is content tag {spec.tag}", err=True)
        used = runtime_image(backend)
        if used != reference:
            click.echo(
                f"[ascend] image: note: images.runtime is {used}, so jobs run that, not this image",
                err=True,
            )
    click.echo(reference)


# -- reading images -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInfo:
    """What the registry says about one tag: manifest digest, annotations and config."""

    registry: str
    repository: str
    tag: str
    digest: str  # of the manifest the tag names (an index for multi-platform images)
    annotations: dict[str, str]
    config: dict[str, Any]
    size: int

    @property
    def reference(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"

    @property
    def requirements(self) -> list[str] | None:
        from ascend.images.build import REQUIREMENTS_ANNOTATION

        raw = self.annotations.get(REQUIREMENTS_ANNOTATION)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return [str(item) for item in value] if isinstance(value, list) else None

    @property
    def python(self) -> str | None:
        from ascend.images.build import PYTHON_LABEL, env_dict

        labels = (self.config.get("config") or {}).get("Labels") or {}
        return labels.get(PYTHON_LABEL) or env_dict(self.config).get("PYTHON_VERSION")

    @property
    def lock_text(self) -> str | None:
        from ascend.images.build import LOCK_ANNOTATION

        return self.annotations.get(LOCK_ANNOTATION)

    @property
    def pins(self) -> dict[str, str]:
        from ascend.images.lock import Lock

        return dict(Lock(tuple(self.requirements or ()), self.lock_text or "").pins)


def _platform_manifest(registry: OCIRegistry, repository: str, index: Manifest) -> Manifest:
    for entry in index.json().get("manifests", []):
        platform = entry.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
            return registry.manifest(repository, str(entry["digest"]))
    raise RegistryError(
        f"image {registry.image_ref(repository, index.digest)} has no linux/amd64 variant",
        fix="jobs run linux/amd64 images; push one",
    )


def read_image(registry: OCIRegistry, repository: str, tag: str) -> ImageInfo:
    """Manifest (linux/amd64 from an index), annotations, config and size of one image.

    :raises ImageNotFoundError: the registry has no such image.
    """
    from ascend.registry import OCI_INDEX

    top = registry.manifest(repository, tag)
    manifest = top
    if top.media_type in (OCI_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json"):
        manifest = _platform_manifest(registry, repository, top)
    body = manifest.json()
    config_ref = body.get("config") or {}
    config: dict[str, Any] = {}
    if config_ref.get("digest"):
        config = json.loads(registry.blob(repository, str(config_ref["digest"])))
    size = sum(int(layer.get("size") or 0) for layer in body.get("layers") or ())
    annotations = {**(top.json().get("annotations") or {}), **(body.get("annotations") or {})}
    return ImageInfo(
        registry.registry_url(), repository, tag, top.digest, annotations, config, size
    )


def _list(registry: OCIRegistry, repositories: tuple[str, ...]) -> list[ImageInfo]:
    """Every tag of ``repositories``, read eight at a time; a tag deleted meanwhile is left out."""
    wanted = [(repository, tag) for repository in repositories for tag in registry.tags(repository)]

    def read(item: tuple[str, str]) -> ImageInfo | None:
        try:
            return read_image(registry, *item)
        except ImageNotFoundError:
            return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        return [info for info in pool.map(read, wanted) if info is not None]


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


# -- list ---------------------------------------------------------------------------------------


@images.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per tag.")
def list_images(as_json: bool) -> None:
    """List the ascend-runtime and ascend-env images of the configured registry.

    Each tag with its requirements (as asked, from the image's annotation), its Python and its
    size (the sum of its compressed layers, base layers included, so images sharing a base
    take less room together than the sizes add up to).

    \b
    Examples:
      ascend images list
      ascend images list --json | jq -r '.[].reference'
    """
    from ascend.cli.output import console, print_json, table
    from ascend.images.spec import ENV_REPOSITORY, RUNTIME_REPOSITORY

    registry = _oci(_backend().registry)
    found = _list(registry, (RUNTIME_REPOSITORY, ENV_REPOSITORY))
    if as_json:
        print_json(
            [
                {
                    "reference": info.reference,
                    "repository": info.repository,
                    "tag": info.tag,
                    "digest": info.digest,
                    "requirements": info.requirements,
                    "python": info.python,
                    "size": info.size,
                }
                for info in found
            ]
        )
        return
    rows = [
        [
            info.reference,
            "-" if info.requirements is None else ", ".join(info.requirements) or "-",
            info.python or "?",
            _size(info.size),
        ]
        for info in found
    ]
    console().print(
        table(
            f"Images in {registry.registry_url()}",
            ["reference", "requirements", "python", "size"],
            rows,
        )
    )


# -- inspect ------------------------------------------------------------------------------------


def _locate(image: str) -> ImageInfo:
    """A bare tag is looked up in ascend-env, then ascend-runtime, of the configured registry;
    anything else is an image reference, read from the registry it names."""
    from ascend.images.build import registry_for
    from ascend.images.spec import ENV_REPOSITORY, RUNTIME_REPOSITORY
    from ascend.registry import split_reference

    if not any(mark in image for mark in "/:@"):
        registry = _oci(_backend().registry)
        for repository in (ENV_REPOSITORY, RUNTIME_REPOSITORY):
            try:
                return read_image(registry, repository, image)
            except ImageNotFoundError:
                continue
        raise ImageNotFoundError(
            f"image {image} is not in {ENV_REPOSITORY} or {RUNTIME_REPOSITORY} of registry "
            f"{registry.registry_url()}",
            fix="'ascend images list' shows the images there; or give a full reference",
        )
    host, repository, reference = split_reference(image)
    target: ContainerRegistry | None
    try:
        target = _backend().registry
    except AscendError:
        target = None  # another registry's image needs no configuration
    return read_image(registry_for(host, target), repository, reference)


@images.command("inspect")
@click.argument("image")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option(
    "--lock",
    "show_lock",
    is_flag=True,
    help="Print exactly the lock the image installs (pip format, with hashes) and nothing "
    "else; with --json, add it as 'lock'.",
)
def inspect(image: str, as_json: bool, show_lock: bool) -> None:
    """Show what an image holds: base, Python, runner versions, requirements, packages.

    IMAGE is a full reference (registry/repository:tag) or a bare tag of ascend-env (or of
    ascend-runtime) in the configured registry, as 'ascend images list' prints them.

    \b
    Examples:
      ascend images inspect py3.11-0123456789abcdef0123
      ascend images inspect registry.example.com/ascend-runtime:py3.11 --json
      ascend images inspect py3.11-0123456789abcdef0123 --lock > lock.txt
    """
    from ascend.cli.output import print_json

    info = _locate(image)
    lock = info.lock_text
    if show_lock and lock is None:
        raise AscendError(
            f"image {info.reference} has no lock: it was not built by ascend (no "
            "org.ascend.lock annotation)",
            fix="images from 'ascend images build' and 'build-runtime' carry their lock",
        )
    data: dict[str, Any] = {
        "reference": info.reference,
        "digest": info.digest,
        "base_image": info.annotations.get("org.opencontainers.image.base.name"),
        "base_digest": info.annotations.get("org.opencontainers.image.base.digest"),
        "python": info.python,
        "ascend_version": info.annotations.get("org.ascend.ascend-version"),
        "cloudpickle_version": info.annotations.get("org.ascend.cloudpickle-version"),
        "requirements": info.requirements,
        "package_count": None if lock is None else len(info.pins),
        "packages": None if lock is None else info.pins,
        "size": info.size,
    }
    if as_json:
        if show_lock:
            data["lock"] = lock
        print_json(data)
        return
    if show_lock:
        click.echo(lock, nl=False)
        return
    shown = {
        "reference": info.reference,
        "digest": info.digest,
        "base image": data["base_image"] or "-",
        "base digest": data["base_digest"] or "-",
        "python": info.python or "?",
        "ascend": data["ascend_version"] or "-",
        "cloudpickle": data["cloudpickle_version"] or "-",
        "requirements": "-" if info.requirements is None else ", ".join(info.requirements) or "-",
        "packages": "-" if lock is None else str(len(info.pins)),
        "size": _size(info.size),
    }
    for key, value in shown.items():
        click.echo(f"{key:13s}{value}")


# -- prune --------------------------------------------------------------------------------------


@images.command("prune")
@click.option(
    "--keep-runtime/--all",
    default=True,
    show_default=True,
    help="Delete only ascend-env images (the default), or ascend-runtime images too (jobs "
    "then fail to start until 'ascend images build-runtime' runs again).",
)
@click.option(
    "--keep",
    "keep",
    multiple=True,
    metavar="TAG",
    help="Keep the image this tag (or reference) names (repeatable); every other goes.",
)
@click.option("--dry-run", is_flag=True, help="Only print what would be deleted.")
@click.option("-y", "--yes", is_flag=True, help="Delete without asking.")
def prune(keep_runtime: bool, keep: tuple[str, ...], dry_run: bool, yes: bool) -> None:
    """Delete requirements images from the configured registry.

    Images are deleted by manifest digest, so every tag naming a deleted image goes with it,
    and an image one of whose tags --keep names is kept whole. A call that needs a deleted image
    builds it again. Deleting removes manifests only: the registry frees the space of their
    layers at its own garbage collection (for docker-registry: 'registry garbage-collect';
    cloud registries run theirs on their own schedule).

    \b
    Examples:
      ascend images prune --dry-run
      ascend images prune --keep py3.11-0123456789abcdef0123 --yes
    """
    from ascend.images.spec import ENV_REPOSITORY, RUNTIME_REPOSITORY
    from ascend.registry import split_reference

    registry = _oci(_backend().registry)
    kept = {split_reference(t)[2] if any(m in t for m in "/:@") else t for t in keep}
    repositories = (ENV_REPOSITORY,) if keep_runtime else (ENV_REPOSITORY, RUNTIME_REPOSITORY)
    groups: dict[tuple[str, str], list[str]] = {}
    for repository in repositories:
        tags = registry.tags(repository)

        def digest_of(tag: str, repository: str = repository) -> tuple[str, str | None]:
            try:
                return tag, registry.manifest(repository, tag).digest
            except ImageNotFoundError:
                return tag, None  # deleted meanwhile

        with ThreadPoolExecutor(max_workers=8) as pool:
            for tag, digest in pool.map(digest_of, tags):
                if digest is not None:
                    groups.setdefault((repository, digest), []).append(tag)
    doomed = {
        key: sorted(tags) for key, tags in groups.items() if not any(tag in kept for tag in tags)
    }
    if not doomed:
        click.echo("nothing to prune")
        return
    host = registry.registry_url()
    listed = [
        (f"{host}/{repository}@{digest} ({', '.join(tags)})", repository, digest)
        for (repository, digest), tags in sorted(doomed.items())
    ]
    if dry_run or not yes:
        for shown, _, _ in listed:
            click.echo(f"{'would delete' if dry_run else 'will delete'} {shown}")
    if dry_run:
        return
    if not yes:
        click.confirm(f"Delete {len(doomed)} image(s) from {host}?", abort=True)
    for shown, repository, digest in listed:
        registry.delete_manifest(repository, digest)
        click.echo(f"deleted {shown}")
    click.echo("the registry frees their layers' space at its own garbage collection", err=True)
