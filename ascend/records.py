"""Typed job records: each file of a job's record is parsed and checked before anything uses it.

A record lives in storage that people and other programs can write to, so a hand edit, a
half-copied bucket or a stray file must not crash ``ascend jobs`` with a traceback, nor show a
job under a name it does not have. Every file is parsed with bounded nesting into a dataclass
whose fields have been checked; anything else is a :class:`DamagedRecordError` that names the
file and what is wrong with it. The job directory's name is the job id: a ``job_id`` field that
disagrees with it is damage, never a rename.

Standard library only, like :mod:`ascend.metadata`, which reads through this module.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from ascend import metadata
from ascend.errors import AscendError

#: Deepest nesting accepted. Ascend writes three levels; the bound keeps a "JSON bomb" of
#: nested lists from reaching the parser's recursion at all.
MAX_DEPTH = 32
#: Largest record file accepted (Ascend's are a few kB; a long requirements list stays far below).
MAX_BYTES = 4 * 1024 * 1024

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


class _Storage(Protocol):
    def read(self, path: str) -> bytes: ...


class DamagedRecordError(AscendError, ValueError):
    """A file of a job's record cannot be trusted: not JSON, wrong types, missing keys, ...

    ``path`` is where the file is (its storage URI when known) and ``problem`` says what is
    wrong, so a person can find the file and repair or remove it.
    """

    def __init__(self, path: str, problem: str, *, fix: str | None = None) -> None:
        self.path = path
        self.problem = problem
        super().__init__(
            f"damaged job record {path}: {problem}",
            fix=fix
            or "restore the file, or delete the job's directory if the job is no longer "
            "needed (ascend writes these files itself; something else changed this one)",
        )

    @property
    def file(self) -> str:
        """The file's name (``status.json``), for narrow displays."""
        return posixpath.basename(self.path)


# -- the record's parts ---------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """Why a job failed, as the runner or the client recorded it."""

    reason: str | None
    message: str | None


@dataclass(frozen=True)
class Resources:
    """What the job asked for at submission."""

    cpu: str | None
    memory: str | None
    timeout: float | None
    node_type: str | None


@dataclass(frozen=True)
class Submission:
    """``metadata.json``: the client's record, written at submission."""

    job_id: str
    status: str
    function: str
    user: str
    created_at: datetime
    project: str | None
    provider: str | None
    resources: Resources | None
    failure: Failure | None
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class RunnerStatus:
    """``status.json``: the runner's view, the truth about a job that ran."""

    status: str
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    exit_code: int | None
    failure: Failure | None
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Verdict:
    """``verdict.json``: the client stopped the job (cancelled, or killed past its deadline)."""

    status: str
    at: datetime
    failure: Failure | None
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class JobRecord:
    """The merged view of a job (:func:`merge`): what ``ascend jobs`` shows and decides on."""

    job_id: str
    status: str
    function: str
    user: str
    project: str | None
    provider: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    exit_code: int | None
    failure: Failure | None
    resources: Resources | None
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def finished(self) -> bool:
        return self.status in metadata.FINAL

    @property
    def ended_at(self) -> datetime:
        """When the job stopped mattering: its end, else its creation (retention counts from it)."""
        return self.finished_at or self.created_at

    def as_dict(self) -> dict[str, Any]:
        """The merged record as JSON-ready data (``--json``, ``JobHandle.metadata()``)."""
        return dict(self.raw)


@dataclass(frozen=True)
class DamagedRecord:
    """A job whose record could not be read: listed as such, so every other job still lists.

    ``kind`` is ``damaged`` (the file is wrong) or ``unreadable`` (storage refused to read it).
    """

    job_id: str
    path: str
    problem: str
    kind: str = "damaged"

    @property
    def file(self) -> str:
        return posixpath.basename(self.path)


# -- parsing --------------------------------------------------------------------------------


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _shown(value: object) -> str:
    text = json.dumps(value) if isinstance(value, str | int | float | bool) else ""
    return f" ({text[:60]}{'...' if len(text) > 60 else ''})" if text else ""


def load_object(data: bytes, path: str) -> dict[str, Any]:
    """``data`` as one JSON object, refusing what could hurt the reader: too large, not UTF-8,
    nested deeper than :data:`MAX_DEPTH`, not JSON, or not an object."""
    if len(data) > MAX_BYTES:
        raise DamagedRecordError(
            path, f"it is {len(data)} bytes, more than the {MAX_BYTES} a record may have"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DamagedRecordError(
            path, f"it is not UTF-8 text (byte {error.start} is {data[error.start]:#04x})"
        ) from None
    depth = 0
    for bracket in _BRACKET.finditer(_STRING.sub('""', text)):
        depth = depth + 1 if bracket.group() in "[{" else max(depth - 1, 0)
        if depth > MAX_DEPTH:
            raise DamagedRecordError(
                path, f"it is nested more than {MAX_DEPTH} levels deep (not an ascend record)"
            )
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise DamagedRecordError(path, f"it is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise DamagedRecordError(path, f"it holds {_kind(value)}, not a JSON object")
    return value


class _Fields:
    """One JSON object of a record, read key by key: a wrong value raises naming its key."""

    def __init__(self, data: Mapping[str, Any], path: str, within: str = "") -> None:
        self.data = data
        self.path = path
        self.within = within

    def _name(self, key: str) -> str:
        return f"'{self.within}{key}'"

    def _wrong(self, key: str, value: object, expected: str) -> DamagedRecordError:
        return DamagedRecordError(
            self.path, f"{self._name(key)} is {_kind(value)}{_shown(value)}, expected {expected}"
        )

    def _get(self, key: str, required: bool, expected: str) -> Any:
        if key not in self.data:
            if required:
                raise DamagedRecordError(self.path, f"{self._name(key)} is missing")
            return None
        value = self.data[key]
        if value is None and required:
            raise self._wrong(key, value, expected)
        return value

    def text(self, key: str, *, required: bool = False) -> str | None:
        value = self._get(key, required, "a string")
        if value is not None and not isinstance(value, str):
            raise self._wrong(key, value, "a string")
        return value

    def choice(self, key: str, choices: tuple[str, ...], *, required: bool = False) -> str | None:
        value = self.text(key, required=required)
        if value is not None and value not in choices:
            raise DamagedRecordError(
                self.path,
                f"{self._name(key)} is {value[:60]!r}, expected one of {', '.join(choices)}",
            )
        return value

    def number(self, key: str) -> float | None:
        value = self._get(key, False, "a number")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise self._wrong(key, value, "a number")
        return None if value is None else float(value)

    def integer(self, key: str) -> int | None:
        value = self._get(key, False, "a whole number")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise self._wrong(key, value, "a whole number")
        return value

    def time(self, key: str, *, required: bool = False) -> datetime | None:
        value = self.text(key, required=required)
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise DamagedRecordError(
                self.path, f"{self._name(key)} is {value[:60]!r}, expected an ISO 8601 time"
            ) from None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    def section(self, key: str) -> _Fields | None:
        value = self._get(key, False, "an object")
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._wrong(key, value, "an object or null")
        return _Fields(value, self.path, f"{self.within}{key}.")

    def strings(self, key: str) -> None:
        value = self._get(key, False, "a list of strings")
        if value is None:
            return
        if not isinstance(value, list):
            raise self._wrong(key, value, "a list of strings")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise self._wrong(f"{key}[{index}]", item, "a string")

    def failure(self) -> Failure | None:
        section = self.section("failure")
        if section is None:
            return None
        return Failure(reason=section.text("reason"), message=section.text("message"))

    def resources(self) -> Resources | None:
        section = self.section("resources")
        if section is None:
            return None
        return Resources(
            cpu=section.text("cpu"),
            memory=section.text("memory"),
            timeout=section.number("timeout"),
            node_type=section.text("node_type"),
        )

    def common(self) -> None:
        """Keys any file may carry (the merge lets a later file's value win): checked alike."""
        for key in ("function", "user", "project", "provider", "image"):
            self.text(key)
        for key in ("created_at", "started_at", "finished_at", "updated_at"):
            self.time(key)
        self.choice("status", metadata.STATUSES)
        self.number("duration_seconds")
        self.integer("exit_code")
        self.failure()
        self.resources()
        self.strings("requirements")
        for key in ("git", "compute", "runner", "client", "versions"):
            self.section(key)


def _check_job_id(fields: _Fields, job_id: str | None, *, required: bool) -> str | None:
    recorded = fields.text("job_id", required=required)
    if job_id is not None and recorded is not None and recorded != job_id:
        raise DamagedRecordError(
            fields.path,
            f"'job_id' is {recorded[:60]!r}, but the record is in the directory of job {job_id}",
        )
    return recorded


def parse_submission(data: bytes, path: str, job_id: str | None = None) -> Submission:
    """``metadata.json``; ``job_id`` is the directory's name, which the file must agree with."""
    fields = _Fields(load_object(data, path), path)
    recorded = _check_job_id(fields, job_id, required=True)
    fields.common()
    return Submission(
        job_id=job_id or str(recorded),
        status=str(fields.choice("status", metadata.STATUSES, required=True)),
        function=str(fields.text("function", required=True)),
        user=str(fields.text("user", required=True)),
        created_at=fields.time("created_at", required=True),  # type: ignore[arg-type]
        project=fields.text("project"),
        provider=fields.text("provider"),
        resources=fields.resources(),
        failure=fields.failure(),
        raw=fields.data,
    )


def parse_status(data: bytes, path: str, job_id: str | None = None) -> RunnerStatus:
    """``status.json``, the runner's file."""
    fields = _Fields(load_object(data, path), path)
    _check_job_id(fields, job_id, required=False)
    fields.common()
    return RunnerStatus(
        status=str(fields.choice("status", metadata.STATUSES, required=True)),
        started_at=fields.time("started_at"),
        finished_at=fields.time("finished_at"),
        duration_seconds=fields.number("duration_seconds"),
        exit_code=fields.integer("exit_code"),
        failure=fields.failure(),
        raw=fields.data,
    )


def parse_verdict(data: bytes, path: str, job_id: str | None = None) -> Verdict:
    """``verdict.json``, the client's word on a job it stopped: always a final state."""
    fields = _Fields(load_object(data, path), path)
    _check_job_id(fields, job_id, required=False)
    return Verdict(
        status=str(fields.choice("status", tuple(sorted(metadata.FINAL)), required=True)),
        at=fields.time("at", required=True),  # type: ignore[arg-type]
        failure=fields.failure(),
        raw=fields.data,
    )


def merge(
    submission: Submission, status: RunnerStatus | None, verdict: Verdict | None
) -> JobRecord:
    """One view of a job. The runner's status wins over the submission; a verdict counts unless
    the runner finished on its own (its "Terminated" is how a cancel looks from inside, so that
    does not count as finishing). A cancel is recorded before the job is stopped, so a runner
    that still finished on its own, even after the verdict, won that race: its end stands."""
    raw: dict[str, Any] = {**submission.raw, **(status.raw if status else {})}
    raw["job_id"] = submission.job_id  # the directory's name, never a field's
    if verdict is not None:
        terminated = (
            status is not None
            and status.failure is not None
            and (status.failure.reason == "Terminated")
        )
        runner_done = status is not None and status.status in metadata.FINAL and not terminated
        if not runner_done:
            raw["status"] = verdict.status
            raw["failure"] = verdict.raw.get("failure")
            raw.setdefault("finished_at", verdict.raw.get("at"))
            if verdict.status == metadata.CANCELLED and isinstance(verdict.raw.get("by"), dict):
                raw["cancelled_by"] = verdict.raw["by"]
    # Every value here was checked in the file it came from: reading it again cannot fail.
    fields = _Fields(raw, "the merged record")
    return JobRecord(
        job_id=submission.job_id,
        status=str(fields.choice("status", metadata.STATUSES) or submission.status),
        function=fields.text("function") or submission.function,
        user=fields.text("user") or submission.user,
        project=fields.text("project"),
        provider=fields.text("provider"),
        created_at=fields.time("created_at") or submission.created_at,
        started_at=fields.time("started_at"),
        finished_at=fields.time("finished_at"),
        duration_seconds=fields.number("duration_seconds"),
        exit_code=fields.integer("exit_code"),
        failure=fields.failure(),
        resources=fields.resources(),
        raw=raw,
    )


# -- reading from storage -------------------------------------------------------------------


def _where(storage: _Storage, path: str) -> str:
    uri = getattr(storage, "storage_uri", None)
    try:
        return str(uri(path)) if callable(uri) else path
    except Exception:  # a path the storage refuses is still worth naming
        return path


def _read(storage: _Storage, path: str) -> bytes | None:
    try:
        return storage.read(path)
    except FileNotFoundError:
        return None


def read(storage: _Storage, prefix: str, job_id: str | None = None) -> JobRecord:
    """The typed, merged record under ``prefix``.

    ``job_id`` is the name of the job's directory, which every file must agree with.

    :raises FileNotFoundError: there is no ``metadata.json`` (no such job).
    :raises DamagedRecordError: a file is damaged; it names the file and the problem.
    """
    path = posixpath.join(prefix, metadata.METADATA_FILE)
    data = _read(storage, path)
    if data is None:
        raise FileNotFoundError(path)
    submission = parse_submission(data, _where(storage, path), job_id)
    status_path = posixpath.join(prefix, metadata.STATUS_FILE)
    data = _read(storage, status_path)
    status = None if data is None else parse_status(data, _where(storage, status_path), job_id)
    verdict_path = posixpath.join(prefix, metadata.VERDICT_FILE)
    data = _read(storage, verdict_path)
    verdict = None if data is None else parse_verdict(data, _where(storage, verdict_path), job_id)
    return merge(submission, status, verdict)


def load(storage: _Storage, job_id: str) -> JobRecord:
    """The record of ``job_id`` (an :class:`~ascend.errors.InvalidJobIdError` if it is not one)."""
    from ascend.job_ids import parse_job_id

    user = parse_job_id(job_id).user
    return read(storage, metadata.job_prefix(user, job_id), job_id)


def read_listed(storage: _Storage, user: str, job_id: str) -> JobRecord | DamagedRecord:
    """The record of a listed job directory, or what is wrong with it (never raises for damage
    or a storage error: one bad job must not hide the others)."""
    from ascend.errors import StorageError

    prefix = metadata.job_prefix(user, job_id)
    try:
        return read(storage, prefix, job_id)
    except DamagedRecordError as error:
        return DamagedRecord(job_id, error.path, error.problem)
    except FileNotFoundError:
        path = _where(storage, posixpath.join(prefix, metadata.METADATA_FILE))
        return DamagedRecord(job_id, path, "it is missing (the job was never fully submitted)")
    except StorageError as error:
        return DamagedRecord(job_id, _where(storage, prefix), error.message, kind="unreadable")
