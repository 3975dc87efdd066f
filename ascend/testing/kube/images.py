"""Images on the emulated node: references, which images the node already has, pull
credentials, and the container runtime's error messages.

A node starts with its *preloaded* images (like ``kind load docker-image``); those run on the
host (see :mod:`ascend.testing.kube.podenv`). Every other image is pulled for real
(:mod:`ascend.testing.kube.image_store`) from the registry its reference names; only loopback
registries are reachable, as if the node had no other network. The messages here copy
containerd's wording, since callers (and Ascend's own error handling) read them.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass

from ascend.testing.kube.util import Obj

DEV_RUNTIME_IMAGE = "ascend-runtime:dev"
RUNTIME_REPOSITORY_SUFFIX = "ascend-runtime"
DOCKER_HUB = "docker.io"
DOCKER_HUB_REGISTRY = "registry-1.docker.io"
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


class PullError(Exception):
    """The image cannot be pulled; the message is the runtime's (as in ``ErrImagePull``)."""


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

    @property
    def is_digest(self) -> bool:
        return self.reference.startswith("sha256:")

    @property
    def hub(self) -> bool:
        return self.host in ("", DOCKER_HUB, "index.docker.io")

    def normalized(self) -> str:
        """The fully qualified name containerd uses (``docker.io/library/busybox:1.36``)."""
        if self.hub:
            repository = self.repository if "/" in self.repository else f"library/{self.repository}"
            name = f"{DOCKER_HUB}/{repository}"
        else:
            name = f"{self.host}/{self.repository}"
        return f"{name}{'@' if self.is_digest else ':'}{self.reference}"

    @property
    def hostname(self) -> str:
        """The host without its port (``::1`` for ``[::1]:5000``)."""
        if self.host.startswith("["):
            return self.host[1:].partition("]")[0]
        return self.host.rpartition(":")[0] if ":" in self.host else self.host

    @property
    def loopback(self) -> bool:
        name = self.hostname
        return name in ("localhost", "::1") or (bool(_IPV4.match(name)) and name.startswith("127."))


def same_image(a: str, b: str) -> bool:
    """``busybox``, ``busybox:latest`` and ``docker.io/library/busybox:latest`` are one image."""
    return ImageRef.parse(a).normalized() == ImageRef.parse(b).normalized()


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


# -- the runtime's messages ------------------------------------------------------------------


def _prefix(ref: ImageRef) -> str:
    name = ref.normalized()
    return f'rpc error: code = Unknown desc = failed to pull and unpack image "{name}"'


def resolve_failed(ref: ImageRef, detail: str) -> str:
    return f'{_prefix(ref)}: failed to resolve reference "{ref.normalized()}": {detail}'


def manifest_url(ref: ImageRef, scheme: str = "http") -> str:
    host = DOCKER_HUB_REGISTRY if ref.hub else ref.host
    repository = ref.normalized().split("/", 1)[1].rsplit("@" if ref.is_digest else ":", 1)[0]
    return f"{scheme}://{host}/v2/{repository}/manifests/{ref.reference}"


def unreachable(ref: ImageRef) -> str:
    """A registry off the node's loopback: as a node without network (DNS fails) says it."""
    host, name = (DOCKER_HUB_REGISTRY,) * 2 if ref.hub else (ref.host, ref.hostname)
    request = f'failed to do request: Head "{manifest_url(ref, "https")}"'
    if _IPV4.match(name) or ":" in name:
        return resolve_failed(ref, f"{request}: dial tcp {host}: connect: network is unreachable")
    return resolve_failed(ref, f"{request}: dial tcp: lookup {name}: no such host")


def not_found(ref: ImageRef) -> str:
    return (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{ref.normalized()}": '
        f'failed to resolve reference "{ref.normalized()}": {ref.normalized()}: not found'
    )


def unauthorized(ref: ImageRef) -> str:
    return resolve_failed(
        ref,
        "pull access denied, repository does not exist or may require authorization: "
        "authorization failed: no basic auth credentials",
    )


def copy_failed(ref: ImageRef, detail: str) -> str:
    return f"{_prefix(ref)}: failed to copy: {detail}"


def never_pull(image: str) -> str:
    return f'Container image "{image}" is not present with pull policy of Never'
