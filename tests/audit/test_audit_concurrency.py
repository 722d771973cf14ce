from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr
from sqlalchemy import text

from guard.audit.service import AuditTrail
from guard.config import Settings
from tests.audit.conftest import record_events

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import Engine

PROCESSES = 3
THREADS = 4
PER_WORKER = 15


def _append_in_child(url: str, keys_dir: str, var_dir: str, count: int) -> None:
    settings = Settings(
        database_url=SecretStr(url),
        keys_dir=Path(keys_dir),
        var_dir=Path(var_dir),
        audit_checkpoint_events=5,
    )
    trail = AuditTrail(settings)
    try:
        record_events(trail, count, principal="worker-process")
    finally:
        trail.close()


def test_when_threads_and_processes_append_at_once_then_one_gapless_chain_results(
    audit_settings: Settings, trail: AuditTrail, engine: Engine
) -> None:
    assert audit_settings.database_url is not None
    trail.record(action="start", resource="test", decision="allow", outcome="success")
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_append_in_child,
            args=(
                audit_settings.database_url.get_secret_value(),
                str(audit_settings.keys_dir),
                str(audit_settings.var_dir),
                PER_WORKER,
            ),
        )
        for _ in range(PROCESSES)
    ]
    errors: list[BaseException] = []

    def append_in_thread() -> None:
        try:
            record_events(trail, PER_WORKER, principal="worker-thread")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=append_in_thread) for _ in range(THREADS)]
    for process in processes:
        process.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for process in processes:
        process.join(timeout=120)
    assert errors == []
    assert [process.exitcode for process in processes] == [0] * PROCESSES

    total = 1 + (PROCESSES + THREADS) * PER_WORKER
    with engine.connect() as conn:
        seqs: Sequence[int] = (
            conn.execute(text("SELECT seq FROM audit_events ORDER BY seq")).scalars().all()
        )
        checkpoints: Sequence[int] = (
            conn.execute(text("SELECT seq FROM audit_checkpoints ORDER BY seq")).scalars().all()
        )
    assert seqs == list(range(1, total + 1))
    # a checkpoint closes the group in which the 5th event since the last one was committed:
    # groups in this process hold at most THREADS events, the children's one each
    gaps = [b - a for a, b in zip([0, *checkpoints], checkpoints, strict=False)]
    assert gaps, "no checkpoint written"
    assert all(5 <= gap <= 5 + THREADS - 1 for gap in gaps), gaps
    assert total - checkpoints[-1] < 5
    report = trail.verify(batch_size=7)
    assert report.ok, report
    assert report.events_checked == total
