"""Incident scan speed: the shipped Sigma rules over the audit trail against a plain read.

One run, same machine, each database (the embedded SQLite file; PostgreSQL when reachable):
a scratch database is bulk-loaded with ``--events`` sealed audit events (real hashes, HMACs and
signed checkpoints, like ``bench/audit.py``) that look like a support desk's working days:
agents reading, searching and listing customer records, redacting text, checking outgoing
messages and calling tools, supervisors revealing and erasing, the nightly ``audit verify``,
the odd 401 and 403, and 14 incidents spread over the run for the shipped rules to catch (a
denial burst, failed authentications against one key, bulk reads, searches and reveals, a
reveal at night, a misdirected message, tool budget refusals, a broken chain, an integrity
failure, a failed key rotation, an erasure burst, a policy reload by someone unusual, a
credential refused and then harvesting customers through the tools). Then, in the same run:

- **read**: every event in seq order in keyset batches of the scanner's batch size
  (``AuditRepository.stream_events``, the scanner's query), rows materialised, nothing else;
- **read + engine**: the same stream fed to ``Evaluator.feed`` with the shipped rules
  (``RuleSet.load(audit/rules)``): the rule engine's cost with no incident bookkeeping;
- **scan**: ``IncidentScanner.scan(seal=False)`` from an empty cursor to the head: the
  scanner's pass (reads, evaluates, opens and updates incidents, moves the cursor);
- **scan + evidence**: the pass plus ``seal_evidence()``, which the worker runs right after it:
  the chain verified over the new incidents' events (its cost follows the incidents and their
  windows, not the events scanned; timed apart as ``evidence_seconds``).

Each is repeated (``--repeat``, interleaved) and the median reported in events/second, with the
ratios to the read (target: scan <= 3x the read). Incident tables are emptied between scans.
Writes ``bench/results/incidents.json``.

    .venv/bin/python bench/incidents.py [--events 1000000] [--quick] [--repeat 5] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import count as counter
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy
from pydantic import SecretStr
from scratch import ScratchDatabase, postgres_available
from sqlalchemy import delete

from guard.audit.chain import GENESIS_HASH, canonical_json, checkpoint_payload, seal_event
from guard.audit.repository import AuditRepository
from guard.config import PROJECT_ROOT, Settings
from guard.crypto.audit_keys import AuditKeys
from guard.storage.engine import create_engine_for, make_session_factory, session_scope
from guard.storage.migrate import upgrade_to_head

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.orm import Session, sessionmaker

RESULTS = PROJECT_ROOT / "bench" / "results" / "incidents.json"
BULK_BATCH = 10_000
CHECKPOINT_EVERY = 1000
QUICK_EVENTS = 50_000
SEED = 11

# ---------------------------------------------------------------------------- the desk

TENANTS = ("acme", "globex", "initech")
AGENTS_PER_TENANT = 40
SUPERVISORS_PER_TENANT = 2
CUSTOMERS_PER_TENANT = 20_000
#: Events per working hour for the whole desk: ~90 per agent (one every 40 s).
EVENTS_PER_HOUR = 13_500
DAY_START, DAY_END = 8, 18
#: The run starts late on a Monday afternoon, so even ``--quick`` crosses a night.
START_DAY, START_HOUR = date(2025, 3, 3), 16

CHANNELS = ("channel:chat", "channel:email", "channel:chat", "channel:phone-notes")
TOOLS = ("tool:crm_lookup", "tool:order_status", "tool:refund_status", "tool:shipping_track")
ENTITY_TYPES = ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "LOCATION", "IBAN_CODE", "DATE_TIME")
SEARCH_BY = ("email", "phone", "account_id", "name")
REVEAL_REASONS = (
    "customer asked for a copy of their data",
    "verify identity before refund",
    "chargeback dispute",
    "address correction",
)
#: Route templates: a refused request's event names the route it was refused on.
ROUTES = {
    "records.reveal": "/v1/records/{record_id}/reveal",
    "records.erase": "/v1/records/{record_id}",
    "records.read": "/v1/records/{record_id}",
    "audit.search": "/v1/audit/events",
    "policy.reload": "/v1/admin/policies/reload",
    "text.redact": "/v1/redact",
}


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass
class Person:
    """A principal of the desk: an API key (uuid) with a role in a tenant."""

    id: str
    role: str | None
    tenant: str
    customer: int = 0  # index of the customer of the current conversation


#: The command line's principal (``guard audit verify``, ``guard keys rotate``): no role, no tenant.
CLI = Person("cli", None, "")


@dataclass
class Desk:
    """Who works at the desk and which customers each tenant has (keyed hashes)."""

    agents: list[Person]
    supervisors: list[Person]
    officers: list[Person]
    admins: list[Person]
    customers: dict[str, list[str]]  # tenant -> keyed hashes of its record ids

    @classmethod
    def build(cls, keys: AuditKeys, rng: random.Random) -> Desk:
        """A desk of 3 tenants x (40 agents, 2 supervisors, 1 officer), 2 admins."""
        agents, supervisors, officers, admins = [], [], [], []
        customers: dict[str, list[str]] = {}
        for tenant in TENANTS:
            agents += [Person(_uuid(rng), "agent", tenant) for _ in range(AGENTS_PER_TENANT)]
            supervisors += [
                Person(_uuid(rng), "supervisor", tenant) for _ in range(SUPERVISORS_PER_TENANT)
            ]
            officers.append(Person(_uuid(rng), "compliance_officer", tenant))
            customers[tenant] = [
                keys.identifier_hash("customer", _uuid(rng)) for _ in range(CUSTOMERS_PER_TENANT)
            ]
        admins = [Person(_uuid(rng), "admin", TENANTS[0]) for _ in range(2)]
        return cls(agents, supervisors, officers, admins, customers)


def _event(
    person: Person | None,
    action: str,
    resource: str,
    *,
    decision: str = "allow",
    outcome: str = "success",
    customer: str | None = None,
    entity_counts: dict[str, int] | None = None,
    details: dict[str, str | int | bool] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Content of one event (no ts yet), shaped like what guard stores."""
    return {
        "principal": None if person is None else person.id,
        "role": None if person is None else person.role,
        "tenant": None if person is None else person.tenant or None,
        "action": action,
        "resource": resource,
        "decision": decision,
        "outcome": outcome,
        "request_id": request_id,
        "customer": customer,
        "entity_counts": entity_counts or {},
        "details": details or {},
    }


@dataclass
class Traffic:
    """A support desk's working days as a stream of event contents in ts order."""

    keys: AuditKeys
    total: int
    timezone: str
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))  # noqa: S311 - bench data
    planted: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.desk = Desk.build(self.keys, self.rng)
        self.zone = ZoneInfo(self.timezone)
        self._pending: list[tuple[datetime, int, dict[str, Any]]] = []
        self._tiebreak = counter()
        self._day = START_DAY

    # -- helpers -------------------------------------------------------------------------

    def _local(self, day: date, hour: int, minute: int = 0) -> datetime:
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.zone).astimezone(
            UTC
        )

    def _schedule(self, ts: datetime, content: dict[str, Any]) -> None:
        heapq.heappush(self._pending, (ts, next(self._tiebreak), content))

    def _rid(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def _counts(self, most: int = 3) -> dict[str, int]:
        rng = self.rng
        return {t: rng.randint(1, 2) for t in rng.sample(ENTITY_TYPES, rng.randint(0, most))}

    def _path_hash(self) -> str:
        return f"{self.rng.getrandbits(256):064x}"

    def _customer(self, person: Person) -> str:
        """The customer of ``person``'s current conversation; a new one now and then."""
        if person.customer == 0 or self.rng.random() < 0.3:
            person.customer = self.rng.randrange(1, CUSTOMERS_PER_TENANT)
        return self.desk.customers[person.tenant][person.customer]

    def _denied(self, person: Person | None, action: str, status: int) -> dict[str, Any]:
        details: dict[str, str | int | bool] = {"status": status, "path_hash": self._path_hash()}
        if status == 401:
            details["reason"] = self.rng.choice(("unknown-key", "expired-key", "bad-signature"))
            details["key_prefix"] = f"key:{self.rng.getrandbits(32):08x}"
        else:
            details["reason"] = "forbidden"
        return _event(
            person,
            action,
            ROUTES.get(action, "/v1/" + action.replace(".", "/")),
            decision="deny",
            outcome="failure",
            details=details,
            request_id=self._rid(),
        )

    # -- normal traffic --------------------------------------------------------------------

    def _agent_event(self, p: Person) -> dict[str, Any]:
        roll = self.rng.random() * 100
        for bound, make in self._agent_mix:
            if roll < bound:
                return make(p, self._rid())
        # an agent trying what only a supervisor may: an occasional single denial
        action = self.rng.choice(("records.reveal", "records.erase", "audit.search"))
        return self._denied(p, action, 403)

    @property
    def _agent_mix(self) -> tuple[tuple[float, Callable[[Person, str], dict[str, Any]]], ...]:
        """Cumulative percentages of an agent's actions; the rest (0.3%) are 403s."""
        return (
            (30, self._read),
            (41, self._search),
            (45, self._list),
            (66, self._redact),
            (69, self._detect),
            (84, self._message),
            (96, self._tool_call),
            (98, self._update),
            (99, self._create),
            (99.7, self._tools_list),
        )

    def _read(self, p: Person, rid: str) -> dict[str, Any]:
        rng = self.rng
        if rng.random() < 0.005:
            return _event(
                p,
                "records.read",
                "records",
                outcome="failure",
                customer=self._customer(p),
                details={"reason": "not-found"},
                request_id=rid,
            )
        via = {"via": "search"} if rng.random() < 0.3 else {"fields_shown": rng.randint(4, 9)}
        return _event(
            p, "records.read", "records", customer=self._customer(p), details=via, request_id=rid
        )

    def _search(self, p: Person, rid: str) -> dict[str, Any]:
        details = {"by": self.rng.choice(SEARCH_BY), "matches": self.rng.choice((0, 1, 1, 1, 2))}
        return _event(p, "records.search", "records", details=details, request_id=rid)

    def _list(self, p: Person, rid: str) -> dict[str, Any]:
        details = {"count": self.rng.choice((20, 50))}
        return _event(p, "records.list", "records", details=details, request_id=rid)

    def _redact(self, p: Person, rid: str) -> dict[str, Any]:
        return _event(
            p,
            "text.redact",
            self.rng.choice(CHANNELS),
            entity_counts=self._counts(),
            details={"batch_size": 1},
            request_id=rid,
        )

    def _detect(self, p: Person, rid: str) -> dict[str, Any]:
        return _event(
            p,
            "text.detect",
            "text",
            entity_counts=self._counts(),
            details={"batch_size": self.rng.randint(1, 4)},
            request_id=rid,
        )

    def _update(self, p: Person, rid: str) -> dict[str, Any]:
        return _event(
            p,
            "records.update",
            "records",
            customer=self._customer(p),
            entity_counts=self._counts(2),
            details={"fields": self.rng.randint(1, 3)},
            request_id=rid,
        )

    def _create(self, p: Person, rid: str) -> dict[str, Any]:
        p.customer = self.rng.randrange(1, CUSTOMERS_PER_TENANT)
        return _event(
            p,
            "records.create",
            "records",
            customer=self.desk.customers[p.tenant][p.customer],
            entity_counts={"PERSON": 1, "EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1},
            details={"fields": self.rng.randint(5, 8)},
            request_id=rid,
        )

    def _tools_list(self, p: Person, rid: str) -> dict[str, Any]:
        return _event(p, "tools.list", "tools", details={"tools": len(TOOLS)}, request_id=rid)

    def _message(self, p: Person, rid: str) -> dict[str, Any]:
        rng = self.rng
        own = rng.choice((0, 0, 1, 2))
        details: dict[str, str | int | bool] = {
            "verdict": "redact" if own and rng.random() < 0.4 else "allow",
            "other_customer_findings": 0,
            "credential_findings": 0,
            "own_data_findings": own,
            "pii_findings": rng.choice((0, 0, 1)),
            "tone_findings": rng.choice((0, 0, 0, 1, 2)),
            "foreign_records": 0,
        }
        return _event(
            p,
            "message.check",
            rng.choice(CHANNELS),
            customer=self._customer(p),
            entity_counts=self._counts(2),
            details=details,
            request_id=rid,
        )

    def _tool_call(self, p: Person, rid: str) -> dict[str, Any]:
        rng = self.rng
        if rng.random() < 0.005:
            return _event(
                p,
                "tool.call",
                rng.choice(TOOLS),
                outcome="failure",
                customer=self._customer(p),
                details={"latency_ms": 5000, "reason": "upstream-timeout"},
                request_id=rid,
            )
        return _event(
            p,
            "tool.call",
            rng.choice(TOOLS),
            customer=self._customer(p),
            entity_counts=self._counts(2),
            details={"latency_ms": rng.randint(40, 900), "upstream_status": 200},
            request_id=rid,
        )

    def _supervisor_event(self, p: Person) -> dict[str, Any]:
        rng, rid = self.rng, self._rid()
        roll = rng.random() * 100
        if roll < 1:  # a handful of full reveals a day
            details = {"reason": rng.choice(REVEAL_REASONS)}
            return _event(
                p,
                "records.reveal",
                "records",
                customer=self._customer(p),
                details=details,
                request_id=rid,
            )
        if roll < 3:
            details = {"reason": "customer asked", "tokens": rng.randint(1, 3)}
            return _event(p, "token.reveal", "text", details=details, request_id=rid)
        if roll < 3.2:  # a right-to-erasure request: a few a day per tenant
            return _event(
                p,
                "records.erase",
                "records",
                customer=self._customer(p),
                details={"crypto_shredded": True},
                request_id=rid,
            )
        if roll < 5:
            return _event(
                p, "audit.search", "/v1/audit/events", details={"results": 50}, request_id=rid
            )
        return self._agent_event(p)

    def _officer_event(self, p: Person) -> dict[str, Any]:
        rng, rid = self.rng, self._rid()
        roll = rng.random() * 100
        if roll < 40:
            details = {"results": rng.randint(0, 100)}
            customer = self._customer(p) if rng.random() < 0.3 else None
            return _event(
                p,
                "audit.search",
                "/v1/audit/events",
                customer=customer,
                details=details,
                request_id=rid,
            )
        if roll < 43:
            return _event(
                p,
                "audit.export",
                "audit",
                details={"format": "csv", "rows": rng.randint(10, 5000)},
                request_id=rid,
            )
        if roll < 45:  # about one an hour
            details = {"reason": "subject access request"}
            return _event(
                p,
                "records.reveal",
                "records",
                customer=self._customer(p),
                details=details,
                request_id=rid,
            )
        return _event(
            p,
            "records.read",
            "records",
            customer=self._customer(p),
            details={"fields_shown": 9},
            request_id=rid,
        )

    def _normal(self) -> dict[str, Any]:
        rng, desk = self.rng, self.desk
        roll = rng.random() * 1000
        if roll < 940:
            return self._agent_event(rng.choice(desk.agents))
        if roll < 985:
            return self._supervisor_event(rng.choice(desk.supervisors))
        if roll < 995:
            return self._officer_event(rng.choice(desk.officers))
        if roll < 996:
            return self._denied(None, rng.choice(("text.redact", "records.read")), 401)
        # requests no endpoint audits: a 404 on an unknown route, a 422 body
        person = rng.choice(desk.agents)
        status = rng.choice((404, 422))
        return _event(
            person,
            rng.choice(("http.get", "http.post")),
            "unmatched" if status == 404 else "/v1/redact",
            decision="allow",
            outcome="failure",
            details={"status": status, "path_hash": self._path_hash()},
            request_id=self._rid(),
        )

    def _night(self, day: date, events_so_far: int) -> None:
        """The night after ``day``: the nightly verify at 02:00, an admin's reload at 09:00."""
        nxt = day + timedelta(days=1)
        verify = _event(CLI, "audit.verify", "audit", details={"events": events_so_far, "ok": True})
        self._schedule(self._local(nxt, 2), verify)
        if nxt.weekday() < 5:
            admin = self.desk.admins[0]
            reload_ = _event(
                admin, "policy.reload", "policy", details={"lines": 42}, request_id=self._rid()
            )
            self._schedule(self._local(nxt, 9, 5), reload_)

    # -- incidents -----------------------------------------------------------------------

    def _burst(self, start: datetime, minutes: float, events: list[dict[str, Any]]) -> None:
        step = timedelta(minutes=minutes) / max(1, len(events))
        for i, content in enumerate(events):
            self._schedule(start + step * i, content)

    def _scenario(self, k: int, now: datetime) -> None:
        """Plant incident ``k`` (cycling through SCENARIOS) starting just after ``now``."""
        name = SCENARIOS[k % len(SCENARIOS)]
        plant: Callable[[datetime], tuple[float, list[dict[str, Any]]]] = getattr(self, f"_{name}")
        minutes, events = plant(now)
        self._burst(now + timedelta(seconds=5), minutes, events)
        self.planted.append((name, len(events) or 1))  # the night reveal schedules itself

    def _repeated_denials(self, _now: datetime) -> tuple[float, list[dict[str, Any]]]:
        agent = self.rng.choice(self.desk.agents)
        return 10, [self._denied(agent, "records.reveal", 403) for _ in range(40)]

    def _failed_auth_one_key(self, _now: datetime) -> tuple[float, list[dict[str, Any]]]:
        prefix = f"key:{self.rng.getrandbits(32):08x}"
        events = []
        for _ in range(60):
            event = self._denied(None, "records.read", 401)
            event["details"] |= {"key_prefix": prefix, "reason": "unknown-key"}
            events.append(event)
        # one of the clients went on past the limit: its window's aggregate, with 429s
        aggregate = _event(
            None,
            "auth.refusals",
            "client",
            decision="deny",
            outcome="failure",
            details={
                "aggregate": True,
                "refusals": 40,
                "client_hash": self._path_hash(),
                "window_ms": 60_000,
                "status_401": 10,
                "status_429": 30,
            },
            request_id=f"agg-{self._rid()}",
        )
        return 5, [*events, aggregate]

    def _reads_of(self, agent: Person, customers: int) -> list[dict[str, Any]]:
        return [
            _event(
                agent,
                "records.read",
                "records",
                customer=c,
                details={"fields_shown": 9},
                request_id=self._rid(),
            )
            for c in self.rng.sample(self.desk.customers[agent.tenant], customers)
        ]

    def _bulk_reads(self, _now: datetime) -> tuple[float, list[dict[str, Any]]]:
        return 40, self._reads_of(self.rng.choice(self.desk.agents), 500)

    def _denials_then_tool_harvesting(self, _now: datetime) -> tuple[float, list[dict[str, Any]]]:
        agent = self.rng.choice(self.desk.agents)
        events = [self._denied(agent, "records.reveal", 403) for _ in range(4)]
        for customer in self.rng.sample(self.desk.customers[agent.tenant], 30):
            call = self._tool_call(agent, self._rid())
            events.append(call | {"resource": "tool:crm_lookup", "customer": customer})
        events += self._budget_refusals(agent, 6)
        return 30, events

    def _bulk_searches(self, _now: datetime) -> tuple[float, list[dict[str, Any]]]:
        agent = self.rng.choice(self.desk.agents)
        return 50, [self._search(agent, self._rid()) for _ in range(200)]

    def _bulk_reveals(self, _now: datetime) -> tuple[float, list[dict[str, Any]]]:
        supervisor = self.rng.choice(self.desk.supervisors)
        events = [
            _event(
                supervisor,
                "records.reveal",
                "records",
                customer=customer,
                details={"reason": self.rng.choice(REVEAL_REASONS)},
                request_id=self._rid(),
            )
            for customer in self.rng.sample(self.desk.customers[supervisor.tenant], 15)
        ]
        return 30, events

    def _reveal_at_night(self, now: datetime) -> tuple[float, list[dict[str, Any]]]:
        supervisor = self.rng.choice(self.desk.supervisors)
        night = (now.astimezone(self.zone) + timedelta(days=1)).date()
        reveal = _event(
            supervisor,
            "records.reveal",
            "records",
            customer=self._customer(supervisor),
            details={"reason": "urgent"},
            request_id=self._rid(),
        )
        self._schedule(self._local(night, 2, 40), reveal)
        return 0, []

    def _misdirected_message(self, _now: datetime) -> tuple[float, list[dict[str, Any]]]:
        agent = self.rng.choice(self.desk.agents)
        message = self._message(agent, self._rid())
        message["details"] |= {
            "verdict": "block",
            "other_customer_findings": 2,
            "foreign_records": 1,
            "foreign_customers": self.rng.choice(self.desk.customers[agent.tenant]),
        }
        return 1, [message]

    def _budget_refusals(self, agent: Person, count: int) -> list[dict[str, Any]]:
        return [
            _event(
                agent,
                "tool.call",
                "tool:crm_lookup",
                decision="deny",
                outcome="failure",
                customer=self.rng.choice(self.desk.customers[agent.tenant]),
                details={"reason": "budget-exceeded", "retry_after": 600},
                request_id=self._rid(),
            )
            for _ in range(count)
        ]

    def _tool_budget_refusals(self, _now: datetime) -> tuple[float, list[dict[str, Any]]]:
        return 10, self._budget_refusals(self.rng.choice(self.desk.agents), 25)

    def _audit_chain_broken(self, _now: datetime) -> tuple[float, list[dict[str, Any]]]:
        broken = _event(
            CLI, "audit.verify", "audit", outcome="failure", details={"events": 0, "ok": False}
        )
        return 1, [broken]

    def _record_integrity(self, _now: datetime) -> tuple[float, list[dict[str, Any]]]:
        agent = self.rng.choice(self.desk.agents)
        events = [
            _event(
                agent,
                "records.read",
                "records",
                outcome="failure",
                customer=self.rng.choice(self.desk.customers[agent.tenant]),
                details={"reason": "integrity"},
                request_id=self._rid(),
            )
            for _ in range(2)
        ]
        return 2, events

    def _key_rotation_failed(self, _now: datetime) -> tuple[float, list[dict[str, Any]]]:
        details: dict[str, str | int | bool] = {
            "version": 3,
            "rewrapped": 19_998,
            "skipped": 0,
            "failed": 2,
            "remaining": 2,
            "resumed": False,
        }
        retire = _event(
            CLI,
            "keys.retire",
            "keys",
            decision="deny",
            outcome="failure",
            details={"version": 2, "reason": "KEK version 2 still wraps 2 data key(s)"},
        )
        rotate = _event(CLI, "keys.rotate", "keys", outcome="failure", details=details)
        return 2, [rotate, retire]

    def _erasure_burst(self, _now: datetime) -> tuple[float, list[dict[str, Any]]]:
        supervisor = self.rng.choice(self.desk.supervisors)
        events = [
            _event(
                supervisor,
                "records.erase",
                "records",
                customer=c,
                details={"crypto_shredded": True},
                request_id=self._rid(),
            )
            for c in self.rng.sample(self.desk.customers[supervisor.tenant], 60)
        ]
        return 15, events

    def _policy_reload_unusual(self, _now: datetime) -> tuple[float, list[dict[str, Any]]]:
        # the daily reload is an admin's; this one is a supervisor's, refused (403)
        supervisor = self.rng.choice(self.desk.supervisors)
        return 1, [self._denied(supervisor, "policy.reload", 403)]

    # -- the stream ----------------------------------------------------------------------

    def contents(self) -> Iterator[dict[str, Any]]:
        """``total`` event contents in ts order (ts set, entity_counts/details as dicts)."""
        rng = self.rng
        rate = EVENTS_PER_HOUR / 3600.0
        day = START_DAY
        clock = self._local(day, START_HOUR)
        day_end = self._local(day, DAY_END)
        # spread over the first 80% of the run, so that the last one plays out in full
        planted = len(SCENARIOS)
        positions = [self.total * 4 * (2 * k + 1) // (10 * planted) for k in range(planted)]
        emitted = 0
        while emitted < self.total:
            clock += timedelta(seconds=rng.expovariate(rate))
            if clock >= day_end:
                self._night(day, emitted)
                day += timedelta(days=1)
                while day.weekday() >= 5:
                    day += timedelta(days=1)
                clock, day_end = self._local(day, DAY_START), self._local(day, DAY_END)
            while positions and emitted >= positions[0]:
                positions.pop(0)
                self._scenario(len(SCENARIOS) - len(positions) - 1, clock)
            while self._pending and self._pending[0][0] <= clock and emitted < self.total:
                ts, _, content = heapq.heappop(self._pending)
                yield {**content, "ts": ts}
                emitted += 1
            if emitted < self.total:
                yield {**self._normal(), "ts": clock}
                emitted += 1


SCENARIOS = (
    "repeated_denials",
    "failed_auth_one_key",
    "bulk_reads",
    "bulk_searches",
    "bulk_reveals",
    "reveal_at_night",
    "misdirected_message",
    "tool_budget_refusals",
    "audit_chain_broken",
    "record_integrity",
    "key_rotation_failed",
    "erasure_burst",
    "policy_reload_unusual",
    "denials_then_tool_harvesting",
)


# ---------------------------------------------------------------------------- databases


class Database:
    """A fresh SQLite file or PostgreSQL schema, migrated, dropped afterwards."""

    def __init__(self, backend: str, workdir: Path) -> None:
        self.backend = backend
        self.scratch = ScratchDatabase(backend, workdir)
        self.settings = Settings(
            database_url=SecretStr(self.scratch.url),
            keys_dir=workdir / "keys",
            var_dir=workdir,
            audit_checkpoint_events=CHECKPOINT_EVERY,
            audit_checkpoint_seconds=3600.0,
        )
        self.engine = create_engine_for(self.settings)
        upgrade_to_head(self.engine)
        self.factory: sessionmaker[Session] = make_session_factory(self.engine)
        self.label = (
            f"{self.engine.dialect.name} "
            f"{'.'.join(map(str, self.engine.dialect.server_version_info or ()))}"
        )

    def drop(self) -> None:
        """Release the database."""
        self.engine.dispose()
        self.scratch.drop()


def _sealed_batches(
    traffic: Traffic, keys: AuditKeys
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Sealed rows and signed checkpoints, ``BULK_BATCH`` events at a time."""
    prev = GENESIS_HASH
    rows: list[dict[str, Any]] = []
    checkpoints: list[dict[str, Any]] = []
    for seq, content in enumerate(traffic.contents(), start=1):
        content["entity_counts"] = canonical_json(content["entity_counts"])
        content["details"] = canonical_json(content["details"])
        row = seal_event(content, seq=seq, prev_hash=prev, keys=keys)
        prev = row["hash"]
        rows.append(row)
        if seq % CHECKPOINT_EVERY == 0:
            signature = keys.sign_checkpoint(checkpoint_payload(seq, prev, row["ts"]))
            checkpoints.append(
                {
                    "seq": seq,
                    "head_hash": prev,
                    "ts": row["ts"],
                    "signature": signature.hex(),
                    "key_id": keys.signing_key_id,
                }
            )
        if len(rows) == BULK_BATCH:
            yield rows, checkpoints
            rows, checkpoints = [], []
    if rows:
        yield rows, checkpoints


def load(databases: list[Database], traffic: Traffic, keys: AuditKeys) -> float:
    """Bulk-insert the traffic into every database (generated and sealed once); seconds."""
    start = time.perf_counter()
    for rows, checkpoints in _sealed_batches(traffic, keys):
        for db in databases:
            with session_scope(db.factory) as session:
                repo = AuditRepository(session)
                repo.insert_events(rows)
                for checkpoint in checkpoints:
                    repo.insert_checkpoint(checkpoint)
    for db in databases:
        if db.backend == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(sqlalchemy.text("ANALYZE audit_events"))
    return time.perf_counter() - start


# ---------------------------------------------------------------------------- measurements


def plain_read(db: Database) -> tuple[int, float]:
    """Every event in keyset batches of the scanner's batch size; (events, seconds)."""
    batch = db.settings.incident_scan_batch
    start = time.perf_counter()
    events = 0
    with db.factory() as session:
        for _row in AuditRepository(session).stream_events(batch_size=batch):
            events += 1
    return events, time.perf_counter() - start


def _timezone() -> str:
    """The time zone rules' ``hour`` and ``weekday`` use (policies/incidents.yaml)."""
    try:
        from guard.incidents.policy import load_incident_policy  # noqa: PLC0415

        return load_incident_policy(PROJECT_ROOT / "policies" / "incidents.yaml").timezone
    except (ImportError, OSError):
        return "UTC"


def engine_pass(db: Database, timezone: str) -> tuple[int, float, dict[str, int]]:
    """The same stream fed to the shipped rules; (events, seconds, hits per rule title)."""
    from guard.incidents.sigma import Evaluator, RuleSet  # noqa: PLC0415 - may not exist yet

    batch = db.settings.incident_scan_batch
    rules = RuleSet.load(db.settings.incident_rules_dir)  # the scanner loads them before scan()
    start = time.perf_counter()
    feed = Evaluator(rules, timezone=timezone).feed
    events = 0
    hits: dict[str, int] = {}
    with db.factory() as session:
        for row in AuditRepository(session).stream_events(batch_size=batch):
            events += 1
            for hit in feed(row._mapping):  # noqa: SLF001 - SQLAlchemy's public Row mapping
                hits[hit.rule.title] = hits.get(hit.rule.title, 0) + 1
    return events, time.perf_counter() - start, hits


def _reset_incidents(db: Database) -> None:
    """Empty the incident tables (and the cursor) so that the next scan starts from seq 0."""
    from guard.incidents.models import (  # noqa: PLC0415
        Incident,
        IncidentCustomer,
        IncidentEntry,
        IncidentStep,
        ScanCursor,
    )

    with session_scope(db.factory) as session:
        for model in (IncidentCustomer, IncidentEntry, IncidentStep, Incident, ScanCursor):
            session.execute(delete(model))


def full_scan(db: Database, keys: AuditKeys) -> tuple[int, float, dict[str, Any]]:
    """``IncidentScanner.scan()`` from an empty cursor; (events, seconds, report facts)."""
    from guard.audit.service import AuditTrail  # noqa: PLC0415
    from guard.incidents.scanner import IncidentScanner  # noqa: PLC0415 - may not exist yet

    _reset_incidents(db)
    trail = AuditTrail(db.settings, db.factory, keys)
    scanner = IncidentScanner(settings=db.settings, session_factory=db.factory, trail=trail)
    start = time.perf_counter()
    report = scanner.scan(seal=False)
    seconds = time.perf_counter() - start
    # then what the worker does right after each pass: verify the chain over the new
    # incidents' events (their evidence); timed apart, it depends on incidents, not events
    start = time.perf_counter()
    sealed = scanner.seal_evidence()
    evidence_seconds = time.perf_counter() - start
    facts = {
        "hits": report.hits,
        "opened": report.opened,
        "updated": report.updated,
        "report_seconds": report.seconds,
        "sealed": sealed,
        "evidence_seconds": evidence_seconds,
    }
    return report.events, seconds, facts


def _available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@dataclass
class Series:
    """Repeated runs of one measurement: events and seconds of each."""

    events: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rates(self) -> list[float]:
        """Events per second of each run."""
        return [e / s for e, s in zip(self.events, self.seconds, strict=True)]

    def summary(self) -> dict[str, Any]:
        """Median and best events/s, every run's seconds, and what the last run reported."""
        return {
            "events": self.events[-1],
            "events_per_s": statistics.median(self.rates),
            "best_events_per_s": max(self.rates),
            "median_seconds": statistics.median(self.seconds),
            "runs_seconds": self.seconds,
            **self.extra,
        }


def measure(db: Database, keys: AuditKeys, repeat: int, timezone: str) -> dict[str, Any]:
    """Read, read + engine and full scan, ``repeat`` rounds of each in turn."""
    steps: dict[str, Callable[[], tuple[int, float, dict[str, Any]]]] = {
        "read": lambda: (*plain_read(db), {}),
    }
    if _available("guard.incidents.sigma"):
        steps["read_engine"] = lambda: _engine_step(db, timezone)
    if _available("guard.incidents.scanner"):
        steps["scan"] = lambda: full_scan(db, keys)
    series = {name: Series() for name in steps}
    if "scan" in steps:
        series["scan_and_evidence"] = Series()
    for _ in range(repeat):
        for name, step in steps.items():
            events, seconds, extra = step()
            series[name].events.append(events)
            series[name].seconds.append(seconds)
            series[name].extra = extra
            if name == "scan":
                both = series["scan_and_evidence"]
                both.events.append(events)
                both.seconds.append(seconds + extra["evidence_seconds"])
    out: dict[str, Any] = {name: s.summary() for name, s in series.items()}
    # Ratios of rates (each scan appends a few audit events of its own, incidents.open): of the
    # medians (the headline), of the best runs, and the median of each round's own ratio (a
    # round's three measurements ran back to back, so a noisy neighbour hits them alike).
    read = series["read"]
    for name in ("read_engine", "scan", "scan_and_evidence"):
        if name in series:
            rates = series[name].rates
            out[f"{name}_over_read"] = out["read"]["events_per_s"] / out[name]["events_per_s"]
            out[f"{name}_over_read_best"] = max(read.rates) / max(rates)
            out[f"{name}_over_read_paired"] = statistics.median(
                r / x for r, x in zip(read.rates, rates, strict=True)
            )
    return out


def _engine_step(db: Database, timezone: str) -> tuple[int, float, dict[str, Any]]:
    events, seconds, hits = engine_pass(db, timezone)
    return events, seconds, {"hits_by_rule": dict(sorted(hits.items()))}


# ---------------------------------------------------------------------------- main


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    found = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for package in ("pySigma", "SQLAlchemy", "psycopg"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _write_results(results: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(RESULTS)


def _print(backend: str, figures: dict[str, Any]) -> None:
    read = figures["read"]
    line = f"{backend:10s} {read['events']:,} events: read {read['events_per_s']:,.0f}/s"
    for name, label in (
        ("read_engine", "read+engine"),
        ("scan", "scan"),
        ("scan_and_evidence", "scan+evidence"),
    ):
        if name in figures:
            line += (
                f"; {label} {figures[name]['events_per_s']:,.0f}/s "
                f"({figures[f'{name}_over_read']:.2f}x the read, "
                f"per round {figures[f'{name}_over_read_paired']:.2f}x)"
            )
    print(line)
    if "read_engine" in figures:
        print(f"{'':10s} engine hits by rule: {figures['read_engine']['hits_by_rule']}")
    if "scan" in figures:
        scan = figures["scan"]
        print(
            f"{'':10s} scan: {scan['hits']} hits, {scan['opened']} incidents opened, "
            f"{scan['updated']} updates; evidence of {scan['sealed']} verified in "
            f"{scan['evidence_seconds']:.2f} s"
        )


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="audit events to scan")
    parser.add_argument(
        "--repeat", type=int, default=None, help="rounds of the three measurements (5; quick: 3)"
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EVENTS:,} events, 3 rounds")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    events = QUICK_EVENTS if args.quick else args.events
    args.repeat = args.repeat or (3 if args.quick else 5)
    backends = ["sqlite"]
    if args.skip_postgres:
        print("PostgreSQL skipped (--skip-postgres)")
    elif postgres_available():
        backends.append("postgresql")
    else:
        print("PostgreSQL not reachable at 127.0.0.1:5432: SQLite only")
    timezone = _timezone()
    results: dict[str, Any] = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": _versions(),
        "events": events,
        "repeat": args.repeat,
        "timezone": timezone,
        "batch_size": Settings().incident_scan_batch,
        "backends": {},
    }
    if _available("guard.incidents.sigma"):
        from guard.incidents.sigma import RuleSet  # noqa: PLC0415

        rules = RuleSet.load(Settings().incident_rules_dir)
        results["rules"] = {
            "total": len(rules.rules),
            "alerting": sum(rule.generates for rule in rules.rules),
            "fingerprint": rules.fingerprint(),
        }
    with tempfile.TemporaryDirectory(prefix="guard-bench-incidents-") as tmp:
        workdir = Path(tmp)
        databases = [Database(backend, workdir) for backend in backends]
        try:
            keys = AuditKeys.from_settings(databases[0].settings)
            traffic = Traffic(keys, events, timezone)
            load_seconds = load(databases, traffic, keys)
            results["planted_incidents"] = traffic.planted
            print(
                f"loaded {events:,} sealed events into {', '.join(backends)} in "
                f"{load_seconds:.1f} s; incidents planted: "
                + ", ".join(name for name, _ in traffic.planted)
            )
            for db in databases:
                figures = measure(db, keys, args.repeat, timezone)
                results["backends"][db.backend] = {"server": db.label, **figures}
                _print(db.backend, figures)
        finally:
            for db in databases:
                db.drop()
    results["load_seconds"] = load_seconds
    _write_results(results)
    print(f"median of {args.repeat} runs each; results in {RESULTS.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main()
