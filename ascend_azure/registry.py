"""Azure Container Registry: the core OCI client plus ACR's Azure AD token exchange.

Credentials come, in order, from explicit ``credentials``, the docker config (including
credential helpers), then an Azure AD token exchanged at ``/oauth2/exchange`` for an ACR refresh
token, as ``az acr login`` does. The TokenCredential is passed in, so nothing from ``azure`` is
imported when this module loads.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from ascend.errors import RegistryError
from ascend.registry import OCIRegistry, is_loopback

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

ACR_DOMAIN = "azurecr.io"
# ACR's username for refresh tokens obtained through /oauth2/exchange.
ACR_REFRESH_USER = "00000000-0000-0000-0000-000000000000"

_ACR_NAME = re.compile(r"^[a-z0-9]{5,50}$")
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_HOST = re.compile(rf"^(?:\[[0-9a-f:.]+\]|{_LABEL}(?:\.{_LABEL})*)(?::\d{{1,5}})?$")


def login_server(name: str) -> str:
    """``myacr`` -> ``myacr.azurecr.io``; a login server or ``host:port`` is kept (lowercased).

    ``azure.registry`` accepts both spellings; image references need the login server.
    """
    value = name.strip().lower() if isinstance(name, str) else ""
    if "." in value or ":" in value:
        if _HOST.fullmatch(value):
            return value
    elif _ACR_NAME.fullmatch(value):
        return f"{value}.{ACR_DOMAIN}"
    raise RegistryError(
        f"{name!r} is not an Azure Container Registry name or login server",
        fix="write the registry's name (5-50 letters and digits, e.g. myacr) or its login "
        "server (myacr.azurecr.io), without https://",
    )


# Login-server suffixes of Azure Container Registry in the public and sovereign clouds.
ACR_SUFFIXES = (".azurecr.io", ".azurecr.cn", ".azurecr.us")
# Azure AD audience of ACR itself: a token for it is useless against Resource Manager, unlike
# the ARM-audience token 'az acr login' sends, so a registry that leaks it leaks less.
ACR_SCOPE = "https://containerregistry.azure.net/.default"


def is_acr(url: str, configured: str | None = None) -> bool:
    """Whether ``url`` is an Azure registry that may receive Azure AD tokens: an ACR login
    server (``*.azurecr.io`` and the sovereign clouds'), or the configured registry when it is
    on this machine (a test registry).

    Every other registry (an in-house one layered on top by another plugin, a typo in
    ``azure.registry``) is left to the core's client and never sees an Azure AD token.
    """
    host = url.strip().rstrip("/").rpartition("://")[2].lower()
    if host.split(":")[0].endswith(ACR_SUFFIXES):
        return True
    if not configured or not is_loopback(host):
        return False
    try:
        return host == login_server(configured)
    except RegistryError:
        return False


class AzureContainerRegistry(OCIRegistry):
    """An ACR (or any OCI registry) whose last-resort credentials come from Azure AD.

    :param url: ACR name, login server or ``host:port``, optionally with a scheme.
    :param credential: an ``azure.core`` TokenCredential; ``None`` disables the AAD exchange.
    :param credentials: explicit ``(username, password)``, tried before anything else.
    :param tenant_id: Entra tenant of the token (sent to ``get_token`` and the exchange).
    :param scope: AAD scope to ask for: ACR's own audience by default (a registry never holds
        a token that works against Resource Manager); ``ARM_SCOPE`` is what ``az acr login``
        sends, for registries that still expect it.
    """

    def __init__(
        self,
        url: str,
        credential: TokenCredential | None = None,
        timeout: float = 10.0,
        *,
        credentials: tuple[str, str] | None = None,
        tenant_id: str | None = None,
        scope: str = ACR_SCOPE,
    ) -> None:
        scheme, separator, host = url.strip().rstrip("/").rpartition("://")
        super().__init__(f"{scheme}{separator}{login_server(host)}", credentials, timeout)
        self._aad = credential
        self._tenant_id = tenant_id
        self._scope = scope
        self._exchanged = False

    def _find_credentials(self) -> tuple[str, str] | None:
        found = super()._find_credentials()
        if found is None and self._aad is not None:
            found = self._credentials = (ACR_REFRESH_USER, self._exchange(self._aad))
            self._exchanged = True
        return found

    def _refused_fix(self) -> str:
        return self._identity_fix() if self._exchanged else super()._refused_fix()

    def _exchange(self, credential: TokenCredential) -> str:
        """An ACR refresh token for an AAD access token (POST /oauth2/exchange)."""
        from azure.core.exceptions import ClientAuthenticationError

        try:
            if self._tenant_id:
                aad_token = credential.get_token(self._scope, tenant_id=self._tenant_id).token
            else:
                aad_token = credential.get_token(self._scope).token
        except ClientAuthenticationError as error:
            raise RegistryError(
                f"could not get an Azure AD token for registry {self._host}: {error.message}",
                fix="sign in with 'az login', or set azure.client_id to a managed identity",
            ) from error
        form = {"grant_type": "access_token", "service": self._host, "access_token": aad_token}
        if self._tenant_id:
            form["tenant"] = self._tenant_id
        url = f"{self._base}/oauth2/exchange"
        request = urllib.request.Request(
            url, data=urllib.parse.urlencode(form).encode(), method="POST"
        )
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                body: Any = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise RegistryError(
                f"registry {self._host} refused the Azure AD token (HTTP {error.code} from {url})",
                fix=self._identity_fix(),
            ) from error
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise RegistryError(
                f"registry {self._host}: the token exchange at {url} failed: {reason}",
                fix="check azure.registry and your network, then retry",
            ) from error
        token = body.get("refresh_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"registry {self._host} returned no refresh token from {url}")
        return token

    def _identity_fix(self) -> str:
        name = self._host.split(".", 1)[0]
        return (
            "sign in with 'az login' (or check azure.client_id), and give your identity AcrPull "
            "on the registry: az role assignment create --role AcrPull --assignee <principal id> "
            f"--scope $(az acr show --name {name} --query id --output tsv)"
        )
