"""Job storage in Azure Blob Storage: ``az://<container>`` through fsspec and adlfs.

Credentials, in order: ``azure.connection_string`` (development and Azurite), otherwise an
azure-identity credential for ``azure.storage_account`` (see :mod:`ascend_azure.credentials`).

An adlfs file still open when the interpreter exits is finalised after fsspec's event loop has
stopped, which hung the exit (or printed errors, and would have committed a truncated blob). The
core's storage aborts every write still open at exit, while the loop still runs, so the problem
is removed where it starts rather than hidden by replacing ``sys.excepthook``; adlfs' own
finalisers then close its clients normally.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ascend.errors import ConfigError
from ascend.storage.fsspec_storage import FsspecStorage
from ascend_azure.settings import DEFAULT_CONTAINER

if TYPE_CHECKING:
    from ascend.config import AscendConfig

ACCOUNT_FIX = (
    "set azure.storage_account (see 'ascend azure init'), or for Azurite and "
    "development ASCEND_AZURE_CONNECTION_STRING"
)


class AzureBlobStorage(FsspecStorage):
    """Storage rooted at ``az://<container>[/<prefix>]`` in one storage account.

    :param url: ``az://container[/prefix]``.
    :param account_name: the storage account (not needed with a connection string).
    :param credential: an async azure-identity credential, used when there is no
        connection string.
    :param connection_string: for development and Azurite.
    """

    def __init__(
        self,
        url: str,
        *,
        account_name: str | None = None,
        credential: Any = None,
        connection_string: str | None = None,
        **storage_options: Any,
    ) -> None:
        if not url.startswith(("az://", "abfs://")):
            raise ConfigError(
                f"storage_url {url!r} is not an Azure Blob URL",
                fix="write az://<container>[/prefix], or leave storage_url unset to use "
                "azure.container",
            )
        options = dict(storage_options)
        if connection_string:
            options["connection_string"] = connection_string
        else:
            if not account_name:
                raise ConfigError("no storage account is configured", fix=ACCOUNT_FIX)
            options["account_name"] = account_name
            options["credential"] = credential
            options["anon"] = False
        self.account_name = account_name or _account_from(connection_string or "")
        super().__init__(url, **options)
        from azure.core.exceptions import AzureError

        # adlfs lets the SDK's errors through (a refused key, an expired token): they become
        # StorageError naming the object instead of escaping as azure.core exceptions.
        self.failure_types = (*FsspecStorage.failure_types, AzureError)

    def __repr__(self) -> str:
        return f"AzureBlobStorage({self.url!r}, account={self.account_name!r})"

    @property
    def blob_endpoint(self) -> str:
        """The account's blob service URL (from the connection string, or the public cloud's)."""
        fs = self.get_filesystem()
        parts = _connection_string_parts(getattr(fs, "connection_string", None) or "")
        if "blobendpoint" in parts:
            return parts["blobendpoint"].rstrip("/")
        host = getattr(fs, "account_host", None) or f"{self.account_name}.blob.core.windows.net"
        return f"https://{host}"


def _connection_string_parts(connection_string: str) -> dict[str, str]:
    parts = {}
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip():
            parts[key.strip().lower()] = value.strip()
    return parts


def _account_from(connection_string: str) -> str | None:
    return _connection_string_parts(connection_string).get("accountname")


def storage_from_config(config: AscendConfig, credential: Any = None) -> AzureBlobStorage:
    """The job store ``config`` describes (``storage_url`` wins over ``azure.container``)."""
    container = config.get("azure.container") or DEFAULT_CONTAINER
    url = config.storage_url or f"az://{container}"
    connection_string = config.get("azure.connection_string")
    account = config.get("azure.storage_account")
    if not connection_string and credential is None and account:
        from ascend_azure.credentials import get_credential

        credential = get_credential(config, asynchronous=True)
    return AzureBlobStorage(
        url,
        account_name=account,
        credential=credential,
        connection_string=connection_string,
        **config.get("storage_options", {}),
    )
