"""Runbooks: the shipped templates and their links to real commands, and the parser's errors."""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

import click
import pytest

from guard.cli import main
from guard.config import PROJECT_ROOT
from guard.incidents.errors import RunbookError, StepNotFoundError
from guard.incidents.runbooks import (
    PHASES,
    Runbook,
    RunbookStep,
    load_runbook,
    load_runbooks,
    parse_runbook,
    step_links,
)

if TYPE_CHECKING:
    from pathlib import Path

    from fastapi import APIRouter

RUNBOOKS_DIR = PROJECT_ROOT / "audit" / "runbooks"
#: The runbooks the detection rules name (audit/rules/*.yml, `runbook:`).
REQUIRED = (
    "unauthorized-access",
    "bulk-access",
    "misdirected-message",
    "audit-tampering",
    "data-integrity",
    "mass-erasure",
)
#: Built alongside these runbooks: checked once they exist, skipped while they do not.
INCIDENTS_COMMAND = "guard incidents"
INCIDENTS_ENDPOINTS = "/v1/incidents"


@pytest.fixture(scope="module")
def shipped() -> dict[str, Runbook]:
    return load_runbooks(RUNBOOKS_DIR)


def minimal(**phases: str) -> str:
    """A valid runbook; a phase given as a keyword replaces that phase's body."""
    parts = ["# Title", "", "What this runbook is for.", ""]
    for phase in PHASES:
        parts.append(f"## {phase.capitalize()}")
        parts.append(phases.get(phase, f"- [ ] {phase}-step: Do the {phase} thing."))
        parts.append("")
    return "\n".join(parts)


# --- the shipped runbooks ------------------------------------------------------------------------


def test_every_runbook_the_rules_name_is_shipped(shipped: dict[str, Runbook]) -> None:
    assert set(REQUIRED) <= set(shipped)


@pytest.mark.parametrize("name", REQUIRED)
def test_each_shipped_runbook_has_every_phase_with_steps(
    shipped: dict[str, Runbook], name: str
) -> None:
    runbook = shipped[name]
    assert runbook.title
    assert runbook.summary
    assert [step.phase for step in runbook.steps] == sorted(
        (step.phase for step in runbook.steps), key=PHASES.index
    )
    for phase in PHASES:
        assert runbook.phase(phase), f"{name}: no {phase} step"
    ids = [step.id for step in runbook.steps]
    assert len(ids) == len(set(ids))


def resolve_command(line: str) -> click.Command:
    """The click command a ``guard ...`` line runs; AssertionError when a word is unknown."""
    words = shlex.split(line)
    assert words[0] == "guard", line
    context = click.Context(main, info_name="guard")
    command: click.Command = main
    rest = words[1:]
    while isinstance(command, click.Group):
        assert rest, f"{line!r}: {command.name} needs a subcommand"
        sub = command.get_command(context, rest[0])
        assert sub is not None, f"{line!r}: no command {rest[0]!r} under {command.name!r}"
        command, rest = sub, rest[1:]
    options = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
    for word in rest:
        if word.startswith("-"):
            assert word.split("=")[0] in options, f"{line!r}: {command.name} has no {word}"
    return command


def _incidents_cli_exists() -> bool:
    return main.get_command(click.Context(main), "incidents") is not None


def _routers() -> list[APIRouter]:
    from guard.access.endpoints import router as access  # noqa: PLC0415
    from guard.api.health import router as health  # noqa: PLC0415
    from guard.audit.endpoints import router as audit  # noqa: PLC0415
    from guard.detection.endpoints import router as detection  # noqa: PLC0415
    from guard.messages.endpoints import router as messages  # noqa: PLC0415
    from guard.proxy.endpoints import router as proxy  # noqa: PLC0415
    from guard.records.endpoints import router as records  # noqa: PLC0415
    from guard.redaction.endpoints import router as redaction  # noqa: PLC0415

    routers = [access, health, audit, detection, messages, proxy, records, redaction]
    try:
        from guard.incidents.endpoints import router as incidents  # noqa: PLC0415
    except ImportError:
        return routers
    return [*routers, incidents]


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


@pytest.fixture(scope="module")
def endpoints() -> set[tuple[str, str]]:
    found = set()
    for router in _routers():
        for route in router.routes:
            for method in getattr(route, "methods", None) or ():
                found.add((method, _shape(route.path)))  # type: ignore[attr-defined]
    return found


def test_every_linked_command_exists_in_the_cli(shipped: dict[str, Runbook]) -> None:
    skip_incidents = not _incidents_cli_exists()
    checked = 0
    for runbook in shipped.values():
        for step in runbook.steps:
            for link in step.links:
                if not link.startswith("guard"):
                    continue
                if skip_incidents and link.startswith(INCIDENTS_COMMAND):
                    continue
                command = resolve_command(link)
                assert not isinstance(command, click.Group), f"{runbook.name}/{step.id}: {link}"
                checked += 1
    assert checked > 50


def test_every_linked_endpoint_exists_in_the_api(
    shipped: dict[str, Runbook], endpoints: set[tuple[str, str]]
) -> None:
    skip_incidents = not any(path.startswith(INCIDENTS_ENDPOINTS) for _, path in endpoints)
    checked = 0
    for runbook in shipped.values():
        for step in runbook.steps:
            for link in step.links:
                if link.startswith("guard"):
                    continue
                method, path = link.split(" ", 1)
                if skip_incidents and path.startswith(INCIDENTS_ENDPOINTS):
                    continue
                assert (method, _shape(path)) in endpoints, f"{runbook.name}/{step.id}: {link}"
                checked += 1
    assert checked > 10


def test_the_link_check_refuses_commands_and_options_that_do_not_exist() -> None:
    resolve_command("guard principals revoke <key-id>")
    with pytest.raises(AssertionError, match="no command 'erase'"):
        resolve_command("guard records erase <record-id>")
    with pytest.raises(AssertionError, match="has no --force"):
        resolve_command("guard keys rotate --force")
    with pytest.raises(AssertionError, match="needs a subcommand"):
        resolve_command("guard keys")


@pytest.mark.parametrize(
    ("name", "step_id", "link"),
    [
        ("unauthorized-access", "revoke-key", "guard principals revoke <key-id>"),
        ("unauthorized-access", "revoke-key", "DELETE /v1/admin/principals/{key_id}"),
        ("unauthorized-access", "rotate-kek", "guard keys rotate"),
        ("unauthorized-access", "erase-on-request", "DELETE /v1/records/{record_id}"),
        ("unauthorized-access", "tighten-policy", "POST /v1/admin/policies/reload"),
        ("unauthorized-access", "verify-chain", "guard audit verify"),
        ("bulk-access", "revoke-key", "guard principals revoke <key-id>"),
        ("bulk-access", "tighten-budget", "POST /v1/admin/policies/reload"),
        ("misdirected-message", "erase-duplicate", "DELETE /v1/records/{record_id}"),
        ("audit-tampering", "reverify", "guard audit verify"),
        ("audit-tampering", "inserted-means-key", "guard keys rotate"),
        ("data-integrity", "finish-rotation", "guard keys rotate --resume"),
        ("mass-erasure", "remove-erase", "POST /v1/admin/policies/reload"),
        (
            "unauthorized-access",
            "notify-authority",
            "GET /v1/incidents/{incident_id}/notices/authority",
        ),
        (
            "bulk-access",
            "notify-customers",
            "guard incidents notice <incident-id> --to customers --reason <reason>",
        ),
        (
            "unauthorized-access",
            "list-affected",
            "POST /v1/incidents/{incident_id}/customers/resolve",
        ),
    ],
)
def test_the_concrete_guard_actions_are_linked_where_they_apply(
    shipped: dict[str, Runbook], name: str, step_id: str, link: str
) -> None:
    assert link in shipped[name].step(step_id).links


# --- the format ---------------------------------------------------------------------------------


def test_a_runbook_is_read_into_title_summary_and_steps() -> None:
    text = minimal(
        contain=(
            "- [ ] revoke-key: Revoke it: `guard principals revoke <key-id>`\n"
            "  (or `DELETE /v1/admin/principals/{key_id}`), then `guard audit verify`.\n"
            "\n"
            "- [ ] note: Write down `policies/policy.csv` changes."
        )
    )
    runbook = parse_runbook(text, name="example")
    assert runbook.name == "example"
    assert runbook.title == "Title"
    assert runbook.summary == "What this runbook is for."
    assert [step.id for step in runbook.phase("contain")] == ["revoke-key", "note"]
    assert runbook.step("revoke-key") == RunbookStep(
        id="revoke-key",
        phase="contain",
        text=(
            "Revoke it: `guard principals revoke <key-id>` (or "
            "`DELETE /v1/admin/principals/{key_id}`), then `guard audit verify`."
        ),
        links=(
            "guard principals revoke <key-id>",
            "DELETE /v1/admin/principals/{key_id}",
            "guard audit verify",
        ),
    )
    assert runbook.step("note").links == ()
    assert runbook.links[:2] == (
        "guard principals revoke <key-id>",
        "DELETE /v1/admin/principals/{key_id}",
    )


def test_a_summary_may_have_several_paragraphs() -> None:
    text = minimal().replace("What this runbook is for.", "One\nline.\n\nTwo.")
    assert parse_runbook(text, name="x").summary == "One line.\n\nTwo."


def test_links_are_commands_and_endpoints_in_backticks_without_repeats() -> None:
    text = (
        "`guard keys rotate`, `GET /v1/audit/verify`, `guard keys rotate`, `policies/x.yaml`, "
        "guard keys status"
    )
    assert step_links(text) == ("guard keys rotate", "GET /v1/audit/verify")


def test_an_unknown_step_or_phase_is_refused() -> None:
    runbook = parse_runbook(minimal(), name="x")
    with pytest.raises(StepNotFoundError, match="runbook 'x' has no step 'nope'"):
        runbook.step("nope")
    with pytest.raises(ValueError, match="unknown phase"):
        runbook.phase("pray")


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (
            minimal().replace("## Eradicate\n- [ ] eradicate-step: Do the eradicate thing.\n", ""),
            12,
            "missing phase 'Eradicate' before 'Recover'",
        ),
        (minimal().split("## Learn")[0], 19, "missing phase(s) at the end: Learn"),
        (
            minimal(recover="- [ ] detect-step: Again."),
            15,
            "duplicate step id 'detect-step' (first at line 6)",
        ),
        (minimal(contain="- revoke the key"), 9, "malformed step"),
        (minimal(contain="- [ ]revoke-key: x"), 9, "malformed step"),
        (minimal(contain="- [ ] revoke-key"), 9, "malformed step"),
        (minimal(contain="- [x] revoke-key: Revoke."), 9, "unticked"),
        (minimal(contain="- [ ] Revoke_Key: Revoke."), 9, "not kebab-case"),
        (minimal(contain="- [ ] revoke-key:"), 9, "has no text"),
        (minimal(contain="Revoke the key."), 9, "expected a step"),
        (minimal(contain=""), 8, "phase 'Contain' has no steps"),
        (minimal(learn=""), 20, "phase 'Learn' has no steps"),
        (minimal(detect="- [ ] a: b\n### Notes"), 7, "unexpected heading 'Notes'"),
        (minimal().replace("## Recover", "## Restore"), 14, "unknown phase 'Restore'"),
        (minimal().replace("## Recover", "## Detect"), 14, "phase 'Detect' appears twice"),
        (minimal().replace("# Title", "Title"), 1, "starts with its title"),
        (minimal().replace("What this runbook is for.", ""), 5, "summary paragraph"),
        (
            minimal().replace("What this runbook is for.", "- [ ] early: x"),
            3,
            "before the first phase",
        ),
        ("", 1, "empty runbook"),
        ("# Title\n\nSummary.\n", 3, "missing phase 'Detect'"),
    ],
)
def test_when_a_runbook_is_malformed_then_the_error_names_file_and_line(
    text: str, line: int, words: str
) -> None:
    with pytest.raises(RunbookError) as caught:
        parse_runbook(text, name="bulk-access", source="audit/runbooks/bulk-access.md")
    assert caught.value.message.startswith(f"audit/runbooks/bulk-access.md:{line}: ")
    assert words in caught.value.message


def test_when_a_file_name_is_not_kebab_case_then_it_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "Bulk Access.md"
    path.write_text(minimal(), encoding="utf-8")
    with pytest.raises(RunbookError, match=r"Bulk Access\.md: the runbook name 'Bulk Access'"):
        load_runbook(path)


def test_when_the_folder_is_missing_then_it_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RunbookError, match="no such directory"):
        load_runbooks(tmp_path / "nowhere")


def test_a_folder_loads_its_markdown_files_only(tmp_path: Path) -> None:
    (tmp_path / "first.md").write_text(minimal(), encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a runbook", encoding="utf-8")
    (tmp_path / "notices").mkdir()
    (tmp_path / "notices" / "customer.md.j2").write_text("{{ x }}", encoding="utf-8")
    assert list(load_runbooks(tmp_path)) == ["first"]


def test_when_one_file_is_broken_then_loading_the_folder_names_it(tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text(minimal(), encoding="utf-8")
    (tmp_path / "bad.md").write_text(minimal(notify="- [ ] x"), encoding="utf-8")
    with pytest.raises(RunbookError, match=r"bad\.md:18: malformed step"):
        load_runbooks(tmp_path)


def test_when_a_file_is_not_utf8_then_it_is_refused(tmp_path: Path) -> None:
    (tmp_path / "latin.md").write_bytes(minimal().encode("utf-8") + b"\xff\xfe")
    with pytest.raises(RunbookError, match=r"latin\.md: not UTF-8 text"):
        load_runbooks(tmp_path)
