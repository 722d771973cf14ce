"""The console's audit search: a filtered page over 1,000,000 events, first and deep.

One run, same machine, each database (the embedded SQLite file; PostgreSQL when reachable): a
scratch database is bulk-loaded with ``--events`` sealed events of ``bench/incidents.py``'s
support desk (3 tenants, 120 agents, supervisors, officers, admins; real hashes, HMACs and signed
checkpoints; ANALYZE on PostgreSQL, none on SQLite, as guard ships). Then the console's own call,
``AuditTrail.search(AuditFilters(...), limit=50, cursor=...)``, is timed for the filters an
officer uses (the tenant is always set: an officer sees their tenant):

- the issue's list: tenant only; + principal (the busiest); + action and decision=deny; +
  customer (by id, matched through its keyed hash); + one day; + outcome=failure and the last
  7 days; a filter that matches nothing (outcome=error: "were there any errors?");
- beyond it (``extra``), searches the form offers that measured slow at first: the least active
  principal, role=admin, decision=deny, deny + success ("denied yet done?": nothing), and the
  last 7 days alone;

each as a **first page** (no cursor) and a **deep page** (the cursor at the match 90% of the
way through the matches; for an empty result, at 90% of the chain). Every query runs 24 times
untimed (so that on PostgreSQL each pooled connection has prepared it and settled between its
custom and generic plans, as in a long-running guard), then ``--repeat`` times (20), the
queries interleaved; p50 and p95 are reported in
milliseconds (target: both under 200 ms), with the plan (EXPLAIN QUERY PLAN on SQLite, EXPLAIN
ANALYZE on PostgreSQL) of the very statement the repository sent.

When migration 0008's search indexes exist, the cases are measured again with them dropped
(``without_search_indexes``: same data, same run), and then the durable append rate with and
without them, alternating (``--appends`` per round, ``--append-rounds``), with the time to build
them over the loaded table. ``--no-baseline`` skips both. Writes ``bench/results/console.json``.

    .venv/bin/python bench/console.py [--events 1000000] [--repeat 20] [--quick] [--skip-postgres]
        [--no-baseline] [--appends 500] [--append-rounds 6]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

import sqlalchemy
from incidents import Database, Traffic, _timezone, load  # bench/incidents.py: desk + loader
from messages import percentile  # bench/messages.py: the same nearest-rank percentile
from psycopg.sql import Literal
from scratch import postgres_available
from sqlalchemy import Index, event, func, select, text

from guard.audit.models import AuditEvent
from guard.audit.schemas import AuditFilters
from guard.audit.service import AuditTrail
from guard.config import PROJECT_ROOT
from guard.crypto.audit_keys import AuditKeys

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.orm import Session

RESULTS = PROJECT_ROOT / "bench" / "results" / "console.json"
#: The migration that adds the audit search indexes (its ``INDEXES`` names them).
SEARCH_MIGRATION = (
    PROJECT_ROOT / "guard" / "storage" / "migrations" / "versions" / "0008_audit_search_indexes.py"
)
PAGE = 50
TARGET_MS = 200.0
QUICK_EVENTS = 50_000
#: How far into the matches the deep page's cursor sits.
DEEP = 0.9
TENANT = "acme"
#: Runs of a statement on one connection after which it is prepared and PostgreSQL has chosen
#: between its custom and generic plans (see ``_pg_plan``).
_PREPARED_RUNS = 12
#: Untimed runs of each query first: enough for every pooled connection (the bench uses two)
#: to have prepared it and settled on a plan, as in a guard process that has run for a while.
_WARM_UP = 2 * _PREPARED_RUNS
#: The action whose denials an officer looks for: agents trying to reveal a record.
DENIED_ACTION = "records.reveal"


class RecordingKeys:
    """The audit keys, remembering which customer id each keyed hash came from.

    The desk stores only keyed hashes; the console's customer filter takes the raw id, as an
    officer types it, so the benchmark keeps the mapping (in memory, for this run only).
    """

    def __init__(self, keys: AuditKeys) -> None:
        self._keys = keys
        self.raw: dict[str, str] = {}

    def identifier_hash(self, kind: str, value: str) -> str:
        """The keyed hash of ``value``; remembered."""
        digest = self._keys.identifier_hash(kind, value)
        self.raw[digest] = value
        return digest


@dataclass(frozen=True)
class Case:
    """One officer's search: its name, what it means, its filters."""

    name: str
    label: str
    filters: AuditFilters
    #: Not in the issue's list: a search the console's form offers that measured slow at first.
    extra: bool = False


def _conditions(filters: AuditFilters, customer_hash: str | None) -> list[Any]:
    """The repository's WHERE clause for ``filters`` (to list every match, untimed)."""
    conditions: list[Any] = []
    if filters.since is not None:
        conditions.append(AuditEvent.ts >= filters.since)
    if filters.until is not None:
        conditions.append(AuditEvent.ts < filters.until)
    for name in ("principal", "role", "tenant", "action", "decision", "outcome", "request_id"):
        value = getattr(filters, name)
        if value is not None:
            conditions.append(getattr(AuditEvent, name) == value)
    if customer_hash is not None:
        conditions.append(AuditEvent.customer == customer_hash)
    return conditions


def build_cases(session: Session, raw_customers: dict[str, str], timezone: str) -> list[Case]:
    """The officer's searches, with values taken from the loaded desk."""
    tenant = AuditEvent.tenant == TENANT
    by_principal = (
        select(AuditEvent.principal, func.count().label("n"))
        .where(tenant, AuditEvent.principal.is_not(None))
        .group_by(AuditEvent.principal)
    )
    busiest = session.execute(
        by_principal.order_by(func.count().desc(), AuditEvent.principal).limit(1)
    ).one()
    quietest = session.execute(
        by_principal.order_by(func.count(), AuditEvent.principal).limit(1)
    ).one()
    customer_hash = session.execute(
        select(AuditEvent.customer)
        .where(tenant, AuditEvent.customer.is_not(None))
        .group_by(AuditEvent.customer)
        .order_by(func.count().desc(), AuditEvent.customer)
        .limit(1)
    ).scalar_one()
    head = session.execute(select(func.max(AuditEvent.seq))).scalar_one()
    head_ts = session.execute(select(AuditEvent.ts).where(AuditEvent.seq == head)).scalar_one()
    # One whole local day late in the run (the day of the event three quarters in), so a scan
    # in seq order from the start would have to walk most of the chain to reach it.
    late = session.execute(
        select(AuditEvent.ts).where(AuditEvent.seq == max(1, head * 3 // 4))
    ).scalar_one()
    zone = ZoneInfo(timezone)
    day = late.astimezone(zone).date()
    day_start = datetime(day.year, day.month, day.day, tzinfo=zone)
    one_day = {
        "since": day_start.astimezone(UTC),
        "until": (day_start + timedelta(days=1)).astimezone(UTC),
    }
    week = {"since": head_ts + timedelta(minutes=1) - timedelta(days=7)}
    week["until"] = head_ts + timedelta(minutes=1)
    reveal_denied = {"action": DENIED_ACTION, "decision": "deny"}
    return [
        Case("tenant", "tenant only", AuditFilters(tenant=TENANT)),
        Case(
            "principal",
            f"tenant + principal (the busiest, {busiest.n:,} events)",
            AuditFilters(tenant=TENANT, principal=busiest.principal),
        ),
        Case(
            "action_deny",
            f"tenant + action {DENIED_ACTION} + decision deny",
            AuditFilters(tenant=TENANT, **reveal_denied),
        ),
        Case(
            "customer",
            "tenant + customer (the busiest)",
            AuditFilters(tenant=TENANT, customer=raw_customers[customer_hash]),
        ),
        Case(
            "one_day",
            f"tenant + one day ({day.isoformat()}, {timezone})",
            AuditFilters(tenant=TENANT, **one_day),
        ),
        Case(
            "failure_week",
            "tenant + outcome failure + the last 7 days",
            AuditFilters(tenant=TENANT, outcome="failure", **week),
        ),
        Case(
            "nothing",
            "tenant + outcome error (matches nothing)",
            AuditFilters(tenant=TENANT, outcome="error"),
        ),
        Case(
            "quiet_principal",
            f"tenant + principal (the least active, {quietest.n:,} events)",
            AuditFilters(tenant=TENANT, principal=quietest.principal),
            extra=True,
        ),
        Case("role", "tenant + role admin", AuditFilters(tenant=TENANT, role="admin"), extra=True),
        Case(
            "deny",
            "tenant + decision deny",
            AuditFilters(tenant=TENANT, decision="deny"),
            extra=True,
        ),
        Case(
            "denied_yet_succeeded",
            "tenant + decision deny + outcome success (nothing)",
            AuditFilters(tenant=TENANT, decision="deny", outcome="success"),
            extra=True,
        ),
        Case("week", "tenant + the last 7 days", AuditFilters(tenant=TENANT, **week), extra=True),
    ]


# ---------------------------------------------------------------------------- measurements


@dataclass
class Query:
    """One timed call: a case's first or deep page."""

    case: Case
    page: str  # "first" or "deep"
    cursor: int | None
    matches: int
    seconds: list[float]
    rows: int = 0
    has_next: bool = False
    plan: list[str] | None = None


def _queries(db: Database, trail: AuditTrail, cases: list[Case]) -> list[Query]:
    """Each case's first and deep page, the deep cursor chosen from the full list of matches."""
    queries: list[Query] = []
    with db.factory() as session:
        head = session.execute(select(func.max(AuditEvent.seq))).scalar_one()
        for case in cases:
            customer = case.filters.customer
            customer_hash = None if customer is None else trail.customer_hash(customer)
            seqs = list(
                session.execute(
                    select(AuditEvent.seq)
                    .where(*_conditions(case.filters, customer_hash))
                    .order_by(AuditEvent.seq)
                ).scalars()
            )
            deep = seqs[int(len(seqs) * DEEP)] if seqs else int(head * DEEP)
            first_page = trail.search(case.filters, limit=PAGE)
            assert [e.seq for e in first_page.events] == seqs[:PAGE], case.name
            queries.append(Query(case, "first", None, len(seqs), []))
            queries.append(Query(case, "deep", deep, len(seqs), []))
    return queries


def _run(trail: AuditTrail, query: Query) -> float:
    start = time.perf_counter()
    page = trail.search(query.case.filters, limit=PAGE, cursor=query.cursor)
    seconds = time.perf_counter() - start
    query.rows, query.has_next = len(page.events), page.next_cursor is not None
    return seconds


def _plan(engine: Engine, trail: AuditTrail, query: Query) -> list[str]:
    """The plan of the statement the repository runs for ``query`` (captured as sent)."""
    sent: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:  # noqa: ANN401 - SQLAlchemy's before_cursor_execute
        statement, parameters = args[2], args[3]
        if statement.lstrip().upper().startswith("SELECT") and "audit_events.seq >" in statement:
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        trail.search(query.case.filters, limit=PAGE, cursor=query.cursor)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    statement, parameters = sent[-1]
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            depth: dict[int, int] = {0: -1}
            lines = []
            for node, parent, _unused, detail in rows:
                depth[node] = depth.get(parent, -1) + 1
                lines.append("  " * depth[node] + detail)
            return lines
        return _pg_plan(conn, statement, parameters)


def _pg_plan(conn: Connection, statement: str, parameters: dict[str, Any]) -> list[str]:
    """EXPLAIN ANALYZE of the statement as a pooled connection runs it again and again.

    psycopg prepares a statement on its 6th run on a connection, and PostgreSQL plans a prepared
    statement with its values 5 times, then switches to a generic plan (no values) when that
    looks no dearer: the timed runs use whichever it chose, so this explains the same prepared
    statement (first line: how many generic and custom plans it has had).
    """
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))
    sent = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", statement)
    listing = (
        "SELECT name, CAST(parameter_types AS text[]), generic_plans + custom_plans "
        "FROM pg_prepared_statements WHERE statement = %(sent)s"
    )
    before = {row[0]: row[2] for row in conn.exec_driver_sql(listing, {"sent": sent})}
    for _ in range(_PREPARED_RUNS):
        conn.exec_driver_sql(statement, parameters).all()
    # psycopg prepares a text once per set of parameter types: take the one these runs used.
    name, kinds, _runs = max(
        conn.exec_driver_sql(listing, {"sent": sent}).all(),
        key=lambda row: row[2] - before.get(row[0], 0),
    )
    # EXECUTE's arguments cannot be bind parameters: quoted by psycopg as literals instead.
    raw = conn.connection.dbapi_connection
    args = ", ".join(
        f"CAST({Literal(parameters[key]).as_string(raw)} AS {kind})"
        for key, kind in zip(names, kinds, strict=True)
    )
    rows = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, COSTS OFF) EXECUTE {name}({args})").all()
    generic, custom = conn.exec_driver_sql(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = %(name)s",
        {"name": name},
    ).one()
    return [f"(prepared: {generic} generic plans, {custom} custom)"] + [row[0] for row in rows]


def measure(db: Database, keys: AuditKeys, cases: list[Case], repeat: int) -> dict[str, Any]:
    """Every case's first and deep page: ``_WARM_UP`` rounds, then ``repeat`` timed ones."""
    trail = AuditTrail(db.settings, db.factory, keys)
    queries = _queries(db, trail, cases)
    for _ in range(_WARM_UP):
        for query in queries:
            _run(trail, query)
    for _ in range(repeat):
        for query in queries:
            query.seconds.append(_run(trail, query))
    for query in queries:
        query.plan = _plan(db.engine, trail, query)
    out: dict[str, Any] = {}
    for query in queries:
        p50, p95 = (percentile(query.seconds, q) * 1000 for q in (0.5, 0.95))
        out.setdefault(
            query.case.name,
            {"label": query.case.label, "extra": query.case.extra, "matches": query.matches},
        )
        out[query.case.name][query.page] = {
            "cursor": query.cursor,
            "rows": query.rows,
            "next_page": query.has_next,
            "p50_ms": round(p50, 2),
            "p95_ms": round(p95, 2),
            "max_ms": round(max(query.seconds) * 1000, 2),
            "runs_ms": [round(s * 1000, 2) for s in query.seconds],
            "plan": query.plan,
        }
    return out


def over_target(figures: dict[str, Any]) -> list[str]:
    """``case/page`` of every query whose p50 or p95 is at or over the target."""
    return [
        f"{name}/{page}"
        for name, case in figures.items()
        for page in ("first", "deep")
        if max(case[page]["p50_ms"], case[page]["p95_ms"]) >= TARGET_MS
    ]


# ---------------------------------------------------------------------------- indexes


def search_indexes() -> tuple[str, ...]:
    """Names of the indexes migration 0008 adds (none while it does not exist)."""
    if not SEARCH_MIGRATION.exists():
        return ()
    spec = importlib.util.spec_from_file_location("guard_migration_0008", SEARCH_MIGRATION)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.INDEXES)


def _index_objects(names: tuple[str, ...]) -> list[Index]:
    table = cast("Table", AuditEvent.__table__)
    found = [index for index in table.indexes if index.name in names]
    assert len(found) == len(names), "models.py and migration 0008 name different indexes"
    return found


def drop_indexes(db: Database, names: tuple[str, ...]) -> None:
    """Drop ``names`` from this scratch database."""
    with db.engine.begin() as conn:
        for index in _index_objects(names):
            index.drop(conn)


def create_indexes(db: Database, names: tuple[str, ...]) -> float:
    """Build ``names`` over the events loaded (as migration 0008 would); seconds."""
    start = time.perf_counter()
    with db.engine.begin() as conn:
        for index in _index_objects(names):
            index.create(conn)
        if db.backend == "postgresql":
            conn.execute(text("ANALYZE audit_events"))
    return time.perf_counter() - start


def index_megabytes(db: Database, names: tuple[str, ...]) -> dict[str, float]:
    """On-disk size of each index (SQLite's dbstat table, PostgreSQL's pg_relation_size)."""
    query = (
        "SELECT SUM(pgsize) FROM dbstat WHERE name = :name"
        if db.backend == "sqlite"
        else "SELECT pg_relation_size(CAST(:name AS regclass))"
    )
    sizes = {}
    with db.engine.connect() as conn:
        for name in ("pk_audit_events", "ix_audit_events_tenant", *names):
            if db.backend == "sqlite" and name == "pk_audit_events":
                name_in_db = "audit_events"  # the table is its rowid B-tree
            else:
                name_in_db = name
            try:
                size = conn.execute(text(query), {"name": name_in_db}).scalar_one()
            except sqlalchemy.exc.OperationalError:  # SQLite built without dbstat
                return {}
            sizes[name] = round((size or 0) / 2**20, 1)
    return sizes


def _append_rate(trail: AuditTrail, count: int) -> float:
    """Durable appends per second: an agent's record read, one committed transaction each."""
    start = time.perf_counter()
    for i in range(count):
        trail.record(
            action="records.read",
            resource="records",
            decision="allow",
            outcome="success",
            principal="bench-agent",
            role="agent",
            tenant=TENANT,
            request_id=f"bench-{i}",
            customer=f"C-{i % 100}",
            details={"fields_shown": 9},
        )
    return count / (time.perf_counter() - start)


def _settle(db: Database) -> None:
    """After building or dropping indexes: on SQLite, move the WAL into the database first.

    Otherwise the first appends after a build pay for checkpointing the new index's pages.
    """
    if db.backend == "sqlite":
        with db.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def append_cost(
    db: Database, keys: AuditKeys, names: tuple[str, ...], count: int, rounds: int
) -> dict[str, Any]:
    """Appends/s with and without ``names`` (dropped on entry), ``rounds`` pairs, ABBA order.

    Each round appends ``count`` events without the indexes and ``count`` with them, in
    alternating order (without-with, then with-without) so that drift over the run (WAL and
    table growth, a noisy neighbour) falls on both alike; building the indexes in between is
    timed: what migration 0008 costs on a table this size. After each build or drop, SQLite's
    WAL is checkpointed and 20 untimed appends warm the caches up.
    """
    trail = AuditTrail(db.settings, db.factory, keys)
    _append_rate(trail, 20)  # warm up: connections, the signing key
    rates: dict[bool, list[float]] = {False: [], True: []}
    builds: list[float] = []
    indexed = False
    for round_ in range(rounds):
        for want in (False, True) if round_ % 2 == 0 else (True, False):
            if want != indexed:
                if want:
                    builds.append(create_indexes(db, names))
                else:
                    drop_indexes(db, names)
                _settle(db)
                _append_rate(trail, 20)
            indexed = want
            rates[want].append(_append_rate(trail, count))
    if indexed:
        drop_indexes(db, names)
    without, with_ = rates[False], rates[True]
    return {
        "appends_per_round": count,
        "without_per_s": statistics.median(without),
        "with_per_s": statistics.median(with_),
        "with_over_without": statistics.median(with_) / statistics.median(without),
        "paired": statistics.median(w / o for w, o in zip(with_, without, strict=True)),
        "rounds_without_per_s": without,
        "rounds_with_per_s": with_,
        "build_seconds": builds,
    }


# ---------------------------------------------------------------------------- main


def _print(backend: str, phase: str, figures: dict[str, Any]) -> None:
    print(f"{backend} ({phase}): p50 / p95 ms, first page | deep page")
    for case in figures.values():
        first, deep = case["first"], case["deep"]
        label = case["label"] + (" *" if case["extra"] else "")
        print(
            f"  {label:60s} {first['p50_ms']:7.1f} / {first['p95_ms']:7.1f} | "
            f"{deep['p50_ms']:7.1f} / {deep['p95_ms']:7.1f}   ({case['matches']:,} matches)"
        )


def _versions() -> dict[str, str]:
    from importlib.metadata import version  # noqa: PLC0415

    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "SQLAlchemy": version("SQLAlchemy"),
        "psycopg": version("psycopg"),
    }


def run(
    db: Database, keys: AuditKeys, cases: list[Case], args: argparse.Namespace
) -> dict[str, Any]:
    """Search with the migrated schema; then without 0008's indexes; then the append cost."""
    indexes = search_indexes()
    phases: dict[str, Any] = {}
    phase = "with_search_indexes" if indexes else "as_migrated"
    phases[phase] = measure(db, keys, cases, args.repeat)
    _print(db.backend, phase, phases[phase])
    figures: dict[str, Any] = {"server": db.label}
    if indexes:
        figures["index_mb"] = index_megabytes(db, indexes)
    if indexes and not args.no_baseline:
        drop_indexes(db, indexes)
        phases["without_search_indexes"] = measure(db, keys, cases, args.repeat)
        _print(db.backend, "without_search_indexes", phases["without_search_indexes"])
        if args.appends:
            cost = append_cost(db, keys, indexes, args.appends, args.append_rounds)
            figures["append_cost"] = cost
            print(
                f"{db.backend} appends: {cost['without_per_s']:,.0f}/s without the search "
                f"indexes, {cost['with_per_s']:,.0f}/s with them ({cost['with_over_without']:.2f}x"
                f", per round {cost['paired']:.2f}x); building them: "
                + ", ".join(f"{s:.1f}" for s in cost["build_seconds"])
                + " s"
            )
    figures["over_target"] = {name: over_target(f) for name, f in phases.items()}
    return {**figures, **phases}


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="audit events to load")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per query (20)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EVENTS:,} events, 5 runs")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the runs without 0008's indexes"
    )
    parser.add_argument(
        "--appends", type=int, default=None, help="appends per round, with/without (500; 0: none)"
    )
    parser.add_argument("--append-rounds", type=int, default=None, help="rounds of appends (6)")
    args = parser.parse_args()
    events = QUICK_EVENTS if args.quick else args.events
    args.repeat = args.repeat or (5 if args.quick else 20)
    if args.appends is None:
        args.appends = 100 if args.quick else 500
    args.append_rounds = args.append_rounds or (2 if args.quick else 6)
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
        "page": PAGE,
        "target_ms": TARGET_MS,
        "deep_cursor": f"the match {DEEP:.0%} of the way through the matches",
        "search_indexes": list(search_indexes()),
        "backends": {},
    }
    with tempfile.TemporaryDirectory(prefix="guard-bench-console-") as tmp:
        workdir = Path(tmp)
        databases = [Database(backend, workdir) for backend in backends]
        try:
            keys = AuditKeys.from_settings(databases[0].settings)
            recording = RecordingKeys(keys)
            traffic = Traffic(cast("AuditKeys", recording), events, timezone)  # it only hashes
            results["load_seconds"] = load(databases, traffic, keys)
            print(f"loaded {events:,} sealed events into {', '.join(backends)}")
            for db in databases:
                with db.factory() as session:
                    cases = build_cases(session, recording.raw, timezone)
                results["backends"][db.backend] = run(db, keys, cases, args)
        finally:
            for db in databases:
                db.drop()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(RESULTS)
    print(
        f"* beyond the issue's list; {args.repeat} runs per query after {_WARM_UP} untimed; "
        f"results in {RESULTS.relative_to(PROJECT_ROOT)}"
    )


if __name__ == "__main__":
    main()
