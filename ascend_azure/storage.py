"""Job storage in Azure Blob Storage: ``az://<container>`` through fsspec and adlfs.

Credentials, in order: ``azure.connection_string`` (development and Azurite), otherwise an
azure-identity credential for ``azure.storage_account`` (see :mod:`ascend_azure.credentials`).

adlfs closes its clients from ``weakref`` finalisers that run its event loop; at interpreter
exit that loop may already be gone, which printed errors (or, with an open file, hung the
exit). The storage closes what it opened itself, at exit, while the loop still runs: the noise
is removed where it starts rather than hidden by replacing ``sys.excepthook``.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from typing import TYPE_CHECKING, Any

from ascend.errors import ConfigError
from ascend.storage.fsspec_storage import FsspecStorage

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
        self._protocol = url.split("://", 1)[0]  # adlfs answers 'abfs' for az:// URLs
        _close_at_exit(self.get_filesystem())

    def ensure_container(self, name: str | None = None) -> None:
        """Create the blob container if needed (adlfs' ``makedirs`` does not create one)."""
        container = (name or self._root).strip("/").split("/")[0]
        fs = self.get_filesystem()
        with self._errors("", "create"):
            if fs.exists(container):
                return
            try:
                fs.mkdir(container)
            except FileExistsError:
                pass
            # adlfs reports some failures only as a warning; check that it is really there
            fs.invalidate_cache(container)
            if not fs.exists(container):
                raise OSError(f"container {container!r} was not created")

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
    container = config.get("azure.container") or "ascend-data"
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


# -- closing adlfs clients before the interpreter tears its event loop down ------------------

_filesystems: weakref.WeakSet[Any] = weakref.WeakSet()
_lock = threading.Lock()
_registered = False


def _close_at_exit(fs: Any) -> None:
    global _registered
    with _lock:
        _filesystems.add(fs)
        if not _registered:
            atexit.register(close_filesystems)
            _registered = True


def close_filesystems() -> None:
    """Close every adlfs client this plugin opened (idempotent; runs at exit)."""
    from fsspec.asyn import sync

    for fs in list(_filesystems):
        loop = getattr(fs, "loop", None)
        if loop is None or not loop.is_running():
            continue
        try:
            sync(loop, _close, fs, timeout=5)
        except Exception:
            pass
        _filesystems.discard(fs)


async def _close(fs: Any) -> None:
    client = getattr(fs, "service_client", None)
    if client is not None:
        await client.close()
    credential = getattr(fs, "credential", None)
    close = getattr(credential, "close", None)
    if close is not None:
        result = close()
        if hasattr(result, "__await__"):
            await result
