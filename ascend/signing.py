"""Signing keys: who may write a job's package and result.

Storage is shared: anyone who can write it could swap a package (code that then runs in the
victim's pod) or a result (a pickle that then runs on the victim's laptop). So every envelope
(:mod:`ascend.wire`) carries an HMAC-SHA256 over its header and payload, made with the user's
key, and its header names the key (``key_id``), the job and the kind. Only the user's client
and the user's jobs have the key:

- on Kubernetes, a Secret ``ascend-signing-key`` in the user's namespace (made by
  ``ascend admin add-user``), which the user's Role may ``get`` by name and which pods get only
  through ``secretKeyRef``;
- on the local provider, a file in the user's config directory, mode 0600.

A key is written ``<key id>:<urlsafe base64 of 32 random bytes>``. Rotation keeps earlier keys
as ``previous`` so that results signed with them still verify until they are pruned.
Standard library only: the runner uses this module.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass, field

KEY_ENV = "ASCEND_SIGNING_KEY"  # the runner's current key
PREVIOUS_ENV = "ASCEND_SIGNING_KEY_PREVIOUS"  # earlier keys, comma-separated
ALLOW_UNSIGNED_ENV = "ASCEND_ALLOW_UNSIGNED"  # security.allow_unsigned, for the runner
SECRET_NAME = "ascend-signing-key"  # the Kubernetes Secret
PREVIOUS_KEPT = 4  # earlier keys a rotation keeps


class KeyFormatError(ValueError):
    """A key that is not ``<id>:<base64>`` of at least 16 bytes."""


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    secret: bytes = field(repr=False)

    def encode(self) -> str:
        return f"{self.key_id}:{base64.urlsafe_b64encode(self.secret).decode()}"

    @classmethod
    def decode(cls, text: str) -> SigningKey:
        key_id, _, encoded = text.strip().partition(":")
        try:
            secret = base64.urlsafe_b64decode(encoded.encode())
        except (binascii.Error, ValueError):
            secret = b""
        if not key_id or len(secret) < 16:
            raise KeyFormatError("a signing key is written '<key id>:<base64 of 32 bytes>'")
        return cls(key_id, secret)

    @classmethod
    def new(cls) -> SigningKey:
        return cls(secrets.token_hex(4), secrets.token_bytes(32))


@dataclass(frozen=True)
class KeyRing:
    """The key that signs now, and earlier ones that still verify."""

    current: SigningKey
    previous: tuple[SigningKey, ...] = ()

    def find(self, key_id: str) -> SigningKey | None:
        for key in (self.current, *self.previous):
            if key.key_id == key_id:
                return key
        return None

    def rotated(self) -> KeyRing:
        """A new current key; this one becomes the newest previous one."""
        return KeyRing(SigningKey.new(), (self.current, *self.previous)[:PREVIOUS_KEPT])

    def encode_previous(self) -> str:
        return ",".join(key.encode() for key in self.previous)

    @classmethod
    def decode(cls, current: str, previous: str = "") -> KeyRing:
        return cls(
            SigningKey.decode(current),
            tuple(SigningKey.decode(text) for text in previous.split(",") if text.strip()),
        )

    @classmethod
    def new(cls) -> KeyRing:
        return cls(SigningKey.new())


def from_env(env: dict[str, str] | os._Environ[str]) -> KeyRing | None:
    """The runner's keys, from its environment (``None`` when it was given none)."""
    current = env.get(KEY_ENV, "").strip()
    if not current:
        return None
    return KeyRing.decode(current, env.get(PREVIOUS_ENV, ""))


def env_for(keys: KeyRing) -> dict[str, str]:
    """The runner's environment variables for ``keys`` (a process the client starts itself)."""
    env = {KEY_ENV: keys.current.encode()}
    if keys.previous:
        env[PREVIOUS_ENV] = keys.encode_previous()
    return env
