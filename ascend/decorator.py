"""``@ascend(...)``: turns a function into one that runs remotely.

Options are validated when the function is decorated, so a typo in ``memory="2GB"`` fails at
import time with the parameter named, not minutes later on the cluster.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from ascend.errors import ConfigError
from ascend.runtime import CallOptions, JobHandle

if TYPE_CHECKING:
    from ascend.plugins.types import NodeType

P = ParamSpec("P")
R = TypeVar("R")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _invalid(parameter: str, value: Any, reason: str, fix: str) -> ConfigError:
    return ConfigError(f"@ascend({parameter}={value!r}): {reason}", fix=fix)


def _too_big(kind: NodeType, option: str, value: Any, most: str) -> ConfigError:
    """A request larger than one node of ``kind`` can give a job."""
    return _invalid(
        option,
        value,
        f"does not fit node type {kind.name!r}, whose nodes can give a job at most "
        f"{option}={most!r}",
        f"leave {option} out to get the node type's default, or pick a larger node type",
    )


def validate_options(
    *,
    cpu: str | None,
    memory: str | None,
    timeout: int,
    stream_logs: bool,
    requirements: Iterable[str] | str | None,
    node_type: str | None,
    project: bool,
    git_check: bool | None,
    base_image: str | None,
    env: Mapping[str, str] | None,
    retries: int = 0,
) -> CallOptions:
    """Check every option and return them frozen; errors name the parameter and the fix."""
    from ascend.quantities import cpu_cores, memory_bytes

    try:
        cores = None if cpu is None else cpu_cores(cpu)
    except ValueError as error:
        raise _invalid(
            "cpu", cpu, str(error), "use cores ('2', '0.5') or millicores ('500m')"
        ) from None
    try:
        size = None if memory is None else memory_bytes(memory)
    except ValueError as error:
        raise _invalid(
            "memory", memory, str(error), "use a quantity such as '512Mi' or '4Gi'"
        ) from None
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
        raise _invalid(
            "timeout",
            timeout,
            "must be a positive whole number of seconds",
            "for example timeout=3600 (one hour)",
        )
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise _invalid(
            "retries",
            retries,
            "must be a whole number, 0 or more",
            "retries=2 re-runs the function at most twice after it fails",
        )
    for name, flag in (("stream_logs", stream_logs), ("project", project)):
        if not isinstance(flag, bool):
            raise _invalid(name, flag, "must be True or False", f"pass {name}=True or False")
    if git_check is not None and not isinstance(git_check, bool):
        raise _invalid(
            "git_check", git_check, "must be True, False or None", "None uses the git_check setting"
        )
    normalized: tuple[str, ...] | None = None
    sync = requirements == "local"
    if requirements is not None and not sync:
        if not isinstance(requirements, str):
            try:
                requirements = list(requirements)  # once: a generator is consumed here
            except TypeError:
                raise _invalid(
                    "requirements",
                    requirements,
                    "must be a list of requirements",
                    "for example requirements=['numpy>=1.26']",
                ) from None
        if isinstance(requirements, str):
            raise _invalid(
                "requirements",
                requirements,
                "must be a list of requirements",
                f"write requirements=[{requirements!r}], or requirements='local' to pin what "
                "the function imports to the versions installed here",
            )
        from ascend.errors import ImageBuildError
        from ascend.images import normalize_requirement

        try:
            normalized = tuple(normalize_requirement(r) for r in requirements)
        except ImageBuildError as error:
            raise _invalid(
                "requirements", list(requirements), error.message, error.fix or ""
            ) from None
    if base_image is not None and (
        not isinstance(base_image, str)
        or not base_image.strip()
        or any(character.isspace() for character in base_image)
    ):
        raise _invalid(
            "base_image",
            base_image,
            "must be an image reference",
            "for example base_image='python:3.11-slim'",
        )
    environment: dict[str, str] = {}
    if env is not None and not isinstance(env, Mapping):
        raise _invalid(
            "env", env, "must be a mapping of names to values", "for example env={'MODE': 'fast'}"
        )
    for key, value in (env or {}).items():
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            raise _invalid(
                "env",
                dict(env or {}),
                f"{key!r} is not a valid variable name",
                "use letters, digits and '_', not starting with a digit",
            )
        if key.startswith("ASCEND_"):
            raise _invalid(
                "env",
                dict(env or {}),
                f"{key} is reserved for Ascend itself",
                "choose another name",
            )
        if not isinstance(value, str):
            raise _invalid(
                "env",
                dict(env or {}),
                f"the value of {key} is not a string",
                f"write {key}={str(value)!r}",
            )
        environment[key] = value
    if node_type is not None:
        if not isinstance(node_type, str) or not node_type.strip():
            raise _invalid(
                "node_type",
                node_type,
                "must be the name of a node type",
                "for example node_type='gpu-t4'",
            )
        kind = _check_node_type(node_type)
        if kind is not None:
            if kind.max_cpu and cores is not None and cores > cpu_cores(kind.max_cpu):
                raise _too_big(kind, "cpu", cpu, kind.max_cpu)
            if kind.max_memory and size is not None and size > memory_bytes(kind.max_memory):
                raise _too_big(kind, "memory", memory, kind.max_memory)
    return CallOptions(
        cpu=cpu,
        memory=memory,
        timeout=timeout,
        stream_logs=stream_logs,
        requirements=normalized,
        sync_requirements=sync,
        node_type=node_type,
        project=project,
        git_check=git_check,
        base_image=base_image,
        env=environment,
        retries=retries,
    )


def _check_node_type(node_type: str) -> NodeType | None:
    """The catalog entry of ``node_type`` (``None`` when no plugin has a catalog)."""
    from ascend.plugins.manager import get_plugin_manager

    catalog = get_plugin_manager().node_types()
    if not catalog:
        return None
    if node_type not in catalog:
        known = ", ".join(sorted(catalog))
        raise _invalid(
            "node_type",
            node_type,
            f"is not a known node type (known: {known})",
            "pick one of the known node types",
        )
    return catalog[node_type][0]


class RemoteFunction(Generic[P, R]):
    """A function that runs remotely when called; ``.local`` still runs it here."""

    def __init__(self, fn: Callable[P, R], options: CallOptions) -> None:
        from ascend import interrupts

        self.fn = fn
        self.options = options
        functools.update_wrapper(self, fn)
        # Decorating runs in the main thread (module level) even when calls are then made
        # from a thread pool: Ctrl-C there must reach them (see ascend.interrupts).
        interrupts.install()

    def __repr__(self) -> str:
        return f"<remote function {getattr(self.fn, '__qualname__', self.fn)!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run remotely and block until the result (or the exception) comes back."""
        from ascend import console, interrupts

        function = getattr(self.fn, "__qualname__", repr(self.fn))
        with (
            interrupts.guarding(),  # from submission on, Ctrl-C cancels this call's job
            console.showing(function, logs=self.options.stream_logs),  # its progress and output
        ):
            result: R = self.submit(*args, **kwargs).result()
        return result

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle:
        """Start a remote run and return its handle without waiting."""
        from ascend.runtime import submit

        return submit(self.fn, args, kwargs, self.options)

    def local(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run in this process, as if undecorated (for debugging and tests)."""
        return self.fn(*args, **kwargs)


@overload
def ascend(fn: Callable[P, R], /) -> RemoteFunction[P, R]: ...


@overload
def ascend(
    *,
    cpu: str | None = ...,
    memory: str | None = ...,
    timeout: int = ...,
    stream_logs: bool = ...,
    requirements: Iterable[str] | str | None = ...,
    node_type: str | None = ...,
    project: bool = ...,
    git_check: bool | None = ...,
    base_image: str | None = ...,
    env: Mapping[str, str] | None = ...,
    retries: int = ...,
) -> Callable[[Callable[P, R]], RemoteFunction[P, R]]: ...


def ascend(
    fn: Callable[P, R] | None = None,
    /,
    *,
    cpu: str | None = None,
    memory: str | None = None,
    timeout: int = 3600,
    stream_logs: bool = True,
    requirements: Iterable[str] | str | None = None,
    node_type: str | None = None,
    project: bool = False,
    git_check: bool | None = None,
    base_image: str | None = None,
    env: Mapping[str, str] | None = None,
    retries: int = 0,
) -> Any:
    """Run the decorated function remotely; see the README's decorator reference.

    :param cpu: CPU request and limit, a Kubernetes quantity ("2", "500m"); default "1", or
        with ``node_type`` the node type's default (for the AKS catalog: what one job can have
        on that VM).
    :param memory: memory request and limit ("512Mi", "4Gi"); exceeding it is an
        :class:`~ascend.errors.OutOfMemoryError`. Default "2Gi", or the node type's.
    :param timeout: seconds before the job is stopped (:class:`~ascend.errors.JobTimeoutError`).
    :param stream_logs: print the function's output here as it runs.
    :param requirements: pip requirements the job needs: cluster providers run an image built
        for them (once per lock), the local provider an environment. ``"local"`` pins the
        installed distributions the call imports to the versions installed here.
    :param node_type: a node type from the provider's catalog (GPU nodes, ...).
    :param project: run in the project's namespace, named after the git repository.
    :param git_check: refuse to run from a dirty git tree (None: the ``git_check`` setting).
    :param base_image: the image to build on or run.
    :param env: extra environment variables for the job (no secrets: use your provider's).
    :param retries: run again at most this many times after a failure (Kubernetes providers);
        preemption and eviction do not count. The default 0 never re-runs the function.
    """
    options = validate_options(
        cpu=cpu,
        memory=memory,
        timeout=timeout,
        stream_logs=stream_logs,
        requirements=requirements,
        node_type=node_type,
        project=project,
        git_check=git_check,
        base_image=base_image,
        env=env,
        retries=retries,
    )

    def decorate(function: Callable[P, R]) -> RemoteFunction[P, R]:
        if not callable(function):
            raise TypeError(f"@ascend decorates functions, not {type(function).__name__}")
        return RemoteFunction(function, options)

    return decorate(fn) if fn is not None else decorate
