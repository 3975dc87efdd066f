"""The plugin contract: every hook a plugin can implement, in one place.

A plugin is any module or object with functions marked ``@ascend.hookimpl`` whose names are
hook names below. Implementations may accept a subset of a hook's parameters, so new parameters
can be added without breaking plugins; always name parameters exactly as here.

Order: pluggy calls the implementation registered last first. Built-in plugins register first,
so third-party plugins run before them; built-in defaults carry ``trylast=True``. Use
``tryfirst=True`` only to beat *another* third-party plugin.

Backend hooks are ``firstresult``: return a value to answer, ``None`` to let the next plugin
answer. A provider plugin (azure, ...) answers only when ``config.cloud_provider`` names it; the
core resolves ``cloud_provider`` for you (explicit setting, or the only provider installed). A
partial plugin (an in-house registry) answers whenever it is configured and so layers over any
provider.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ascend.plugins.markers import hookspec

if TYPE_CHECKING:
    import pluggy

    from ascend.backend import CloudBackend
    from ascend.compute import ComputeBackend, JobRequest
    from ascend.config import AscendConfig
    from ascend.images import ImageSpec
    from ascend.images.progress import Progress
    from ascend.plugins.types import NodeType, Provider, Setting
    from ascend.registry import ContainerRegistry
    from ascend.storage.base import CloudStorage


# --------------------------------------------------------------------------------------------
# Bootstrap (historic: plugins registered later still receive the call)
# --------------------------------------------------------------------------------------------


@hookspec(historic=True)
def ascend_addhooks(pluginmanager: pluggy.PluginManager) -> None:
    """Add hook specifications of your own, so other plugins can implement them.

    Called once per plugin manager; a plugin registered later receives the call when it is
    registered (historic hook: no wrappers, no return value).

    :param pluginmanager: the :class:`ascend.plugins.manager.AscendPluginManager`.

    **Example:**

    .. code-block:: python

        from ascend import hookimpl
        from acme_ascend import hookspecs

        @hookimpl
        def ascend_addhooks(pluginmanager):
            pluginmanager.add_hookspecs(hookspecs)

    .. versionadded:: 0.1
    """


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@hookspec
def ascend_settings() -> Iterable[Setting]:
    """Declare the configuration keys your plugin reads.

    Every plugin's settings are collected. The core reads them from ``.ascend.yaml`` and
    ``ASCEND_<KEY>``, converts them to the declared type, runs the declared validator, and shows
    them in ``ascend config show``. Prefix keys with your plugin's name (``acme.registry_host``).
    Two plugins declaring one key is an error naming both.

    :return: an iterable of :class:`ascend.plugins.types.Setting`.

    **Example:**

    .. code-block:: python

        from ascend import hookimpl, Setting

        @hookimpl
        def ascend_settings():
            return [Setting("acme.registry_host", str, help="in-house registry, host[:port]")]

    .. versionadded:: 0.1
    """
    return ()


@hookspec
def ascend_providers() -> Iterable[Provider]:
    """Declare the cloud providers your plugin offers (what ``cloud_provider`` can select).

    Every plugin's providers are collected; two plugins declaring one name is an error. A
    provider that is installed but cannot work (say its SDK extra is missing) still declares
    itself, with ``unavailable`` and ``fix`` set, so the user is told how to repair it.

    :return: an iterable of :class:`ascend.plugins.types.Provider`.

    **Example:**

    .. code-block:: python

        @hookimpl
        def ascend_providers():
            return [Provider("acme", summary="ACME cloud")]

    .. versionadded:: 0.1
    """
    return ()


@hookspec
def ascend_node_types() -> Iterable[NodeType]:
    """Declare node types jobs can request with ``@ascend(node_type=...)``.

    Every plugin's node types are collected into one catalog; two plugins declaring one name is
    an error naming both. When the catalog is not empty, ``@ascend`` refuses unknown node types
    at decoration time, listing the known ones.

    :return: an iterable of :class:`ascend.plugins.types.NodeType`.

    **Example:**

    .. code-block:: python

        @hookimpl
        def ascend_node_types():
            return [NodeType("gpu-t4", cpu="3", memory="24Gi", gpus=1,
                             node_selector=(("agentpool", "gput4"),))]

    .. versionadded:: 0.1
    """
    return ()


@hookspec(historic=True)
def ascend_configure(config: AscendConfig) -> None:
    """React to a loaded configuration (set up logging, caches, validate combinations).

    Called each time a configuration is loaded; a plugin registered later receives the calls
    made before (historic hook: no wrappers, no return value). Raise
    :class:`ascend.errors.ConfigError` to reject the configuration with a fix.

    :param config: the loaded :class:`ascend.config.AscendConfig`.

    **Example:**

    .. code-block:: python

        @hookimpl
        def ascend_configure(config):
            if config.cloud_provider == "acme" and not config.get("acme.region"):
                raise ConfigError("acme.region is required", fix="set acme.region: eu-1")

    .. versionadded:: 0.1
    """


# --------------------------------------------------------------------------------------------
# Backends (firstresult: the first non-None answer wins)
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def ascend_storage(config: AscendConfig) -> CloudStorage | None:
    """Return the storage where jobs keep their package, metadata, logs and result.

    Return a :class:`ascend.storage.base.CloudStorage` to answer, ``None`` to let other plugins
    answer. Stops at the first non-``None`` result. The built-in default (``trylast``) answers
    with a generic fsspec storage when ``storage_url`` is set.

    :param config: the loaded configuration; ``config.cloud_provider`` is already resolved.

    **Example:**

    .. code-block:: python

        @hookimpl
        def ascend_storage(config):
            if config.cloud_provider != "acme":
                return None
            return FsspecStorage("s3://acme-jobs/ascend", endpoint_url=config.get("acme.s3"))

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def ascend_registry_url(config: AscendConfig) -> str | None:
    """Return the container registry images are pushed to and pulled from (``host[:port]``).

    Return the registry's address to answer, ``None`` to let other plugins answer. Stops at
    the first non-``None`` result. The built-in default (``trylast``) answers with the
    ``registry_url`` setting when it is set. A plugin that only provides this hook (an in-house
    registry) replaces the registry and nothing else.

    :param config: the loaded configuration.

    **Example:**

    .. code-block:: python

        @hookimpl(tryfirst=True)
        def ascend_registry_url(config):
            return config.get("acme.registry_host")  # None when unset: defer

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def ascend_registry(config: AscendConfig, url: str) -> ContainerRegistry | None:
    """Return a client for the registry at ``url`` (existence checks, credentials).

    Return a :class:`ascend.registry.ContainerRegistry` to answer, ``None`` to let other
    plugins answer; stops at the first non-``None`` result. The built-in default (``trylast``)
    speaks the OCI distribution API with credentials from the docker config. Implement it only
    when your registry needs something else (a token service, say).

    :param config: the loaded configuration.
    :param url: the registry address chosen by ``ascend_registry_url``.

    **Example:**

    .. code-block:: python

        @hookimpl
        def ascend_registry(config, url):
            if url.endswith(".acme.internal"):
                return AcmeRegistry(url, token=acme_token())
            return None

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def ascend_build_image(
    config: AscendConfig,
    spec: ImageSpec,
    registry: ContainerRegistry,
    progress: Progress,
    backend: CloudBackend,
) -> str | None:
    """Build the image described by ``spec``, push it to ``registry``, return its reference.

    Return the pushed image reference (``registry.image_ref(spec.repository, spec.tag)``) to
    answer, ``None`` to let other plugins answer. Stops at the first non-``None`` result. The
    caller has already checked that the content-addressed tag ``spec.tag`` is missing from the
    registry. The core's own builder (``trylast``) installs ``spec.lock`` with uv and pushes
    one reproducible layer through the OCI API; a plugin replaces it to build elsewhere.

    :param config: the loaded configuration.
    :param spec: an :class:`ascend.images.ImageSpec`: the base image and its digest, the
        Python version, the resolved lock (``spec.lock.text``), the runner's versions; its
        ``tag`` is a hash of all of them.
    :param registry: the registry the ``ascend_registry`` hook answered (push there).
    :param progress: :class:`ascend.images.progress.Progress`; ``progress.step(...)`` and
        ``progress.line(...)`` show what the build does (silent when the call asks).
    :param backend: the :class:`ascend.backend.CloudBackend` asking (its compute and storage
        run the core's cluster builder).

    **Example:**

    .. code-block:: python

        @hookimpl(tryfirst=True)
        def ascend_build_image(config, spec, registry, progress):
            if not config.get("acme.builder_url"):
                return None
            with progress.step("build on the acme farm"):
                acme_farm_build(spec.base_image, spec.lock.text, spec.tag)
            return registry.image_ref(spec.repository, spec.tag)

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def ascend_compute(config: AscendConfig) -> ComputeBackend | None:
    """Return the compute backend that runs jobs.

    Return a :class:`ascend.compute.ComputeBackend` to answer, ``None`` to let other plugins
    answer. Stops at the first non-``None`` result. The built-in Kubernetes compute answers
    (``trylast``) for any provider that brings none.

    :param config: the loaded configuration.

    **Example:**

    .. code-block:: python

        @hookimpl
        def ascend_compute(config):
            if config.cloud_provider != "acme":
                return None
            return AcmeBatchCompute(config)

    .. versionadded:: 0.1
    """


@hookspec
def ascend_validate_job(config: AscendConfig, request: JobRequest) -> None:
    """Check a call before anything is uploaded or submitted; raise to refuse it.

    Every plugin is called. Raise an :class:`ascend.AscendError` subclass naming the field, the
    value and the fix (a node type whose pool does not exist, a quota); its type reaches the
    caller unchanged. Runs on every call, so cache what you look up.

    :param config: the loaded configuration.
    :param request: the :class:`ascend.compute.JobRequest` about to be submitted.

    **Example:**

    .. code-block:: python

        @hookimpl
        def ascend_validate_job(config, request):
            if request.node_type == "gpu-h100" and not config.get("acme.gpu_budget"):
                raise ConfigError("gpu-h100 needs a GPU budget", fix="set acme.gpu_budget")

    .. versionadded:: 0.1
    """


@hookspec
def ascend_job_manifest(
    config: AscendConfig, request: JobRequest, manifest: dict[str, Any]
) -> None:
    """Adjust the Kubernetes Job manifest of one call before it is created (change it in place).

    Every plugin is called, in hook order. Add labels or annotations, a service account, env
    entries (secrets only as ``valueFrom.secretKeyRef``), volumes. The manifest is a plain
    camelCase dict (``manifest["spec"]["template"]["spec"]`` is the pod spec).

    :param config: the loaded configuration.
    :param request: the :class:`ascend.compute.JobRequest` (job id, resources, URIs).
    :param manifest: the ``batch/v1`` Job as a dict; the return value is ignored.

    **Example:**

    .. code-block:: python

        @hookimpl
        def ascend_job_manifest(config, request, manifest):
            if config.cloud_provider != "acme":
                return
            pod = manifest["spec"]["template"]
            pod["metadata"]["labels"]["acme.io/team"] = config.get("acme.team")
            pod["spec"]["serviceAccountName"] = "ascend-jobs"

    .. versionadded:: 0.1
    """


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


@hookspec
def ascend_cli_commands() -> Iterable[Any]:
    """Contribute commands to the ``ascend`` command line.

    Every plugin's commands are collected. Return ``click.Command`` or ``click.Group`` objects;
    contribute one group named after your plugin (``ascend acme ...``) rather than many verbs.
    A name that clashes with a built-in command or another plugin's command is an error naming
    both sources, and neither clashing command is added. Import click inside the hook so that
    ``import ascend`` stays fast.

    :return: an iterable of click commands.

    **Example:**

    .. code-block:: python

        @hookimpl
        def ascend_cli_commands():
            import click

            @click.group(help="ACME cloud commands.")
            def acme():
                pass

            @acme.command(help="Say hello.")
            def hello():
                click.echo("hello from acme")

            return [acme]

    .. versionadded:: 0.1
    """
    return ()
