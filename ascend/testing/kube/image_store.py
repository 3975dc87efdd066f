"""The node's image store: blobs kept by digest, and one unpacked root per manifest.

A directory the emulator owns for its lifetime. A second pull of an image (or of another
image sharing layers) downloads only the blobs the store lacks, and an image whose manifest
was unpacked before is not unpacked again. Concurrent pulls of one blob or one root wait for
each other instead of doing the work twice.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ascend.testing.kube import images, layers
from ascend.testing.kube.images import ImageRef, PullError
from ascend.testing.kube.pull import Registry

_HEX = "0123456789abcdef"


@dataclass(frozen=True)
class PulledImage:
    """An image on the node: where its files are and what its config says."""

    ref: ImageRef
    digest: str  # of the manifest
    root: Path
    config: dict[str, Any]  # the config's "config" object: Env, Entrypoint, Cmd, WorkingDir
    size: int  # bytes of manifest, config and layers, as the registry served them

    @property
    def image_id(self) -> str:
        return f"{self.ref.host}/{self.ref.repository}@{self.digest}"

    @property
    def env(self) -> dict[str, str]:
        result: dict[str, str] = {}
        for item in self.config.get("Env") or []:
            name, _, value = str(item).partition("=")
            result[name] = value
        return result


@dataclass
class ImageStore:
    directory: Path
    blob_downloads: int = 0  # blobs fetched over the wire, for tests of the cache
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        (self.directory / "blobs").mkdir(parents=True, exist_ok=True)
        (self.directory / "roots").mkdir(exist_ok=True)

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def pull(self, image: str, credentials: tuple[str, str] | None) -> PulledImage:
        """Resolve ``image`` on its registry and make sure its blobs and root are here."""
        ref = ImageRef.parse(image)
        if not ref.host or not ref.loopback:
            raise PullError(images.unreachable(ref))
        registry = Registry(ref, credentials)
        digest, body = registry.resolve()
        try:
            manifest = json.loads(body)
            config_entry = manifest["config"]
            entries = list(manifest.get("layers") or [])
        except (ValueError, KeyError, TypeError):
            raise PullError(images.resolve_failed(ref, "invalid manifest")) from None
        config_path = self._blob(registry, str(config_entry["digest"]))
        paths = [self._blob(registry, str(entry["digest"])) for entry in entries]
        try:
            config = json.loads(config_path.read_bytes()).get("config") or {}
        except (ValueError, AttributeError):
            raise PullError(images.copy_failed(ref, "invalid image config")) from None
        root = self._root(ref, digest, entries, paths)
        size = len(body) + sum(p.stat().st_size for p in [config_path, *paths])
        return PulledImage(ref, digest, root, config, size)

    def _blob(self, registry: Registry, digest: str) -> Path:
        algorithm, _, hex_digest = digest.partition(":")
        if algorithm != "sha256" or len(hex_digest) != 64 or set(hex_digest) - set(_HEX):
            raise PullError(images.copy_failed(registry.ref, f"unsupported digest {digest!r}"))
        path = self.directory / "blobs" / hex_digest
        with self._lock(digest):
            if not path.exists():
                registry.blob(digest, path)
                with self._guard:
                    self.blob_downloads += 1
        return path

    def _root(
        self, ref: ImageRef, digest: str, entries: list[dict[str, Any]], paths: list[Path]
    ) -> Path:
        root = self.directory / "roots" / digest.partition(":")[2]
        with self._lock(f"root:{digest}"):
            if root.exists():
                return root
            scratch = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root.parent))
            try:
                for entry, path in zip(entries, paths, strict=True):
                    layers.unpack(path, str(entry.get("mediaType", "")), scratch)
            except layers.LayerError as error:
                shutil.rmtree(scratch, ignore_errors=True)
                raise PullError(
                    images.copy_failed(ref, f"failed to unpack layer: {error}")
                ) from None
            scratch.chmod(0o755)
            scratch.rename(root)
        return root
