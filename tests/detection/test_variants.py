"""Format variants: valid by their own standard, deterministic, and found by the detector."""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from typing import TYPE_CHECKING

import phonenumbers
import pytest
from presidio_analyzer.predefined_recognizers import CryptoRecognizer

from guard.detection.evaluation import score_variants
from guard.detection.recognizers.phone import _luhn_ok
from guard.detection.recognizers.places import _iban_ok
from guard.detection.variants import (
    CARRIERS,
    NOTATIONS,
    PHONE_REGIONS,
    Variant,
    generate_variants,
    variant_texts,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from guard.detection.engine import Detector

VARIANTS = generate_variants()


def _of(entity: str) -> list[Variant]:
    return [v for v in VARIANTS if v.entity_type == entity]


def test_generation_is_deterministic_and_the_seed_changes_it() -> None:
    assert generate_variants() == VARIANTS
    assert generate_variants(seed=16) != VARIANTS


def test_every_notation_has_values_and_a_description() -> None:
    names = [(n.entity_type, n.name) for n in NOTATIONS]
    assert len(names) == len(set(names))
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for variant in VARIANTS:
        counts[variant.entity_type, variant.notation] += 1
    assert set(counts) == set(names)
    assert all(n.description for n in NOTATIONS)


def test_each_variant_text_holds_its_value_at_its_offsets() -> None:
    texts = variant_texts(per_notation=1)
    values: dict[tuple[str, str], set[str]] = defaultdict(set)
    for variant in generate_variants(per_notation=1):
        values[variant.entity_type, variant.notation].add(variant.value)
    assert len(texts) == len(CARRIERS) * sum(len(v) for v in values.values())
    for sample in texts:
        assert sample.text[sample.start : sample.end] in values[sample.entity_type, sample.notation]


# ------------------------------------------------------------ values valid by their standard
def _phone_ok(value: str) -> bool:
    """Valid in one of the regions the generator writes numbers of."""
    for region in PHONE_REGIONS:
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False


def _ip_ok(value: str) -> bool:
    ipaddress.ip_interface(value)
    return True


_CRYPTO = CryptoRecognizer()
CHECKS: dict[str, Callable[[Variant], bool]] = {
    "IBAN_CODE": lambda v: _iban_ok(v.value),
    "CREDIT_CARD": lambda v: _luhn_ok(re.sub(r"\D", "", v.value)) != ("invalid" in v.notation),
    "IP_ADDRESS": lambda v: _ip_ok(v.value),
    "MAC_ADDRESS": lambda v: len(re.sub(r"[^0-9a-fA-F]", "", v.value)) == 12,
    "CRYPTO": lambda v: bool(_CRYPTO.validate_result(v.value)),
    "PHONE_NUMBER": lambda v: _phone_ok(v.value.split(" ext")[0].split(" x")[0]),
    "US_SSN": lambda v: (
        "sample" in v.notation
        or (v.value.replace("-", "")[:3] not in {"000", "666"} and not v.value.startswith("9"))
    ),
    "US_ITIN": lambda v: re.sub(r"\D", "", v.value)[0] == "9",
}


@pytest.mark.parametrize("entity", sorted(CHECKS))
def test_generated_values_are_valid_by_their_standard(entity: str) -> None:
    variants = _of(entity)
    assert variants
    invalid = [(v.notation, v.value) for v in variants if not CHECKS[entity](v)]
    assert invalid == []


# ------------------------------------------------------------------ found by the detector
#: Notations below recall 1.0 for a reason outside the recognizers of this change, each with
#: that reason; a gap closed elsewhere may leave the list (the test does not require a miss).
KNOWN_GAPS = {
    # card.py keeps Luhn-invalid runs out even after "card number" (a context-only score
    # would redact them: see CONTEXT_ONLY_SCORE in guard.detection.recognizers.base)
    ("CREDIT_CARD", "Luhn-invalid after 'card number'"),
    # the NER's LOCATION guess (0.85) outscores the date pattern on "Sep-66"
    ("DATE_TIME", "Mon-yy"),
    # an ORGANIZATION or PERSON guess outscores the bare postcode pattern (0.5)
    ("ZIP_CODE", "UK postcode"),
}


def test_every_notation_is_found_under_its_own_type(detector: Detector) -> None:
    samples = variant_texts(per_notation=1)
    predictions = [
        [(e.start, e.end, e.entity_type) for e in found]
        for found in detector.analyze_batch([s.text for s in samples])
    ]
    report = score_variants("guard", samples, predictions)
    below = {key for key, entry in report.per_notation.items() if entry.recall < 1.0}
    assert below - KNOWN_GAPS == set()
