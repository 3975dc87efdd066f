"""``StorageContract``: the behaviour every :class:`~ascend.storage.base.CloudStorage` must have.

A storage plugin proves itself by subclassing it with a ``storage`` fixture that returns a fresh,
empty storage (a unique bucket, container or directory per test)::

    from ascend.testing.storage_contract import StorageContract

    class TestAcmeStorage(StorageContract):
        @pytest.fixture
        def storage(self, acme_bucket):
            return AcmeStorage(acme_bucket)

Every test here then runs against that backend.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from typing import Any

import pytest

from ascend.errors import (
    InvalidStoragePathError,
    StorageExistsError,
    StorageNotFoundError,
)
from ascend.storage.base import PACKAGE_FILE, RESULT_FILE, CloudStorage

LARGE_SIZE = 12 * 1024 * 1024  # over typical multipart thresholds (5 MiB on S3)


class _Boom(Exception):
    pass


class StorageContract:
    """Subclass and provide a ``storage`` fixture; every method is a test."""

    @pytest.fixture
    def storage(self) -> CloudStorage:  # pragma: no cover - subclasses override
        raise NotImplementedError("provide a 'storage' fixture returning an empty storage")

    # -- basic objects -------------------------------------------------------------------------

    def test_write_then_read_returns_same_bytes(self, storage: CloudStorage) -> None:
        uri = storage.write("a/b/data.bin", b"\x00payload\xff")
        assert storage.read("a/b/data.bin") == b"\x00payload\xff"
        assert uri == storage.storage_uri("a/b/data.bin")

    def test_empty_object_round_trips(self, storage: CloudStorage) -> None:
        storage.write("empty", b"")
        assert storage.exists("empty")
        assert storage.read("empty") == b""

    def test_exists_is_false_until_written(self, storage: CloudStorage) -> None:
        assert not storage.exists("later.txt")
        storage.write("later.txt", b"x")
        assert storage.exists("later.txt")

    def test_overwrite_replaces_content(self, storage: CloudStorage) -> None:
        storage.write("k", b"first version, longer")
        storage.write("k", b"second")
        assert storage.read("k") == b"second"

    def test_overwrite_false_refuses_and_keeps_original(self, storage: CloudStorage) -> None:
        storage.write("keep", b"original")
        with pytest.raises(StorageExistsError) as caught:
            storage.write("keep", b"new", overwrite=False)
        assert storage.storage_uri("keep") in str(caught.value)
        assert storage.read("keep") == b"original"

    def test_read_missing_raises_not_found_naming_uri(self, storage: CloudStorage) -> None:
        with pytest.raises(StorageNotFoundError) as caught:
            storage.read("no/such/object")
        assert storage.storage_uri("no/such/object") in str(caught.value)
        assert isinstance(caught.value, FileNotFoundError)

    def test_open_missing_for_reading_raises_not_found(self, storage: CloudStorage) -> None:
        with pytest.raises(StorageNotFoundError):
            storage.open("missing.bin", "rb")

    def test_write_accepts_a_stream(self, storage: CloudStorage) -> None:
        storage.write("streamed", io.BytesIO(b"from a stream" * 1000))
        assert storage.read("streamed") == b"from a stream" * 1000

    # -- paths ---------------------------------------------------------------------------------

    @pytest.mark.parametrize("bad", ["", "/", "../escape", "a/../../b", "a//b", "./a", "a\\b"])
    def test_paths_that_escape_or_are_malformed_are_refused(
        self, storage: CloudStorage, bad: str
    ) -> None:
        with pytest.raises(InvalidStoragePathError):
            storage.write(bad, b"x")

    def test_storage_uri_is_absolute_with_scheme(self, storage: CloudStorage) -> None:
        uri = storage.storage_uri("jobs/1/result.pkl")
        assert "://" in uri
        assert uri.endswith("/jobs/1/result.pkl")
        assert storage.storage_uri().rstrip("/") in uri

    def test_leading_slash_is_relative_to_root(self, storage: CloudStorage) -> None:
        storage.write("/rooted.txt", b"r")
        assert storage.read("rooted.txt") == b"r"

    # -- streaming and atomicity ---------------------------------------------------------------

    def test_large_object_streams_in_chunks(self, storage: CloudStorage) -> None:
        chunk = os.urandom(1024 * 1024)
        digest = hashlib.sha256()
        with storage.open("big.bin", "wb") as target:
            for index in range(LARGE_SIZE // len(chunk)):
                block = bytes([index % 256]) + chunk[1:]
                digest.update(block)
                target.write(block)
        read_digest = hashlib.sha256()
        total = 0
        with storage.open("big.bin", "rb") as source:
            while block := source.read(1024 * 1024):
                read_digest.update(block)
                total += len(block)
        assert total == LARGE_SIZE
        assert read_digest.hexdigest() == digest.hexdigest()

    def test_failed_streaming_write_leaves_nothing(self, storage: CloudStorage) -> None:
        with pytest.raises(_Boom), storage.open("partial.bin", "wb") as target:
            target.write(b"x" * (LARGE_SIZE // 2))
            raise _Boom()
        assert not storage.exists("partial.bin")
        assert "partial.bin" not in storage.list()
        assert storage.list() == []

    def test_failed_write_keeps_previous_version(self, storage: CloudStorage) -> None:
        storage.write("stable", b"v1")
        with pytest.raises(_Boom), storage.open("stable", "wb") as target:
            target.write(b"v2-partial")
            raise _Boom()
        assert storage.read("stable") == b"v1"

    def test_failed_stream_source_leaves_nothing(self, storage: CloudStorage) -> None:
        class Broken(io.RawIOBase):
            def __init__(self) -> None:
                self.calls = 0

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: Any) -> int:
                self.calls += 1
                if self.calls > 2:
                    raise _Boom("source failed")
                buffer[:4] = b"data"
                return 4

        with pytest.raises(_Boom):
            storage.write("from-broken-source", io.BufferedReader(Broken()))
        assert not storage.exists("from-broken-source")

    def test_concurrent_writers_to_distinct_paths(self, storage: CloudStorage) -> None:
        errors: list[BaseException] = []

        def work(index: int) -> None:
            try:
                storage.write(f"parallel/{index}", str(index).encode() * 100)
            except BaseException as error:  # collected and asserted below
                errors.append(error)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        for index in range(8):
            assert storage.read(f"parallel/{index}") == str(index).encode() * 100

    # -- listing and deleting ------------------------------------------------------------------

    def test_list_is_recursive_sorted_and_relative(self, storage: CloudStorage) -> None:
        for name in ("jobs/2/b", "jobs/1/a", "jobs/1/sub/c", "other/x"):
            storage.write(name, b"1")
        assert storage.list("jobs") == ["jobs/1/a", "jobs/1/sub/c", "jobs/2/b"]
        assert storage.list("jobs/1/") == ["jobs/1/a", "jobs/1/sub/c"]
        assert storage.list() == ["jobs/1/a", "jobs/1/sub/c", "jobs/2/b", "other/x"]

    def test_list_of_missing_prefix_is_empty(self, storage: CloudStorage) -> None:
        assert storage.list("nothing/here") == []
        assert storage.children("nothing/here") == []

    def test_children_are_one_level_sorted_names(self, storage: CloudStorage) -> None:
        for name in ("jobs/2/b", "jobs/1/a", "jobs/1/sub/c", "other/x"):
            storage.write(name, b"1")
        assert storage.children("jobs") == ["1", "2"]
        assert storage.children("jobs/1/") == ["a", "sub"]

    def test_delete_object(self, storage: CloudStorage) -> None:
        storage.write("gone", b"1")
        storage.write("kept", b"2")
        storage.delete("gone")
        assert not storage.exists("gone")
        assert storage.exists("kept")

    def test_delete_missing_is_not_an_error(self, storage: CloudStorage) -> None:
        storage.delete("never-existed")

    def test_recursive_delete_removes_prefix_only(self, storage: CloudStorage) -> None:
        storage.write("job/1/a", b"1")
        storage.write("job/1/b/c", b"1")
        storage.write("job/10/a", b"1")
        storage.delete("job/1", recursive=True)
        assert storage.list("job") == ["job/10/a"]

    # -- containers and packages ---------------------------------------------------------------

    def test_ensure_container_is_idempotent(self, storage: CloudStorage) -> None:
        storage.ensure_container()
        storage.ensure_container()
        storage.write("after-ensure", b"ok")
        assert storage.read("after-ensure") == b"ok"

    def test_package_and_result_live_under_the_job_prefix(self, storage: CloudStorage) -> None:
        uri = storage.upload_package("users/u/jobs/j1", b"package-bytes")
        assert uri == storage.storage_uri(f"users/u/jobs/j1/{PACKAGE_FILE}")
        assert storage.read(f"users/u/jobs/j1/{PACKAGE_FILE}") == b"package-bytes"
        storage.write(f"users/u/jobs/j1/{RESULT_FILE}", b"result-bytes")
        assert storage.download_result("users/u/jobs/j1") == b"result-bytes"
        with storage.open_result("users/u/jobs/j1") as stream:
            assert stream.read() == b"result-bytes"

    def test_missing_result_is_not_found(self, storage: CloudStorage) -> None:
        with pytest.raises(StorageNotFoundError):
            storage.download_result("users/u/jobs/none")

    def test_filesystem_sees_written_objects(self, storage: CloudStorage) -> None:
        storage.write("via-fs", b"visible")
        fs = storage.get_filesystem()
        with fs.open(storage.storage_uri("via-fs"), "rb") as handle:
            assert handle.read() == b"visible"
