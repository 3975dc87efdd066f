"""Job ids: round trips for any names, creation-time order, uniqueness, strict parsing."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ascend.errors import InvalidJobIdError
from ascend.job_ids import (
    JOB_NAME_PREFIX,
    PROJECT_MAX,
    USER_MAX,
    JobIdParts,
    is_job_id,
    job_id_from_name,
    job_name,
    new_job_id,
    parse_job_id,
    sanitize_name,
)

# Written out independently of the module: what Kubernetes accepts for a Job name that is also
# used as a pod label value.
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SANITIZED = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

names = st.one_of(
    st.none(),
    st.text(),
    st.text(alphabet="-_ .@/", max_size=30),  # only symbols: becomes "default"
    st.text(alphabet="abcXYZ019-", max_size=40),  # hyphen-heavy
    st.text(min_size=50, max_size=300),  # very long
    st.from_regex(r"[a-z0-9]+(-[a-z0-9]+)*", fullmatch=True),  # already clean, with hyphens
    st.sampled_from(
        ["", " ", "-", "--", "é", "İstanbul", "Bob X", "bob--x", "\uff21\uff22\uff23", "日本語"]
    ),
)
offsets = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
# Timezones, when present, stay away from year 1 and 9999 so the UTC conversion cannot overflow.
times = st.one_of(
    st.datetimes(),
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=offsets),
)


def to_utc_millis(t: datetime) -> datetime:
    utc = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


# -- round trip ---------------------------------------------------------------------------------


@given(user=names, project=names, now=times)
def test_round_trip_gives_back_sanitized_names_and_time(
    user: str | None, project: str | None, now: datetime
) -> None:
    job_id = new_job_id(user, project, now)

    parts = parse_job_id(job_id)

    assert parts.user == sanitize_name(user, USER_MAX)
    assert parts.project == sanitize_name(project, PROJECT_MAX)
    assert parts.created == to_utc_millis(now)
    assert parts.created.tzinfo is UTC
    assert parts.created.microsecond % 1000 == 0
    assert re.fullmatch(r"[0-9a-z]{5}", parts.nonce)
    assert len(job_id) <= 56
    assert DNS1123_LABEL.match(JOB_NAME_PREFIX + job_id)
    assert len(JOB_NAME_PREFIX + job_id) <= 63
    assert is_job_id(job_id)


@given(name=names, max_length=st.sampled_from([USER_MAX, PROJECT_MAX, 7, 63]))
def test_sanitize_name_is_idempotent_and_clean(name: str | None, max_length: int) -> None:
    once = sanitize_name(name, max_length)

    assert sanitize_name(once, max_length) == once
    assert SANITIZED.match(once)
    assert "--" not in once
    assert 1 <= len(once) <= max_length


@pytest.mark.parametrize(
    ("user", "project", "want_user", "want_project"),
    [
        ("bob-x", "my-proj", "bob-x", "my-proj"),
        ("a-b-c-d", "x-y-z", "a-b-c-d", "x-y-z"),
        ("Bob X", "My Proj!", "bob-x", "my-proj"),
        ("bob--x", "--my---proj--", "bob-x", "my-proj"),
        ("", None, "default", "default"),
        ("@@@", "   ", "default", "default"),
        ("abcdefghijk-lmnop", "p" * 40, "abcdefghijk", "p" * 15),  # truncation strips "-"
        ("José", "Ünïcode", "jos", "n-code"),
    ],
)
def test_names_round_trip(
    user: str, project: str | None, want_user: str, want_project: str
) -> None:
    parts = parse_job_id(new_job_id(user, project))

    assert (parts.user, parts.project) == (want_user, want_project)


def test_the_old_format_ambiguity_is_gone() -> None:
    job_id = new_job_id("bob-x", "my-proj", datetime(2026, 11, 28, 14, 20, 53, 123456, UTC))

    assert re.fullmatch(r"20261128-142053123-[0-9a-z]{5}--bob-x--my-proj", job_id)
    assert parse_job_id(job_id) == JobIdParts(
        created=datetime(2026, 11, 28, 14, 20, 53, 123000, UTC),
        nonce=job_id[19:24],
        user="bob-x",
        project="my-proj",
    )


def test_naive_now_means_utc_and_aware_now_is_converted() -> None:
    naive = datetime(2026, 1, 1, 0, 30)
    aware = datetime(2026, 1, 1, 2, 30, tzinfo=timezone(timedelta(hours=2)))

    assert new_job_id("a", "b", naive).startswith("20260101-003000000-")
    assert new_job_id("a", "b", aware).startswith("20260101-003000000-")


def test_default_now_is_the_current_utc_time() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    created = parse_job_id(new_job_id("a", "b")).created
    after = datetime.now(UTC)

    assert before <= created <= after


def test_years_below_1000_are_zero_padded() -> None:
    job_id = new_job_id("a", "b", datetime(7, 3, 4, 5, 6, 7, 8000))

    assert job_id.startswith("00070304-050607008-")
    assert parse_job_id(job_id).created == datetime(7, 3, 4, 5, 6, 7, 8000, UTC)


def test_time_outside_utc_range_is_refused() -> None:
    with pytest.raises(InvalidJobIdError, match="outside years"):
        new_job_id("a", "b", datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))))


@pytest.mark.parametrize("bad", [1700000000, "2026-01-01", datetime(2026, 1, 1).date()])
def test_now_must_be_a_datetime(bad: Any) -> None:
    with pytest.raises(TypeError):
        new_job_id("a", "b", bad)


def test_sanitize_name_rejects_non_str_and_tiny_limits() -> None:
    with pytest.raises(TypeError):
        sanitize_name(12, USER_MAX)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_length"):
        sanitize_name("bob", 3)


# -- ordering and uniqueness --------------------------------------------------------------------


users = st.one_of(st.none(), st.text(max_size=20), st.sampled_from(["a", "zzz", "bob-x", "0"]))


@given(
    entries=st.lists(
        st.tuples(
            st.datetimes(
                min_value=datetime(2000, 1, 1),
                max_value=datetime(2099, 12, 31, 23, 59, 59, 999999),
                timezones=st.one_of(st.none(), st.just(UTC), offsets),
            ),
            users,
            users,
        ),
        min_size=2,
        max_size=30,
    )
)
def test_ids_sort_in_creation_order(entries: list[tuple[datetime, str | None, str | None]]) -> None:
    made = [(to_utc_millis(t), new_job_id(u, p, t)) for t, u, p in entries]

    for created_a, id_a in made:
        for created_b, id_b in made:
            if created_a < created_b:
                assert id_a < id_b
    by_id = [parse_job_id(job_id).created for job_id in sorted(job_id for _, job_id in made)]
    assert by_id == sorted(created for created, _ in made)


@given(
    earlier=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
    step=st.timedeltas(min_value=timedelta(milliseconds=1), max_value=timedelta(days=3650)),
)
def test_one_millisecond_later_sorts_later(earlier: datetime, step: timedelta) -> None:
    earlier = earlier.replace(microsecond=earlier.microsecond // 1000 * 1000)
    later = earlier + step
    assume(later.year <= 2099)

    # The later id gets the smallest possible names, the earlier one the largest.
    assert new_job_id("zzzzzzzzzzzz", "zzzzzzzzzzzzzzz", earlier) < new_job_id("0", "0", later)


def test_same_millisecond_ids_in_a_loop_are_distinct() -> None:
    now = datetime(2031, 5, 6, 7, 8, 9, 10000, UTC)

    ids = [new_job_id("alice", "proj", now) for _ in range(10_000)]

    assert len(set(ids)) == 10_000


def test_same_millisecond_ids_from_threads_are_distinct() -> None:
    now = datetime(2032, 5, 6, 7, 8, 9, 10000, UTC)
    per_thread = 2_000
    results: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def make(out: list[str]) -> None:
        start.wait()
        out.extend(new_job_id("alice", "proj", now) for _ in range(per_thread))

    threads = [threading.Thread(target=make, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    all_ids = [job_id for out in results for job_id in out]
    assert len(all_ids) == 8 * per_thread
    assert len(set(all_ids)) == len(all_ids)


# -- rejection ----------------------------------------------------------------------------------

GOOD = "20261128-142053123-k3x9q--alice--default"

MALFORMED = [
    pytest.param("", id="empty"),
    pytest.param("2026112-142053123-k3x9q--alice--default", id="short-date"),
    pytest.param("202611280-142053123-k3x9q--alice--default", id="long-date"),
    pytest.param("20261128-14205312-k3x9q--alice--default", id="short-time"),
    pytest.param("20261128-1420531234-k3x9q--alice--default", id="long-time"),
    pytest.param("20261128-142053-k3x9q--alice--default", id="no-millis"),
    pytest.param("20261128-142053123-k3x9--alice--default", id="short-nonce"),
    pytest.param("20261128-142053123-k3x9qq--alice--default", id="long-nonce"),
    pytest.param("20261128-142053123-k3x_q--alice--default", id="nonce-symbol"),
    pytest.param("20261328-142053123-k3x9q--alice--default", id="month-13"),
    pytest.param("20260230-142053123-k3x9q--alice--default", id="feb-30"),
    pytest.param("00001128-142053123-k3x9q--alice--default", id="year-0"),
    pytest.param("20261128-242053123-k3x9q--alice--default", id="hour-24"),
    pytest.param("20261128-146053123-k3x9q--alice--default", id="minute-60"),
    pytest.param("20261128-142060123-k3x9q--alice--default", id="second-60"),
    pytest.param("20261128-142053123-K3X9Q--alice--default", id="upper-nonce"),
    pytest.param("20261128-142053123-k3x9q--Alice--default", id="upper-user"),
    pytest.param("20261128-142053123-k3x9q--alice--Default", id="upper-project"),
    pytest.param("20261128-142053123-k3x9q--bob--x--proj", id="double-hyphen-in-name"),
    pytest.param("20261128-142053123-k3x9q--bob---proj", id="triple-hyphen"),
    pytest.param("20261128-142053123-k3x9q----default", id="empty-user"),
    pytest.param("20261128-142053123-k3x9q--alice--", id="empty-project"),
    pytest.param("20261128-142053123-k3x9q--alice", id="no-project"),
    pytest.param("20261128-142053123-k3x9q--alice-", id="trailing-hyphen-user"),
    pytest.param("20261128-142053123-k3x9q---alice--default", id="leading-hyphen-user"),
    pytest.param("20261128-142053123-k3x9q--alice--default-", id="trailing-hyphen-project"),
    pytest.param("20261128-142053123-k3x9q--alice---default", id="leading-hyphen-project"),
    pytest.param("20261128-142053123-k3x9q-alice-default", id="old-single-hyphens"),
    pytest.param("20261128-142053123-k3x9q--al ice--default", id="space"),
    pytest.param("20261128-142053123-k3x9q--alicé--default", id="non-ascii-name"),
    pytest.param("\uff120261128-142053123-k3x9q--alice--default", id="non-ascii-digit"),
    pytest.param(GOOD + "\n", id="trailing-newline"),
    pytest.param(" " + GOOD, id="leading-space"),
    pytest.param(f"20261128-142053123-k3x9q--{'u' * 13}--default", id="user-too-long"),
    pytest.param(f"20261128-142053123-k3x9q--alice--{'p' * 16}", id="project-too-long"),
    pytest.param(f"20261128-142053123-k3x9q--{'u' * 12}--{'p' * 20}", id="longer-than-56"),
    pytest.param("ascend-" + GOOD, id="job-name-not-id"),
]


def test_the_good_example_parses() -> None:
    assert parse_job_id(GOOD) == JobIdParts(
        created=datetime(2026, 11, 28, 14, 20, 53, 123000, UTC),
        nonce="k3x9q",
        user="alice",
        project="default",
    )
    assert is_job_id(GOOD)


def test_longest_possible_id_parses() -> None:
    longest = f"20261128-142053123-k3x9q--{'u' * USER_MAX}--{'p' * PROJECT_MAX}"

    assert len(longest) == 55
    assert parse_job_id(longest).project == "p" * PROJECT_MAX


@pytest.mark.parametrize("bad", MALFORMED)
def test_malformed_ids_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidJobIdError) as caught:
        parse_job_id(bad)

    assert repr(bad) in str(caught.value)
    assert "20261128-142053123-k3x9q--alice--default" in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert not is_job_id(bad)


@pytest.mark.parametrize("bad", [None, 20261128, b"20261128-142053123-k3x9q--alice--default"])
def test_non_str_is_rejected(bad: Any) -> None:
    with pytest.raises(InvalidJobIdError) as caught:
        parse_job_id(bad)

    assert repr(bad) in str(caught.value)
    assert not is_job_id(bad)


def test_uppercase_id_suggests_the_lowercase_one() -> None:
    with pytest.raises(InvalidJobIdError, match="lowercase") as caught:
        parse_job_id(GOOD.upper())

    assert repr(GOOD) in str(caught.value)


def test_why_is_in_the_message() -> None:
    with pytest.raises(InvalidJobIdError, match="not real"):
        parse_job_id("20261328-142053123-k3x9q--alice--default")
    with pytest.raises(InvalidJobIdError, match="at most 56"):
        parse_job_id("x" * 57)


@given(text=st.text(max_size=80))
def test_is_job_id_agrees_with_parse(text: str) -> None:
    try:
        parse_job_id(text)
    except InvalidJobIdError:
        assert not is_job_id(text)
    else:
        assert is_job_id(text)


# -- Kubernetes names ---------------------------------------------------------------------------


@given(user=names, project=names, now=times)
def test_job_name_round_trip(user: str | None, project: str | None, now: datetime) -> None:
    job_id = new_job_id(user, project, now)

    name = job_name(job_id)

    assert name == "ascend-" + job_id
    assert len(name) <= 63
    assert DNS1123_LABEL.match(name)
    assert job_id_from_name(name) == job_id


@pytest.mark.parametrize("bad", MALFORMED)
def test_job_name_rejects_malformed_ids(bad: str) -> None:
    with pytest.raises(InvalidJobIdError, match=re.escape(repr(bad))):
        job_name(bad)


@pytest.mark.parametrize(
    "bad",
    [
        GOOD,  # an id, not a name
        "ascend-",
        "Ascend-" + GOOD,
        "ascend" + GOOD,
        "other-" + GOOD,
        "ascend-ascend-" + GOOD,
        "ascend-" + GOOD + "--x",
        "ascend-20261328-142053123-k3x9q--alice--default",
        "ascend-20261128-142053123-k3x9q--bob--x--proj",
        None,
    ],
)
def test_job_id_from_name_rejects_other_names(bad: Any) -> None:
    with pytest.raises(InvalidJobIdError) as caught:
        job_id_from_name(bad)

    assert repr(bad) in str(caught.value)
