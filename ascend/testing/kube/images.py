"""Images: which command an image stands for, and whether it exists in the test registry.

No image is ever pulled or unpacked. An image on the configured registry is checked with
``HEAD /v2/<repo>/manifests/<ref>`` (with the OCI and Docker manifest Accept headers, without
which a present OCI image answers 404), using the pod's ``imagePullSecrets`` for basic auth.
Images on any other registry count as present.
"""

from __future__ import annotations

import base64
import http.client
import json
from dataclasses import dataclass

from ascend.testing.kube.util import Obj

MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
RUNTIME_REPOSITORY_SUFFIX = "ascend-runtime"


@dataclass(frozen=True)
class ImageRef:
    host: str  # "" for Docker Hub
    repository: str
    reference: str  # tag or digest

    @classmethod
    def parse(cls, image: str) -> ImageRef:
        rest = image
        digest = ""
        if "@" in rest:
            rest, digest = rest.split("@", 1)
        host = ""
        first, _, remainder = rest.partition("/")
        if remainder and ("." in first or ":" in first or first == "localhost"):
            host, rest = first, remainder
        tag = ""
        last_slash = rest.rfind("/")
        if ":" in rest[last_slash + 1 :]:
            rest, tag = rest.rsplit(":", 1)
        return cls(host, rest, digest or tag or "latest")


def is_runtime_image(image: str) -> bool:
    """Any registry, any tag: ``.../ascend-runtime:py3.11``, ``ascend-runtime``, ..."""
    return ImageRef.parse(image).repository.rsplit("/", 1)[-1].endswith(RUNTIME_REPOSITORY_SUFFIX)


def pull_credentials(secrets: list[Obj], host: str) -> tuple[str, str] | None:
    """(user, password) for ``host`` from dockerconfigjson / dockercfg secrets."""
    for secret in secrets:
        data = secret.get("data") or {}
        raw = data.get(".dockerconfigjson") or data.get(".dockercfg")
        if not raw:
            continue
        try:
            config = json.loads(base64.b64decode(raw))
        except ValueError:
            continue
        auths = config.get("auths", config) if isinstance(config, dict) else {}
        for server, entry in auths.items():
            name = server.split("://", 1)[-1].rstrip("/")
            if name != host or not isinstance(entry, dict):
                continue
            if entry.get("auth"):
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                return user, password
            if entry.get("username"):
                return str(entry["username"]), str(entry.get("password", ""))
    return None


def check(image: str, registry: str, credentials: tuple[str, str] | None) -> str | None:
    """None when the image exists, else the runtime's error message (as in ErrImagePull)."""
    ref = ImageRef.parse(image)
    prefix = f'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": failed to resolve reference "{image}"'
    headers = {"Accept": MANIFEST_ACCEPT}
    if credentials:
        token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    host, _, port = registry.partition(":")
    path = f"/v2/{ref.repository}/manifests/{ref.reference}"
    connection = http.client.HTTPConnection(host, int(port or 80), timeout=5)
    try:
        connection.request("HEAD", path, headers=headers)
        status = connection.getresponse().status
    except OSError as error:
        return f'{prefix}: failed to do request: Head "http://{registry}{path}": dial tcp {registry}: {error}'
    finally:
        connection.close()
    if status == 200:
        return None
    if status == 404:
        return (
            f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
            f'failed to resolve reference "{image}": {image}: not found'
        )
    if status in (401, 403):
        return (
            f"{prefix}: pull access denied, repository does not exist or may require "
            "authorization: authorization failed: no basic auth credentials"
        )
    return f"{prefix}: unexpected status from HEAD request to http://{registry}{path}: {status}"
