"""The generic fsspec storage passes the storage contract on file://, memory:// and s3://."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from ascend.storage.fsspec_storage import FsspecStorage
from ascend.storage.local_files import LocalFileStorage
from ascend.testing.storage_contract import StorageContract

from . import services


class TestFsspecLocalFileStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> FsspecStorage:
        return FsspecStorage(f"file://{tmp_path}/store")


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> FsspecStorage:
        return FsspecStorage(f"memory://contract-{uuid.uuid4().hex}")


class TestS3Storage(StorageContract):
    @pytest.fixture
    def storage(self) -> FsspecStorage:
        endpoint = services.require("moto")
        pytest.importorskip("s3fs")
        bucket = f"ascend-contract-{uuid.uuid4().hex[:12]}"
        storage = FsspecStorage(
            f"s3://{bucket}/root",
            endpoint_url=endpoint,
            key="testing",
            secret="testing",
        )
        storage.ensure_container()
        return storage


class TestLocalFileStorage(StorageContract):
    """The standard-library storage the local provider and file:// runners use."""

    @pytest.fixture
    def storage(self, tmp_path: Path) -> LocalFileStorage:
        return LocalFileStorage(f"file://{tmp_path}/plain")
