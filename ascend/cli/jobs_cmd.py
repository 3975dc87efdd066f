"""``ascend jobs``: list jobs, show one, read its logs, get its result, cancel it."""

from __future__ import annotations

import posixpath
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import click

from ascend.cli.output import console, print_json, table

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


@click.group("jobs")
def jobs() -> None:
    """Inspect and control jobs: list, status, logs, result, cancel.

    Jobs are found in the storage of the current configuration, so any machine with the same
    configuration sees the same jobs.
    """


def _backend() -> Any:
    from ascend.backend import get_backend

    return get_backend()


def _handle(job_id: str) -> Any:
    from ascend.runtime import attach

    return attach(job_id, _backend())


@jobs.command("list")
@click.option("--user", "user", help="Whose jobs (default: yours; see the username setting).")
@click.option("--status", type=click.Choice(STATUSES), help="Only jobs in this state.")
@click.option("--limit", default=20, show_default=True, help="At most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def list_jobs(user: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List jobs, newest first (job ids sort by creation time)."""
    from ascend import metadata
    from ascend.job_ids import USER_MAX, is_job_id, sanitize_name
    from ascend.runtime import current_user

    backend = _backend()
    storage = backend.storage
    who = sanitize_name(user, USER_MAX) if user else current_user(backend.config)
    root = posixpath.join("users", who, "jobs")
    ids = sorted(
        {path[len(root) + 1 :].split("/", 1)[0] for path in storage.list(root)},
        reverse=True,
    )
    ids = [job_id for job_id in ids if is_job_id(job_id)]

    def read(job_id: str) -> dict[str, Any]:
        try:
            return metadata.read(storage, metadata.job_prefix(who, job_id))
        except Exception as error:  # a broken record is listed, not fatal
            return {"job_id": job_id, "status": "unknown", "error": str(error)}

    records: list[dict[str, Any]] = []
    batch = limit if status is None else max(limit * 4, 50)
    with ThreadPoolExecutor(max_workers=8) as pool:
        for start in range(0, len(ids), batch):
            for record in pool.map(read, ids[start : start + batch]):
                if status is None or record.get("status") == status:
                    records.append(record)
            if len(records) >= limit:
                break
    records = records[:limit]
    if as_json:
        print_json(records)
        return
    rows = [
        [
            r.get("job_id", "?"),
            r.get("status", "?"),
            r.get("function", "?"),
            r.get("created_at", "?"),
            "-" if r.get("duration_seconds") is None else f"{r['duration_seconds']:.1f}s",
            (r.get("failure") or {}).get("reason", ""),
        ]
        for r in records
    ]
    console().print(
        table(
            f"Jobs of {who} in {storage.storage_uri(root)}",
            ["job id", "status", "function", "created", "duration", "failure"],
            rows,
        )
    )


@jobs.command("status")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the whole record as JSON.")
def status(job_id: str, as_json: bool) -> None:
    """Show a job's record: status, times, resources, versions, failure."""
    record = _handle(job_id).metadata()
    if as_json:
        print_json(record)
        return
    out = console()
    for key in (
        "job_id",
        "status",
        "function",
        "user",
        "project",
        "provider",
        "created_at",
        "started_at",
        "finished_at",
        "duration_seconds",
        "exit_code",
    ):
        if record.get(key) is not None:
            out.print(f"{key:17s} {record[key]}", markup=False)
    for key in ("resources", "failure", "git"):
        if record.get(key):
            out.print(f"{key:17s} {record[key]}", markup=False)


@jobs.command("logs")
@click.argument("job_id")
def logs(job_id: str) -> None:
    """Print everything the job printed (saved with the job, also after it ended)."""
    text = _handle(job_id).logs()
    click.echo(text, nl=not text.endswith("\n") and bool(text))


@jobs.command("result")
@click.argument("job_id")
@click.option("--timeout", type=float, default=None, help="Seconds to wait if it still runs.")
def result(job_id: str, timeout: float | None) -> None:
    """Wait for a job and print its result, or its exception with the remote traceback.

    Exits 1 when the job failed.
    """
    handle = _handle(job_id)
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
def cancel(job_id: str) -> None:
    """Stop a running job; it is recorded as cancelled."""
    handle = _handle(job_id)
    before = handle.status()
    handle.cancel()
    after = handle.status()
    click.echo(f"{job_id}: {before} -> {after}")
