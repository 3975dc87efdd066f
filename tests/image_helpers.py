"""Images the tests build on: a stand-in for ``python:X.Y-slim`` pushed to the local registry.

The real base cannot be pulled here (no Docker Hub), and the emulator's kubelet runs this
interpreter for a Python image anyway; what matters is a real manifest, config and layer in a
real registry, with the ``PYTHON_VERSION`` a python:X.Y image declares.
"""

from __future__ import annotations

import json
import platform
import tempfile
from pathlib import Path

from ascend.images.layer import OCI_LAYER, write_layer
from ascend.registry import OCI_MANIFEST, OCIRegistry, sha256_digest

PYTHON_BASE_REPOSITORY = "library/python"


def push_python_base(
    registry: str,
    *,
    python_version: str | None = None,
    repository: str = PYTHON_BASE_REPOSITORY,
    tag: str | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Push a python-like base image (one small layer) and return its reference."""
    version = python_version or platform.python_version()
    minor = ".".join(version.split(".")[:2])
    tag = tag or f"{minor}-slim"
    client = OCIRegistry(registry)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "etc"
        root.mkdir()
        (root / "os-release").write_text('NAME="ascend test base"\n')
        layer = write_layer(root, "etc", Path(scratch) / "layer.tar.gz")
        client.push_blob(repository, layer.digest, layer.path)
    variables = {
        "PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHON_VERSION": version,
        **(env or {}),
    }
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": [f"{k}={v}" for k, v in variables.items()], "Cmd": ["python3"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
    }
    config_bytes = json.dumps(config).encode()
    client.push_blob(repository, sha256_digest(config_bytes), config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256_digest(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [{"mediaType": OCI_LAYER, "digest": layer.digest, "size": layer.size}],
    }
    client.put_manifest(repository, tag, json.dumps(manifest).encode())
    return f"{registry}/{repository}:{tag}"
