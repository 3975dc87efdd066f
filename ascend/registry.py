"""Container registries: the interface, and the generic OCI distribution API client.

``image_exists`` asks the registry directly (``HEAD /v2/<repository>/manifests/<tag>``); no
Docker daemon is involved. Credentials come from the docker config (``docker.auth``, including
credential helpers), imported only when a registry asks for them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any, BinaryIO

from ascend.errors import ImageNotFoundError, RegistryError

# Without the OCI types in Accept, registries answer 404 for OCI images that exist.
MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
_REPOSITORY = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Response:
    status: int
    headers: Message
    body: bytes


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry stores it: its bytes, media type and digest."""

    body: bytes
    media_type: str
    digest: str

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"


def split_reference(image: str) -> tuple[str, str, str]:
    """``host/repository:tag`` (or ``@digest``) -> ``(host, repository, reference)``.

    A reference without a registry host is Docker Hub's, as ``docker pull`` reads it
    (``python:3.11-slim`` -> ``docker.io``, ``library/python``, ``3.11-slim``).
    """
    rest, _, digest = image.partition("@")
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        host, rest = first, remainder
    else:
        host = DOCKER_HUB
        if "/" not in rest:
            rest = f"library/{rest}"
    tag = ""
    name = rest
    if ":" in rest.rsplit("/", 1)[-1]:
        name, tag = rest.rsplit(":", 1)
    return host, name, digest or tag or "latest"


def is_loopback(host: str) -> bool:
    """Whether ``host[:port]`` names this machine (plain HTTP is then the sensible default)."""
    name = (urllib.parse.urlsplit("//" + host).hostname or "").lower()
    return name in ("localhost", "::1") or name.startswith("127.")


class ContainerRegistry(ABC):
    """Where images live, and whether one is already there."""

    @abstractmethod
    def registry_url(self) -> str:
        """The registry's address as used in image references (``myacr.azurecr.io``)."""

    @abstractmethod
    def image_exists(self, repository: str, tag: str) -> bool:
        """Whether ``repository:tag`` exists in this registry."""

    def image_ref(self, repository: str, tag: str) -> str:
        """The full image reference ``registry/repository:tag``."""
        return f"{self.registry_url()}/{repository}:{tag}"


def _check_repository(repository: str) -> None:
    if not isinstance(repository, str) or not _REPOSITORY.fullmatch(repository):
        raise RegistryError(
            f"repository name {repository!r} is invalid",
            fix="use lowercase letters, digits and separators ('.', '_', '-', '/')",
        )


def _check_name(repository: str, tag: str) -> None:
    _check_repository(repository)
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):
        raise RegistryError(
            f"tag {tag!r} is invalid",
            fix="use at most 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
        )


class OCIRegistry(ContainerRegistry):
    """A registry spoken to through the OCI distribution API.

    :param url: ``host[:port]``, optionally with ``http://`` or ``https://``. Without a scheme,
        loopback hosts use HTTP and every other host HTTPS.
    :param credentials: ``(username, password)``; when omitted they are looked up in the docker
        config the first time the registry asks for them.
    :param timeout: seconds for each HTTP request.
    """

    def __init__(
        self,
        url: str,
        credentials: tuple[str, str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        url = url.strip().rstrip("/")
        if not url:
            raise RegistryError("registry URL is empty", fix="set registry_url: host[:port]")
        if "://" in url:
            scheme, host = url.split("://", 1)
        else:
            host = url
            scheme = "http" if is_loopback(host) else "https"
        self._host = host
        self._base = f"{scheme}://{host}"
        self._credentials = credentials
        self._timeout = timeout
        self._token: str | None = None
        # The Basic header once the registry asked for it: sent up front from then on, since a
        # registry answers 401 to an upload before reading its body (a broken pipe otherwise).
        self._basic: str | None = None

    def registry_url(self) -> str:
        return self._host

    @property
    def base_url(self) -> str:
        """``scheme://host[:port]``: how to reach it (a builder pod needs the scheme too)."""
        return self._base

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._base!r})"

    def image_exists(self, repository: str, tag: str) -> bool:
        _check_name(repository, tag)
        path = f"/v2/{repository}/manifests/{urllib.parse.quote(tag)}"
        status = self._call("HEAD", path, repository).status
        if status == 200:
            return True
        if status == 404:
            return False
        raise RegistryError(
            f"registry {self._host} answered HTTP {status} for {repository}:{tag}",
            fix="check the registry address and that your credentials may pull from it",
        )

    # -- the OCI distribution API: what a daemonless build reads and pushes ---------------------

    def manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest of ``repository:reference`` (a tag or a digest).

        :raises ImageNotFoundError: the registry has no such image.
        """
        _check_repository(repository)
        path = f"/v2/{repository}/manifests/{urllib.parse.quote(reference)}"
        response = self._call("GET", path, repository)
        if response.status == 404:
            raise ImageNotFoundError(
                f"image {self.image_ref(repository, reference)} is not in registry {self._host}",
                fix="check the image name and tag, or build and push it first",
            )
        self._expect(response, 200, f"reading the manifest of {repository}:{reference}")
        digest = response.headers.get("Docker-Content-Digest") or sha256_digest(response.body)
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return Manifest(response.body, media_type, digest)

    def blob(self, repository: str, digest: str) -> bytes:
        """A blob's bytes (configs and small layers), checked against ``digest``."""
        _check_repository(repository)
        response = self._call("GET", f"/v2/{repository}/blobs/{digest}", repository)
        self._expect(response, 200, f"reading blob {digest} of {repository}")
        if sha256_digest(response.body) != digest:
            raise RegistryError(
                f"registry {self._host} sent blob {digest} of {repository} with other content",
                fix="the registry's storage may be corrupt; ask its operator",
            )
        return response.body

    def download_blob(self, repository: str, digest: str, target: Path) -> None:
        """Stream a blob (a layer of any size) into ``target``, checked against ``digest``."""
        _check_repository(repository)
        with open(target, "wb") as sink:
            response = self._call("GET", f"/v2/{repository}/blobs/{digest}", repository, sink=sink)
        self._expect(response, 200, f"reading blob {digest} of {repository}")
        sha = hashlib.sha256()
        with open(target, "rb") as handle:
            while chunk := handle.read(1 << 20):
                sha.update(chunk)
        if "sha256:" + sha.hexdigest() != digest:
            raise RegistryError(
                f"registry {self._host} sent blob {digest} of {repository} with other content",
                fix="the registry's storage may be corrupt; ask its operator",
            )

    def blob_exists(self, repository: str, digest: str) -> bool:
        _check_repository(repository)
        status = self._call("HEAD", f"/v2/{repository}/blobs/{digest}", repository).status
        if status in (200, 404):
            return status == 200
        raise RegistryError(f"registry {self._host} answered HTTP {status} for blob {digest}")

    def mount_blob(self, repository: str, digest: str, source: str) -> bool:
        """Link a blob that ``source`` (a repository of this registry) has; ``False`` when the
        registry would rather receive the bytes."""
        _check_repository(repository)
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        path = f"/v2/{repository}/blobs/uploads/?{query}"
        response = self._call("POST", path, repository, push=True)
        if response.status == 202 and response.headers.get("Location"):
            location = urllib.parse.urljoin(self._base + path, response.headers["Location"])
            self._request("DELETE", location)  # the upload it opened instead; best effort
        if response.status in (201, 202):
            return response.status == 201
        self._expect(response, 201, f"mounting blob {digest} into {repository}")
        return False

    def push_blob(self, repository: str, digest: str, data: bytes | Path) -> bool:
        """Upload ``data`` (bytes, or a file streamed from disk) as ``digest`` unless the
        repository has it already; returns whether bytes were sent."""
        _check_repository(repository)
        if self.blob_exists(repository, digest):
            return False
        start = f"/v2/{repository}/blobs/uploads/"
        response = self._call("POST", start, repository, push=True)
        self._expect(response, 202, f"starting an upload to {repository}")
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {self._host} started an upload without a Location")
        url = urllib.parse.urljoin(self._base + start, location)
        joiner = "&" if "?" in url else "?"
        response = self._call(
            "PUT",
            url + joiner + urllib.parse.urlencode({"digest": digest}),
            repository,
            push=True,
            body=data,
            content_type="application/octet-stream",
        )
        self._expect(response, 201, f"uploading blob {digest} to {repository}")
        return True

    def put_manifest(
        self, repository: str, tag: str, body: bytes, media_type: str = OCI_MANIFEST
    ) -> str:
        """Tag ``body`` as ``repository:tag``; returns the manifest's digest. Push the blobs it
        names first: the tag appears only once the whole image is there."""
        _check_name(repository, tag)
        response = self._call(
            "PUT",
            f"/v2/{repository}/manifests/{urllib.parse.quote(tag)}",
            repository,
            push=True,
            body=body,
            content_type=media_type,
        )
        self._expect(response, 201, f"pushing the manifest of {repository}:{tag}")
        return response.headers.get("Docker-Content-Digest") or sha256_digest(body)

    def tags(self, repository: str) -> list[str]:
        """Every tag of ``repository`` (empty when the repository does not exist)."""
        _check_repository(repository)
        found: list[str] = []
        path: str | None = f"/v2/{repository}/tags/list?n=1000"
        while path:
            response = self._call("GET", path, repository)
            if response.status == 404:
                return found
            self._expect(response, 200, f"listing the tags of {repository}")
            found += json.loads(response.body).get("tags") or []
            link = response.headers.get("Link", "")
            match = re.match(r"<([^>]+)>", link)
            path = match.group(1) if match else None
        return sorted(found)

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Delete a manifest (and so every tag on it); the registry frees blobs on its own
        garbage collection."""
        _check_repository(repository)
        response = self._call(
            "DELETE", f"/v2/{repository}/manifests/{digest}", repository, push=True
        )
        if response.status == 405:
            raise RegistryError(
                f"registry {self._host} does not allow deleting images",
                fix="enable deletes on the registry (docker-registry: storage.delete.enabled)",
            )
        self._expect(response, 202, f"deleting {repository}@{digest}")

    def _expect(self, response: Response, status: int, doing: str) -> None:
        if response.status == status:
            return
        detail = response.body[:300].decode("utf-8", errors="replace").strip()
        if response.status in (401, 403):
            raise RegistryError(
                f"registry {self._host} refused {doing} (HTTP {response.status}): {detail}",
                fix=self._refused_fix(),
            )
        raise RegistryError(
            f"registry {self._host} answered HTTP {response.status} while {doing}: {detail}"
        )

    # -- HTTP with Basic and Bearer challenges --------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        repository: str,
        *,
        push: bool = False,
        body: bytes | Path | None = None,
        content_type: str | None = None,
        sink: BinaryIO | None = None,
    ) -> Response:
        """One request, answering the registry's Basic or Bearer challenge once. ``push`` asks
        a token service for push rights too; ``sink`` receives a 200 answer's body."""
        response = self._request(method, path, body=body, content_type=content_type, sink=sink)
        if response.status != 401:
            return response
        challenge = response.headers.get("WWW-Authenticate")
        if not challenge:
            raise RegistryError(f"registry {self._host} refused access without a challenge")
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            auth = self._basic = self._basic_header()
        elif scheme == "bearer":
            self._token = self._bearer_token(challenge, repository, push)
            auth = f"Bearer {self._token}"
        else:
            raise RegistryError(
                f"registry {self._host} asks for {scheme!r} authentication, which Ascend does "
                "not speak (it speaks Basic and Bearer tokens)",
                fix="install a plugin that provides ascend_registry for this registry",
            )
        response = self._request(
            method, path, auth=auth, body=body, content_type=content_type, sink=sink
        )
        if response.status == 401:
            raise RegistryError(
                f"registry {self._host} refused the credentials", fix=self._refused_fix()
            )
        return response

    def _refused_fix(self) -> str:
        """What to do when the registry refuses the credentials (subclasses know better)."""
        return f"log in again (docker login {self._host}) or fix the stored credentials"

    def _request(
        self,
        method: str,
        path: str,
        auth: str | None = None,
        body: bytes | Path | None = None,
        content_type: str | None = None,
        sink: BinaryIO | None = None,
    ) -> Response:
        url = path if "://" in path else self._base + path
        opened = open(body, "rb") if isinstance(body, Path) else None  # noqa: SIM115
        data = opened if opened is not None else body if isinstance(body, bytes) else None
        request = urllib.request.Request(url, method=method, data=data)
        if opened is not None:
            request.add_header("Content-Length", str(os.fstat(opened.fileno()).st_size))
        request.add_header("Accept", MANIFEST_ACCEPT)
        if content_type:
            request.add_header("Content-Type", content_type)
        if auth is None and self._basic:
            auth = self._basic
        elif auth is None and self._token:
            auth = f"Bearer {self._token}"
        if auth:
            request.add_header("Authorization", auth)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                if sink is not None and response.status == 200:
                    shutil.copyfileobj(response, sink, 1 << 20)
                    return Response(int(response.status), response.headers, b"")
                return Response(int(response.status), response.headers, response.read())
        except urllib.error.HTTPError as error:
            return Response(int(error.code), error.headers, error.read() if error.fp else b"")
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RegistryError(
                f"registry {self._base} is unreachable: {reason}",
                fix="check registry_url and your network; for a local registry without TLS "
                "write it as http://host:port",
            ) from error
        finally:
            if opened is not None:
                opened.close()

    def _find_credentials(self) -> tuple[str, str] | None:
        """Credentials for this registry, or ``None`` when there are none; errors while looking
        (a broken credential helper) propagate."""
        if self._credentials is None:
            self._credentials = docker_credentials(self._host)
        return self._credentials

    def _lookup_credentials(self) -> tuple[str, str]:
        found = self._find_credentials()
        if found is None:
            raise RegistryError(
                f"registry {self._host} needs credentials and the docker config has none for it",
                fix=f"run 'docker login {self._host}' (no daemon needed) or set DOCKER_CONFIG",
            )
        return found

    def _basic_header(self) -> str:
        user, password = self._lookup_credentials()
        return _basic(user, password)

    def _bearer_token(self, challenge: str, repository: str, push: bool = False) -> str:
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", None)
        if not realm:
            raise RegistryError(f"registry {self._host} sent a Bearer challenge without a realm")
        actions = "pull,push" if push else "pull"
        params["scope"] = f"repository:{repository}:{actions}"
        joiner = "&" if "?" in realm else "?"
        request = urllib.request.Request(realm + joiner + urllib.parse.urlencode(params))
        found = self._find_credentials()
        if found is not None:  # without credentials: an anonymous token
            request.add_header("Authorization", _basic(*found))
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                body: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise RegistryError(
                f"token service {realm} refused access (HTTP {error.code})",
                fix=self._refused_fix(),
            ) from error
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise RegistryError(f"token service {realm} failed: {error}") from error
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str):
            raise RegistryError(f"token service {realm} returned no token")
        return token


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def docker_credentials(registry: str) -> tuple[str, str] | None:
    """``(username, password)`` for ``registry`` from the docker config, or ``None``.

    Reads ``$DOCKER_CONFIG/config.json`` (``auths``, ``credHelpers``, ``credsStore``) without a
    daemon. Credential helpers answer with capitalised keys; both spellings are accepted.
    """
    import docker.auth as auth
    from docker.errors import DockerException

    try:
        config = auth.load_config()
        found = auth.resolve_authconfig(config, registry=registry)
    except DockerException as error:
        raise RegistryError(
            f"could not read docker credentials for {registry}: {error}",
            fix="install the credential helper named in your docker config, or log in again",
        ) from error
    if not found:
        return None
    user = found.get("username") or found.get("Username")
    password = found.get("password") or found.get("Password")
    if not user or password is None:
        return None
    return str(user), str(password)
