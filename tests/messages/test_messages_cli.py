"""``guard messages check`` end to end: the configured database, real model, real audit trail."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result

from guard.api.services import build_services
from guard.cli import main
from guard.records.endpoints import build_record_service
from guard.records.schemas import RecordCreate

if TYPE_CHECKING:
    from guard.config import Settings
    from guard.detection.executor import AnalysisExecutor


@pytest.fixture
def seeded(
    db_settings: Settings, analysis: AnalysisExecutor, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Two customers of tenant acme; the CLI's environment points at their database."""
    assert db_settings.database_url is not None
    monkeypatch.setenv("GUARD_DATABASE_URL", db_settings.database_url.get_secret_value())
    monkeypatch.setenv("GUARD_KEYS_DIR", str(db_settings.keys_dir))
    monkeypatch.setenv("GUARD_VAR_DIR", str(db_settings.var_dir))
    services = build_services(db_settings, analysis=analysis)
    records = build_record_service(services)
    ids = {
        name: records.create(tenant="acme", data=RecordCreate(**fields)).id
        for name, fields in (
            ("jane", {"full_name": "Jane Doe", "email": "jane.doe@example.com"}),
            ("rahul", {"full_name": "Rahul Mehta", "email": "rahul.mehta@example.org"}),
        )
    }
    services.close()
    return ids


def run(*args: str, stdin: str) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def test_when_a_draft_quotes_another_customer_then_the_cli_blocks_with_exit_2(
    seeded: dict[str, str], db_settings: Settings, analysis: AnalysisExecutor
) -> None:
    draft = "Hi Jane, I also emailed rahul.mehta@example.org about it.\n"
    result = run("messages", "check", "--tenant", "acme", "--customer", seeded["jane"], stdin=draft)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "verdict: block" in result.stderr
    assert "other_customer" in result.stderr
    assert "rahul" not in result.stderr.casefold()
    services = build_services(db_settings, analysis=analysis)
    (event,) = services.audit.search_events(action="message.check")
    services.close()
    assert (event["principal"], event["details"]["verdict"]) == ("cli", "block")
    assert event["customer"] == services.audit.customer_hash(seeded["jane"])


def test_when_a_draft_is_fine_then_the_cli_prints_the_text_to_send(
    seeded: dict[str, str],
) -> None:
    draft = "Hi Jane, your label is at jane.doe@example.com; write to help@partner.com too."
    result = run(
        "messages", "check", "--tenant", "acme", "--customer", seeded["jane"], "--json", stdin=draft
    )
    assert result.exit_code == 0, result.output
    assert '"verdict": "redact"' in result.stdout
    assert "jane.doe@example.com" in result.stdout
    assert "help@partner.com" not in result.stdout


@pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)
def test_when_the_customer_is_unknown_then_the_cli_says_so_with_exit_1(
    seeded: dict[str, str],
) -> None:
    del seeded
    result = run(
        "messages",
        "check",
        "--tenant",
        "acme",
        "--customer",
        "00000000-0000-4000-8000-000000000000",
        stdin="Hello",
    )
    assert result.exit_code == 1
    assert "no record with this id" in result.stderr
    assert "00000000" not in result.stderr
