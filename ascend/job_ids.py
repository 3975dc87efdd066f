"""Job ids: unique, sortable by creation time, Kubernetes-safe, and parseable without guessing.

An id looks like ``20261128-142053123-k3x9q--alice--default``::

    YYYYMMDD-HHMMSSmmm-NNNNN--USER--PROJECT

* the UTC timestamp comes first, at fixed width, so sorting ids as strings sorts them by
  creation time (to the millisecond);
* ``NNNNN`` is 5 random base36 characters; within one process a second id in the same
  millisecond always gets a different nonce, and across processes 36**5 values make a
  collision unlikely;
* USER and PROJECT are *sanitized* names (:func:`sanitize_name`), which never contain ``--``,
  so the ``--`` separators split an id in exactly one way even when the names have hyphens.
  (The previous format joined everything with single hyphens, and ``bob-x``/``my-proj`` came
  back as ``bob-x-my``/``proj``.)

The Job is named ``ascend-<id>``; at most 55 characters of id keep that name within the 63
characters a DNS-1123 label (and so a pod label value) allows.
"""

from __future__ import annotations

import os
import re
import secrets
import string
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

from ascend.errors import InvalidJobIdError

__all__ = [
    "JOB_ID_MAX_LENGTH",
    "JOB_NAME_PREFIX",
    "PROJECT_MAX",
    "USER_MAX",
    "JobIdParts",
    "is_job_id",
    "job_id_from_name",
    "job_name",
    "new_job_id",
    "parse_job_id",
    "sanitize_name",
]

USER_MAX = 12
PROJECT_MAX = 15
JOB_NAME_PREFIX = "ascend-"
#: Longest Kubernetes name/label value (63) minus the prefix.
JOB_ID_MAX_LENGTH = 63 - len(JOB_NAME_PREFIX)

DEFAULT_NAME = "default"
NONCE_LENGTH = 5
NONCE_ALPHABET = string.digits + string.ascii_lowercase

_EXAMPLE = "20261128-142053123-k3x9q--alice--default"
_FIX = f"job ids look like {_EXAMPLE}; 'ascend jobs list' shows yours"

# Explicit [0-9] and [a-z]: in str patterns \d and \w also match non-ASCII digits and letters.
_NAME = r"[a-z0-9]+(?:-[a-z0-9]+)*"
_JOB_ID_RE = re.compile(
    r"(?P<year>[0-9]{4})(?P<month>[0-9]{2})(?P<day>[0-9]{2})"
    r"-(?P<hour>[0-9]{2})(?P<minute>[0-9]{2})(?P<second>[0-9]{2})(?P<millis>[0-9]{3})"
    rf"-(?P<nonce>[0-9a-z]{{{NONCE_LENGTH}}})"
    rf"--(?P<user>{_NAME})--(?P<project>{_NAME})"
)
_DNS1123_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_NOT_NAME_CHAR_RE = re.compile(r"[^a-z0-9]+")


def sanitize_name(name: str | None, max_length: int) -> str:
    """Reduce ``name`` to lowercase ``[a-z0-9]`` words joined by single hyphens.

    Never containing ``--`` is what makes ids parse unambiguously; the length cap keeps ids
    within a Kubernetes name. Empty results (and ``None``) become ``"default"``, so every id
    has both fields. Idempotent: a sanitized name sanitizes to itself.
    """
    if max_length < len(DEFAULT_NAME):
        raise ValueError(f"max_length must be at least {len(DEFAULT_NAME)}, got {max_length}")
    if name is None:
        return DEFAULT_NAME
    if not isinstance(name, str):
        raise TypeError(f"a user or project name must be a str or None, got {name!r}")
    cleaned = _NOT_NAME_CHAR_RE.sub("-", name.lower()).strip("-")
    cleaned = cleaned[:max_length].rstrip("-")
    return cleaned or DEFAULT_NAME


# -- uniqueness within the process ----------------------------------------------------------------

# Nonces already issued, per millisecond stamp ("YYYYMMDD-HHMMSSmmm"). Only the most recent
# stamps are kept: ids are normally made at the current time, and this still covers a clock
# that steps back a little. Older stamps fall back on the 36**5 random space, as across
# processes do.
_RECORD_STAMPS = 1024
_issued: OrderedDict[str, set[str]] = OrderedDict()
_issued_lock = threading.Lock()


def _reset_after_fork() -> None:
    """Give a forked child a fresh lock: one held by another parent thread would never free."""
    global _issued_lock
    _issued_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _unique_nonce(stamp: str) -> str:
    """A random nonce not yet issued in this process for ``stamp``."""
    with _issued_lock:
        used = _issued.get(stamp)
        if used is None:
            used = _issued[stamp] = set()
            if len(_issued) > _RECORD_STAMPS:
                _issued.popitem(last=False)
        else:
            _issued.move_to_end(stamp)
        while True:
            nonce = "".join(secrets.choice(NONCE_ALPHABET) for _ in range(NONCE_LENGTH))
            if nonce not in used:
                used.add(nonce)
                return nonce


def _to_utc(now: datetime | None) -> datetime:
    """``now`` in UTC; naive datetimes are taken to be UTC already (never local time)."""
    if now is None:
        return datetime.now(UTC)
    if not isinstance(now, datetime):
        raise TypeError(f"now must be a datetime or None, got {now!r}")
    if now.tzinfo is None or now.utcoffset() is None:
        return now.replace(tzinfo=UTC)
    try:
        return now.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidJobIdError(
            f"cannot make a job id for {now!r}: it falls outside years 1-9999 in UTC",
            fix="pass a time between years 1 and 9999, or leave now=None for the current time",
        ) from exc


def _stamp(utc: datetime) -> str:
    # Formatted by hand: strftime("%Y") does not zero-pad years below 1000 on every platform.
    return (
        f"{utc.year:04d}{utc.month:02d}{utc.day:02d}"
        f"-{utc.hour:02d}{utc.minute:02d}{utc.second:02d}{utc.microsecond // 1000:03d}"
    )


def new_job_id(user: str | None, project: str | None, now: datetime | None = None) -> str:
    """A new, process-unique job id for ``user``/``project``, created at ``now`` (default: now).

    ``now`` may be timezone-aware (converted to UTC) or naive, meaning UTC; it is truncated to
    the millisecond.
    """
    stamp = _stamp(_to_utc(now))
    nonce = _unique_nonce(stamp)
    return (
        f"{stamp}-{nonce}--{sanitize_name(user, USER_MAX)}--{sanitize_name(project, PROJECT_MAX)}"
    )


# -- parsing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobIdParts:
    """The fields of a job id. ``user`` and ``project`` are the sanitized forms in the id."""

    created: datetime  # timezone-aware UTC, millisecond precision
    nonce: str
    user: str
    project: str


def _invalid(job_id: object, why: str) -> InvalidJobIdError:
    return InvalidJobIdError(f"{job_id!r} is not an ascend job id: {why}", fix=_FIX)


def parse_job_id(job_id: str) -> JobIdParts:
    """Split a job id into its fields, or raise :class:`InvalidJobIdError` saying why not.

    Strict on purpose: anything :func:`new_job_id` could not have made is rejected, so a
    string that parses is safe to use as a Kubernetes name and label value.
    """
    if not isinstance(job_id, str):
        raise _invalid(job_id, f"expected a str, got {type(job_id).__name__}")
    if len(job_id) > JOB_ID_MAX_LENGTH:
        raise _invalid(
            job_id, f"it is {len(job_id)} characters long, at most {JOB_ID_MAX_LENGTH} fit"
        )
    match = _JOB_ID_RE.fullmatch(job_id)
    if match is None:
        lowered = job_id.lower()
        if job_id.isascii() and lowered != job_id and _JOB_ID_RE.fullmatch(lowered):
            raise _invalid(job_id, f"job ids are lowercase (did you mean {lowered!r}?)")
        raise _invalid(job_id, "it does not have the shape YYYYMMDD-HHMMSSmmm-NNNNN--USER--PROJECT")
    user, project = match["user"], match["project"]
    if len(user) > USER_MAX:
        raise _invalid(job_id, f"the user {user!r} is longer than {USER_MAX} characters")
    if len(project) > PROJECT_MAX:
        raise _invalid(job_id, f"the project {project!r} is longer than {PROJECT_MAX} characters")
    try:
        created = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
            int(match["millis"]) * 1000,
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise _invalid(job_id, f"its date and time are not real ({exc})") from None
    return JobIdParts(created=created, nonce=match["nonce"], user=user, project=project)


def is_job_id(text: str) -> bool:
    """Whether ``text`` is a well-formed job id (any type is accepted; non-str is False)."""
    try:
        parse_job_id(text)
    except InvalidJobIdError:
        return False
    return True


# -- Kubernetes names ---------------------------------------------------------------------------


def job_name(job_id: str) -> str:
    """The Kubernetes Job name for ``job_id``: ``ascend-<id>``, checked to be a DNS-1123 label.

    The name is also used as a pod label value, so it must be a label (63 characters at most),
    not just a subdomain.
    """
    parse_job_id(job_id)
    name = JOB_NAME_PREFIX + job_id
    if len(name) > 63 or not _DNS1123_LABEL_RE.fullmatch(name):  # pragma: no cover - by format
        raise _invalid(job_id, f"the Job name {name!r} is not a valid DNS-1123 label")
    return name


def job_id_from_name(name: str) -> str:
    """The job id inside a Job name made by :func:`job_name`; raises for any other name."""
    if not isinstance(name, str) or not name.startswith(JOB_NAME_PREFIX):
        raise InvalidJobIdError(
            f"{name!r} is not an ascend Job name: it does not start with {JOB_NAME_PREFIX!r}",
            fix=f"ascend Job names look like {JOB_NAME_PREFIX}{_EXAMPLE}",
        )
    job_id = name[len(JOB_NAME_PREFIX) :]
    try:
        parse_job_id(job_id)
    except InvalidJobIdError as exc:
        raise InvalidJobIdError(
            f"{name!r} is not an ascend Job name: {exc.message}",
            fix=f"ascend Job names look like {JOB_NAME_PREFIX}{_EXAMPLE}",
        ) from None
    return job_id
