"""Container registries: the interface, and the generic OCI distribution API client.

``image_exists`` asks the registry directly (``HEAD /v2/<repository>/manifests/<tag>``); no
Docker daemon is involved. Credentials come from the docker config (``docker.auth``, including
credential helpers), imported only when a registry asks for them.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from typing import Any

from ascend.errors import RegistryError

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


def _check_name(repository: str, tag: str) -> None:
    if not isinstance(repository, str) or not _REPOSITORY.fullmatch(repository):
        raise RegistryError(
            f"repository name {repository!r} is invalid",
            fix="use lowercase letters, digits and separators ('.', '_', '-', '/')",
        )
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

    def registry_url(self) -> str:
        return self._host

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._base!r})"

    def image_exists(self, repository: str, tag: str) -> bool:
        _check_name(repository, tag)
        path = f"/v2/{repository}/manifests/{urllib.parse.quote(tag)}"
        status = self._head(path, repository)
        if status == 200:
            return True
        if status == 404:
            return False
        raise RegistryError(
            f"registry {self._host} answered HTTP {status} for {repository}:{tag}",
            fix="check the registry address and that your credentials may pull from it",
        )

    # -- HTTP with Basic and Bearer challenges --------------------------------------------------

    def _head(self, path: str, repository: str) -> int:
        status, challenge = self._request("HEAD", path)
        if status != 401:
            return status
        if not challenge:
            raise RegistryError(f"registry {self._host} refused access without a challenge")
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            status, _ = self._request("HEAD", path, auth=self._basic_header())
        elif scheme == "bearer":
            self._token = self._bearer_token(challenge, repository)
            status, _ = self._request("HEAD", path, auth=f"Bearer {self._token}")
        else:
            raise RegistryError(
                f"registry {self._host} asks for {scheme!r} authentication, which Ascend does "
                "not speak (it speaks Basic and Bearer tokens)",
                fix="install a plugin that provides ascend_registry for this registry",
            )
        if status == 401:
            raise RegistryError(
                f"registry {self._host} refused the credentials", fix=self._refused_fix()
            )
        return status

    def _refused_fix(self) -> str:
        """What to do when the registry refuses the credentials (subclasses know better)."""
        return f"log in again (docker login {self._host}) or fix the stored credentials"

    def _request(self, method: str, path: str, auth: str | None = None) -> tuple[int, str | None]:
        request = urllib.request.Request(self._base + path, method=method)
        request.add_header("Accept", MANIFEST_ACCEPT)
        if auth is None and self._token:
            auth = f"Bearer {self._token}"
        if auth:
            request.add_header("Authorization", auth)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return int(response.status), None
        except urllib.error.HTTPError as error:
            return int(error.code), error.headers.get("WWW-Authenticate")
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RegistryError(
                f"registry {self._base} is unreachable: {reason}",
                fix="check registry_url and your network; for a local registry without TLS "
                "write it as http://host:port",
            ) from error

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

    def _bearer_token(self, challenge: str, repository: str) -> str:
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", None)
        if not realm:
            raise RegistryError(f"registry {self._host} sent a Bearer challenge without a realm")
        params.setdefault("scope", f"repository:{repository}:pull")
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
