"""Custom recognizers and tenant lists: validated on load, errors name the bad entry."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from guard.config import PROJECT_ROOT
from guard.detection.custom import (
    UserPatternRecognizer,
    build_custom_recognizers,
    load_recognizers_file,
    load_tenants_file,
    needs_a_digit,
)
from guard.errors import PolicyError

if TYPE_CHECKING:
    from pathlib import Path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recognizers.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_policies_load() -> None:
    spec = load_recognizers_file(PROJECT_ROOT / "policies" / "recognizers.yaml")
    assert {r.entity for r in spec.recognizers} >= {"ORDER_ID", "ACCOUNT_ID", "USERNAME"}
    assert build_custom_recognizers(spec)
    tenants = load_tenants_file(PROJECT_ROOT / "policies" / "tenants.yaml")
    assert "AcmeCorp" in tenants.lists_for("acme").allow


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            (
                "version: 1\nrecognizers:\n  - name: order_id\n    entity: ORDER_ID\n"
                "    patterns: [{regex: '(\\d{10}', score: 0.5}]\n"
            ),
            r"recognizer 'order_id' \(recognizers\.0\.patterns\.0\.regex\).*invalid regular",
        ),
        (
            (
                "version: 1\nrecognizers:\n  - name: member\n    entity: member\n"
                "    patterns: [{regex: 'M\\d+', score: 0.5}]\n"
            ),
            r"recognizer 'member' \(recognizers\.0\.entity\)",
        ),
        (
            (
                "version: 1\nrecognizers:\n  - name: order_id\n    entity: ORDER_ID\n"
                "    patterns: [{regex: '\\d+', score: 1.5}]\n"
            ),
            r"recognizer 'order_id' \(recognizers\.0\.patterns\.0\.score\)",
        ),
        (
            (
                "version: 1\nrecognizers:\n  - name: a_b\n    entity: X_Y\n"
                "    patterns: [{regex: 'a*', score: 0.5}]\n"
            ),
            "matches the empty string",
        ),
        (
            (
                "version: 1\nrecognizers:\n"
                "  - name: dup\n    entity: A_B\n    patterns: [{regex: 'a', score: 0.5}]\n"
                "  - name: dup\n    entity: A_B\n    patterns: [{regex: 'b', score: 0.5}]\n"
            ),
            "used twice",
        ),
        ("version: 1\nrecognizers: [\n", r"not valid YAML at line \d+"),
        ("version: 2\n", "version"),
        (
            "version: 1\nrecognizers:\n  - name: x_y\n    entity: X_Y\n    patterns: []\n",
            r"recognizer 'x_y' \(recognizers\.0\.patterns\)",
        ),
    ],
)
def test_when_an_entry_is_invalid_then_the_error_names_it(
    tmp_path: Path, body: str, expected: str
) -> None:
    with pytest.raises(PolicyError, match=expected):
        load_recognizers_file(write(tmp_path, body))


def test_when_a_regex_has_a_value_group_then_only_the_value_is_reported(tmp_path: Path) -> None:
    spec = load_recognizers_file(
        write(
            tmp_path,
            "version: 1\nrecognizers:\n  - name: ticket\n    entity: TICKET_ID\n"
            "    patterns: [{regex: 'ticket (?P<value>T-\\d+)', score: 0.9}]\n",
        )
    )
    (recognizer,) = build_custom_recognizers(spec)
    text = "see ticket T-123 now"
    assert [(text[s:e], score) for s, e, score in recognizer.find(text)] == [("T-123", 0.9)]


def test_when_a_tenant_name_is_invalid_then_the_error_names_it(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text("version: 1\ntenants:\n  'Bad Tenant!': {allow: [x]}\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="tenants"):
        load_tenants_file(path)


@pytest.mark.parametrize(
    ("regex", "expected"),
    [
        # an unbounded repetition with a lookaround: quadratic on a backtracking engine
        (r"(?<![\w@.])\w+@", "unbounded repetition"),
        (r"(?=[A-Z0-9]*\d)[A-Z0-9]{10}", "unbounded repetition"),
        # bounded, but nested so deeply that one position can be read in billions of ways
        (r"(?<!x)(?:a{0,10}){0,10}b", "backtrack too much"),
    ],
)
def test_when_a_user_regex_can_backtrack_without_bound_then_loading_fails_naming_it(
    tmp_path: Path, regex: str, expected: str
) -> None:
    body = (
        "version: 1\nrecognizers:\n  - name: ok_one\n    entity: OK_ONE\n"
        "    patterns: [{regex: 'OK\\d{4}', score: 0.5}]\n"
        "  - name: risky\n    entity: RISKY_ID\n"
        f"    patterns: [{{regex: 'Z\\d{{4}}', score: 0.5}}, {{regex: '{regex}', score: 0.5}}]\n"
    )
    path = write(tmp_path, body)
    with pytest.raises(PolicyError, match=expected) as raised:
        load_recognizers_file(path)
    assert str(path) in str(raised.value)
    assert r"recognizer 'risky' (recognizers.1.patterns.1.regex)" in str(raised.value)


def test_when_a_user_regex_has_no_lookaround_then_it_runs_on_the_linear_time_engine(
    tmp_path: Path,
) -> None:
    spec = load_recognizers_file(
        write(
            tmp_path,
            "version: 1\nrecognizers:\n  - name: email_like\n    entity: EMAIL_LIKE\n"
            "    patterns: [{regex: '(?i)(?P<value>\\w+@\\w+)', score: 0.9}]\n",
        )
    )
    (recognizer,) = build_custom_recognizers(spec)
    assert recognizer.engine == "re2"
    text = "write to Joe@Example now"
    assert [(text[s:e], score) for s, e, score in recognizer.find(text)] == [("Joe@Example", 0.9)]


def test_the_shipped_user_regexes_run_on_re2_or_are_bounded() -> None:
    spec = load_recognizers_file(PROJECT_ROOT / "policies" / "recognizers.yaml")
    engines = {r.name: r.engine for r in build_custom_recognizers(spec)}
    assert engines["custom:member_number:0"] == "re2"
    assert engines["custom:order_id:0"] == "regex"  # a lookbehind: checked bounded at load


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"(?<![\d\-+.])\d{10}(?![\d\-.])", True),
        (r"\bMBR-?\d{8}\b", True),
        (r"[a-z]{2,30}[0-9]{1,5}", True),
        (r"\b(?=[A-Z0-9]{0,9}\d)[A-Z0-9]{10}\b", True),  # the lookahead needs one
        (r"(?:1|2)+", True),
        (r"(?i)\b(?:user\s*name|login)\s*(?P<value>\w+)", False),
        (r"\d*x", False),  # zero digits allowed
        (r"\d?x", False),
        (r"a|1", False),  # one branch without
        (r"[^0-9]+", False),
        (r"(?!\d)\w+", False),  # a negative lookahead needs nothing
        (r"[[:digit:]]", False),  # RE2's class, which Python's parser reads otherwise
        (r"\pN+", False),  # syntax Python's parser refuses: no pre-check
    ],
)
def test_a_user_pattern_that_needs_a_digit_is_skipped_on_text_without_one(
    pattern: str, expected: bool
) -> None:
    assert needs_a_digit(pattern) is expected
    recognizer = UserPatternRecognizer(
        entity="X", name="t", pattern=pattern, score=0.5, ignore_case=False, context=()
    )
    assert (recognizer.precheck is not None) is expected
