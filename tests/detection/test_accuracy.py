"""Accuracy on the labeled development sets, against vanilla Presidio in the same run.

These guard against regressions in recall (the figures the README quotes come from
``guard eval``). No timing is asserted: these machines are shared and noisy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from guard.detection.baseline import VanillaPresidio
from guard.detection.evaluation import EvalReport, Span, load_dataset, map_label, score

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from guard.detection.engine import Detector
    from guard.detection.entities import DetectedEntity


def _spans(entities: Sequence[DetectedEntity], gold_labels: set[str]) -> list[Span]:
    return [
        Span(
            e.start,
            e.end,
            e.entity_type if e.entity_type in gold_labels else map_label(e.entity_type),
        )
        for e in entities
    ]


def _evaluate(detector: Detector, path: Path, tenant: str | None) -> tuple[EvalReport, EvalReport]:
    records = load_dataset(path)
    gold = {label for r in records for _, _, label in r.spans}
    texts = [r.text for r in records]
    ours = [_spans(p, gold) for p in detector.analyze_batch(texts, tenant=tenant)]
    vanilla = VanillaPresidio(detector.settings)
    theirs = [_spans(p, gold) for p in vanilla.analyze_batch(texts)]
    return score("guard", records, ours), score("presidio", records, theirs)


@pytest.mark.parametrize(
    ("filename", "tenant", "min_char_recall"),
    [
        ("abcd_dev.jsonl", "acme", 0.95),
        ("presidio_generated_large.jsonl", None, 0.97),
    ],
)
def test_recall_targets_hold_and_f2_beats_vanilla_presidio(
    detector: Detector, data_dir: Path, filename: str, tenant: str | None, min_char_recall: float
) -> None:
    guard, vanilla = _evaluate(detector, data_dir / filename, tenant)
    assert guard.any_pii_char_recall >= min_char_recall
    assert guard.micro.f_beta(2) > vanilla.micro.f_beta(2)


def test_no_pii_turns_of_abcd_get_no_predictions_with_the_tenant_allow_list(
    detector: Detector, data_dir: Path
) -> None:
    records = [r for r in load_dataset(data_dir / "abcd_dev.jsonl") if r.kind == "negative"]
    flagged = [
        r.id
        for r, found in zip(
            records, detector.analyze_batch([r.text for r in records], tenant="acme"), strict=True
        )
        if found
    ]
    assert flagged == []
