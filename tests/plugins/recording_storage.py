"""A storage plugin layered over the local provider: it records every path it writes.

Active only with ``cloud_provider: local`` and ``ASCEND_TEST_RECORDING_DIR`` set; the jobs then
live under that directory (not under ``local.storage_dir``), and ``writes.log`` there lists
each path written through this storage, one per line.
"""

from __future__ import annotations

import os
from typing import IO

from ascend import hookimpl
from ascend.storage.fsspec_storage import FsspecStorage

ENV_VAR = "ASCEND_TEST_RECORDING_DIR"
LOG_NAME = "writes.log"


class RecordingStorage(FsspecStorage):
    """File storage that appends each path opened for writing to ``writes.log``."""

    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        super().__init__(f"file://{self.directory}")

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        if mode == "wb":
            with open(os.path.join(self.directory, LOG_NAME), "a", encoding="utf-8") as log:
                log.write(path + "\n")
        return super().open(path, mode)


@hookimpl(tryfirst=True)
def ascend_storage(config):
    directory = os.environ.get(ENV_VAR)
    if config.cloud_provider != "local" or not directory:
        return None
    return RecordingStorage(directory)
