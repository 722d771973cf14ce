"""A policy reload made in one process reaches the others on the same database.

Each ``AccessControl`` here stands for one worker process of ``guard serve`` (or another host):
they share only the database, as workers do. The audited ``policy.reload`` event is the signal.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest

from guard.access import permissions as perm
from guard.access.enforcer import AccessControl
from guard.audit.service import AuditTrail
from guard.errors import PolicyError
from tests.access.test_enforcer import principal

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from guard.config import Settings


@pytest.fixture
def shared(db_settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, Path, AuditTrail]]:
    folder = tmp_path / "policies"
    folder.mkdir()
    for name in ("model.conf", "policy.csv"):
        shutil.copy(db_settings.policies_dir / name, folder / name)
    configured = db_settings.model_copy(update={"policies_dir": folder})
    trail = AuditTrail(configured)
    yield configured, folder, trail
    trail.close()


def _worker(configured: Settings, trail: AuditTrail) -> AccessControl:
    return AccessControl(
        configured,
        audit=trail,
        follow=lambda: trail.latest_seq("policy.reload"),
        follow_seconds=0.0,
    )


def _events(trail: AuditTrail) -> list[tuple[str, str]]:
    return [(e["action"], e["outcome"]) for e in trail.search_events()]


def test_when_one_worker_reloads_then_the_others_apply_the_new_policy_without_auditing_again(
    shared: tuple[Settings, Path, AuditTrail],
) -> None:
    configured, folder, trail = shared
    first, second = _worker(configured, trail), _worker(configured, trail)
    analyst = principal("analyst")
    assert not second.enforce(analyst, perm.AUDIT_READ).allowed
    with (folder / "policy.csv").open("a", encoding="utf-8") as handle:
        handle.write("p, analyst, *, audit, read\n")
    # the file alone changes nothing: a reload is an audited decision
    assert not second.enforce(analyst, perm.AUDIT_READ).allowed

    first.reload(principal=principal("admin"))

    assert second.enforce(analyst, perm.AUDIT_READ).allowed
    assert first.enforce(analyst, perm.AUDIT_READ).allowed
    # one reload, one event: following it is not a reload of its own
    assert _events(trail) == [("policy.reload", "success")]
    assert not first.follow_reloads()
    assert not second.follow_reloads()


def test_when_a_reload_fails_then_the_other_workers_keep_the_policy_in_force(
    shared: tuple[Settings, Path, AuditTrail],
) -> None:
    configured, folder, trail = shared
    first, second = _worker(configured, trail), _worker(configured, trail)
    (folder / "policy.csv").write_text("p, root, *, text, redact\n", encoding="utf-8")
    with pytest.raises(PolicyError):
        first.reload()
    assert not second.follow_reloads()
    assert second.enforce(principal("agent"), perm.REDACT).allowed


def test_when_a_process_starts_then_reloads_already_in_the_trail_are_not_followed_again(
    shared: tuple[Settings, Path, AuditTrail],
) -> None:
    configured, _, trail = shared
    _worker(configured, trail).reload()
    late = _worker(configured, trail)
    assert not late.follow_reloads()


def test_when_checks_are_throttled_then_a_reload_is_seen_after_the_interval_only(
    shared: tuple[Settings, Path, AuditTrail],
) -> None:
    configured, folder, trail = shared
    first = _worker(configured, trail)
    slow = AccessControl(
        configured,
        audit=trail,
        follow=lambda: trail.latest_seq("policy.reload"),
        follow_seconds=3600,
    )
    slow.follow_reloads()  # the check is spent for the hour
    with (folder / "policy.csv").open("a", encoding="utf-8") as handle:
        handle.write("p, analyst, *, audit, read\n")
    first.reload()
    assert not slow.enforce(principal("analyst"), perm.AUDIT_READ).allowed
    assert _events(trail) == [("policy.reload", "success")]
