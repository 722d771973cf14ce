"""The clock of a data subject request: one calendar month, extendable once by two more.

GDPR Art. 12(3): the controller answers "without undue delay and in any event within one month
of receipt"; the period "may be extended by two further months where necessary", and the
customer must be told of the extension within the first month. A month is a calendar month
(``dateutil.relativedelta``): 31 January + 1 month is 28 February (29 in a leap year), the
last day of the shorter month, never 3 March. Times are UTC: a request received at 23:30 UTC
is due at 23:30 UTC a month later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dateutil.relativedelta import relativedelta

#: One month from receipt (GDPR Art. 12(3)).
ANSWER_MONTHS = 1
#: By up to two further months, once.
MAX_EXTENSION_MONTHS = 2
#: ``received_at`` may lie this far back at most: a request older than the longest possible
#: deadline (1 + 2 months) is a typo, not a request still to be answered.
MAX_AGE_MONTHS = ANSWER_MONTHS + MAX_EXTENSION_MONTHS
#: Clock skew tolerated between the officer's machine and guard's for ``received_at``.
FUTURE_TOLERANCE = timedelta(minutes=5)


def due_at(received_at: datetime) -> datetime:
    """When a request received at ``received_at`` must be answered: one calendar month later."""
    return _utc(received_at) + relativedelta(months=ANSWER_MONTHS)


def extended_due_at(received_at: datetime, months: int) -> datetime:
    """The deadline once extended by ``months`` (1 or 2) further calendar months."""
    if not 1 <= months <= MAX_EXTENSION_MONTHS:
        msg = f"months must be between 1 and {MAX_EXTENSION_MONTHS}"
        raise ValueError(msg)
    return _utc(received_at) + relativedelta(months=ANSWER_MONTHS + months)


def earliest_receipt(now: datetime) -> datetime:
    """The oldest ``received_at`` a new request may have (``MAX_AGE_MONTHS`` before ``now``)."""
    return _utc(now) - relativedelta(months=MAX_AGE_MONTHS)


@dataclass(frozen=True)
class Clock:
    """Where a request stands against its deadline.

    ``time_left_seconds``: until ``due_at`` (negative once past), None once the request is
    closed. ``overdue``: an open request past its deadline, or a closed one closed after it.
    """

    due_at: datetime
    time_left_seconds: int | None
    overdue: bool
    #: When the request was closed within its deadline (the clock stopped in time).
    met_at: datetime | None


def clock(due: datetime, *, now: datetime, closed_at: datetime | None = None) -> Clock:
    """The clock of a request due at ``due`` as of ``now``."""
    if closed_at is not None:
        late = closed_at > due
        return Clock(due, None, late, None if late else closed_at)
    left = int((due - now).total_seconds())
    return Clock(due, left, now > due, None)


def clock_words(time_left_seconds: int | None, *, overdue: bool) -> str:
    """A clock in words: ``3 d 4 h left``, ``overdue by 5 h 10 min``, ``closed in time``."""
    if time_left_seconds is None:
        return "closed late" if overdue else "closed in time"
    seconds = abs(time_left_seconds)
    days, rest = divmod(seconds, 86_400)
    text = f"{days} d {rest // 3600} h" if days else f"{rest // 3600} h {rest % 3600 // 60} min"
    return f"overdue by {text}" if overdue else f"{text} left"


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        msg = "naive datetime; use an aware UTC datetime"
        raise ValueError(msg)
    return value.astimezone(UTC)
