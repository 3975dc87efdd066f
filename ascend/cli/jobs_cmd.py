"""``ascend jobs``: list jobs, show one, read its logs, get its result, cancel it, prune old ones."""

from __future__ import annotations

import os
import posixpath
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from ascend.cli.output import console, print_json, size_text, table

if TYPE_CHECKING:
    from ascend import records

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


@click.group("jobs")
def jobs() -> None:
    """Inspect and control jobs: list, status, logs, result, cancel, prune.

    Jobs are found in the storage of the current configuration, so any machine with the same
    configuration sees the same jobs.
    """


def _backend() -> Any:
    from ascend.backend import get_backend

    return get_backend()


OWNER_HELP = (
    "The job's owner, to act on another user's job on purpose (default: only your own jobs; "
    "see the username setting)."
)


def _check_owner(job_id: str, user: str | None, backend: Any) -> None:
    """Refuse another user's job unless ``--user`` names its owner (the user in the job id)."""
    from ascend.errors import PermissionDeniedError
    from ascend.job_ids import USER_MAX, parse_job_id, sanitize_name
    from ascend.runtime import current_user

    owner = parse_job_id(job_id).user
    if user is None:
        caller = current_user(backend.config)
        if owner != caller:
            raise PermissionDeniedError(
                f"job {job_id} belongs to user {owner!r} (the user in its id), and you are "
                f"{caller!r} (the username setting, ASCEND_USERNAME)",
                fix=f"to act on another user's job on purpose, pass --user {owner}",
            )
    elif sanitize_name(user, USER_MAX) != owner:
        raise PermissionDeniedError(
            f"--user {user!r}: job {job_id} belongs to user {owner!r} (the user in its id), "
            f"not to {sanitize_name(user, USER_MAX)!r}",
            fix=f"pass --user {owner} to act on that user's job, or leave --user out for one "
            "of your own",
        )


def _handle(job_id: str, user: str | None = None, *, refuse_unverified: bool = False) -> Any:
    """The job's handle, once its record is known to be sound: a damaged file is an error
    naming it, not a traceback from whatever first reads the bad value. Another user's job
    only when ``user`` names its owner.

    A running job whose record names a process that is not its runner is said: as a warning,
    or (``refuse_unverified``, for a cancel) as an error, since nothing would be stopped."""
    import warnings

    from ascend import records
    from ascend.errors import PermissionDeniedError
    from ascend.local.compute import RunnerNotVerifiedWarning
    from ascend.runtime import attach

    backend = _backend()
    _check_owner(job_id, user, backend)
    try:
        records.load(backend.storage, job_id)
    except FileNotFoundError:
        pass  # attach says the job is not there, with the fix
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RunnerNotVerifiedWarning)
        handle = attach(job_id, backend, user=user)
    for warning in caught:
        if not issubclass(warning.category, RunnerNotVerifiedWarning):
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
        elif refuse_unverified:
            raise PermissionDeniedError(
                f"not cancelling job {job_id}: {warning.message}",
                fix="nothing was stopped. If the job still runs, stop it from the process that "
                "submitted it (Ctrl-C); a record naming another process means someone changed "
                "the job storage: check who can write it",
            )
        else:
            click.echo(f"ascend: warning: {warning.message}", err=True)
    return handle


def _record(job_id: str, user: str | None = None) -> records.JobRecord:
    """The job's typed record; a damaged file or a job that is not there is an error, and so
    is another user's job unless ``user`` names its owner."""
    from ascend import records

    backend = _backend()
    _check_owner(job_id, user, backend)
    try:
        return records.load(backend.storage, job_id)
    except FileNotFoundError:
        _handle(job_id, user)  # raises attach's "not in storage" error
        return records.load(backend.storage, job_id)


def _who(user: str | None, backend: Any) -> str:
    from ascend.job_ids import USER_MAX, sanitize_name
    from ascend.runtime import current_user

    return sanitize_name(user, USER_MAX) if user else current_user(backend.config)


def _job_ids(storage: Any, root: str) -> list[str]:
    """Job directories under ``root``, newest first (ids sort by creation time); anything
    else stored there is not a job and is left out."""
    from ascend.job_ids import is_job_id

    return sorted((name for name in storage.children(root) if is_job_id(name)), reverse=True)


def _time(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@jobs.command("list")
@click.option("--user", "user", help="Whose jobs (default: yours; see the username setting).")
@click.option(
    "--status",
    type=click.Choice((*STATUSES, "damaged")),
    help="Only jobs in this state (damaged: jobs whose record cannot be read).",
)
@click.option("--limit", default=20, show_default=True, help="At most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def list_jobs(user: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List jobs, newest first (job ids sort by creation time).

    A job whose record is damaged is listed as such, with the file and what is wrong, and
    every other job still lists.
    """
    from ascend import records

    backend = _backend()
    storage = backend.storage
    who = _who(user, backend)
    root = posixpath.join("users", who, "jobs")
    # The user is part of the id: a directory of another user's job id is not this user's.
    ids = [job_id for job_id in _job_ids(storage, root) if _owner_of(job_id) == who]

    def wanted(record: records.JobRecord | records.DamagedRecord) -> bool:
        if isinstance(record, records.DamagedRecord):
            return status in (None, "damaged")  # unreadable ones too: their state is unknown
        return status in (None, record.status)

    found: list[records.JobRecord | records.DamagedRecord] = []
    batch = limit if status is None else max(limit * 4, 50)
    with ThreadPoolExecutor(max_workers=8) as pool:
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            for record in pool.map(lambda job_id: records.read_listed(storage, who, job_id), chunk):
                if wanted(record):
                    found.append(record)
            if len(found) >= limit:
                break
    found = found[:limit]
    if as_json:
        print_json(
            [
                {"job_id": r.job_id, "status": r.kind, "file": r.path, "problem": r.problem}
                if isinstance(r, records.DamagedRecord)
                else r.as_dict()
                for r in found
            ]
        )
        return
    rows = []
    for r in found:
        if isinstance(r, records.DamagedRecord):
            created = _created_from_id(r.job_id)
            rows.append([r.job_id, r.kind, "?", created, "-", f"{r.kind} record: {r.file}"])
            continue
        rows.append(
            [
                r.job_id,
                r.status,
                r.function,
                _time(r.created_at),
                "-" if r.duration_seconds is None else f"{r.duration_seconds:.1f}s",
                (r.failure.reason or "") if r.failure else "",
            ]
        )
    out = console()
    out.print(
        table(
            f"Jobs of {who} in {storage.storage_uri(root)}",
            ["job id", "status", "function", "created (UTC)", "duration", "failure"],
            rows,
            whole=("job id",),
            min_widths={"status": max(map(len, (*STATUSES, "unreadable")))},
            width=out.width,
        )
    )
    damaged = [r for r in found if isinstance(r, records.DamagedRecord)]
    if damaged:
        click.echo(f"{len(damaged)} job record(s) cannot be read:")
        for r in damaged:
            click.echo(f"  {r.job_id}: {r.path}: {r.problem}")


def _owner_of(job_id: str) -> str:
    from ascend.job_ids import parse_job_id

    return parse_job_id(job_id).user


def _created_from_id(job_id: str) -> str:
    from ascend.job_ids import parse_job_id

    return _time(parse_job_id(job_id).created)


@jobs.command("status")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the whole record as JSON.")
@click.option("--user", "user", metavar="OWNER", help=OWNER_HELP)
def status(job_id: str, as_json: bool, user: str | None) -> None:
    """Show a job's record: status, times, resources, versions, failure."""
    record = _record(job_id, user)
    if as_json:
        print_json(record.as_dict())
        return
    out = console()
    fields: list[tuple[str, object]] = [
        ("job_id", record.job_id),
        ("status", record.status),
        ("function", record.function),
        ("user", record.user),
        ("project", record.project),
        ("provider", record.provider),
        ("created_at", record.created_at.isoformat()),
        ("started_at", record.started_at and record.started_at.isoformat()),
        ("finished_at", record.finished_at and record.finished_at.isoformat()),
        ("duration_seconds", record.duration_seconds),
        ("exit_code", record.exit_code),
    ]
    for key, value in fields:
        if value is not None:
            out.print(f"{key:17s} {value}", markup=False)
    for key in ("resources", "failure", "git"):
        if record.raw.get(key):
            out.print(f"{key:17s} {record.raw[key]}", markup=False)


@jobs.command("logs")
@click.argument("job_id")
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep printing the job's output as it arrives, until the job ends.",
)
@click.option("--user", "user", metavar="OWNER", help=OWNER_HELP)
def logs(job_id: str, follow: bool, user: str | None) -> None:
    """Print everything the job printed (saved with the job, also after it ended).

    With --follow, print what is saved so far, then new output as the job writes it (the
    runner saves it every second or two), and stop by itself once the job has ended and its
    last output is printed. It reads the job's storage only, so it works from any machine
    with the same configuration, for a job started anywhere. Ctrl-C stops following (exit
    code 130); the job keeps running.
    """
    if follow:
        _follow_logs(job_id, user)
        return
    import warnings

    from ascend.runtime import LogsNotSavedWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LogsNotSavedWarning)
        text = _handle(job_id, user).logs()
    click.echo(text, nl=not text.endswith("\n") and bool(text))
    for warning in caught:
        if issubclass(warning.category, LogsNotSavedWarning):
            click.echo(f"ascend: warning: {warning.message}", err=True)


def _logs_lost_warning(job_id: str, lost: object) -> None:
    """The warning of ``JobHandle.logs()`` when the job could not save (all of) its logs."""
    click.echo(
        f"ascend: warning: job {job_id} could not save its logs: {lost}; what is shown may be "
        "incomplete",
        err=True,
    )


def _follow_logs(job_id: str, user: str | None = None) -> None:
    """``ascend jobs logs --follow``: the saved log, then each new chunk, until the job ends.

    Storage only (no compute backend is asked): the record says when the job has ended."""
    import codecs

    from ascend import logstore, metadata
    from ascend.job_ids import parse_job_id

    record = _record(job_id, user)  # an unknown, damaged or other's job: an error, at once
    storage = _backend().storage
    prefix = metadata.job_prefix(parse_job_id(job_id).user, job_id)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # chunks may cut a char
    warned = False
    if record.raw.get("logs_error"):
        _logs_lost_warning(job_id, record.raw["logs_error"])
        warned = True
    try:
        for data in logstore.follow(storage, prefix):
            click.echo(decoder.decode(data), nl=False)  # echo flushes: shown as it arrives
        click.echo(decoder.decode(b"", final=True), nl=False)
    except KeyboardInterrupt:
        click.echo(
            f"ascend: stopped following job {job_id}; the job keeps running "
            f"('ascend jobs cancel {job_id}' stops it)",
            err=True,
        )
        raise click.exceptions.Exit(130) from None
    if not warned:
        try:
            lost = metadata.read(storage, prefix).get("logs_error")
        except (FileNotFoundError, ValueError):
            lost = None
        if lost:
            _logs_lost_warning(job_id, lost)


@jobs.command("result")
@click.argument("job_id")
@click.option("--timeout", type=float, default=None, help="Seconds to wait if it still runs.")
@click.option("--user", "user", metavar="OWNER", help=OWNER_HELP)
def result(job_id: str, timeout: float | None, user: str | None) -> None:
    """Wait for a job and print its result, or its exception with the remote traceback.

    Exits 1 when the job failed.
    """
    handle = _handle(job_id, user)
    handle.stream_logs = False  # stdout is for the result: 'ascend jobs logs' shows the output
    try:
        value = handle.result(timeout=timeout, cancel_on_interrupt=False)
    except TimeoutError as error:
        if isinstance(error, Exception) and type(error) is TimeoutError:
            raise click.ClickException(str(error)) from None
        _print_exception(error)
        raise click.exceptions.Exit(1) from None
    except Exception as error:
        _print_exception(error)
        raise click.exceptions.Exit(1) from None
    click.echo(repr(value))


def _print_exception(error: BaseException) -> None:
    click.echo("".join(traceback.format_exception_only(error)).rstrip(), err=True)
    for note in getattr(error, "__notes__", []):
        click.echo(note, err=True)


@jobs.command("cancel")
@click.argument("job_id")
@click.option("--user", "user", metavar="OWNER", help=OWNER_HELP)
def cancel(job_id: str, user: str | None) -> None:
    """Stop a running job; it is recorded as cancelled.

    Only what is shown to be the job's own is stopped: its Kubernetes Job (name and labels),
    or its runner process (pid, start time and command line), never what its record in
    storage merely names."""
    handle = _handle(job_id, user, refuse_unverified=True)
    before = handle.status()
    handle.cancel()
    after = handle.status()
    click.echo(f"{job_id}: {before} -> {after}")


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``7d``, ``12h``, ``1d12h``: a bad value names itself and the accepted forms. The text
    is kept, to be shown back as the user wrote it."""
    from ascend.retention import parse_duration

    if value is None:
        return None
    try:
        parse_duration(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx, param) from None
    return value.strip()


def _job_size(storage: Any, prefix: str) -> int | None:
    """Bytes under a job's prefix (every object a prune deletes); ``None`` when the store
    cannot say (the deletion does not depend on it)."""
    try:
        local = storage.local_path(prefix)
        if local is not None:
            return sum(
                os.path.getsize(os.path.join(directory, name))
                for directory, _, names in os.walk(local)
                for name in names
            )
        return int(storage.get_filesystem().du(storage.storage_uri(prefix), total=True))
    except Exception:  # only a number to show: the deletion goes ahead without it
        return None


def _total(sizes: list[int | None]) -> str:
    known = [size for size in sizes if size is not None]
    text = size_text(sum(known))
    return text if len(known) == len(sizes) else f"at least {text}"


@jobs.command("prune")
@click.option(
    "--older-than",
    metavar="DURATION",
    callback=_duration,
    help="Delete finished jobs that ended longer ago than this (30d, 12h, 1d12h; "
    "default: the jobs.retention setting).",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(("succeeded", "failed", "cancelled")),
    help="Only jobs that ended so (repeatable; default: every finished job).",
)
@click.option("--user", "user", help="Whose jobs (default: yours; see the username setting).")
@click.option("--dry-run", is_flag=True, help="Only print what would be deleted.")
@click.option("-y", "--yes", is_flag=True, help="Delete without asking.")
def prune(
    older_than: str | None,
    statuses: tuple[str, ...],
    user: str | None,
    dry_run: bool,
    yes: bool,
) -> None:
    """Delete old finished jobs' data: every object under each job's prefix (package, record,
    logs, result).

    A queued or running job is never deleted, however old, nor a job whose record is
    damaged (its state is unknown). Age counts from when the job ended.

    \b
    Examples:
      ascend jobs prune --older-than 30d --dry-run
      ascend jobs prune --older-than 7d --status failed --status cancelled --yes
      ascend jobs prune --yes          # with jobs.retention set, e.g. to 30d
    """
    from ascend import metadata, records, retention

    backend = _backend()
    age = f"{older_than} ago"
    if older_than is None:
        older_than = backend.config.get("jobs.retention")
        if not older_than:
            raise click.UsageError(
                "say how old a job must be: pass --older-than (e.g. 30d), or set jobs.retention "
                "(unset, jobs are kept forever)"
            )
        age = f"{older_than} ago (jobs.retention)"
    limit = retention.parse_duration(older_than)
    storage = backend.storage
    who = _who(user, backend)
    root = posixpath.join("users", who, "jobs")
    ids = _job_ids(storage, root)
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(lambda job_id: records.read_listed(storage, who, job_id), ids))
    now = datetime.now(UTC)
    plan = retention.plan(found, limit, now, statuses)
    for active in plan.active:
        click.echo(
            f"keeping {active.job_id}: it is {active.status}, and only finished jobs are pruned",
            err=True,
        )
    for damaged in plan.damaged:
        click.echo(
            f"keeping {damaged.job_id}: its record is {damaged.kind}, so its state is unknown "
            f"({damaged.file}: {damaged.problem})",
            err=True,
        )
    if not plan.doomed:
        which = "/".join(statuses) if statuses else "finished"
        click.echo(f"nothing to prune: no {which} job of {who} ended more than {age}")
        return
    with ThreadPoolExecutor(max_workers=8) as pool:
        sizes = list(
            pool.map(lambda r: _job_size(storage, metadata.job_prefix(who, r.job_id)), plan.doomed)
        )
    total = _total(sizes)

    def described(record: records.JobRecord, size: int | None) -> str:
        ended = retention.age_text(now - record.ended_at)
        return f"{record.job_id} ({record.status} {ended} ago, {size_text(size)})"

    if dry_run or not yes:
        for record, size in zip(plan.doomed, sizes, strict=True):
            click.echo(f"{'would delete' if dry_run else 'will delete'} {described(record, size)}")
    if dry_run:
        click.echo(f"would delete {len(plan.doomed)} job(s), {total}; nothing was deleted")
        return
    if not yes:
        click.confirm(
            f"Delete {len(plan.doomed)} job(s), {total}, from {storage.storage_uri(root)}?",
            abort=True,
        )
    deleted: list[int | None] = []
    for record, size in zip(plan.doomed, sizes, strict=True):
        # Read again: a job re-run since (retries) is running again and must stay.
        if not retention.still_finished(records.read_listed(storage, who, record.job_id)):
            click.echo(f"keeping {record.job_id}: it is no longer finished", err=True)
            continue
        storage.delete(metadata.job_prefix(who, record.job_id), recursive=True)
        deleted.append(size)
        click.echo(f"deleted {described(record, size)}")
    click.echo(f"deleted {len(deleted)} job(s), {_total(deleted)}")
