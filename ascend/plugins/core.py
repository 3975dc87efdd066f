"""The core's own plugin: its configuration keys and the generic (``trylast``) backends.

The defaults answer only when configured (``storage_url``, ``registry_url``), so any plugin
that answers the same hook replaces them, and they replace nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ascend.plugins.markers import hookimpl
from ascend.plugins.types import Setting

if TYPE_CHECKING:
    from ascend.backend import CloudBackend
    from ascend.config import AscendConfig
    from ascend.images.progress import Progress
    from ascend.images.spec import ImageSpec
    from ascend.registry import ContainerRegistry
    from ascend.storage.base import CloudStorage


def _check_storage_url(value: str) -> None:
    if "://" not in value and not value.startswith("/"):
        raise ValueError("expected an fsspec URL with a scheme, or an absolute path")


def _check_registry_url(value: str) -> None:
    host = value.split("://", 1)[-1]
    if not host or "/" in host.rstrip("/") or " " in host:
        raise ValueError("expected host[:port], optionally with http:// or https://")


@hookimpl
def ascend_settings() -> Iterable[Setting]:
    from ascend.retention import check_duration  # light: the standard library only

    return [
        Setting(
            "cloud_provider",
            str,
            help="the provider that runs jobs (local, kubernetes, or a plugin's, e.g. azure)",
            fix="pick one of the providers listed by 'ascend plugins'",
        ),
        Setting(
            "storage_url",
            str,
            help="fsspec URL of the job store, e.g. s3://bucket/ascend, az://ascend-data, "
            "file:///srv/ascend",
            validate=_check_storage_url,
            fix="write a URL such as s3://bucket/ascend or file:///absolute/path",
        ),
        Setting(
            "storage_options",
            dict,
            default={},
            help="options passed to the fsspec filesystem (endpoint_url, anon, ...)",
        ),
        Setting(
            "username",
            str,
            help="your name in job ids and storage paths (default: your login name)",
        ),
        Setting(
            "project",
            str,
            default="default",
            help="project name recorded with jobs (project=True uses the git repository's)",
        ),
        Setting(
            "security.allow_unsigned",
            bool,
            default=False,
            help="accept packages and results without a signature (not recommended: anyone "
            "who can write the storage could then run code in your jobs and on your machine)",
        ),
        Setting(
            "git_check",
            bool,
            default=False,
            help="refuse to run from a git tree with uncommitted changes",
        ),
        Setting(
            "registry_url",
            str,
            help="container registry for runtime images, host[:port]",
            validate=_check_registry_url,
            fix="write host[:port], for example registry.example.com or http://127.0.0.1:5000",
        ),
        Setting(
            "images.runtime",
            str,
            help="runtime image jobs run when they need no build (default: "
            "<registry>/ascend-runtime:py<X.Y> of the registry the plugins answer)",
        ),
        Setting(
            "images.builder",
            str,
            choices=("cluster", "local"),
            help="where requirements images are built: cluster (a Kubernetes Job; the default "
            "with Kubernetes compute) or local (on this machine, with uv)",
        ),
        Setting(
            "images.builder_image",
            str,
            help="image of the cluster builder's Job (default: the runtime image, which "
            "carries uv)",
        ),
        Setting(
            "images.build_timeout",
            float,
            default=1800.0,
            help="seconds an image build may take before it fails",
        ),
        Setting("images.index_url", str, help="package index for requirements (default: uv's)"),
        Setting("images.extra_index_urls", list, default=[], help="more package indexes"),
        Setting(
            "images.find_links",
            list,
            default=[],
            help="directories or pages of wheels to resolve from (air-gapped mirrors)",
        ),
        Setting(
            "images.no_index",
            bool,
            default=False,
            help="resolve only from images.find_links, never from an index",
        ),
        Setting(
            "jobs.retention",
            str,
            help="how long finished jobs' data is kept: 'ascend jobs prune' without "
            "--older-than deletes jobs that ended longer ago (30d, 12h; unset: kept forever)",
            validate=check_duration,
            fix="write a number and a unit: s, m, h, d or w, e.g. 30d or 12h",
        ),
    ]


@hookimpl(trylast=True)
def ascend_storage(config: AscendConfig) -> CloudStorage | None:
    if not config.storage_url:
        return None
    from ascend.storage.local_files import storage_from_url

    return storage_from_url(config.storage_url, **config.get("storage_options", {}))


@hookimpl(trylast=True)
def ascend_registry_url(config: AscendConfig) -> str | None:
    return config.registry_url


def builder_for(config: AscendConfig, backend: CloudBackend) -> str:
    """``images.builder``, else ``cluster`` where the compute runs Kubernetes Jobs."""
    chosen = config.get("images.builder")
    if chosen:
        return str(chosen)
    from ascend.kubernetes.compute import KubernetesCompute

    return "cluster" if isinstance(backend.compute, KubernetesCompute) else "local"


@hookimpl(trylast=True)
def ascend_build_image(
    config: AscendConfig,
    spec: ImageSpec,
    registry: ContainerRegistry,
    progress: Progress,
    backend: CloudBackend,
) -> str | None:
    """The core's daemonless builders: ``cluster`` runs the build as a Kubernetes Job,
    ``local`` installs the lock with uv on this machine; both push one layer through the OCI
    API."""
    from ascend.images.build import build_env_image
    from ascend.images.local_build import one_build_at_a_time
    from ascend.images.lock import IndexOptions

    if builder_for(config, backend) == "cluster":
        from ascend.kubernetes.builder import build_in_cluster

        return build_in_cluster(backend, spec, registry, progress)
    with one_build_at_a_time(spec.tag):
        if registry.image_exists(spec.repository, spec.tag):  # another caller built it
            return registry.image_ref(spec.repository, spec.tag)
        return build_env_image(
            spec,
            registry,
            index=IndexOptions.from_config(config),
            timeout=float(config.get("images.build_timeout", 1800.0)),
            progress=progress,
        )


@hookimpl(trylast=True)
def ascend_registry(config: AscendConfig, url: str) -> ContainerRegistry | None:
    from ascend.registry import OCIRegistry

    return OCIRegistry(url)
