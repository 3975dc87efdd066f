"""The cluster builder: an image build as a Kubernetes Job (``python -m ascend.build`` in the
runtime image), so wheels download inside the cloud, not over the user's uplink.

The Job is named after the tag: a second caller who needs the same image gets AlreadyExists
and waits for the same Job. The registry, not the Job's status, says whether the image is
there; the Job's result file only explains a failure.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ascend.compute import JobRequest
from ascend.errors import ImageBuildError, JobError, JobTimeoutError
from ascend.images.progress import Progress

if TYPE_CHECKING:
    from ascend.backend import CloudBackend
    from ascend.images.spec import ImageSpec
    from ascend.registry import ContainerRegistry

BUILD_COMMAND = ["python", "-m", "ascend.build"]
BUILDER_CPU = "1"
BUILDER_MEMORY = "2Gi"
LOG_TAIL = 20


def builder_job_name(tag: str) -> str:
    """``ascend-build-py3-11-<hash>``: a valid Job name derived from the tag alone."""
    return "ascend-build-" + tag.lower().replace(".", "-").replace("_", "-")


def build_in_cluster(
    backend: CloudBackend,
    spec: ImageSpec,
    registry: ContainerRegistry,
    progress: Progress,
) -> str:
    """Run the build of ``spec`` as a Job (or join the one running) and return the image."""
    from ascend.images.choose import runtime_image
    from ascend.kubernetes.compute import KubernetesCompute
    from ascend.registry import OCIRegistry
    from ascend.runtime import current_user

    compute = backend.compute
    if not isinstance(compute, KubernetesCompute):
        raise ImageBuildError(
            f"images.builder is 'cluster' and provider {backend.name!r} has no Kubernetes compute",
            fix="set images.builder: local",
        )
    if not isinstance(registry, OCIRegistry):
        raise ImageBuildError(
            f"the cluster builder pushes through the OCI API, and registry "
            f"{registry.registry_url()} is answered by a plugin client that cannot",
            fix="set images.builder: local, or have that plugin implement ascend_build_image",
        )
    config = backend.config
    storage = backend.storage
    user = current_user(config)
    prefix = f"images/builds/{spec.tag}"
    spec_path, result_path = f"{prefix}/build.json", f"{prefix}/result.json"
    from ascend.images.lock import IndexOptions

    index = IndexOptions.from_config(config)
    timeout = float(config.get("images.build_timeout", 1800.0))
    job = {
        "spec": spec.to_json(),
        "registry": registry.base_url,
        "timeout": timeout,
        "index": index.to_json(),
    }
    request = JobRequest(
        job_id=builder_job_name(spec.tag),
        package_uri=storage.storage_uri(spec_path),
        result_uri=storage.storage_uri(result_path),
        image=str(config.get("images.builder_image") or runtime_image(backend)),
        cpu=BUILDER_CPU,
        memory=BUILDER_MEMORY,
        timeout=int(timeout),
        stream_logs=progress.enabled,
        labels={"user": user, "project": "images"},
    )
    name = builder_job_name(spec.tag)
    storage.write(spec_path, json.dumps(job).encode())  # the same bytes for every caller
    for attempt in (1, 2):
        handle, created = compute.submit_shared(
            request,
            name,
            BUILD_COMMAND,
            docker_config_secret=config.get("kubernetes.registry_secret"),
        )
        with progress.step(
            f"build in the cluster as job {name}"
            if created
            else f"wait for job {name}, which another caller started for the same image"
        ):
            outcome = _wait(compute, handle, timeout)
        if registry.image_exists(spec.repository, spec.tag):
            compute.release(handle)
            return registry.image_ref(spec.repository, spec.tag)
        if not created and attempt == 1:  # an earlier build of this tag that failed: again
            compute.cancel(handle)
            _wait(compute, handle, 30)
            continue
        raise _failure(storage, result_path, compute.logs(handle), name, outcome)
    raise AssertionError("unreachable")


def _wait(compute: Any, handle: str, timeout: float) -> JobError | None:
    try:
        compute.wait(handle, None)
    except JobTimeoutError as error:
        raise ImageBuildError(
            f"the image build ran past images.build_timeout ({timeout:g} s) and was stopped",
            fix="raise images.build_timeout, or split the requirements",
        ) from error
    except JobError as error:
        return error
    return None


def _failure(
    storage: Any, result_path: str, logs: str, name: str, outcome: JobError | None
) -> ImageBuildError:
    said: dict[str, Any] = {}
    try:
        said = json.loads(storage.read(result_path))
    except (FileNotFoundError, ValueError):
        pass
    tail = "\n".join(logs.splitlines()[-LOG_TAIL:])
    cause = str(said.get("error") or "").split("\n", 1)[0]  # the log tail below has the rest
    cause = cause or (outcome.message if outcome else "it ended without an image")
    return ImageBuildError(
        f"the image build (job {name}) failed: {cause}"
        + (f"\nlast lines:\n{tail}" if tail else ""),
        fix=said.get("fix") or f"kubectl logs job/{name} shows the whole build",
    )
