"""Keeping secrets out of what Ascend shows and records: one marker, one set of rules.

- :func:`mask` replaces a secret value with :data:`MASK`, a fixed marker that says nothing
  about the value (not even its length).
- :func:`looks_secret` tells whether a key names a secret (``account_key``, ``sas_token``,
  ``connection_string``, ``client_secret``, ``aws_secret_access_key``, ``Authorization``...).
- :func:`mask_mapping` masks the values of such keys in a mapping, at any depth, and the
  credentials of URLs found in the other values.
- :func:`redact_url` removes the credentials, query string and fragment of a URL.
- :func:`scrub` removes known secret values (:func:`secret_values`) from a message, such as
  a plugin's error that quotes its configuration.

Everything that shows configuration (``ascend config show``, configuration errors) or records
something that may carry a credential (a git remote in job metadata) goes through here. The
values themselves are never changed where they are used: the runner still gets its storage
options in full.

Standard library only, so that anything (the runner too) can use it at no cost.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MASK",
    "looks_secret",
    "mask",
    "mask_mapping",
    "mask_text",
    "redact_url",
    "scrub",
    "secret_values",
]

MASK = "********"

# Parts of a key (lowercase, without separators) that mark its value as a secret. Matching is
# on substrings so that ``accountkey``, ``AccountKey``, ``account-key`` and ``sasToken`` all
# count; a harmless key that happens to match (``keyfile``) is only masked, which costs little.
_SECRET_PARTS = (
    "key",  # account_key, api_key, aws_secret_access_key, s3fs's key
    "secret",  # client_secret, s3fs's secret
    "token",  # sas_token, access_token, session_token
    "passw",  # password, passwd
    "passphrase",
    "pwd",
    "sas",  # sas, sas_url
    "credential",  # credential, credentials
    "creds",
    "connectionstring",  # connection_string, ConnectionString
    "connstr",
    "signature",
    "auth",  # Authorization headers, auth
    "cookie",
    "private",
)
_SEPARATORS = re.compile(r"[^a-z0-9]")
# The scheme of an absolute URL (RFC 3986); without one there is nothing to redact
# (a local path, or git's scp-like ``git@host:org/repo.git``, whose user is not a secret).
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
# Schemes where a user name alone is a login name (``ssh://git@host/...``), not a token.
_LOGIN_SCHEMES = frozenset({"ssh", "git+ssh", "ssh+git", "sftp"})
# A URL in a message: up to a space or quote, less trailing punctuation of the sentence.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,;:!?)\]}]")


def mask(value: Any) -> Any:
    """:data:`MASK` for a secret value; ``None`` (not set) stays ``None``."""
    return None if value is None else MASK


def looks_secret(key: str) -> bool:
    """Whether ``key`` names a secret: a key, secret, token, password, SAS, credential or
    connection string, in any case and spelling (``account_key``, ``sasToken``)."""
    name = _SEPARATORS.sub("", str(key).lower())
    return any(part in name for part in _SECRET_PARTS)


def mask_mapping(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    """A copy of ``mapping`` with the values of secret-looking keys masked, at any depth.

    Nested mappings and lists are followed; URLs in the values that are kept lose their
    credentials and query strings (:func:`mask_text`). ``mapping`` is not changed.
    """
    return {
        key: mask(value) if looks_secret(str(key)) else _mask_nested(value)
        for key, value in mapping.items()
    }


def secret_values(mapping: Mapping[Any, Any]) -> list[str]:
    """The text of every value :func:`mask_mapping` masks (to scrub them from messages)."""
    found: list[str] = []

    def collect(value: Any, secret: bool) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                collect(item, secret or looks_secret(str(key)))
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item, secret)
        elif secret and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            found.append(str(value))

    collect(mapping, False)
    return found


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with each of ``secrets`` (and URL credentials) replaced by :data:`MASK`.

    A quoted secret (``'hunter2'``, as ``{value!r}`` writes it) is always replaced; a bare one
    only from 4 characters on, so that a short value does not garble every word containing it.
    """
    for secret in sorted(set(secrets), key=len, reverse=True):  # longest first
        if secret:
            text = text.replace(repr(secret), MASK)
            if len(secret) >= 4:
                text = text.replace(secret, MASK)
    return mask_text(text)


def _mask_nested(value: Any) -> Any:
    if isinstance(value, Mapping):
        return mask_mapping(value)
    if isinstance(value, (list, tuple)):
        return [_mask_nested(item) for item in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def mask_text(text: str) -> str:
    """``text`` with every URL in it shown without its credentials, query and fragment (each
    replaced by :data:`MASK`, so that a reader sees something was there)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0), mark=True), text)


def redact_url(url: str, *, mark: bool = False) -> str:
    """``url`` without its user information (``user:password@``), query string and fragment.

    These are where URLs carry credentials (``https://user:token@host/...``,
    ``?access_token=...``, a SAS ``?sig=...``). An ssh login name alone
    (``ssh://git@host/...``) is kept, as is anything that is not an absolute URL: a local path,
    or git's scp-like ``git@host:org/repo.git``. With ``mark``, each removed part is replaced by
    :data:`MASK` instead (for display: the reader sees that something was there).
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME.match(scheme):
        return url
    # The authority ends at the first "/". A password with an unescaped "?", "#" or "@" still
    # ends at the last "@" before that "/", so none of it is left in the host.
    slash = rest.find("/")
    authority, tail = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    userinfo, at, host = authority.rpartition("@")
    if at and not (scheme.lower() in _LOGIN_SCHEMES and ":" not in userinfo):
        userinfo = MASK if mark else ""
        at = "@" if mark else ""
    location = host + tail
    cut = min((i for i in (location.find("?"), location.find("#")) if i >= 0), default=-1)
    if cut >= 0:
        removed = location[cut:]
        location = location[:cut]
        if mark:
            query, hash_, _ = removed.partition("#")
            location += (f"?{MASK}" if query else "") + (f"#{MASK}" if hash_ else "")
    return f"{scheme}://{userinfo}{at}{location}"
