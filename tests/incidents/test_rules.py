"""The shipped detection rules (audit/rules/*.yml) on realistic audit streams.

Every rule fires on the event sequence it is written for and stays silent on a normal working
day of a support desk (agents reading a few dozen customers an hour, searches, redactions, an
occasional single denial, a reveal at 14:00, one erasure, a policy reload by an admin ...).
Synthetic events are shaped exactly like stored rows (details and entity counts as canonical
JSON text); where guard can produce the events cheaply, the real app produces them and its
stored trail is fed to the evaluator, which proves the rules name the fields guard really logs.
"""

from __future__ import annotations

import functools
import hashlib
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from guard.audit.chain import canonical_json
from guard.audit.schemas import AuditFilters
from guard.config import PROJECT_ROOT
from guard.incidents.sigma import Evaluator, Hit, RuleSet

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from tests.fixtures.api import Api, OpenApi

Event = dict[str, Any]
Group = tuple[tuple[str, str | None], ...]

RULES_DIR = PROJECT_ROOT / "audit" / "rules"
RUNBOOKS = frozenset(
    {
        "unauthorized-access",
        "bulk-access",
        "misdirected-message",
        "audit-tampering",
        "data-integrity",
        "mass-erasure",
    }
)
#: The issue's list of what the shipped rules must catch: family -> the rules that do.
REQUIRED_FAMILIES: dict[str, tuple[str, ...]] = {
    "repeated authorization denials by one principal": ("repeated_authorization_denials",),
    "failed authentications against one key prefix": (
        "repeated_api_key_authentication_failures",
        "authentication_throttled",
    ),
    "bulk record reads, searches or reveals": (
        "bulk_record_reads",
        "bulk_record_searches",
        "bulk_record_reveals",
    ),
    "a reveal outside working hours": ("reveal_outside_working_hours",),
    "an outgoing message blocked for another customer's data": ("message_blocked_other_customer",),
    "tool-proxy budget refusals": ("repeated_tool_budget_refusals",),
    "audit chain verification failure": ("audit_chain_verification_failed",),
    "record integrity failures": ("record_integrity_failure",),
    "key retirement or rotation failure": ("key_rotation_failed", "key_retirement_refused"),
    "an erasure burst": ("erasure_burst",),
    "policy reload by an unusual principal": ("policy_reload_unusual_principal",),
    "denials followed by harvesting through the tools (temporal)": (
        "denials_then_tool_harvesting",
    ),
}

# A Tuesday; the desk works 08:00-18:00 (UTC in these tests unless a time zone is given).
DAY = datetime(2026, 12, 1, tzinfo=UTC)
NO_HASH = "0" * 64


def principal_id(name: str) -> str:
    """A stable API-key-style principal id (a UUID) for a named actor."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"guard-test:{name}"))


def customer(number: int) -> str:
    """The keyed-hash-shaped ``customer`` value (64 hex) of customer ``number``."""
    return hashlib.sha256(f"customer-{number}".encode()).hexdigest()


AGENTS = [principal_id(f"agent-{i}") for i in range(6)]
SUPERVISORS = [principal_id(f"supervisor-{i}") for i in range(2)]
ADMIN = principal_id("admin")
OFFICER = principal_id("compliance-officer")
ANALYST = principal_id("analyst")
#: The agent whose key is stolen in the attack scenarios.
STOLEN = AGENTS[4]
#: A key with no other traffic that day, for counts exactly at a threshold (an integration).
NEWCOMER = principal_id("integration")
SECOND_ADMIN = principal_id("admin-2")
GUESSED_PREFIX = "key:Zq3f9XbA"


def at(hour: int, minute: int = 0, second: int = 0, *, day: datetime = DAY) -> datetime:
    """A time on ``day``."""
    return day.replace(hour=hour, minute=minute, second=second)


def event(
    ts: datetime,
    action: str,
    *,
    principal: str | None,
    role: str | None,
    resource: str = "records",
    decision: str = "allow",
    outcome: str = "success",
    customer: str | None = None,
    entity_counts: dict[str, int] | None = None,
    details: dict[str, str | int | bool] | None = None,
    tenant: str | None = "acme",
) -> Event:
    """One audit event as the audit_events table stores it (``seq`` is set by ``stream``)."""
    return {
        "seq": 0,
        "ts": ts,
        "principal": principal,
        "role": role,
        "tenant": tenant if principal is not None else None,
        "action": action,
        "resource": resource,
        "decision": decision,
        "outcome": outcome,
        "request_id": uuid.uuid4().hex,
        "customer": customer,
        "entity_counts": canonical_json(entity_counts or {}),
        "details": canonical_json(details or {}),
        "prev_hash": NO_HASH,
        "hash": NO_HASH,
        "hmac": NO_HASH,
    }


def stream(*parts: Iterable[Event]) -> list[Event]:
    """The parts merged in time order, numbered 1..n as the chain numbers them."""
    merged = sorted((dict(e) for part in parts for e in part), key=lambda e: e["ts"])
    for seq, row in enumerate(merged, start=1):
        row["seq"] = seq
    return merged


# ------------------------------------------------------------------------- event builders


def read(ts: datetime, who: str, number: int, *, role: str = "agent") -> Event:
    return event(
        ts,
        "records.read",
        principal=who,
        role=role,
        customer=customer(number),
        details={"fields_shown": 6},
    )


def denial(ts: datetime, who: str, action: str, resource: str, *, role: str = "agent") -> Event:
    """An HTTP 403 as guard.api.security records it."""
    return event(
        ts,
        action,
        principal=who,
        role=role,
        resource=resource,
        decision="deny",
        outcome="failure",
        details={"reason": "forbidden", "status": 403, "path_hash": NO_HASH},
    )


def failed_auth(ts: datetime, prefix: str, resource: str = "/v1/records") -> Event:
    """A 401 recorded as its own event (the first of its client's window)."""
    return event(
        ts,
        "records.list",
        principal=None,
        role=None,
        resource=resource,
        decision="deny",
        outcome="failure",
        details={"reason": "unauthenticated", "status": 401, "key_prefix": prefix},
    )


def refusal_aggregate(ts: datetime, **by_status: int) -> Event:
    """The ``auth.refusals`` event of one client's window (guard/access/throttle.py)."""
    details: dict[str, str | int | bool] = {
        "aggregate": True,
        "refusals": sum(by_status.values()),
        "client_hash": hashlib.sha256(b"client").hexdigest(),
        "window_start": ts.isoformat(timespec="seconds"),
        "window_ms": 60_000,
        **by_status,
    }
    return event(
        ts,
        "auth.refusals",
        principal=None,
        role=None,
        resource="client",
        decision="deny",
        outcome="failure",
        details=details,
    )


def reveal(ts: datetime, who: str, number: int, *, role: str = "supervisor") -> Event:
    return event(
        ts,
        "records.reveal",
        principal=who,
        role=role,
        customer=customer(number),
        details={"reason": "Chargeback dispute, customer on the phone"},
    )


def token_reveal(ts: datetime, who: str) -> Event:
    return event(
        ts,
        "token.reveal",
        principal=who,
        role="supervisor",
        resource="text",
        details={"reason": "Refund needs the card holder name", "tokens": 2},
    )


def message_check(
    ts: datetime, who: str, number: int, *, verdict: str = "allow", **findings: int
) -> Event:
    """A message.check event with the counts MessageCheck.audit_details records."""
    details: dict[str, str | int | bool] = {
        "verdict": verdict,
        "other_customer_findings": 0,
        "credential_findings": 0,
        "own_data_findings": 0,
        "pii_findings": 0,
        "tone_findings": 0,
        "foreign_records": 0,
        **findings,
    }
    if details["foreign_records"]:
        details["foreign_customers"] = customer(999_999)
    return event(
        ts,
        "message.check",
        principal=who,
        role="agent",
        resource="channel:message",
        customer=customer(number),
        entity_counts={"EMAIL_ADDRESS": 1} if verdict != "allow" else {},
        details=details,
    )


def tool_call(
    ts: datetime, who: str, number: int, *, tool: str = "lookup_customer", reason: str | None = None
) -> Event:
    """A tool.call as guard/proxy/service.py records it (refused when ``reason`` is given)."""
    if reason is None:
        return event(
            ts,
            "tool.call",
            principal=who,
            role="agent",
            resource=f"tool:{tool}",
            customer=customer(number),
            entity_counts={"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1},
            details={"latency_ms": 42, "upstream_status": 200},
        )
    details: dict[str, str | int | bool] = {"reason": reason}
    if reason == "budget-exceeded":
        details["retry_after"] = 600
    return event(
        ts,
        "tool.call",
        principal=who,
        role="agent",
        resource=f"tool:{tool}",
        decision="deny",
        outcome="failure",
        customer=customer(number),
        details=details,
    )


def cli(
    ts: datetime, action: str, resource: str, *, outcome: str = "success", **details: Any
) -> Event:
    """An event of a guard command (principal ``cli``)."""
    return event(
        ts,
        action,
        principal="cli",
        role=None,
        resource=resource,
        decision="deny" if action == "keys.retire" and outcome == "failure" else "allow",
        outcome=outcome,
        details=details,
        tenant=None,
    )


def erase(ts: datetime, number: int, who: str = ADMIN) -> Event:
    return event(
        ts,
        "records.erase",
        principal=who,
        role="admin",
        customer=customer(number),
        details={"crypto_shredded": True},
    )


def every(start: datetime, step: timedelta, count: int) -> list[datetime]:
    """``count`` moments from ``start``, ``step`` apart."""
    return [start + step * i for i in range(count)]


# ----------------------------------------------------------------------- a normal working day


def _conversation(rng: random.Random, start: datetime, who: str, number: int) -> list[Event]:
    """An agent handling one customer: search, read, reply checked, maybe an update or a tool."""
    out = [
        event(
            start,
            "records.search",
            principal=who,
            role="agent",
            details={"by": rng.choice(["email", "phone", "account_id"]), "matches": 1},
        ),
        event(
            start + timedelta(seconds=1),
            "records.read",
            principal=who,
            role="agent",
            customer=customer(number),
            details={"via": "search"},
        ),
        read(start + timedelta(seconds=40), who, number),
        message_check(
            start + timedelta(minutes=3),
            who,
            number,
            verdict=rng.choice(["allow", "allow", "redact"]),
        ),
    ]
    if rng.random() < 0.3:
        out.append(
            event(
                start + timedelta(minutes=4),
                "records.update",
                principal=who,
                role="agent",
                customer=customer(number),
                entity_counts={"ADDRESS": 1},
                details={"fields": 1},
            )
        )
    if rng.random() < 0.5:
        out.append(tool_call(start + timedelta(minutes=2), who, number))
    return out


@functools.cache
def working_day(day: datetime = DAY) -> tuple[Event, ...]:
    """A plausible mixed audit stream for a support desk's working day (about 4,500 events).

    Cached: ``stream`` copies every event before numbering it.
    """
    rng = random.Random(11)  # noqa: S311 - a reproducible test stream, not a secret
    out: list[Event] = []
    for index, agent in enumerate(AGENTS):
        # one busy agent handles 40 customers an hour ("dozens"), the others a dozen
        per_hour = 40 if index == 0 else 12
        for hour in (8, 9, 10, 11, 13, 14, 15, 16, 17):
            for slot in range(per_hour):
                number = index * 10_000 + hour * 100 + slot
                start = at(hour, day=day) + timedelta(seconds=rng.randrange(0, 3300))
                out += _conversation(rng, start, agent, number)
    for index, supervisor in enumerate(SUPERVISORS):  # escalations: a few records an hour
        for hour in range(9, 18):
            for slot in range(5):
                moment = at(hour, day=day) + timedelta(minutes=rng.randrange(0, 58))
                out.append(
                    read(
                        moment,
                        supervisor,
                        50_000 + index * 1000 + hour * 10 + slot,
                        role="supervisor",
                    )
                )
    out += [
        # reveals, each for a stated reason, while the desk is staffed
        reveal(at(10, 20, day=day), SUPERVISORS[0], 42),
        reveal(at(14, 0, day=day), SUPERVISORS[0], 43),
        reveal(at(16, 45, day=day), SUPERVISORS[1], 44),
        token_reveal(at(11, 15, day=day), SUPERVISORS[1]),
        # a supervisor reads (does not reveal) a record after hours: allowed, not an incident
        read(at(19, 30, day=day), SUPERVISORS[1], 45, role="supervisor"),
        # occasional single denials
        denial(at(10, 42, day=day), AGENTS[1], "records.reveal", "/v1/records/{record_id}/reveal"),
        tool_call(at(14, 10, day=day), AGENTS[2], 7, tool="issue_refund", reason="forbidden"),
        denial(at(16, 0, day=day), AGENTS[3], "records.erase", "/v1/records/{record_id}"),
        denial(at(16, 1, day=day), AGENTS[3], "records.erase", "/v1/records/{record_id}"),
        # a mistyped key, probes without credentials, expired tokens, one small aggregate
        failed_auth(at(9, 1, day=day), "key:Ab12Cd34"),
        *(failed_auth(at(h, 30, day=day), "none", "unmatched") for h in range(8, 18, 2)),
        *(failed_auth(at(13, m, day=day), "jwt") for m in (5, 6, 7)),
        refusal_aggregate(at(9, 2, day=day), status_401=2),
        # one budget refusal for the busy agent late in a long hour
        tool_call(at(15, 40, day=day), AGENTS[0], 77, reason="budget-exceeded"),
        # a reply blocked for a secret (not another customer's data); a read of a missing id
        message_check(at(11, 30, day=day), AGENTS[2], 8, verdict="block", credential_findings=1),
        event(
            at(10, 5, day=day),
            "records.read",
            principal=AGENTS[1],
            role="agent",
            customer=customer(123_456),
            outcome="failure",
            details={"reason": "not-found"},
        ),
        # administration: one erasure request in the morning, one in the afternoon
        erase(at(11, 0, day=day), 900),
        erase(at(16, 10, day=day), 901),
        event(
            at(9, 5, day=day),
            "policy.reload",
            principal=ADMIN,
            role="admin",
            resource="policy",
            details={"lines": 42},
        ),
        event(
            at(8, 5, day=day),
            "policy.reload",
            principal=None,
            role=None,
            resource="policy",
            details={"lines": 42},
            tenant=None,
        ),
        # the operator's morning: a key rotation, an old version retired, a reindex
        cli(at(7, 30, day=day), "keys.create_version", "keys", provider="keyring", version=3),
        cli(
            at(7, 31, day=day),
            "keys.rotate",
            "keys",
            version=3,
            rewrapped=5000,
            skipped=0,
            failed=0,
            remaining=0,
            resumed=False,
        ),
        cli(at(7, 40, day=day), "keys.retire", "keys", version=1),
        cli(
            at(7, 50, day=day),
            "records.reindex",
            "records",
            indexed=5000,
            skipped=0,
            failed=0,
            blank=3,
            interrupted=False,
        ),
        # the compliance officer: reviews and a verification, all intact
        event(
            at(9, 30, day=day),
            "audit.verify",
            principal=OFFICER,
            role="compliance_officer",
            resource="audit",
            details={"events": 120_000, "ok": True},
        ),
        event(
            at(9, 35, day=day),
            "audit.search",
            principal=OFFICER,
            role="compliance_officer",
            resource="audit:events",
            details={"results": 100},
        ),
        cli(at(17, 55, day=day), "audit.verify", "audit", events=123_000, ok=True),
        # an analyst pages through records (pseudonyms) for a report
        *(
            event(
                at(13, 2 * i, day=day),
                "records.list",
                principal=ANALYST,
                role="analyst",
                details={"count": 50},
            )
            for i in range(20)
        ),
        *(read(at(13, i, day=day), ANALYST, 70_000 + i, role="analyst") for i in range(30)),
    ]
    return tuple(out)


# -------------------------------------------------------------------------------- evaluation


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return RuleSet.load(RULES_DIR)


def run(rules: RuleSet, events: Iterable[Event], *, timezone: str = "UTC") -> list[Hit]:
    """Every hit of the rules over ``events`` (fed in seq order)."""
    evaluator = Evaluator(rules, timezone=timezone)
    hits: list[Hit] = []
    for row in events:
        hits.extend(evaluator.feed(row))
    return hits


def fired(hits: Iterable[Hit]) -> set[str]:
    return {hit.rule.name or hit.rule.id for hit in hits}


def hits_of(hits: Iterable[Hit], name: str) -> list[Hit]:
    return [hit for hit in hits if hit.rule.name == name]


@pytest.fixture(scope="module")
def day_hits(rules: RuleSet) -> list[Hit]:
    return run(rules, stream(working_day()))


# ------------------------------------------------------------------------ the rule files


def test_when_the_shipped_rules_load_then_each_has_a_runbook_level_and_description(
    rules: RuleSet,
) -> None:
    files = {path.name for path in RULES_DIR.glob("*.yml")}
    assert len(files) >= 10
    assert {Path(rule.source).name for rule in rules.rules} == files
    ids = [rule.id for rule in rules.rules]
    assert len(ids) == len(set(ids))
    for rule in rules.rules:
        assert rule.runbook in RUNBOOKS, rule.title
        assert rule.level in {"informational", "low", "medium", "high", "critical"}, rule.title
        assert len(rule.description) > 80, rule.title
        assert rule.name is not None, rule.title
        assert uuid.UUID(rule.id), rule.title
        if rule.level == "informational":
            assert not rule.generates, f"{rule.title}: a building block must not alert alone"


def test_when_the_shipped_rules_load_then_every_required_family_is_present(
    rules: RuleSet,
) -> None:
    generating = {rule.name: rule for rule in rules.rules if rule.generates}
    for family, names in REQUIRED_FAMILIES.items():
        for name in names:
            assert name in generating, f"{family}: no generating rule {name!r}"
    assert generating["denials_then_tool_harvesting"].kind == "temporal_ordered"
    assert generating["bulk_record_reads"].kind == "value_count"


# --------------------------------------------------------------------- a normal working day


def test_when_a_normal_working_day_is_replayed_then_it_is_a_busy_day(day_hits: list[Hit]) -> None:
    events = stream(working_day())
    assert len(events) > 4000
    assert {e["action"] for e in events} >= {
        "records.read",
        "records.search",
        "records.reveal",
        "token.reveal",
        "records.erase",
        "message.check",
        "tool.call",
        "policy.reload",
        "audit.verify",
        "keys.rotate",
        "keys.retire",
        "auth.refusals",
    }
    assert day_hits == []


GENERATING = sorted(name for names in REQUIRED_FAMILIES.values() for name in names)


@pytest.mark.parametrize("name", GENERATING)
def test_when_a_normal_working_day_is_replayed_then_the_rule_does_not_fire(
    day_hits: list[Hit], name: str
) -> None:
    assert hits_of(day_hits, name) == []


# ---------------------------------------------------------------------- attacks, one per rule


def stolen_key_probes(start: datetime) -> list[Event]:
    """A stolen agent key tries what it can reach: 12 refusals in 6 minutes."""
    targets = [
        ("records.erase", "/v1/records/{record_id}"),
        ("records.reveal", "/v1/records/{record_id}/reveal"),
        ("audit.read", "/v1/audit/events"),
        ("principal.manage", "/v1/admin/principals"),
    ]
    return [
        denial(moment, STOLEN, *targets[i % len(targets)])
        for i, moment in enumerate(every(start, timedelta(seconds=30), 12))
    ]


def bulk_reads(start: datetime, who: str = STOLEN, customers: int = 120) -> list[Event]:
    """``customers`` different records read in 40 minutes."""
    step = timedelta(minutes=40) / customers
    return [
        read(moment, who, 900_000 + i) for i, moment in enumerate(every(start, step, customers))
    ]


def probe_then_harvest(
    start: datetime, *, harvester: str = STOLEN, gap: timedelta = timedelta(minutes=5)
) -> list[Event]:
    """Two refusals of STOLEN, then ``harvester`` looks up 30 customers and hits the budget twice.

    ``gap`` is from the refusals to the first lookup (negative: the harvesting comes first).
    """
    probes = [
        denial(start, STOLEN, "records.reveal", "/v1/records/{record_id}/reveal"),
        tool_call(
            start + timedelta(minutes=1), STOLEN, 600, tool="issue_refund", reason="forbidden"
        ),
    ]
    first = start + gap
    lookups = [
        tool_call(m, harvester, 600 + i)
        for i, m in enumerate(every(first, timedelta(minutes=1), 30))
    ]
    refused = [
        tool_call(first + timedelta(minutes=31 + i), harvester, 700 + i, reason="budget-exceeded")
        for i in range(2)
    ]
    return probes + lookups + refused


@dataclass(frozen=True)
class Scenario:
    """An attack (or accident) injected into a normal day, and the rule and group it must fire."""

    id: str
    rule: str
    events: Callable[[], list[Event]]
    group: Group = ()
    #: Other rules the same events rightly fire (the parts of a correlation).
    also: frozenset[str] = frozenset()


SCENARIOS = [
    Scenario(
        "stolen key probes what it can reach",
        "repeated_authorization_denials",
        lambda: stolen_key_probes(at(15, 0)),
        (("principal", STOLEN),),
    ),
    Scenario(
        "one key's secret guessed from five addresses",
        "repeated_api_key_authentication_failures",
        lambda: [failed_auth(m, GUESSED_PREFIX) for m in every(at(3, 10), timedelta(minutes=1), 5)],
        (("details.key_prefix", GUESSED_PREFIX),),
    ),
    Scenario(
        "a client throttled after guessing",
        "authentication_throttled",
        lambda: [
            failed_auth(at(3, 10), GUESSED_PREFIX),
            refusal_aggregate(at(3, 11), status_401=9, status_429=140),
        ],
    ),
    Scenario(
        "stolen key harvests 120 customers",
        "bulk_record_reads",
        lambda: bulk_reads(at(15, 10)),
        (("principal", STOLEN),),
    ),
    Scenario(
        "a list of emails checked against the customer base",
        "bulk_record_searches",
        lambda: [
            event(
                m,
                "records.search",
                principal=STOLEN,
                role="agent",
                details={"by": "email", "matches": 0},
            )
            for m in every(at(15, 0), timedelta(seconds=18), 160)
        ],
        (("principal", STOLEN),),
    ),
    Scenario(
        "a supervisor reveals 12 customers in half an hour",
        "bulk_record_reveals",
        lambda: [
            reveal(m, SUPERVISORS[1], 800 + i)
            for i, m in enumerate(every(at(14, 30), timedelta(minutes=2, seconds=30), 12))
        ],
        (("principal", SUPERVISORS[1]),),
    ),
    Scenario(
        "stolen key probes twice, then harvests through the tools",
        "denials_then_tool_harvesting",
        lambda: probe_then_harvest(at(15, 0)),
        (("principal", STOLEN),),
    ),
    Scenario(
        "a record revealed at 22:30",
        "reveal_outside_working_hours",
        lambda: [reveal(at(22, 30), SUPERVISORS[0], 46)],
    ),
    Scenario(
        "tokens revealed on a Saturday",
        "reveal_outside_working_hours",
        lambda: [token_reveal(at(11, 0, day=DAY + timedelta(days=4)), SUPERVISORS[1])],
    ),
    Scenario(
        "a reply holding another customer's email",
        "message_blocked_other_customer",
        lambda: [
            message_check(
                at(11, 12),
                AGENTS[1],
                5,
                verdict="block",
                other_customer_findings=1,
                foreign_records=1,
            )
        ],
    ),
    Scenario(
        "an email tool call carrying another customer's data",
        "message_blocked_other_customer",
        lambda: [tool_call(at(11, 12), AGENTS[1], 5, tool="send_email", reason="argument-refused")],
    ),
    Scenario(
        "an automated harvester keeps hitting the tool budget",
        "repeated_tool_budget_refusals",
        lambda: [
            tool_call(m, STOLEN, 600 + i, reason="budget-exceeded")
            for i, m in enumerate(every(at(15, 0), timedelta(minutes=2), 4))
        ],
        (("principal", STOLEN), ("resource", "tool:lookup_customer")),
    ),
    Scenario(
        "guard audit verify finds an edited event",
        "audit_chain_verification_failed",
        lambda: [
            cli(at(17, 56), "audit.verify", "audit", outcome="failure", events=4211, ok=False)
        ],
    ),
    Scenario(
        "a record whose ciphertext was swapped is read",
        "record_integrity_failure",
        lambda: [
            event(
                at(10, 7),
                "records.read",
                principal=AGENTS[1],
                role="agent",
                customer=customer(10_907),
                outcome="failure",
                details={"reason": "integrity"},
            )
        ],
    ),
    Scenario(
        "a reindex finds records it cannot decrypt",
        "record_integrity_failure",
        lambda: [
            cli(
                at(7, 52),
                "records.reindex",
                "records",
                outcome="failure",
                indexed=4998,
                skipped=0,
                failed=2,
                blank=3,
                interrupted=False,
            )
        ],
    ),
    Scenario(
        "a rotation leaves data keys that fail authentication",
        "key_rotation_failed",
        lambda: [
            cli(
                at(7, 31),
                "keys.rotate",
                "keys",
                outcome="failure",
                version=4,
                rewrapped=4997,
                skipped=0,
                failed=3,
                remaining=3,
                resumed=False,
            )
        ],
    ),
    Scenario(
        "an operator tries to retire a key that still wraps data",
        "key_retirement_refused",
        lambda: [
            cli(
                at(7, 45),
                "keys.retire",
                "keys",
                outcome="failure",
                version=2,
                reason="KEK version 2 still wraps 1200 data keys",
            )
        ],
    ),
    Scenario(
        "a script erases 25 customers in 20 minutes",
        "erasure_burst",
        lambda: [
            erase(m, 2000 + i) for i, m in enumerate(every(at(16, 20), timedelta(seconds=48), 25))
        ],
        (("principal", ADMIN),),
    ),
    Scenario(
        "an agent asks to reload the access policy",
        "policy_reload_unusual_principal",
        lambda: [denial(at(12, 30), AGENTS[5], "policy.reload", "/v1/admin/policies/reload")],
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_when_the_attack_happens_during_a_normal_day_then_its_rule_fires(
    rules: RuleSet, scenario: Scenario
) -> None:
    hits = run(rules, stream(working_day(), scenario.events()))
    found = hits_of(hits, scenario.rule)
    assert found, f"{scenario.rule} did not fire; fired: {sorted(fired(hits))}"
    assert {hit.group for hit in found} == {scenario.group}
    assert fired(hits) == {scenario.rule} | scenario.also


def test_when_a_key_is_harvesting_then_the_hit_carries_the_customers_and_the_window(
    rules: RuleSet,
) -> None:
    hits = run(rules, stream(working_day(), bulk_reads(at(15, 10))))
    first = hits_of(hits, "bulk_record_reads")[0]
    assert first.count == 100
    assert len(first.customers) == 100
    assert first.actions == {"records.read"}
    assert first.tenant == "acme"
    # the window holds the agent's own reads of the hour before too: what the key touched
    assert at(15, 10) < first.last_ts < at(15, 50)
    assert first.last_ts - first.first_ts <= timedelta(hours=1)
    assert first.first_ts < at(15, 10)
    assert list(first.seqs) == sorted(first.seqs)


# ------------------------------------------------------------------------ just below the line


NEAR_MISSES = [
    Scenario(
        "nine denials in fifteen minutes",
        "repeated_authorization_denials",
        lambda: stolen_key_probes(at(15, 0))[:9],
    ),
    Scenario(
        "twelve denials spread over two hours",
        "repeated_authorization_denials",
        lambda: [
            denial(m, STOLEN, "records.erase", "/v1/records/{record_id}")
            for m in every(at(9, 0), timedelta(minutes=10), 12)
        ],
    ),
    Scenario(
        "four failures against one key",
        "repeated_api_key_authentication_failures",
        lambda: [failed_auth(m, GUESSED_PREFIX) for m in every(at(3, 10), timedelta(minutes=1), 4)],
    ),
    Scenario(
        "requests without credentials and expired tokens",
        "repeated_api_key_authentication_failures",
        lambda: [
            failed_auth(m, p)
            for m in every(at(3, 10), timedelta(seconds=20), 10)
            for p in ("none", "jwt", "key:malformed")
        ],
    ),
    Scenario(
        "a client's window of wrong keys under the limit",
        "authentication_throttled",
        lambda: [refusal_aggregate(at(3, 11), status_401=9, status_404=3)],
    ),
    Scenario(
        "99 customers in an hour",
        "bulk_record_reads",
        lambda: bulk_reads(at(15, 10), who=NEWCOMER, customers=99),
    ),
    Scenario(
        "150 reads of the same 20 customers",
        "bulk_record_reads",
        lambda: [
            read(m, STOLEN, 900_000 + i % 20)
            for i, m in enumerate(every(at(15, 0), timedelta(seconds=20), 150))
        ],
    ),
    Scenario(
        "149 searches in an hour",
        "bulk_record_searches",
        lambda: [
            event(
                m,
                "records.search",
                principal=NEWCOMER,
                role="agent",
                details={"by": "email", "matches": 1},
            )
            for m in every(at(15, 0), timedelta(seconds=20), 149)
        ],
    ),
    Scenario(
        "nine reveals in an hour",
        "bulk_record_reveals",
        lambda: [
            reveal(m, SUPERVISORS[1], 800 + i)
            for i, m in enumerate(every(at(14, 30), timedelta(minutes=5), 9))
        ],
    ),
    Scenario(
        "denied with one key, budget exhausted with another",
        "denials_then_tool_harvesting",
        lambda: probe_then_harvest(at(15, 0), harvester=AGENTS[5]),
    ),
    Scenario(
        "denied in the morning, budget exhausted three hours later",
        "denials_then_tool_harvesting",
        lambda: probe_then_harvest(at(9, 0), gap=timedelta(hours=3)),
    ),
    Scenario(
        "budget exhausted first, denied afterwards",
        "denials_then_tool_harvesting",
        lambda: probe_then_harvest(at(15, 0), gap=-timedelta(minutes=50)),
    ),
    Scenario(
        "a reveal at 07:00 and one at 19:59",
        "reveal_outside_working_hours",
        lambda: [reveal(at(7, 0), SUPERVISORS[0], 47), reveal(at(19, 59, 59), SUPERVISORS[0], 48)],
    ),
    Scenario(
        "a reveal refused to an agent at night",
        "reveal_outside_working_hours",
        lambda: [denial(at(23, 0), AGENTS[1], "records.reveal", "/v1/records/{record_id}/reveal")],
    ),
    Scenario(
        "a reply redacted for the customer's own data",
        "message_blocked_other_customer",
        lambda: [message_check(at(11, 12), AGENTS[1], 5, verdict="redact", own_data_findings=2)],
    ),
    Scenario(
        "two budget refusals in an hour",
        "repeated_tool_budget_refusals",
        lambda: [
            tool_call(m, STOLEN, 600, reason="budget-exceeded")
            for m in every(at(15, 0), timedelta(minutes=2), 2)
        ],
    ),
    Scenario(
        "three budget refusals on three different tools",
        "repeated_tool_budget_refusals",
        lambda: [
            tool_call(at(15, i), STOLEN, 600, tool=tool, reason="budget-exceeded")
            for i, tool in enumerate(("lookup_customer", "list_orders", "update_address"))
        ],
    ),
    Scenario(
        "an erasure batch of 19",
        "erasure_burst",
        lambda: [
            erase(m, 2000 + i, SECOND_ADMIN)
            for i, m in enumerate(every(at(16, 20), timedelta(minutes=2), 19))
        ],
    ),
    Scenario(
        "25 erasures spread over four hours",
        "erasure_burst",
        lambda: [
            erase(m, 2000 + i) for i, m in enumerate(every(at(9, 0), timedelta(minutes=10), 25))
        ],
    ),
    Scenario(
        "the same customer erased again and again",
        "erasure_burst",
        lambda: [erase(m, 2000) for m in every(at(16, 20), timedelta(seconds=30), 25)],
    ),
    Scenario(
        "the command line reloads the policy and fails on a typo",
        "policy_reload_unusual_principal",
        lambda: [
            event(
                at(12, 30),
                "policy.reload",
                principal=None,
                role=None,
                resource="policy",
                decision="deny",
                outcome="failure",
                details={"reason": "policy.csv line 3: unknown role 'agnet'"},
                tenant=None,
            )
        ],
    ),
]


@pytest.mark.parametrize("scenario", NEAR_MISSES, ids=[s.id for s in NEAR_MISSES])
def test_when_the_pattern_stays_below_the_line_then_the_rule_does_not_fire(
    rules: RuleSet, scenario: Scenario
) -> None:
    hits = run(rules, stream(working_day(), scenario.events()))
    assert hits_of(hits, scenario.rule) == []


@pytest.mark.parametrize(
    ("moment", "timezone", "fires"),
    [
        (at(6, 30), "UTC", True),
        (at(6, 30), "Europe/Paris", False),  # 07:30 in Paris in December
        (at(19, 30), "Europe/Paris", True),  # 20:30 in Paris
        (at(20, 0), "UTC", True),
        (at(19, 59, 59), "UTC", False),
        (at(23, 30), "Asia/Tokyo", False),  # Wednesday 08:30 in Tokyo
        (at(23, 30, day=DAY + timedelta(days=3)), "UTC", True),  # Friday night
        (at(23, 30, day=DAY + timedelta(days=3)), "Asia/Tokyo", True),  # Saturday morning there
    ],
)
def test_when_a_reveal_happens_then_working_hours_are_those_of_the_configured_zone(
    rules: RuleSet, moment: datetime, timezone: str, fires: bool
) -> None:
    hits = run(rules, stream([reveal(moment, SUPERVISORS[0], 49)]), timezone=timezone)
    assert bool(hits_of(hits, "reveal_outside_working_hours")) is fires


# ---------------------------------------------------------------- events guard really writes


def stored(api: Api) -> list[Event]:
    """The app's audit trail, oldest first, as the scanner sees it."""
    return [e.model_dump() for e in api.services.audit.iter_events(AuditFilters())]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_when_an_agent_key_probes_the_real_api_then_the_denial_rules_fire(
    api: Api, rules: RuleSet
) -> None:
    for _ in range(9):
        response = api.client.delete(f"/v1/records/{uuid.uuid4()}", headers=api.headers("agent"))
        assert response.status_code == 403
    response = api.client.post("/v1/admin/policies/reload", headers=api.headers("agent"))
    assert response.status_code == 403
    response = api.client.post("/v1/admin/policies/reload", headers=api.headers("admin"))
    assert response.status_code == 200
    events = stored(api)
    agent = {e["principal"] for e in events if e["role"] == "agent"}
    hits = run(rules, events)
    assert fired(hits) == {"repeated_authorization_denials", "policy_reload_unusual_principal"}
    assert {hit.group for hit in hits_of(hits, "repeated_authorization_denials")} == {
        (("principal", agent.pop()),)
    }
    (reload_hit,) = hits_of(hits, "policy_reload_unusual_principal")
    assert reload_hit.actions == {"policy.reload"}


def test_when_a_key_is_guessed_at_the_real_api_then_the_authentication_rules_fire(
    open_api: OpenApi, rules: RuleSet
) -> None:
    with open_api() as opened:
        known_half = opened.keys["supervisor"][:12]  # gk_<8-char public prefix>_
        guess = bearer(known_half + "x" * 40)
        for octet in range(10, 15):  # five addresses, one attempt each
            # not entered as a context: the app is already running under opened.client
            other = TestClient(opened.client.app, client=(f"203.0.113.{octet}", 40000))
            assert other.get("/v1/records", headers=guess).status_code == 401
            other.close()
        # one address keeps guessing past the limit (10 per key per window): 401s, then 429s
        statuses = [opened.client.get("/v1/records", headers=guess).status_code for _ in range(12)]
        assert statuses[:10] == [401] * 10
        assert statuses[10:] == [429, 429]
        assert opened.client.get("/v1/records").status_code == 401  # no credentials at all
    events = stored(opened)  # the aggregate is written when the app shuts down
    prefix = f"key:{known_half[3:11]}"
    assert sum(e["details"].get("key_prefix") == prefix for e in events) == 6
    assert "x" * 40 not in str(events)  # the secret part never enters the trail
    hits = run(rules, events)
    assert fired(hits) == {"repeated_api_key_authentication_failures", "authentication_throttled"}
    assert {hit.group for hit in hits_of(hits, "repeated_api_key_authentication_failures")} == {
        (("details.key_prefix", prefix),)
    }


def test_when_the_real_app_blocks_a_reply_and_meets_a_tampered_record_then_those_rules_fire(
    api: Api, rules: RuleSet
) -> None:
    def create(**fields: Any) -> str:
        response = api.client.post("/v1/records", json=fields, headers=api.headers("admin"))
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    jane = create(full_name="Jane Doe", email="jane.doe@example.com")
    rahul = create(full_name="Rahul Mehta", email="rahul.mehta@example.org")
    check = "/v1/messages/check"
    allowed = {"text": "Sent to jane.doe@example.com.", "customer_id": jane}
    blocked = {"text": "Also cc rahul.mehta@example.org.", "customer_id": jane}
    for body, verdict in ((allowed, "allow"), (blocked, "block")):
        response = api.client.post(check, json=body, headers=api.headers("agent"))
        assert response.json()["verdict"] == verdict
    assert api.client.get("/v1/audit/verify", headers=api.headers("compliance_officer")).json()[
        "ok"
    ]
    without_tampering = run(rules, stored(api))
    assert fired(without_tampering) == {"message_blocked_other_customer"}
    (block_hit,) = hits_of(without_tampering, "message_blocked_other_customer")
    assert block_hit.customers == {api.services.audit.customer_hash(jane)}
    assert block_hit.entity_types == {"EMAIL_ADDRESS"}

    with api.services.engine.begin() as conn:  # someone with database access swaps ciphertexts
        conn.execute(
            text(
                "UPDATE customer_records SET full_name = "
                "(SELECT full_name FROM customer_records WHERE id = :jane) WHERE id = :rahul"
            ),
            {"jane": jane, "rahul": rahul},
        )
    assert (
        api.client.get(f"/v1/records/{rahul}", headers=api.headers("supervisor")).status_code == 500
    )
    hits = run(rules, stored(api))
    assert fired(hits) == {"message_blocked_other_customer", "record_integrity_failure"}
    (integrity,) = hits_of(hits, "record_integrity_failure")
    assert integrity.customers == {api.services.audit.customer_hash(rahul)}
