"""Data subject requests: the deadline arithmetic, the service's rules, and ``guard subjects``.

The deadline tests are pure; the rest run the real service (and the command line on it) over
an app's database, SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import json
import re
import stat
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import pyzipper
from click.testing import CliRunner, Result

from guard.subjects.cli import subjects as subjects_cli
from guard.subjects.deadlines import clock, due_at, earliest_receipt, extended_due_at
from guard.subjects.errors import (
    RequestConflictError,
    RequestNotFoundError,
    SubjectInputError,
)
from tests.subjects.conftest import ALICE, Customers

if TYPE_CHECKING:
    from pathlib import Path

    from guard.subjects.service import Actor, SubjectService
    from tests.fixtures.api import Api

IDENTITY = "verified the caller's date of birth and last order number"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# ---------------------------------------------------------------------- the deadline


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (utc(2024, 1, 31, 9, 30), utc(2024, 2, 29, 9, 30)),  # leap year: the last day of Feb
        (utc(2023, 1, 31, 9, 30), utc(2023, 2, 28, 9, 30)),
        (utc(2024, 1, 30), utc(2024, 2, 29)),
        (utc(2024, 3, 31), utc(2024, 4, 30)),
        (utc(2024, 2, 29), utc(2024, 3, 29)),
        (utc(2024, 12, 15, 23, 59), utc(2025, 1, 15, 23, 59)),
    ],
)
def test_when_a_request_is_received_then_it_is_due_one_calendar_month_later(
    received: datetime, due: datetime
) -> None:
    assert due_at(received) == due


def test_when_a_deadline_is_extended_then_by_one_or_two_further_months_only() -> None:
    received = utc(2024, 1, 31)
    assert extended_due_at(received, 1) == utc(2024, 3, 31)
    assert extended_due_at(received, 2) == utc(2024, 4, 30)
    for months in (0, 3, -1):
        with pytest.raises(ValueError, match="between 1 and 2"):
            extended_due_at(received, months)
    assert earliest_receipt(utc(2024, 5, 31)) == utc(2024, 2, 29)
    with pytest.raises(ValueError, match="naive"):
        due_at(datetime(2024, 1, 31))  # noqa: DTZ001 - the point of the test


def test_the_clock_says_time_left_overdue_and_met() -> None:
    due = utc(2024, 2, 29, 12)
    ticking = clock(due, now=utc(2024, 2, 28, 12))
    assert (ticking.time_left_seconds, ticking.overdue, ticking.met_at) == (86_400, False, None)
    late = clock(due, now=utc(2024, 3, 1, 12))
    assert (late.time_left_seconds, late.overdue) == (-86_400, True)
    in_time = clock(due, now=utc(2024, 4, 1), closed_at=utc(2024, 2, 20))
    assert (in_time.time_left_seconds, in_time.overdue, in_time.met_at) == (
        None,
        False,
        utc(2024, 2, 20),
    )
    closed_late = clock(due, now=utc(2024, 4, 1), closed_at=utc(2024, 3, 2))
    assert (closed_late.overdue, closed_late.met_at) == (True, None)


# ---------------------------------------------------------------------- the service's rules


def test_when_extending_then_it_must_be_once_and_within_the_first_month(
    api: Api, customers: Customers, subjects: SubjectService, officer: Actor
) -> None:
    received = datetime.now(UTC) - timedelta(days=10)
    opened = subjects.open(
        actor=officer,
        kind="access",
        record_id=customers.alice,
        identity_check=IDENTITY,
        received_at=received,
    )
    past_due = opened.due_at + timedelta(minutes=1)
    with pytest.raises(RequestConflictError, match="deadline has passed"):
        subjects.extend(actor=officer, request_id=opened.id, reason="archives", now=past_due)
    with pytest.raises(SubjectInputError, match="months"):
        subjects.extend(actor=officer, request_id=opened.id, reason="archives", months=3)
    with pytest.raises(SubjectInputError, match="reason"):
        subjects.extend(actor=officer, request_id=opened.id, reason="   ", months=1)
    extended = subjects.extend(
        actor=officer, request_id=opened.id, reason="three archives to search", months=1
    )
    assert extended.due_at == extended_due_at(opened.received_at, 1)
    assert subjects.get(tenant="acme", request_id=opened.id).extended is True
    with pytest.raises(RequestConflictError, match="extended once already"):
        subjects.extend(actor=officer, request_id=opened.id, reason="more archives", months=1)
    outcomes = [
        (e["outcome"], e["details"].get("reason"))
        for e in api.services.audit.search_events(action="subjects.extend")
    ]
    assert outcomes == [
        ("failure", "request-conflict"),
        ("failure", "invalid-input"),
        ("failure", "invalid-input"),
        ("success", "three archives to search"),
        ("failure", "request-conflict"),
    ]


def test_when_a_request_was_received_long_ago_then_it_is_overdue_at_once(
    customers: Customers, subjects: SubjectService, officer: Actor
) -> None:
    opened = subjects.open(
        actor=officer,
        kind="erasure",
        record_id=customers.bob,
        identity_check=IDENTITY,
        received_at=datetime.now(UTC) - timedelta(days=45),
    )
    assert opened.overdue is True
    assert opened.time_left_seconds is not None
    assert opened.time_left_seconds < -10 * 86_400
    naive = datetime(2024, 1, 1)  # noqa: DTZ001 - refused
    with pytest.raises(SubjectInputError, match="time zone"):
        subjects.open(
            actor=officer,
            kind="erasure",
            record_id=customers.bob,
            identity_check=IDENTITY,
            received_at=naive,
        )


def test_when_the_id_is_unknown_or_another_tenants_then_not_found_alike(
    customers: Customers, subjects: SubjectService, officer: Actor
) -> None:
    opened = subjects.open(
        actor=officer, kind="access", record_id=customers.alice, identity_check=IDENTITY
    )
    from guard.subjects.service import Actor  # noqa: PLC0415

    stranger = Actor(principal="officer-9", tenant="globex", role="compliance_officer")
    messages = set()
    for actor, request_id in (
        (stranger, opened.id),
        (officer, str(uuid.uuid4())),
        (officer, "x" * 300),
        (officer, "'; DROP TABLE subject_requests; --"),
    ):
        with pytest.raises(RequestNotFoundError) as caught:
            subjects.close(actor=actor, request_id=request_id, outcome="rejected", reason="nope!")
        messages.add(caught.value.message)
    assert messages == {"no subject request with this id in this tenant"}
    assert subjects.get(tenant="acme", request_id=opened.id).status == "open"


# ---------------------------------------------------------------------- guard subjects


def request_id_in(result: Result) -> str:
    """The request id ``open`` printed."""
    assert result.exit_code == 0, result.output
    found = re.search(r"request ([0-9a-f-]{36})", result.stdout)
    assert found is not None, result.output
    return found.group(1)


def run(api: Api, *args: str) -> Result:
    """``guard subjects ...`` on the app's own services (what ``guard`` builds from settings)."""
    return CliRunner().invoke(subjects_cli, list(args), obj=api.services, catch_exceptions=False)


def test_when_an_operator_works_a_request_from_the_cli_then_it_is_the_same_service(
    api: Api, customers: Customers, tmp_path: Path
) -> None:
    opened = run(
        api,
        "open",
        "--tenant",
        "acme",
        "--kind",
        "portability",
        "--email",
        ALICE["email"],
        "--identity-check",
        f"{ALICE['full_name']} confirmed her postcode",
    )
    assert opened.exit_code == 0, opened.output
    request_id = request_id_in(opened)
    shown = json.loads(run(api, "show", request_id, "--tenant", "acme", "--json").output)
    assert shown["record_id"] == customers.alice
    assert "Philippa" not in shown["identity_check"]
    listed = run(api, "list", "--tenant", "acme")
    assert request_id in listed.output
    assert "left)" in listed.output

    out = tmp_path / "package.zip"
    made = run(api, "package", request_id, "--tenant", "acme", "--out", str(out))
    assert made.exit_code == 0, made.output
    passphrase = made.stdout.strip()  # stdout holds the passphrase alone; the rest is stderr
    assert len(passphrase) == 34
    assert "another channel" in made.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with pyzipper.AESZipFile(io.BytesIO(out.read_bytes())) as archive:
        archive.setpassword(passphrase.encode())
        assert json.loads(archive.read("record.json"))["fields"]["email"] == ALICE["email"]

    closed = run(
        api,
        "close",
        request_id,
        "--tenant",
        "acme",
        "--outcome",
        "fulfilled",
        "--reason",
        "package sent by post, passphrase read out on a call",
    )
    assert closed.exit_code == 0, closed.output
    assert "fulfilled" in closed.output
    actions = [
        e["action"]
        for e in api.services.audit.search_events(principal="cli")
        if e["action"].startswith("subjects.")
    ]
    assert actions == [
        "subjects.open",
        "subjects.read",
        "subjects.list",
        "subjects.package",
        "subjects.close",
    ]
    assert passphrase not in json.dumps(api.services.audit.search_events(limit=10_000))


def test_when_the_cli_erases_then_it_needs_yes_and_a_bad_id_is_one_line(
    api: Api, customers: Customers
) -> None:
    opened = run(
        api,
        "open",
        "--tenant",
        "acme",
        "--kind",
        "erasure",
        "--record-id",
        customers.bob,
        "--identity-check",
        "caller confirmed the account number",
    )
    request_id = request_id_in(opened)
    unconfirmed = run(api, "erase", request_id, "--tenant", "acme")
    assert unconfirmed.exit_code == 2
    assert "--yes" in unconfirmed.output
    assert api.client.get(f"/v1/records/{customers.bob}", headers=api.headers("agent")).is_success
    erased = run(api, "erase", request_id, "--tenant", "acme", "--yes")
    assert erased.exit_code == 0, erased.output
    assert "fulfilled: erased" in erased.output
    gone = api.client.get(f"/v1/records/{customers.bob}", headers=api.headers("agent"))
    assert gone.status_code == 410

    for args in (
        ("show", str(uuid.uuid4()), "--tenant", "acme"),
        ("erase", request_id, "--tenant", "acme", "--yes"),
        ("open", "--tenant", "acme", "--kind", "access", "--email", "no.one@example.com",
         "--identity-check", "asked her security questions"),
    ):  # fmt: skip
        failed = run(api, *args)
        assert failed.exit_code == 1, failed.output
        (line,) = failed.stderr.splitlines()
        assert line.startswith("guard: error: ")
        assert "no.one@example.com" not in failed.output
        assert "Traceback" not in failed.output
    both = run(api, "open", "--tenant", "acme", "--kind", "access", "--email", "a@b.example",
               "--phone", "+1 415 555 0100", "--identity-check", "two ways")  # fmt: skip
    assert both.exit_code == 2
    assert "exactly one" in both.output
