"""Casbin decisions per role, cross-tenant refusal, explanations, and guarded reloads."""

from __future__ import annotations

import shutil
import threading
from typing import TYPE_CHECKING

import pytest

from guard.access import permissions as perm
from guard.access.enforcer import DENIED_BY_DEFAULT, AccessControl, parse_policy
from guard.access.errors import PermissionDeniedError
from guard.access.permissions import ALL_PERMISSIONS, Permission
from guard.access.principals import ROLES, Principal
from guard.errors import InvalidInputError, PolicyError
from tests.access.recording import RecordingAudit

if TYPE_CHECKING:
    from pathlib import Path

    from guard.config import Settings


@pytest.fixture(scope="module")
def access(settings: Settings) -> AccessControl:
    return AccessControl(settings)


@pytest.fixture
def own_policies(settings: Settings, tmp_path: Path) -> tuple[Settings, Path]:
    """A private copy of the repository's policies, safe to break."""
    folder = tmp_path / "policies"
    folder.mkdir()
    for name in ("model.conf", "policy.csv"):
        shutil.copy(settings.policies_dir / name, folder / name)
    return settings.model_copy(update={"policies_dir": folder}), folder


def principal(role: str, tenant: str = "acme") -> Principal:
    return Principal(id=f"id-{role}", name=role, role=role, tenant=tenant, kind="api_key")


GRANTS: dict[str, set[Permission]] = {
    "agent": {
        perm.REDACT,
        perm.DETECT,
        perm.RECORDS_CREATE,
        perm.RECORDS_READ,
        perm.RECORDS_UPDATE,
        perm.RECORDS_SEARCH,
        perm.RECORDS_LIST,
        perm.MESSAGES_CHECK,
        perm.TOOLS_LIST,
        perm.TOOLS_CALL,
    },
    "analyst": {
        perm.REDACT,
        perm.DETECT,
        perm.RECORDS_READ,
        perm.RECORDS_LIST,
        perm.TOOLS_LIST,
        perm.TOOLS_CALL,
        perm.EXPORT_RUN,
        perm.EXPORT_READ,
    },
    "compliance_officer": {
        perm.RECORDS_READ,
        perm.RECORDS_LIST,
        perm.AUDIT_READ,
        perm.AUDIT_EXPORT,
        perm.AUDIT_VERIFY,
        perm.POLICY_CHECK,
        perm.INCIDENTS_READ,
        perm.INCIDENTS_UPDATE,
        perm.INCIDENTS_RESOLVE,
        perm.INCIDENTS_NOTIFY,
        perm.EXPORT_READ,
        perm.SUBJECTS_OPEN,
        perm.SUBJECTS_READ,
        perm.SUBJECTS_PACKAGE,
        perm.SUBJECTS_ERASE,
        perm.RETENTION_READ,
        perm.RETENTION_HOLD,
        perm.COMPLIANCE_READ,
    },
}
GRANTS["supervisor"] = GRANTS["agent"] | {perm.REVEAL, perm.RECORDS_REVEAL}
GRANTS["admin"] = set(ALL_PERMISSIONS)

DECISIONS = [
    (role, permission, permission in GRANTS[role])
    for role in ROLES
    for permission in ALL_PERMISSIONS
]


@pytest.mark.parametrize(
    ("role", "permission", "expected"),
    DECISIONS,
    ids=[f"{r}-{p}-{'allow' if e else 'deny'}" for r, p, e in DECISIONS],
)
def test_when_a_role_asks_in_its_own_tenant_then_the_policy_table_decides(
    access: AccessControl, role: str, permission: Permission, expected: bool
) -> None:
    decision = access.enforce(principal(role), permission)
    assert decision.allowed is expected
    if not expected:
        assert decision.reason == DENIED_BY_DEFAULT


@pytest.mark.parametrize("role", ROLES)
def test_when_any_role_acts_in_another_tenant_then_it_is_denied(
    access: AccessControl, role: str
) -> None:
    caller = principal(role, tenant="acme")
    for permission in GRANTS[role]:
        decision = access.enforce(caller, permission, tenant="globex")
        assert not decision.allowed
        assert "own tenant" in decision.reason
        assert access.enforce(caller, permission, tenant="acme").allowed


@pytest.mark.parametrize(
    "permission",
    [Permission("delete", "text"), Permission("shred", "records"), Permission("x", "y")],
    ids=str,
)
def test_when_an_action_is_unknown_then_even_admin_is_denied_by_default(
    access: AccessControl, permission: Permission
) -> None:
    decision = access.enforce(principal("admin"), permission)
    assert not decision.allowed
    assert decision.reason == DENIED_BY_DEFAULT


@pytest.mark.parametrize(
    "permission", [perm.REVEAL, perm.AUDIT_READ, perm.AUDIT_EXPORT, perm.POLICY_RELOAD], ids=str
)
def test_when_an_agent_tries_to_escalate_then_require_raises_forbidden(
    access: AccessControl, permission: Permission
) -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        access.require(principal("agent"), permission)
    assert caught.value.status_code == 403


def test_when_a_principal_claims_an_unknown_role_then_it_cannot_exist() -> None:
    with pytest.raises(InvalidInputError, match="unknown role"):
        Principal(id="x", name="x", role="root", tenant="acme", kind="api_key")


@pytest.mark.parametrize("tenant", ["*", "", "ACME", "acme corp", "a" * 64, "../etc"])
def test_when_a_tenant_name_is_malformed_then_a_principal_cannot_use_it(tenant: str) -> None:
    with pytest.raises(InvalidInputError, match="tenant"):
        Principal(id="x", name="x", role="agent", tenant=tenant, kind="api_key")


def test_when_an_allowed_decision_is_explained_then_the_inherited_policy_line_is_named(
    access: AccessControl,
) -> None:
    explanation = access.explain("admin", "acme", "reveal", "token")
    assert explanation.allowed
    assert explanation.policy_line is not None
    assert explanation.policy_line.fields == ("supervisor", "*", "token", "reveal")
    assert "policy.csv line" in explanation.reason
    assert "inherits 'supervisor'" in explanation.reason


def test_when_a_denied_decision_is_explained_then_it_says_denied_by_default(
    access: AccessControl,
) -> None:
    explanation = access.explain("agent", "acme", "reveal", "token")
    assert not explanation.allowed
    assert explanation.policy_line is None
    assert explanation.reason == "no policy line allows it: denied by default"


def test_when_explaining_for_an_unknown_role_then_invalid_input(access: AccessControl) -> None:
    with pytest.raises(InvalidInputError, match="role"):
        access.explain("root", "acme", "reveal", "token")


def test_when_a_policy_grants_only_one_tenant_then_other_tenants_are_denied(
    own_policies: tuple[Settings, Path],
) -> None:
    configured, folder = own_policies
    with (folder / "policy.csv").open("a", encoding="utf-8") as handle:
        handle.write("p, analyst, acme, audit, read\n")
    access = AccessControl(configured)
    assert access.enforce(principal("analyst", "acme"), perm.AUDIT_READ).allowed
    assert not access.enforce(principal("analyst", "globex"), perm.AUDIT_READ).allowed


BROKEN_POLICIES = {
    "unknown role": ("policy.csv", "p, root, *, text, redact\n", "unknown role 'root'"),
    "unknown action": ("policy.csv", "p, agent, *, text, shred\n", "unknown action 'shred'"),
    "unknown object": ("policy.csv", "p, agent, *, moon, read\n", "unknown action 'read'"),
    "too few fields": ("policy.csv", "p, agent, *, text\n", "expected 'p, role"),
    "unknown line type": ("policy.csv", "x, agent, *, text, redact\n", "unknown line type"),
    "unknown inherited role": ("policy.csv", "g, agent, god, *\n", "unknown role 'god'"),
    "bad tenant": ("policy.csv", "p, agent, Acme Corp, text, redact\n", "tenant must be"),
    "model syntax": ("model.conf", "[matchers\nm = r.sub ==\n", "model.conf"),
    "allow by default": (
        "model.conf",
        (
            "[request_definition]\nr = sub, dom, obj, act\n[policy_definition]\n"
            "p = sub, dom, obj, act\n[role_definition]\ng = _, _, _\n[policy_effect]\n"
            "e = !some(where (p.eft == deny))\n[matchers]\nm = r.sub == p.sub\n"
        ),
        "self-check failed",
    ),
    "no domain in request": (
        "model.conf",
        (
            "[request_definition]\nr = sub, obj, act\n[policy_definition]\n"
            "p = sub, dom, obj, act\n[role_definition]\ng = _, _, _\n[policy_effect]\n"
            "e = some(where (p.eft == allow))\n[matchers]\nm = r.sub == p.sub\n"
        ),
        "request must be",
    ),
}


@pytest.mark.parametrize(
    ("file", "content", "message"), BROKEN_POLICIES.values(), ids=list(BROKEN_POLICIES)
)
def test_when_a_broken_policy_is_reloaded_then_it_is_rejected_and_the_old_one_stays(
    own_policies: tuple[Settings, Path], file: str, content: str, message: str
) -> None:
    configured, folder = own_policies
    access = AccessControl(configured)
    path = folder / file
    if file == "policy.csv":
        path.write_text(path.read_text(encoding="utf-8") + content, encoding="utf-8")
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        access.reload()
    assert message in caught.value.message
    # the policy in force is the old one, unchanged
    assert access.enforce(principal("agent"), perm.REDACT).allowed
    assert not access.enforce(principal("agent"), perm.REVEAL).allowed
    assert access.enforce(principal("admin"), perm.POLICY_RELOAD).allowed


def test_when_a_policy_would_lock_admins_out_then_the_reload_is_refused(
    own_policies: tuple[Settings, Path],
) -> None:
    configured, folder = own_policies
    policy = folder / "policy.csv"
    text = policy.read_text(encoding="utf-8").replace("p, admin, *, policy, reload\n", "")
    policy.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match="admin must be able to reload"):
        AccessControl(configured)


def test_when_a_valid_policy_is_reloaded_then_the_new_grants_apply(
    own_policies: tuple[Settings, Path],
) -> None:
    configured, folder = own_policies
    access = AccessControl(configured)
    assert not access.enforce(principal("analyst"), perm.AUDIT_READ).allowed
    with (folder / "policy.csv").open("a", encoding="utf-8") as handle:
        handle.write("p, analyst, *, audit, read\n")
    access.reload()
    assert access.enforce(principal("analyst"), perm.AUDIT_READ).allowed


def test_when_a_remembered_grant_is_removed_by_a_reload_then_it_is_denied_at_once(
    own_policies: tuple[Settings, Path],
) -> None:
    configured, folder = own_policies
    access = AccessControl(configured)
    path = folder / "policy.csv"
    original = path.read_text(encoding="utf-8")
    path.write_text(original + "p, analyst, *, audit, read\n", encoding="utf-8")
    access.reload()
    for _ in range(3):  # asked again and again: the answer is remembered
        assert access.enforce(principal("analyst"), perm.AUDIT_READ).allowed
    path.write_text(original, encoding="utf-8")
    access.reload()
    decision = access.enforce(principal("analyst"), perm.AUDIT_READ)
    assert not decision.allowed
    assert decision.reason == DENIED_BY_DEFAULT


def test_when_more_questions_are_asked_than_the_memo_holds_then_answers_stay_right(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("guard.access.enforcer.DECISION_MEMO_SIZE", 8)
    access = AccessControl(settings)
    for index in range(40):
        assert not access.enforce(principal("agent"), Permission("read", f"object{index}")).allowed
        assert access.enforce(principal("agent"), perm.REDACT).allowed
    assert len(access._loaded.decisions) <= 8  # the bound under test


def test_when_the_policy_files_are_missing_then_a_policy_error_names_the_file(
    settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(PolicyError, match=r"model\.conf"):
        AccessControl(settings.model_copy(update={"policies_dir": tmp_path}))


def test_when_decisions_run_during_reloads_then_every_decision_is_consistent(
    own_policies: tuple[Settings, Path],
) -> None:
    configured, _ = own_policies
    access = AccessControl(configured)
    errors: list[str] = []

    def decide() -> None:
        for _ in range(200):
            if not access.enforce(principal("agent"), perm.REDACT).allowed:
                errors.append("redact denied")
            if access.enforce(principal("agent"), perm.REVEAL).allowed:
                errors.append("reveal allowed")

    threads = [threading.Thread(target=decide) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(10):
        access.reload()
    for thread in threads:
        thread.join()
    assert errors == []


def test_when_the_repository_policy_is_parsed_then_every_line_is_known(settings: Settings) -> None:
    grants, inheritance = parse_policy(
        (settings.policies_dir / "policy.csv").read_text(encoding="utf-8")
    )
    assert {line.fields[0] for line in grants} <= set(ROLES)
    assert len(inheritance) == 3


def test_when_policies_are_reloaded_or_checked_then_each_operation_is_audited(
    own_policies: tuple[Settings, Path],
) -> None:
    configured, folder = own_policies
    audit = RecordingAudit()
    access = AccessControl(configured, audit=audit)
    access.explain("agent", "acme", "reveal", "token")
    access.reload(principal=principal("admin"))
    (folder / "policy.csv").write_text("p, root, *, text, redact\n", encoding="utf-8")
    with pytest.raises(PolicyError):
        access.reload()
    summary = [(e["action"], e["decision"], e["outcome"]) for e in audit.events]
    assert summary == [
        ("policy.check", "deny", "success"),
        ("policy.reload", "allow", "success"),
        ("policy.reload", "deny", "failure"),
    ]
    assert audit.events[1]["principal"] == "id-admin"
    assert "unknown role" in str(audit.events[2]["details"]["reason"])
