"""Scoring follows the project's convention: overlap + same label, F2, any-PII char recall."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from guard.detection.evaluation import GoldRecord, Span, load_dataset, score
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
