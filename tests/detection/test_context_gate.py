"""Recognizers that reach the threshold only with a context word run only where one is."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from guard.detection.context import context_gate
from guard.detection.evaluation import load_dataset
from guard.detection.variants import variant_texts

if TYPE_CHECKING:
    from pathlib import Path

    from guard.detection.engine import Detector


def _name(recognizer: object) -> str:
    return str(getattr(recognizer, "name", ""))


def _gated(detector: Detector) -> set[str]:
    return {_name(r) for r, gate in detector._plan if gate is not None}


def test_only_recognizers_below_the_threshold_without_validation_are_gated(
    detector: Detector,
) -> None:
    gated = _gated(detector)
    assert {"GuardUsLicenseRecognizer", "GuardUsBankRecognizer"} <= gated
    # a pattern at 0.5 or above, a validator that raises a score, guard's own recognizers,
    # the NER: all run on every text
    for name in ("GuardUsSsnRecognizer", "GuardEmailRecognizer", "GuardIbanRecognizer"):
        assert name not in gated
    assert not any(name.startswith(("custom:", "SpacyRecognizer")) for name in gated)
    for recognizer, _ in detector._plan:
        if _name(recognizer) == "GuardUsLicenseRecognizer":
            assert context_gate(recognizer, threshold=0.0) is None  # every finding counts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Driver license D1234567, please update it.", True),
        ("My driving permit is D1234567", True),
        ("The code is D1234567, please update it.", False),
        ("Reference D1234567", False),
    ],
)
def test_a_licence_number_is_found_with_its_context_word_only(
    detector: Detector, text: str, expected: bool
) -> None:
    gate = next(g for r, g in detector._plan if _name(r) == "GuardUsLicenseRecognizer")
    assert gate is not None
    found = {e.entity_type for e in detector.analyze(text)}
    assert gate(text) is expected
    assert ("US_DRIVER_LICENSE" in found) is expected


def test_the_gates_change_no_finding(
    detector: Detector, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every text of a development set and the generated variants: the same entities with
    the gates as without them."""
    texts = [r.text for r in load_dataset(data_dir / "presidio_generated_large.jsonl")]
    texts += [v.text for v in variant_texts(per_notation=2)]
    texts += [
        "lic# 123456789 and acct 12345678",
        "Public policy: click D1234567 to save 12345678 on debit",
        "DRIVER LICENSE: X1234567",
    ]

    def run() -> list[list[tuple[int, int, str, float]]]:
        return [
            [(e.start, e.end, e.entity_type, e.score) for e in found]
            for found in detector.analyze_batch(texts)
        ]

    gated = run()
    monkeypatch.setattr(detector, "_plan", [(r, None) for r, _ in detector._plan])
    assert run() == gated
    assert any(gated)
