"""``guard principals`` and ``guard policies`` through click, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import shutil
from typing import TYPE_CHECKING

import sqlalchemy
from click.testing import CliRunner

from guard.access.cli import policies, principals
from guard.storage.engine import create_engine_for

if TYPE_CHECKING:
    from pathlib import Path

    from guard.config import Settings

KEY = re.compile(r"^gk_[A-Za-z0-9_-]{8}_[A-Za-z0-9_-]{43}$", re.MULTILINE)
ID = re.compile(r"created API key (\S+) ")


def _create(settings: Settings, *args: str) -> tuple[str, str]:
    result = CliRunner().invoke(principals, ["create", *args], obj=settings)
    assert result.exit_code == 0, result.output
    key = KEY.search(result.stdout)
    key_id = ID.search(result.stdout)
    assert key is not None
    assert key_id is not None
    assert "cannot be shown again" in result.stderr
    return key_id.group(1), key.group(0)


def test_when_a_principal_is_created_then_the_key_is_printed_once_and_never_listed(
    db_settings: Settings,
) -> None:
    key_id, key = _create(
        db_settings,
        "--name",
        "ops",
        "--role",
        "admin",
        "--tenant",
        "acme",
        "--expires-in-days",
        "30",
    )
    listing = CliRunner().invoke(principals, ["list"], obj=db_settings)
    assert listing.exit_code == 0, listing.output
    assert key_id in listing.output
    assert "admin" in listing.output
    assert "active" in listing.output
    assert key not in listing.output
    assert key[12:] not in listing.output


def test_when_a_principal_is_revoked_then_the_list_says_so(db_settings: Settings) -> None:
    key_id, _ = _create(db_settings, "--name", "desk", "--role", "agent", "--tenant", "acme")
    _create(db_settings, "--name", "other", "--role", "agent", "--tenant", "globex")
    result = CliRunner().invoke(principals, ["revoke", key_id], obj=db_settings)
    assert result.exit_code == 0, result.output
    listing = CliRunner().invoke(principals, ["list", "--tenant", "acme"], obj=db_settings)
    assert "revoked" in listing.output
    assert "globex" not in listing.output


def test_when_a_principal_has_an_unknown_role_then_the_cli_fails_without_writing(
    db_settings: Settings,
) -> None:
    result = CliRunner().invoke(
        principals, ["create", "--name", "x", "--role", "root", "--tenant", "acme"], obj=db_settings
    )
    assert result.exit_code == 1
    assert "unknown role" in result.stderr
    engine = create_engine_for(db_settings)
    with engine.connect() as conn:
        count: int = conn.execute(sqlalchemy.text("SELECT count(*) FROM api_keys")).scalar_one()
    engine.dispose()
    assert count == 0


def test_when_revoking_an_unknown_key_then_the_cli_fails(db_settings: Settings) -> None:
    result = CliRunner().invoke(principals, ["revoke", "no-such-id"], obj=db_settings)
    assert result.exit_code == 1
    assert "no API key" in result.stderr


def test_when_checking_a_denied_permission_then_the_cli_explains_deny_by_default(
    db_settings: Settings,
) -> None:
    args = [
        "check",
        "--role",
        "agent",
        "--tenant",
        "acme",
        "--action",
        "reveal",
        "--resource",
        "token",
    ]
    result = CliRunner().invoke(policies, args, obj=db_settings)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("DENIED")
    assert "denied by default" in result.stdout


def test_when_checking_an_allowed_permission_then_the_cli_names_the_policy_line(
    db_settings: Settings,
) -> None:
    args = [
        "check",
        "--role",
        "supervisor",
        "--tenant",
        "acme",
        "--action",
        "reveal",
        "--resource",
        "token",
    ]
    result = CliRunner().invoke(policies, args, obj=db_settings)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ALLOWED")
    assert "p, supervisor, *, token, reveal" in result.stdout


def test_when_reloading_a_valid_policy_then_the_cli_reports_it_valid(db_settings: Settings) -> None:
    result = CliRunner().invoke(policies, ["reload"], obj=db_settings)
    assert result.exit_code == 0, result.output
    assert "is valid" in result.stdout


def test_when_reloading_a_broken_policy_then_the_cli_exits_3_and_names_the_line(
    db_settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    shutil.copy(db_settings.policies_dir / "model.conf", folder / "model.conf")
    (folder / "policy.csv").write_text(
        "p, admin, *, policy, reload\np, agent, *, text, shred\n", encoding="utf-8"
    )
    broken = db_settings.model_copy(update={"policies_dir": folder})
    result = CliRunner().invoke(policies, ["reload"], obj=broken)
    assert result.exit_code == 3
    assert "policy.csv line 2" in result.stderr
    assert "unknown action 'shred'" in result.stderr
