"""Azure Resource Manager clients, built one way for every command and check.

The endpoint comes from ``azure.arm_endpoint`` (sovereign clouds, tests), the token audience is
the endpoint itself, and every client gets timeouts so that an unreachable ARM fails in seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ascend_azure.settings import DEFAULT_ARM_ENDPOINT

T = TypeVar("T")

CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 10, "read_timeout": 60, "retry_total": 3}
"""azure-core options: fail in seconds when ARM is unreachable instead of hanging."""


def arm_scope(endpoint: str) -> str:
    """ARM's token audience: the endpoint itself in every cloud (management.azure.com,
    management.chinacloudapi.cn, management.usgovcloudapi.net)."""
    return endpoint.rstrip("/") + "/.default"


@dataclass(frozen=True)
class Arm:
    """Where and as whom to call Azure Resource Manager; builds the management clients.

    ``connection_verify``: a CA bundle path (or ``False``) for the TLS check; ``None`` keeps
    azure-core's default, which honours ``REQUESTS_CA_BUNDLE``.
    """

    subscription_id: str
    credential: Any
    endpoint: str = DEFAULT_ARM_ENDPOINT
    connection_verify: str | bool | None = None

    @property
    def scope(self) -> str:
        return arm_scope(self.endpoint)

    def client(self, factory: Callable[..., T], **options: Any) -> T:
        """``factory`` (a management client class) for this subscription and endpoint;
        ``options`` override :data:`CLIENT_OPTIONS`."""
        settings = {**CLIENT_OPTIONS, **options}
        if self.connection_verify is not None:
            settings["connection_verify"] = self.connection_verify
        return factory(
            self.credential,
            self.subscription_id,
            base_url=self.endpoint.rstrip("/"),
            credential_scopes=[self.scope],
            **settings,
        )

    def group_id(self, resource_group: str) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{resource_group}"
