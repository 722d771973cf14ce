"""The command line end to end: real detector, real files, bad input refused cleanly."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result

from guard.cli import main

if TYPE_CHECKING:
    from pathlib import Path

Run = Callable[..., Result]

SECRET_EMAIL = "josephb8@email.com"
CHAT = (
    "Hi, my name is Joseph Banter. Reach me at (845) 450-5693 or "
    f"{SECRET_EMAIL}; my password is Tr0ub4dor&3.\n"
)


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("GUARD_KEYS_DIR", str(tmp_path / "keys"))

    def invoke(*args: str, stdin: bytes | str | None = None) -> Result:
        return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)

    return invoke


def test_when_text_is_redacted_then_no_detected_value_remains(run: Run, tmp_path: Path) -> None:
    source = tmp_path / "chat.txt"
    source.write_text(CHAT, encoding="utf-8")
    result = run("redact", str(source), "--show-entities")
    assert result.exit_code == 0, result.output
    for value in ("Joseph Banter", "450-5693", SECRET_EMAIL, "Tr0ub4dor&3"):
        assert value not in result.stdout
    assert "<EMAIL_ADDRESS>" in result.stdout
    assert "EMAIL_ADDRESS" in result.stderr


def test_when_text_comes_on_stdin_then_it_is_redacted(run: Run) -> None:
    result = run("redact", "--channel", "export", stdin=CHAT)
    assert result.exit_code == 0
    assert SECRET_EMAIL not in result.stdout
    assert "<EMAIL_ADDRESS_" in result.stdout  # export pseudonymises emails


def test_when_a_json_document_is_redacted_then_strings_and_pii_fields_are_replaced(
    run: Run, tmp_path: Path
) -> None:
    source = tmp_path / "doc.json"
    document = {"customer": {"email": "not-an-email-shape", "notes": CHAT}, "count": 3}
    source.write_text(json.dumps(document), encoding="utf-8")
    result = run("redact", "--json", str(source))
    assert result.exit_code == 0, result.output
    redacted = json.loads(result.stdout)
    assert redacted["count"] == 3
    assert redacted["customer"]["email"] == "<EMAIL_ADDRESS>"
    assert SECRET_EMAIL not in redacted["customer"]["notes"]


def test_when_a_note_is_tokenised_then_reveal_restores_the_values(run: Run) -> None:
    redacted = run("redact", "--channel", "note", "--tenant", "acme", stdin=CHAT)
    assert SECRET_EMAIL not in redacted.stdout
    revealed = run("reveal", "--tenant", "acme", stdin=redacted.stdout)
    assert revealed.exit_code == 0
    assert SECRET_EMAIL in revealed.stdout
    other = run("reveal", "--tenant", "other", stdin=redacted.stdout)
    assert other.exit_code == 1
    assert SECRET_EMAIL not in other.output


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"hello\x00world", "binary data"),
        (b"caf\xe9 " + SECRET_EMAIL.encode(), "not UTF-8"),
    ],
)
def test_when_redact_input_is_not_text_then_it_is_refused(
    run: Run, payload: bytes, message: str
) -> None:
    result = run("redact", stdin=payload)
    assert result.exit_code == 1
    assert message in result.stderr
    assert SECRET_EMAIL not in result.output


def test_when_the_input_file_cannot_be_read_then_the_error_says_so(
    run: Run, tmp_path: Path
) -> None:
    result = run("redact", str(tmp_path / "missing.txt"))
    assert result.exit_code == 1
    assert "cannot read" in result.stderr


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_when_detect_runs_then_it_writes_offsets_and_types_only(run: Run, tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [json.dumps({"id": "a", "text": CHAT}), "", json.dumps({"id": 2, "text": "nothing here"})],
    )
    out = tmp_path / "out.jsonl"
    result = run("detect", "--input", str(source), "--output", str(out), "--progress")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == ["a", 2]
    kinds = {e["entity_type"] for e in lines[0]["entities"]}
    assert {"PERSON", "PHONE_NUMBER", "EMAIL_ADDRESS", "PASSWORD"} <= kinds
    assert set(lines[0]["entities"][0]) == {"start", "end", "entity_type", "score"}
    assert SECRET_EMAIL not in out.read_text(encoding="utf-8")
    assert lines[1]["entities"] == []


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"id": 3, "text": "' + SECRET_EMAIL + '"', "line 2: invalid JSON"),
        ('{"id": 3}', 'line 2: missing field "text"'),
        ('{"text": "' + SECRET_EMAIL + '"}', 'line 2: missing field "id"'),
        ('{"id": 3, "text": 42}', 'line 2: field "text" must be a string'),
        ('["id", "text"]', "line 2: expected an object"),
        ('{"id": 3, "text": "a\x00b"}', "line 2: binary data"),
    ],
)
def test_when_a_detect_line_is_bad_then_nothing_is_written_and_the_line_is_named(
    run: Run, tmp_path: Path, bad_line: str, message: str
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [json.dumps({"id": 1, "text": CHAT}), bad_line])
    out = tmp_path / "out.jsonl"
    out.write_text("previous results\n", encoding="utf-8")
    result = run("detect", "--input", str(source), "--output", str(out))
    assert result.exit_code == 1
    assert message in result.stderr
    assert SECRET_EMAIL not in result.output
    assert out.read_text(encoding="utf-8") == "previous results\n"
    assert not list(tmp_path.glob(".out.jsonl.*"))  # no partial file left behind


def test_when_a_detect_line_is_50_mb_then_it_is_refused_by_size(run: Run, tmp_path: Path) -> None:
    source = tmp_path / "big.jsonl"
    with source.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps({"id": 1, "text": "x" * (50 * 1024 * 1024)}) + "\n")
    out = tmp_path / "out.jsonl"
    result = run("detect", "--input", str(source), "--output", str(out))
    assert result.exit_code == 1
    assert "line 1: line of" in result.stderr
    assert "over the limit" in result.stderr
    assert not out.exists()


def test_when_the_detect_input_is_missing_then_the_error_says_so(run: Run, tmp_path: Path) -> None:
    result = run("detect", "--input", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "o"))
    assert result.exit_code == 1
    assert "cannot read" in result.stderr


def test_when_eval_has_a_baseline_then_both_systems_are_scored(run: Run, tmp_path: Path) -> None:
    text = "My name is Joseph Banter, call (845) 450-5693"
    record = {
        "id": "1",
        "text": text,
        "spans": [
            {"start": 11, "end": 24, "label": "PERSON"},
            {"start": 31, "end": 45, "label": "PHONE_NUMBER"},
        ],
    }
    source = write_jsonl(tmp_path / "gold.jsonl", [json.dumps(record)])
    result = run("eval", str(source), "--baseline", "presidio", "--json")
    assert result.exit_code == 0, result.output
    systems = json.loads(result.stdout)["systems"]
    assert [s["system"] for s in systems] == ["guard", "presidio (vanilla)"]
    assert systems[0]["any_pii_char_recall"] == 1.0
    assert systems[0]["micro"]["f2"] == 1.0


def test_models_status_reports_the_installed_model(run: Run) -> None:
    result = run("models", "status")
    assert result.exit_code == 0
    assert "installed" in result.stdout


def test_when_the_model_is_missing_then_commands_fail_with_the_install_hint(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUARD_CACHE_DIR", str(tmp_path / "empty-cache"))
    result = run("redact", stdin="hello")
    assert result.exit_code == 3
    assert "guard models install" in result.stderr
