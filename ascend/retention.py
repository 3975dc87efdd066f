"""Retention: which jobs' data ``ascend jobs prune`` may delete, and durations to say how old.

Only finished jobs go (succeeded, failed, cancelled, per the merged record, so a job whose
``metadata.json`` still says queued but whose runner or verdict says it ended counts as ended).
A queued or running job is never pruned, however old: its runner may still write there. A job
whose record is damaged is kept too, since its state is unknown. Age counts from the job's end
(``finished_at``), or from its creation when no end was recorded.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ascend.job_ids import parse_job_id
from ascend.records import DamagedRecord, JobRecord

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION_FORMS = "a number and a unit: s, m, h, d or w (seconds to weeks), e.g. 30d, 12h, 1d12h"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhdw])")
_DURATION = re.compile(rf"(?:{_PART.pattern})+")


def parse_duration(value: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``1d12h`` as a timedelta; ``ValueError`` naming the value and
    the accepted forms otherwise (the message is what a person reads, from the CLI or config)."""
    text = value.strip().lower() if isinstance(value, str) else ""
    if not isinstance(value, str) or not _DURATION.fullmatch(text):
        raise ValueError(f"{value!r} is not a duration: write {DURATION_FORMS}")
    seconds = sum(float(number) * UNITS[unit] for number, unit in _PART.findall(text))
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{value!r} is too long a duration: write {DURATION_FORMS}") from None


def check_duration(value: str) -> None:
    """The ``jobs.retention`` setting's validator."""
    parse_duration(value)


def age_text(age: timedelta) -> str:
    """A coarse age for people: ``8d``, ``5h``, ``12m``, ``40s``."""
    seconds = max(0, int(age.total_seconds()))
    for unit, size in (("w", UNITS["w"]), ("d", UNITS["d"]), ("h", UNITS["h"]), ("m", 60)):
        if seconds >= size * (2 if unit == "w" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass
class Plan:
    """What a prune would do: ``doomed`` go; ``active`` and ``damaged`` are old but kept."""

    doomed: list[JobRecord] = field(default_factory=list)
    active: list[JobRecord] = field(default_factory=list)
    damaged: list[DamagedRecord] = field(default_factory=list)


def plan(
    records: Iterable[JobRecord | DamagedRecord],
    older_than: timedelta,
    now: datetime,
    statuses: Collection[str] = (),
) -> Plan:
    """Sort ``records`` into what goes and what stays; ``statuses`` limits which final states go."""
    result = Plan()
    for record in records:
        if isinstance(record, DamagedRecord):
            if now - parse_job_id(record.job_id).created > older_than:
                result.damaged.append(record)
            continue
        old = now - record.ended_at > older_than
        if not record.finished:
            if now - record.created_at > older_than:
                result.active.append(record)
        elif old and (not statuses or record.status in statuses):
            result.doomed.append(record)
    return result


def still_finished(record: JobRecord | DamagedRecord) -> bool:
    """Checked again just before deleting: a job re-run (retries) is running again."""
    return isinstance(record, JobRecord) and record.finished
