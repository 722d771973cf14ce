"""The scanner over a real app's audit trail: incidents open once, dedupe, survive restarts."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest

from guard.incidents.sigma import RuleSet
from guard.incidents.worker import ScannerProcess, run_scanner
from tests.audit.conftest import tamper
from tests.incidents.helpers import DENIALS_RULE, SUPERVISOR_READS, deny, incidents, scanner_for

if TYPE_CHECKING:
    from pathlib import Path

    from tests.fixtures.api import Api, OpenApi


def test_when_a_principal_is_refused_ten_times_then_one_incident_opens_with_evidence(
    api: Api,
) -> None:
    deny(api, 10)
    report = scanner_for(api).scan()
    assert report.opened == 1
    (incident,) = incidents(api)
    assert incident["rule_id"] == DENIALS_RULE
    assert incident["status"] == "open"
    assert incident["tenant"] == "acme"
    detail = api.client.get(
        f"/v1/incidents/{incident['id']}", headers=api.headers("compliance_officer")
    ).json()
    assert detail["evidence"]["chain_ok"] is True
    assert detail["evidence"]["first_seq"] <= detail["evidence"]["last_seq"]
    assert detail["runbook"] == "unauthorized-access"
    assert detail["timeline"][0]["kind"] == "opened"
    opened = api.services.audit.search_events(action="incidents.open")
    assert [e["resource"] for e in opened] == [f"incident:{incident['id']}"]


def test_when_nothing_new_happened_then_a_second_scan_changes_nothing(api: Api) -> None:
    deny(api, 10)
    scanner = scanner_for(api)
    first = scanner.scan()
    second = scanner.scan()
    assert first.opened == 1
    assert (second.opened, second.updated, second.hits) == (0, 0, 0)
    assert second.cursor >= first.cursor
    assert len(incidents(api)) == 1


def test_when_a_burst_keeps_going_then_the_open_incident_is_updated_not_duplicated(
    api: Api,
) -> None:
    scanner = scanner_for(api)
    deny(api, 10)
    scanner.scan()
    deny(api, 5)
    report = scanner.scan()
    assert (report.opened, report.updated) == (0, 1)
    (incident,) = incidents(api)
    assert incident["hits"] >= 2
    detail = api.client.get(f"/v1/incidents/{incident['id']}", headers=api.headers("admin")).json()
    assert [entry["kind"] for entry in detail["timeline"]] == ["opened", "evidence", "events"]


def test_when_the_scanner_restarts_mid_burst_then_its_windows_are_rebuilt_from_the_trail(
    api: Api,
) -> None:
    deny(api, 6)
    assert scanner_for(api).scan().opened == 0  # six of ten: no incident yet
    deny(api, 4)
    # a new scanner (a restart): the six earlier denials are replayed into its windows
    report = scanner_for(api).scan()
    assert report.opened == 1
    assert report.events < 20  # the earlier events were not evaluated into incidents again


def test_when_two_scanners_race_then_each_batch_is_applied_once(api: Api) -> None:
    first, second = scanner_for(api), scanner_for(api)
    second.scan()  # its windows now stand at the current cursor
    deny(api, 10)
    assert first.scan().opened == 1
    # second's windows are behind the cursor that first moved: it notices, rebuilds, applies
    # nothing twice
    again = second.scan()
    assert (again.opened, again.updated) == (0, 0)
    assert len(incidents(api)) == 1


def test_when_a_rule_file_turns_bad_then_the_rules_in_force_stay_and_the_refusal_is_audited(
    open_api: OpenApi, tmp_path: Path
) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "reads.yml").write_text(SUPERVISOR_READS)
    with open_api(incident_rules_dir=rules_dir) as api:
        scanner = scanner_for(api)
        assert [r.title for r in scanner.rules.rules] == ["A supervisor read a customer record"]
        (rules_dir / "broken.yml").write_text(
            SUPERVISOR_READS.replace("records.read", "x")
            .replace("role:", "rolle:")
            .replace("6a3c3a51", "7a3c3a51")
        )
        scanner.scan()
        assert [r.title for r in scanner.rules.rules] == ["A supervisor read a customer record"]
        (refusal,) = api.services.audit.search_events(action="incidents.rules_reload")
        assert refusal["outcome"] == "failure"
        assert "broken.yml" in refusal["details"]["reason"]
        assert "rolle" in refusal["details"]["reason"]


def _create_record(api: Api, name: str, email: str) -> str:
    response = api.client.post(
        "/v1/records",
        headers=api.headers("agent"),
        json={"full_name": name, "email": email},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_when_the_evidence_was_edited_then_the_incident_says_the_chain_is_broken(
    api: Api,
) -> None:
    record_id = _create_record(api, "Jane Roe", "jane@example.com")
    api.client.get(f"/v1/records/{record_id}", headers=api.headers("supervisor"))
    (read,) = api.services.audit.search_events(action="records.read")
    tamper(
        api.services.engine,
        "UPDATE audit_events SET principal = 'someone' WHERE seq = :s",
        {"s": read["seq"]},
    )
    scanner_for(api, RuleSet.from_yaml(SUPERVISOR_READS)).scan()
    (incident,) = incidents(api)
    detail = api.client.get(f"/v1/incidents/{incident['id']}", headers=api.headers("admin")).json()
    assert detail["evidence"]["chain_ok"] is False
    assert "edited" in detail["evidence"]["chain_detail"]


def test_when_guard_serve_runs_then_its_background_scanner_opens_incidents(
    open_api: OpenApi,
) -> None:
    with open_api(incident_scan_seconds=0.2) as api:
        stop = threading.Event()
        worker = threading.Thread(target=run_scanner, args=(api.settings, stop), daemon=True)
        worker.start()
        try:
            deny(api, 10)
            deadline = time.monotonic() + 30
            while not incidents(api):
                assert time.monotonic() < deadline, "the background scan opened no incident"
                time.sleep(0.1)
        finally:
            stop.set()
            worker.join(timeout=30)
        assert not worker.is_alive()


def test_when_guard_serve_starts_its_scanner_process_then_it_scans_and_stops_with_it(
    open_api: OpenApi,
) -> None:
    with open_api(incident_scan_seconds=0.2) as api:
        process = ScannerProcess(api.settings)
        process.start()
        try:
            deny(api, 10)
            deadline = time.monotonic() + 60
            while not incidents(api):
                assert process.alive, "the scanner process died"
                assert time.monotonic() < deadline, "the scanner process opened no incident"
                time.sleep(0.2)
        finally:
            process.stop()
        assert not process.alive


def test_when_a_message_is_blocked_then_the_customer_whose_data_it_held_is_the_affected_one(
    api: Api,
) -> None:
    jane = _create_record(api, "Jane Roe", "jane.roe@example.com")
    ann = _create_record(api, "Ann Lee", "ann.lee@example.com")
    checked = api.client.post(
        "/v1/messages/check",
        headers=api.headers("agent"),
        json={"text": "Hi, you can also write to ann.lee@example.com", "customer_id": jane},
    )
    assert checked.json()["verdict"] == "block"
    scanner_for(api).scan()
    (incident,) = incidents(api)
    resolved = api.client.post(
        f"/v1/incidents/{incident['id']}/customers/resolve", headers=api.headers("admin")
    ).json()
    assert resolved == {"record_ids": [ann], "unresolved": 0}


def test_when_the_scanner_crashes_before_its_commit_then_nothing_is_half_applied(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    deny(api, 10)
    crashing = scanner_for(api)

    def crash(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("power cut")

    # the incidents are written, then the cursor move fails: the one transaction rolls back
    monkeypatch.setattr("guard.incidents.repository.IncidentRepository.save_cursor", crash)
    with pytest.raises(RuntimeError):
        crashing.scan()
    monkeypatch.undo()
    assert incidents(api) == []
    report = scanner_for(api).scan()
    assert report.opened == 1
    assert len(incidents(api)) == 1
