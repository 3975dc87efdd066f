"""Azure Blob storage through adlfs: the core's storage contract against Azurite, plus what is
Azure-specific (configuration, credentials, a clean interpreter exit)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from ascend.errors import ConfigError
from ascend.testing.storage_contract import StorageContract
from ascend_azure.storage import AzureBlobStorage, storage_from_config

from .. import services

REPO = Path(__file__).resolve().parents[2]


def azurite() -> str:
    return services.require("azurite")


def new_container() -> str:
    return f"contract-{uuid.uuid4().hex[:16]}"


class TestAzureBlobStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> AzureBlobStorage:
        storage = AzureBlobStorage(f"az://{new_container()}/root", connection_string=azurite())
        storage.ensure_container()
        return storage


def test_storage_uri_is_az_and_readable_by_plain_fsspec() -> None:
    # The runner in a pod opens these URIs with fsspec alone, the account coming from the env.
    import fsspec

    storage = AzureBlobStorage(f"az://{new_container()}", connection_string=azurite())
    storage.ensure_container()
    uri = storage.write("jobs/1/package.pkl", b"payload")
    assert uri.startswith("az://") and uri.endswith("/jobs/1/package.pkl")
    with fsspec.open(uri, "rb", connection_string=azurite()) as handle:
        assert handle.read() == b"payload"


@pytest.fixture
def azure_pm(ascend_pm, register_plugin):
    import ascend_azure.plugin

    register_plugin(ascend_azure.plugin, "azure")
    return ascend_pm


def test_config_builds_storage_from_container_and_connection_string(
    azure_pm, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ascend.config import AscendConfig

    container = new_container()
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "azure")
    monkeypatch.setenv("ASCEND_AZURE_CONTAINER", container)
    monkeypatch.setenv("ASCEND_AZURE_CONNECTION_STRING", azurite())
    config = AscendConfig.load(pm=azure_pm)
    storage = storage_from_config(config)
    assert storage.url == f"az://{container}"
    assert storage.account_name == "devstoreaccount1"
    storage.ensure_container()
    storage.write("x", b"1")
    assert storage.read("x") == b"1"


def test_account_without_credential_material_uses_the_identity_credential(
    azure_pm, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ascend.config import AscendConfig
    from ascend_azure.credentials import override_credential

    class AsyncCredential:  # what adlfs accepts: an async TokenCredential
        async def get_token(self, *scopes, **kwargs):
            raise AssertionError("no token is needed to build the filesystem")

        async def close(self):
            pass

    sentinel_async = AsyncCredential()
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "azure")
    monkeypatch.setenv("ASCEND_AZURE_STORAGE_ACCOUNT", "ascenddata")
    config = AscendConfig.load(pm=azure_pm)
    with override_credential(object(), sentinel_async):
        storage = storage_from_config(config)
    fs = storage.get_filesystem()
    assert fs.account_name == "ascenddata"
    assert fs.credential is sentinel_async
    assert fs.connection_string is None


def test_no_account_and_no_connection_string_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        AzureBlobStorage("az://ascend-data")
    assert "azure.storage_account" in str(caught.value)


def test_a_non_azure_url_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        AzureBlobStorage("s3://bucket/x", connection_string="AccountName=a")
    assert "az://" in str(caught.value)


def test_interpreter_exits_promptly_with_a_write_left_open(tmp_path: Path) -> None:
    """An abandoned write neither hangs the exit (adlfs' finaliser waits on a stopped event
    loop), nor publishes a truncated object, nor prints shutdown noise."""
    container = new_container()
    script = textwrap.dedent(
        f"""
        import sys
        from ascend_azure.storage import AzureBlobStorage
        storage = AzureBlobStorage("az://{container}", connection_string=sys.argv[1])
        storage.ensure_container()
        storage.write("done", b"complete")
        left_open = storage.open("partial", "wb")
        left_open.write(b"half of it")
        reading = storage.open("done", "rb")
        reading.read(3)
        print("exiting", flush=True)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, azurite()],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "exiting"
    assert result.stderr == ""
    storage = AzureBlobStorage(f"az://{container}", connection_string=azurite())
    assert storage.list() == ["done"]


def test_blocks_are_small_enough_to_bound_the_callers_memory() -> None:
    # adlfs' default 50 MiB blocks cost the caller 0.8x the payload on upload (see
    # benchmarks/azure_call.py); the storage asks for 8 MiB unless storage_options say otherwise.
    storage = AzureBlobStorage(f"az://{new_container()}", connection_string=azurite())
    storage.ensure_container()
    writer = storage.open("big", "wb")
    try:
        assert writer._raw.blocksize == 8 * 2**20
    finally:
        writer.abort()
    custom = AzureBlobStorage(
        f"az://{new_container()}", connection_string=azurite(), blocksize=4 * 2**20
    )
    custom.ensure_container()
    custom.write("small", b"x")
    with custom.open("small", "rb") as handle:
        assert handle.blocksize == 4 * 2**20


def test_a_refused_key_is_a_storage_error_not_a_missing_object() -> None:
    from ascend.errors import StorageError

    good = AzureBlobStorage(f"az://{new_container()}", connection_string=azurite())
    good.ensure_container()
    good.write("there", b"x")
    wrong_key = azurite().replace("AccountKey=", "AccountKey=AAAA")
    bad = AzureBlobStorage(good.url, connection_string=wrong_key)
    for attempt in (lambda: bad.exists("there"), lambda: bad.read("there"), bad.list):
        with pytest.raises(StorageError) as caught:
            attempt()
        assert good.url in str(caught.value)
