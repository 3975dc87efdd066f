"""The node's side of the distribution API: resolve a manifest and download blobs from a
loopback registry, as containerd would, with the pod's pull credentials.

Kept apart from Ascend's own registry client on purpose: the emulator must judge images the
way a cluster does, not the way the code under test thinks they are. Plain HTTP only (the
usual local registry); redirects are followed only to loopback hosts.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import urllib.parse
from pathlib import Path

from ascend.testing.kube import images
from ascend.testing.kube.images import ImageRef, PullError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join(MANIFESTS + INDEXES)
PLATFORM = ("linux", "amd64")  # what the emulated node reports
CHUNK = 1 << 20
_PARAM = re.compile(r'(\w+)="([^"]*)"')


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).netloc
    return bool(host) and ImageRef(host, "x", "latest").loopback


class Registry:
    """One image's registry, for one pull: remembers a bearer token once it has one."""

    def __init__(self, ref: ImageRef, credentials: tuple[str, str] | None, timeout: float = 30):
        self.ref = ref
        self.base = f"http://{ref.host}"
        self.credentials = credentials
        self.timeout = timeout
        self._authorization = ""
        if credentials:
            token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            self._authorization = f"Basic {token}"
        self._tried_token = False

    # -- HTTP ----------------------------------------------------------------------------------

    def _open(
        self, url: str, headers: dict[str, str]
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """GET ``url``, following loopback redirects; the caller closes the connection."""
        for _ in range(5):
            parts = urllib.parse.urlsplit(url)
            if parts.scheme != "http" or not _is_loopback(url):
                raise PullError(images.resolve_failed(self.ref, f"refusing to follow {url}"))
            connection = http.client.HTTPConnection(parts.netloc, timeout=self.timeout)
            send = dict(headers)
            if self._authorization and parts.netloc == self.ref.host:
                send["Authorization"] = self._authorization
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            try:
                connection.request("GET", target, headers=send)
                response = connection.getresponse()
            except OSError as error:
                connection.close()
                raise PullError(self._dial_error(url, error)) from None
            if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
                response.read()
                connection.close()
                url = urllib.parse.urljoin(url, response.getheader("Location", ""))
                continue
            if response.status == 401 and self._challenge(response):
                response.read()
                connection.close()
                continue  # again, now with a token
            return connection, response
        raise PullError(images.resolve_failed(self.ref, f"too many redirects at {url}"))

    def _dial_error(self, url: str, error: OSError) -> str:
        host = urllib.parse.urlsplit(url).netloc
        why = (error.strerror or str(error)).lower()
        if isinstance(error, ConnectionRefusedError):
            why = "connect: connection refused"
        return images.resolve_failed(
            self.ref, f'failed to do request: Head "{url}": dial tcp {host}: {why}'
        )

    def _challenge(self, response: http.client.HTTPResponse) -> bool:
        """Answer a ``Bearer`` challenge once (a token from its realm); False: give up."""
        header = response.getheader("WWW-Authenticate") or ""
        scheme, _, rest = header.partition(" ")
        if scheme.lower() != "bearer" or self._tried_token:
            return False
        self._tried_token = True
        params = dict(_PARAM.findall(rest))
        realm = params.pop("realm", "")
        if not realm or not _is_loopback(realm):
            return False
        query = urllib.parse.urlencode(
            {k: v for k, v in params.items() if k in ("service", "scope")}
        )
        url = f"{realm}{'&' if '?' in realm else '?'}{query}" if query else realm
        parts = urllib.parse.urlsplit(url)
        connection = http.client.HTTPConnection(parts.netloc, timeout=self.timeout)
        headers = {}
        if self.credentials:
            pair = f"{self.credentials[0]}:{self.credentials[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request("GET", target, headers=headers)
            answer = connection.getresponse()
            body = answer.read()
        except OSError:
            return False
        finally:
            connection.close()
        if answer.status != 200:
            return False
        try:
            data = json.loads(body)
        except ValueError:
            return False
        token = (data.get("token") or data.get("access_token")) if isinstance(data, dict) else None
        if not token:
            return False
        self._authorization = f"Bearer {token}"
        return True

    # -- manifests -----------------------------------------------------------------------------

    def resolve(self) -> tuple[str, bytes]:
        """(digest, body) of the image's manifest; an index is narrowed to linux/amd64."""
        digest, body, media_type = self._manifest(self.ref.reference)
        if media_type in INDEXES:
            chosen = _platform_entry(json.loads(body))
            if chosen is None:
                raise PullError(
                    images.resolve_failed(self.ref, "no match for platform in manifest: not found")
                )
            digest, body, media_type = self._manifest(chosen)
        if media_type not in MANIFESTS:
            raise PullError(
                images.resolve_failed(self.ref, f"unsupported manifest media type {media_type}")
            )
        return digest, body

    def _manifest(self, reference: str) -> tuple[str, bytes, str]:
        url = f"{self.base}/v2/{self.ref.repository}/manifests/{reference}"
        connection, response = self._open(url, {"Accept": ACCEPT})
        try:
            body = response.read()
        finally:
            connection.close()
        if response.status == 404:
            raise PullError(images.not_found(self.ref))
        if response.status in (401, 403):
            raise PullError(images.unauthorized(self.ref))
        if response.status != 200:
            raise PullError(
                images.resolve_failed(
                    self.ref, f"unexpected status from GET request to {url}: {response.status}"
                )
            )
        digest = sha256_of(body)
        if reference.startswith("sha256:") and digest != reference:
            raise PullError(
                images.resolve_failed(self.ref, f"manifest digest {digest} is not {reference}")
            )
        try:
            media_type = str(json.loads(body).get("mediaType") or "")
        except (ValueError, AttributeError):
            raise PullError(images.resolve_failed(self.ref, "invalid manifest JSON")) from None
        media_type = media_type or (response.getheader("Content-Type") or "").split(";")[0]
        return digest, body, media_type

    # -- blobs ---------------------------------------------------------------------------------

    def blob(self, digest: str, target: Path) -> int:
        """Download blob ``digest`` to ``target`` (atomically) after checking its bytes hash
        to the digest; returns its size."""
        url = f"{self.base}/v2/{self.ref.repository}/blobs/{digest}"
        connection, response = self._open(url, {})
        partial = target.with_name(f"{target.name}.{os.getpid()}.{id(self)}.part")
        try:
            if response.status != 200:
                response.read()
                if response.status in (401, 403):
                    raise PullError(images.unauthorized(self.ref))
                raise PullError(
                    images.copy_failed(
                        self.ref,
                        f"httpReadSeeker: failed open: unexpected status code {url}: "
                        f"{response.status}",
                    )
                )
            hasher = hashlib.sha256()
            size = 0
            with open(partial, "wb") as out:
                while chunk := response.read(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise PullError(images.copy_failed(self.ref, f"read {url}: {error}")) from None
        finally:
            connection.close()
        actual = "sha256:" + hasher.hexdigest()
        if actual != digest:
            partial.unlink(missing_ok=True)
            raise PullError(
                images.copy_failed(
                    self.ref,
                    f'failed commit on ref "layer-{digest}": unexpected commit digest {actual}, '
                    f"expected {digest}: failed precondition",
                )
            )
        os.replace(partial, target)
        return size


def _platform_entry(index: dict[str, object]) -> str | None:
    for entry in index.get("manifests") or []:  # type: ignore[attr-defined]
        platform = entry.get("platform") or {}
        if (platform.get("os"), platform.get("architecture")) == PLATFORM:
            return str(entry["digest"])
    return None
