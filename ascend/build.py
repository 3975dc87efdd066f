"""``python -m ascend.build``: the cluster builder's entry point, run in a builder Job.

It reads the build's spec (JSON) from ``ASCEND_PACKAGE_URI``, builds and pushes the image with
the same code as the local builder, and writes ``{"image": ...}`` or ``{"error", "fix"}`` to
``ASCEND_RESULT_URI``. Credentials for the push come from the docker config the Job mounts
(``kubernetes.registry_secret``, at ``DOCKER_CONFIG``).
"""

from __future__ import annotations

import json
import os
import posixpath
import sys


def _store(uri: str):  # type: ignore[no-untyped-def]
    from ascend.storage.local_files import storage_from_url

    options = json.loads(os.environ.get("ASCEND_STORAGE_OPTIONS") or "{}")
    return storage_from_url(posixpath.dirname(uri), **options), posixpath.basename(uri)


def main() -> int:
    from ascend.errors import AscendError
    from ascend.images.build import build_env_image
    from ascend.images.lock import IndexOptions
    from ascend.images.progress import Progress
    from ascend.images.spec import ImageSpec
    from ascend.registry import OCIRegistry

    store, name = _store(os.environ["ASCEND_PACKAGE_URI"])
    result_store, result_name = _store(os.environ["ASCEND_RESULT_URI"])
    if result_store.exists(result_name):  # an earlier build's verdict must not speak for this one
        result_store.delete(result_name)
    job = json.loads(store.read(name))
    spec = ImageSpec.from_json(job["spec"])
    index = IndexOptions.from_json(job["index"])
    progress = Progress(enabled=True, stream=sys.stdout)
    try:
        image = build_env_image(
            spec,
            OCIRegistry(job["registry"]),
            index=index,
            timeout=float(job["timeout"]),
            progress=progress,
        )
    except AscendError as error:
        fix = error.fix
        if "refused" in error.message and not os.environ.get("DOCKER_CONFIG"):
            fix = (
                "the builder Job has no push credentials: create a kubernetes.io/dockerconfigjson "
                "Secret that may push to the registry in your namespace and name it in "
                "kubernetes.registry_secret"
            )
        print(f"[ascend] build failed: {error.message}", flush=True)
        result_store.write(result_name, json.dumps({"error": error.message, "fix": fix}).encode())
        return 1
    result_store.write(result_name, json.dumps({"image": image}).encode())
    print(f"[ascend] pushed {image}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
