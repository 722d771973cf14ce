"""Scoring follows the project's convention: overlap + same label, F2, any-PII char recall."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from guard.cli import main
from guard.detection.evaluation import (
    GoldRecord,
    Span,
    format_notation_table,
    load_dataset,
    score,
    score_variants,
)
from guard.detection.variants import VariantText
from guard.errors import InvalidInputError

if TYPE_CHECKING:
    from pathlib import Path


def test_scores_overlap_with_the_same_label_and_character_recall() -> None:
    records = [
        GoldRecord("1", "John Smith lives in Paris", ((0, 10, "PERSON"), (20, 25, "LOCATION"))),
        GoldRecord("2", "nothing", (), kind="negative"),
    ]
    predictions = [
        [Span(0, 4, "PERSON"), Span(20, 25, "PERSON"), Span(11, 16, "DATE_TIME")],
        [Span(0, 7, "PERSON")],
    ]
    report = score("t", records, predictions)
    person = report.per_label["PERSON"]
    assert (person.predicted, person.predicted_correct, person.gold, person.gold_found) == (
        3,
        1,
        1,
        1,
    )
    assert report.per_label["LOCATION"].gold_found == 0
    assert report.any_pii_char_recall == pytest.approx((4 + 5) / 15)
    assert report.unscored_predictions["DATE_TIME"] == 1
    assert report.negative_predictions == 1
    assert report.micro.f_beta(2) == pytest.approx(5 * (1 / 3) * 0.5 / (4 * (1 / 3) + 0.5))


def test_when_a_dataset_line_is_bad_then_the_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"id": 1, "text": "ab", "spans": []}\n'
        '{"id": 2, "text": "ab", "spans": [{"start": 0, "end": 9, "label": "X"}]}\n'
    )
    with pytest.raises(InvalidInputError, match="line 2"):
        load_dataset(path)


# ------------------------------------------------------------------- recall per notation
def _sample(text: str, value: str, entity: str, notation: str = "n") -> VariantText:
    start = text.index(value)
    return VariantText(text, start, start + len(value), entity, notation, "middle")


def test_a_value_is_found_when_its_type_covers_every_character() -> None:
    samples = [
        _sample("ip fe80::1%eth0 here", "fe80::1%eth0", "IP_ADDRESS", "zone"),
        _sample("ip fe80::1%eth0 here", "fe80::1%eth0", "IP_ADDRESS", "zone"),
        _sample("ip fe80::1%eth0 here", "fe80::1%eth0", "IP_ADDRESS", "zone"),
        _sample("zip code 12345 ok", "12345", "ZIP_CODE", "zip"),
    ]
    predictions: list[list[tuple[int, int, str]]] = [
        [(3, 10, "IP_ADDRESS"), (10, 15, "IP_ADDRESS")],  # two pieces covering it all
        [(3, 10, "IP_ADDRESS"), (10, 15, "PERSON")],  # covered, part under another label
        [(3, 10, "IP_ADDRESS")],  # "%eth0" leaks
        [(9, 14, "STREET_ADDRESS")],  # the same evaluation label as a ZIP code: LOCATION
    ]
    report = score_variants("t", samples, predictions)
    zone = report.per_notation["IP_ADDRESS", "zone"]
    assert (zone.values, zone.found, zone.covered) == (3, 1, 2)
    assert report.per_notation["ZIP_CODE", "zip"].recall == 1.0
    assert [how for *_, how in report.misses] == ["wrong label", "leak"]
    assert report.per_entity()["IP_ADDRESS"].any_label_recall == pytest.approx(2 / 3)
    table = format_notation_table([report])
    assert "  zone *" in table
    assert "1/2 notations at recall 1.0" in table
    assert report.to_dict()["entities"]["ZIP_CODE"]["notations"]["zip"]["recall"] == 1.0  # type: ignore[index]


def test_eval_by_format_prints_recall_per_notation_and_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUARD_KEYS_DIR", str(tmp_path / "keys"))
    result = CliRunner().invoke(
        main, ["eval", "--by-format", "--per-notation", "1", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    systems = json.loads(result.stdout)["systems"]
    entities = systems[0]["entities"]
    assert {"IP_ADDRESS", "MAC_ADDRESS", "DATE_TIME", "IBAN_CODE", "US_SSN"} <= set(entities)
    assert entities["IP_ADDRESS"]["notations"]["IPv6 zone index"]["recall"] == 1.0
    assert entities["MAC_ADDRESS"]["notations"]["Cisco dotted lower"]["recall"] == 1.0


def test_eval_wants_a_dataset_or_by_format_not_both(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["eval"]).exit_code == 2
    both = runner.invoke(main, ["eval", str(tmp_path / "d.jsonl"), "--by-format"])
    assert both.exit_code == 2
