"""The record of processing: true to the policies (change one, the record changes), over the
API and the command line, audited by its sha256."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from datetime import date
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient

from guard.api.app import create_app
from guard.api.services import build_services
from guard.config import PROJECT_ROOT
from guard.detection.executor import InProcessAnalysis
from guard.errors import GuardError, InvalidInputError, PolicyError
from guard.subjects.compliance_cli import compliance
from guard.subjects.facts import collect_facts
from guard.subjects.notice import privacy_notice
from guard.subjects.ropa import record_of_processing

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from guard.config import Settings
    from guard.detection.engine import Detector

OFFICER = "compliance_officer"
HEADINGS = (
    "## (a) Controller and data protection officer",
    "## (b) Purposes of the processing",
    "## (c) Categories of data subjects and of personal data",
    "## (d) Recipients",
    "## (e) Transfers to third countries",
    "## (f) Time limits for erasure",
    "## (g) Security measures",
)


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    """A copy of the shipped policies that a test may change."""
    target = tmp_path / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", target)
    return target


@pytest.fixture
def local(settings: Settings, policies: Path) -> Settings:
    """Settings reading the copied policies."""
    return settings.model_copy(update={"policies_dir": policies})


def edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` exactly once: a test whose edit misses fails here."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not in {path.name} exactly once"
    path.write_text(text.replace(old, new), encoding="utf-8")


def ropa(settings: Settings, tenant: str | None = "acme", fmt: str = "md") -> str:
    return record_of_processing(settings, tenant=tenant, fmt=fmt).text


def ropa_json(settings: Settings, tenant: str | None = "acme") -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(ropa(settings, tenant, "json"))
    return parsed


def sources(document: dict[str, Any]) -> dict[str, str]:
    return {s["file"]: s["sha256"] for s in document["sources"]}


def role_row(markdown: str, role: str) -> list[str]:
    """The cells of a role's row in the table of what each role sees."""
    match = re.search(rf"^\| {role} \| (.+) \|$", markdown, re.MULTILINE)
    assert match is not None, f"no row for {role}"
    return match.group(1).split(" | ")


def role_part(notice: str, role: str) -> str:
    """What a notice says of one role (its ``###`` section)."""
    start = notice.index(f"### {role}\n")
    end = notice.find("\n#", start + 1)
    return notice[start:end]


def seen_by(notice: str, role: str) -> str:
    """What a notice says a role sees, up to "do not see" (what it does not)."""
    return role_part(notice, role).split("do not see", maxsplit=1)[0]


def section(markdown: str, heading: str) -> str:
    """The text of one ``## `` section."""
    start = markdown.index(heading)
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else None]


# --- the document -----------------------------------------------------------------------------


def test_when_generated_twice_then_the_documents_are_byte_identical(local: Settings) -> None:
    for fmt in ("md", "json"):
        first = record_of_processing(local, tenant="acme", fmt=fmt)
        assert first.text == record_of_processing(local, tenant="acme", fmt=fmt).text
        assert first.sha256 == hashlib.sha256(first.text.encode()).hexdigest()
    assert "Date:" not in ropa(local)
    stamped = record_of_processing(local, tenant="acme", generated_on=date(2026, 12, 5)).text
    assert "Date: 2026-12-05" in stamped


def test_the_markdown_follows_the_headings_of_article_30_in_order(local: Settings) -> None:
    markdown = ropa(local)
    positions = [markdown.index(heading) for heading in HEADINGS]
    assert positions == sorted(positions)
    document = ropa_json(local)
    sections = ["controller", "purposes", "categories", "recipients", "transfers", "retention"]
    keys = [k for k in document if k in {*sections, "security"}]
    assert keys == [*sections, "security"]
    assert [document[k]["article"] for k in sections] == [
        f"Art. 30(1)({letter})" for letter in "abcdef"
    ]


def test_every_source_is_the_sha256_of_its_file_and_every_fact_names_one(local: Settings) -> None:
    document = ropa_json(local)
    listed = sources(document)
    for name, digest in listed.items():
        if name != "settings":
            assert digest == hashlib.sha256((local.policies_dir / name).read_bytes()).hexdigest()
    assert {"views.yaml", "policy.csv", "tools.yaml", "exports/support_analytics.yaml"} <= set(
        listed
    )
    facts_with_sources = 0

    def walk(node: object) -> None:
        nonlocal facts_with_sources
        if isinstance(node, dict):
            for key, value in node.items():
                if key.endswith("source") and isinstance(value, dict):
                    facts_with_sources += 1
                    assert listed[value["file"]] == value["sha256"]
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert facts_with_sources > 40


def test_the_record_states_what_the_shipped_policies_say(local: Settings) -> None:
    markdown = ropa(local)
    assert "- Controller: Acme Corp" in markdown
    assert "- Data protection officer: dpo@acme.example" in markdown
    # views.yaml: agents see the last 4 of the phone, redacted notes, no date of birth
    assert role_row(markdown, "agent") == [
        "clear", "clear", "masked (last 4)", "clear", "hidden", "clear", "redacted", "hidden",
    ]  # fmt: skip
    assert set(role_row(markdown, "compliance_officer")) == {"hidden"}
    assert "| `customer_support` |" in markdown
    assert "contract, Art. 6(1)(b)" in markdown
    assert "| Notes, from when they were last written | 365 days (1 year) |" in markdown
    assert "k = 5 on birth_date, postcode (suppress smaller groups)" in markdown
    assert "None: processing.yaml declares no transfer outside the EEA." in markdown
    assert "#### crm_mcp" in markdown
    assert "AES-256-GCM" in section(markdown, "## (g)")
    # the JSON says the same, structured: parameters and tool views are objects
    document = ropa_json(local)
    message = document["security"]["redaction"][0]
    assert message["channel"] == "message"
    assert message["default"] == {"entity": "default", "operator": "tag", "params": {}}
    (agent,) = [r for r in document["recipients"]["roles"] if r["role"] == "agent"]
    assert {"field": "phone", "mode": "masked", "keep_last": 4} in agent["fields"]
    crm = document["recipients"]["processors"][0]
    assert (crm["name"], crm["kind"], crm["transport"]) == ("crm", "http", "http")
    lookup = crm["tools"][0]
    assert lookup["roles"][0]["fields"]["/internal_notes"] == "drop"


def test_when_a_roles_view_of_a_field_changes_then_both_documents_change(
    local: Settings, policies: Path
) -> None:
    before = ropa_json(local)
    notice_before = privacy_notice(local, tenant="acme").text
    edit(
        policies / "views.yaml",
        "    date_of_birth: hidden\n    account: clear\n",
        "    date_of_birth: clear\n    account: clear\n",
    )
    after = ropa_json(local)
    assert role_row(ropa(local), "agent")[4] == "clear"
    changed = {k for k, v in sources(after).items() if sources(before)[k] != v}
    assert changed == {"views.yaml"}
    notice = privacy_notice(local, tenant="acme").text
    assert "your date of birth" in seen_by(notice, "Our support agents")
    assert "your date of birth" not in seen_by(notice_before, "Our support agents")
    assert notice != notice_before


def test_when_a_role_loses_records_read_then_it_sees_no_field(
    local: Settings, policies: Path
) -> None:
    edit(policies / "policy.csv", "p, analyst, *, records, read\n", "")
    markdown = ropa(local)
    assert set(role_row(markdown, "analyst")) == {"hidden"}
    analyst = next(r for r in collect_facts(local, tenant="acme").roles if r.role == "analyst")
    assert "records:read" not in analyst.permissions
    assert "records:list" in analyst.permissions
    notice = privacy_notice(local, tenant="acme").text
    assert role_part(notice, "Our data analysts").endswith("They do not see your details.\n")


def test_when_a_retention_period_changes_then_the_record_and_its_hashes_change(
    local: Settings, policies: Path
) -> None:
    before = ropa_json(local)
    edit(policies / "retention.yaml", "notes: {keep_days: 365}", "notes: {keep_days: 90}")
    after = ropa_json(local)
    (notes,) = [p for p in after["retention"]["periods"] if p["kind"] == "notes"]
    assert (notes["scope"], notes["amount"], notes["unit"]) == ("acme", 90, "days")
    old = next(s for s in before["sources"] if s["file"] == "retention.yaml")
    new = next(s for s in after["sources"] if s["file"] == "retention.yaml")
    assert old["sha256"] != new["sha256"]
    assert old["policy_sha256"] != new["policy_sha256"]
    assert "| Notes, from when they were last written | 90 days |" in ropa(local)
    assert "We delete notes about you 90 days after" in privacy_notice(local, tenant="acme").text


def test_the_default_record_shows_the_default_and_every_tenant_of_its_own(
    local: Settings,
) -> None:
    markdown = ropa(local, tenant=None)
    assert "- Controller: Example Support Ltd" in markdown
    assert "| data | default | acme |" in markdown
    assert (
        "| Notes, from when they were last written | 730 days (2 years) | 365 days (1 year) |"
        in markdown
    )
    assert "Tenants with their own entries: `acme`" in markdown


def test_when_an_export_profile_keeps_a_column_in_clear_then_the_documents_say_so(
    local: Settings, policies: Path
) -> None:
    before = ropa_json(local)
    edit(
        policies / "exports" / "support_analytics.yaml",
        "  email: {action: pseudonym, entity: EMAIL_ADDRESS}\n",
        "  email: keep\n",
    )
    markdown = ropa(local)
    exports = section(markdown, "### Analytics exports")
    assert "| email | keep | - |" in exports
    assert "- Personal data leaving in clear: email." in exports
    changed = {k for k, v in sources(ropa_json(local)).items() if sources(before)[k] != v}
    assert changed == {"exports/support_analytics.yaml"}
    notice = privacy_notice(local, tenant="acme").text
    assert "These copies include your email address." in notice
    assert "replaced by codes" not in notice


def test_when_a_purpose_is_added_then_the_record_and_the_notice_list_it(
    local: Settings, policies: Path
) -> None:
    edit(
        policies / "processing.yaml",
        "transfers: []",
        "  - id: newsletters\n"
        "    description: Sending the monthly newsletter to customers who asked for it.\n"
        "    plain: to send you our newsletter, if you asked for it\n"
        "    lawful_basis: consent\n"
        "    data: [email, full_name]\n"
        "transfers: [Newsletter delivery in the United States (standard contractual clauses)]",
    )
    markdown = ropa(local)
    assert "| `newsletters` |" in markdown
    assert "consent, Art. 6(1)(a)" in markdown
    assert "- Newsletter delivery in the United States (standard contractual clauses)" in markdown
    assert "newsletters" in section(markdown, "## (c)")  # the purposes of email and full_name
    notice = privacy_notice(local, tenant="acme").text
    assert "### To send you our newsletter, if you asked for it" in notice
    assert "**Change your mind.**" in notice
    assert "We send some of your personal data outside the European Economic Area." in notice


def test_when_redaction_or_an_upstream_changes_then_the_record_follows(
    local: Settings, policies: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit(
        policies / "redaction.yaml",
        "      PERSON: {operator: pseudonym, params: {length: 6}}\n",
        "      PERSON: {operator: redact}\n",
    )
    monkeypatch.setenv("GUARD_UPSTREAM_CRM_URL", "https://crm.internal.example")
    markdown = ropa(local)
    assert "| PERSON | redact | token | pseudonym (length 12) |" in markdown
    recipients = section(markdown, "## (d)")
    crm = recipients[recipients.index("#### crm\n") :]
    assert crm.startswith("#### crm\n\n- Kind: http; transport: https\n")
    assert "crm.internal.example" not in markdown  # where it is stays in the deployment


def test_when_a_tenant_has_no_entry_of_its_own_then_it_gets_the_default(
    local: Settings,
) -> None:
    markdown = ropa(local, tenant="globex")
    assert "Scope: tenant `globex` (controller: the default controller)." in markdown
    assert "- Controller: Example Support Ltd" in markdown
    assert "| data | globex |" in markdown
    assert "| Notes, from when they were last written | 730 days (2 years) |" in markdown


@pytest.mark.parametrize("tenant", ["ACME", "a b", "", "x" * 64, "../etc"])
def test_when_the_tenant_is_malformed_then_it_is_refused_without_echo(
    local: Settings, tenant: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        record_of_processing(local, tenant=tenant)
    assert caught.value.message.startswith("tenant:")
    assert tenant not in caught.value.message or not tenant


def test_when_the_format_is_unknown_then_it_is_refused(local: Settings) -> None:
    with pytest.raises(InvalidInputError, match="format: must be one of md, json"):
        record_of_processing(local, tenant="acme", fmt="pdf")


def test_when_a_policy_is_broken_then_the_error_names_the_file(
    local: Settings, policies: Path
) -> None:
    edit(policies / "retention.yaml", "notes: {keep_days: 365}", "notes: {keep_days: -1}")
    with pytest.raises(PolicyError, match=r"retention\.yaml: tenants\.acme\.notes\.keep_days"):
        record_of_processing(local, tenant="acme")
    shutil.copy(PROJECT_ROOT / "policies" / "retention.yaml", policies / "retention.yaml")
    (policies / "views.yaml").unlink()
    with pytest.raises(GuardError, match=r"views\.yaml"):
        collect_facts(local)


# --- the API ----------------------------------------------------------------------------------


class ComplianceApi:
    """A test client on a fresh database with one API key per role (tenant acme)."""

    def __init__(self, client: TestClient, keys: dict[str, str], settings: Settings) -> None:
        self.client = client
        self.keys = keys
        self.settings = settings

    def get(self, path: str, role: str | None = OFFICER) -> Any:
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}
        return self.client.get(path, headers=headers)


@pytest.fixture
def compliance_api(
    db_settings: Settings, detector: Detector, policies: Path, tmp_path: Path
) -> Iterator[ComplianceApi]:
    """The app with detection in-process (these routes analyse nothing): quick to start."""
    settings = db_settings.model_copy(
        update={"policies_dir": policies, "keys_dir": tmp_path / "keys"}
    )
    services = build_services(settings, analysis=InProcessAnalysis(detector))
    keys = {}
    for role in ("agent", "supervisor", OFFICER, "analyst", "admin"):
        _, keys[role] = services.api_keys.create(name=f"test-{role}", role=role, tenant="acme")
    _, keys["other"] = services.api_keys.create(name="other", role=OFFICER, tenant="globex")
    with TestClient(create_app(services=services), raise_server_exceptions=False) as client:
        api = ComplianceApi(client, keys, settings)
        api.audit = services.audit  # type: ignore[attr-defined]
        yield api
    services.engine.dispose()


def events(api: ComplianceApi, action: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.audit.search_events(action=action)  # type: ignore[attr-defined]
    return found


def test_an_officer_gets_their_tenants_record_and_notice_each_audited_by_sha256(
    compliance_api: ComplianceApi,
) -> None:
    response = compliance_api.get("/v1/compliance/ropa")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    assert "- Controller: Acme Corp" in response.text
    assert response.text == ropa(compliance_api.settings)
    (event,) = events(compliance_api, "compliance.ropa")
    assert (event["decision"], event["tenant"], event["role"]) == ("allow", "acme", OFFICER)
    assert event["details"] == {
        "format": "md",
        "compliance_sha256": hashlib.sha256(response.content).hexdigest(),
    }
    as_json = compliance_api.get("/v1/compliance/ropa?format=json")
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.json()["tenant"] == "acme"
    assert 'filename="record-of-processing-acme.json"' in as_json.headers["content-disposition"]

    notice = compliance_api.get("/v1/compliance/notice")
    assert notice.status_code == 200
    assert notice.text.startswith("# How Acme Corp uses your personal data\n")
    (event,) = events(compliance_api, "compliance.notice")
    assert event["details"] == {"compliance_sha256": hashlib.sha256(notice.content).hexdigest()}
    assert compliance_api.get("/v1/compliance/notice", role="admin").status_code == 200

    # another tenant's officer gets their own tenant's, never acme's
    other = compliance_api.get("/v1/compliance/ropa", role="other")
    assert other.status_code == 200
    assert "Scope: tenant `globex`" in other.text
    assert "Acme Corp" not in other.text


def test_roles_without_compliance_read_get_403_and_are_audited(
    compliance_api: ComplianceApi,
) -> None:
    for path in ("/v1/compliance/ropa", "/v1/compliance/notice"):
        for role in ("agent", "supervisor", "analyst"):
            response = compliance_api.get(path, role=role)
            assert response.status_code == 403
            assert response.headers["content-type"].startswith("application/problem+json")
        assert compliance_api.get(path, role=None).status_code == 401
    refused = events(compliance_api, "compliance.read")
    assert sorted((e["decision"], e["role"]) for e in refused if e["role"]) == sorted(
        [("deny", role) for role in ("agent", "supervisor", "analyst")] * 2
    )
    assert events(compliance_api, "compliance.ropa") == []
    assert events(compliance_api, "compliance.notice") == []


def test_bad_input_and_a_broken_policy_get_a_problem_and_no_document(
    compliance_api: ComplianceApi, policies: Path
) -> None:
    response = compliance_api.get("/v1/compliance/ropa?format=pdf-7f3a9c")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == "urn:guard:problem:invalid-input"
    assert problem["detail"].startswith("query.format:")
    assert "7f3a9c" not in response.text
    # a policy broken after start: 500, the problem names the file, no document is audited
    (policies / "processing.yaml").write_text("version: 1\ncontroller: [\n", encoding="utf-8")
    response = compliance_api.get("/v1/compliance/notice")
    assert response.status_code == 500
    problem = response.json()
    assert problem["type"] == "urn:guard:problem:invalid-policy"
    assert "processing.yaml" in problem["detail"]
    assert events(compliance_api, "compliance.ropa") == []
    assert events(compliance_api, "compliance.notice") == []


# --- the command line -------------------------------------------------------------------------


def run(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(compliance, list(args), obj=settings, catch_exceptions=False)


def cli_events(settings: Settings) -> list[dict[str, Any]]:
    from guard.audit.service import AuditTrail  # noqa: PLC0415
    from guard.storage.engine import create_engine_for, make_session_factory  # noqa: PLC0415

    engine = create_engine_for(settings)
    try:
        trail = AuditTrail(settings, make_session_factory(engine))
        return trail.search_events(principal="cli")
    finally:
        engine.dispose()


def test_the_cli_writes_the_same_record_as_the_api_and_audits_it(
    db_settings: Settings, policies: Path, tmp_path: Path
) -> None:
    settings = db_settings.model_copy(update={"policies_dir": policies})
    out = tmp_path / "out" / "ropa.json"
    result = run(settings, "ropa", "--format", "json", "--tenant", "acme", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == ropa(settings, "acme", "json")
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert digest in result.output
    printed = run(settings, "notice", "--date", "2026-12-05")
    assert printed.exit_code == 0
    assert printed.output.startswith("# How Example Support Ltd uses your personal data\n")
    assert "Last updated on 5 December 2026." in printed.output
    ropa_event, notice_event = cli_events(settings)
    assert (ropa_event["action"], ropa_event["tenant"]) == ("compliance.ropa", "acme")
    assert ropa_event["details"] == {"format": "json", "compliance_sha256": digest}
    assert (notice_event["action"], notice_event["tenant"]) == ("compliance.notice", None)
    assert (
        notice_event["details"]["compliance_sha256"]
        == hashlib.sha256(printed.output.encode()).hexdigest()
    )


def test_when_the_cli_gets_bad_input_then_one_line_an_exit_code_and_nothing_written(
    db_settings: Settings, policies: Path, tmp_path: Path
) -> None:
    settings = db_settings.model_copy(update={"policies_dir": policies})
    out = tmp_path / "ropa.md"
    bad_tenant = run(settings, "ropa", "--tenant", "Not A Tenant", "--out", str(out))
    assert bad_tenant.exit_code == 1
    assert bad_tenant.output.strip().startswith("guard: error: tenant: must be")
    assert "Not A Tenant" not in bad_tenant.output
    assert len(bad_tenant.output.strip().splitlines()) == 1
    assert run(settings, "ropa", "--format", "pdf").exit_code == 2
    assert run(settings, "notice", "--date", "5/12/2026").exit_code == 2
    (policies / "tools.yaml").write_text("version: 1\ntools: 7\n", encoding="utf-8")
    broken = run(settings, "notice", "--out", str(out))
    assert broken.exit_code == 3
    assert "tools.yaml" in broken.output
    assert not out.exists()
    assert cli_events(settings) == []
