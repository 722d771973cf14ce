"""The pre-check invariant: a recognizer's pre-check never skips text it would find something in.

A pre-check is a cheap test that lets a recognizer be skipped on text it cannot match. One
stricter than its recognizer skips real values without a trace (issue 15: compressed IPv6,
Cisco-dotted MACs, "21-May" were never looked at). For every recognizer the real detector
registers that has a pre-check (guard's own, the Presidio ones, and any added later: they
are enumerated from the registry), on the development sets, the generated format variants
and hypothesis-generated strings over the alphabets the patterns use: wherever the pre-check
says "skip", the recognizer run without it finds nothing.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.detection.evaluation import load_dataset
from guard.detection.recognizers import address, names
from guard.detection.recognizers.base import unchecked
from guard.detection.variants import variant_texts

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from guard.detection.engine import Detector

Checked = tuple[str, "Callable[[str], bool]", "Callable[[str], int]"]


def prechecked(detector: Detector) -> list[Checked]:
    """(name, pre-check, findings without it) of every registered recognizer with a pre-check."""
    out = []
    for recognizer in detector.analyzer.registry.recognizers:
        pair = unchecked(recognizer)
        if pair is not None:
            out.append((str(getattr(recognizer, "name", "")), *pair))
    return out


def skipped_findings(detector: Detector, texts: Iterable[str]) -> list[tuple[str, str]]:
    """(recognizer, text) wherever a pre-check says "skip" and the recognizer finds something."""
    checks = prechecked(detector)
    return [
        (name, text)
        for text in texts
        for name, precheck, findings in checks
        if not precheck(text) and findings(text)
    ]


def test_the_registry_has_prechecked_recognizers_of_both_kinds(detector: Detector) -> None:
    names = {name for name, _, _ in prechecked(detector)}
    # guard's own and the wrapped Presidio ones are both seen (else the tests below test less)
    assert {"GuardPhoneRecognizer", "GuardIpRecognizer", "GuardMacAddressRecognizer"} <= names
    assert len(names) >= 20


def test_no_precheck_skips_a_generated_format_variant(detector: Detector) -> None:
    texts = [v.text for v in variant_texts(per_notation=2)]
    assert skipped_findings(detector, texts) == []


def test_no_precheck_skips_a_finding_in_the_development_sets(
    detector: Detector, data_dir: Path
) -> None:
    texts = [r.text for path in sorted(data_dir.glob("*.jsonl")) for r in load_dataset(path)]
    assert texts
    assert skipped_findings(detector, texts) == []


#: Pieces the recognizers' patterns are made of: digits, hex, separators, month names,
#: keywords, and characters that case-insensitive regexes fold (long s, Kelvin sign, dotless
#: and dotted i) or that are digits outside ASCII.
_PIECES = [
    "0", "1", "3", "7", "9", "12", "2021", "555", "0123", "4111", "fe80", "ffff", "db8", "a",
    "F", "ab", "Z", "x", ":", "::", "-", ".", "/", "/64", "%eth0", "@", "://", "www.", ".com",
    ".co.uk", "?", "#", "+", "(", ")", " ", "\n", ",", "May", "sep", "DEC", "jan", "21st",
    "of", "at", "T", "Z", "pm", "bc1", "SSN", "zip", "postal code", "IL", "password", "pin",
    "key", "token", "sk-", "AKIA", "ghp_", "eyJ", "street", "Ave", "Ltd", "Inc", "Mr.", "age",
    "years old", "\u017f", "\u212a", "\u0131", "\u0130", "\u0663", "\u00a0", "GB", "LC55",
    # the words the gates of names, ages, employers, organisations and job titles look for
    "Smith", "Jones", "and", "AG", "A/S", "Sons", "& Co", "Office", "the", "works at", "joined",
    "work as a", "nurse", "biologist", "Best regards", "Dr", "M.", "Mrs", "hi", "thanks",
    "my name is", "turned", "aged", "I'm", "in my", "30s", "y/o", "message",
]  # fmt: skip
_STRINGS = st.lists(
    st.one_of(
        st.sampled_from(_PIECES),
        st.text(alphabet="0123456789abcdefABCDEF:.-/ ", min_size=1, max_size=12),
    ),
    max_size=24,
).map("".join)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=_STRINGS)
def test_no_precheck_skips_a_finding_in_generated_strings(detector: Detector, text: str) -> None:
    assert skipped_findings(detector, [text]) == []


@pytest.mark.parametrize(
    "text",
    [
        "::1",
        "fe80::1",
        "fe80::1%eth0",
        "2001:db8::/64",
        "::ffff:192.0.2.1",
        "0012.3456.789a",
        "21-May",
        "May-21",
        "05/2021",
        "LC55HEMM000100010012001200023015",
        "1HF9gjc3JgbrxSRdzZsHHWrs3KsZTqMExe",
    ],
)
def test_values_the_old_prechecks_skipped_are_looked_at(detector: Detector, text: str) -> None:
    """The values of issue 15: each passes the pre-check of a recognizer that finds it."""
    finders = [name for name, precheck, findings in prechecked(detector) if findings(text)]
    assert finders
    assert all(precheck(text) for name, precheck, _ in prechecked(detector) if name in finders)


@pytest.mark.parametrize(
    ("recognizer", "text"),
    [
        ("GuardEmployerRecognizer", "She works at Globex."),
        ("GuardEmployerRecognizer", "He was employed by Initech."),
        ("GuardEmployerRecognizer", "My employer is Hooli."),
        ("GuardEmployerRecognizer", "I spent two years at Vandelay."),
        ("GuardEmployerRecognizer", "She interned at Hooli."),
        ("GuardEmployerRecognizer", "The band recorded for Motown."),
        ("GuardEmployerRecognizer", "Last year he joined Umbrella."),
        ("GuardEmployerRecognizer", "I was hired by Cyberdyne."),
        ("GuardEmployerRecognizer", "I write on behalf of Tyrell."),
        ("GuardEmployerRecognizer", "Call the Wayne Enterprises office today"),
        ("GuardEmployerRecognizer", "Meet at the Stark HQ tomorrow"),
        ("GuardEmployerRecognizer", "Bridgewater is the brainchild of Ray."),
        ("GuardOrganizationRecognizer", "Hansen Shipping A/S sent it today"),
        ("GuardOrganizationRecognizer", "He works for Mueller Bau AG now"),
        ("GuardOrganizationRecognizer", "Our counsel is Davis, Reynolds and Williamson."),
        ("GuardOrganizationRecognizer", "counsel: davis, reynolds and williamson"),
        ("GuardOrganizationRecognizer", "The Department of Motor Vehicles wrote"),
        ("GuardOrganizationRecognizer", "Northwind Traders Ltd. paid it"),
        ("GuardJobTitleRecognizer", "I work as a sommelier."),
        ("GuardJobTitleRecognizer", "Occupation: plumber"),
        ("GuardJobTitleRecognizer", "I'm a registered nurse and I need help."),
        ("GuardJobTitleRecognizer", "She retired as a marine biologist."),
        ("GuardJobTitleRecognizer", "Best regards,\nJane Doe\nSenior Account Manager"),
        ("GuardAgeRecognizer", "He is 37 years old."),
        ("GuardAgeRecognizer", "a 37-year-old customer"),
        ("GuardAgeRecognizer", "aged 37"),
        ("GuardAgeRecognizer", "Age: 37"),
        ("GuardAgeRecognizer", "I just turned 40."),
        ("GuardAgeRecognizer", "he is 37 y/o"),
        ("GuardAgeRecognizer", "I'm 37 and tired"),
        ("GuardAgeRecognizer", "a woman in her late 60s"),
    ],
)
def test_each_gated_frame_passes_its_precheck(
    detector: Detector, recognizer: str, text: str
) -> None:
    """Every frame behind a keyword gate, once: the recognizer finds it, and its pre-check
    lets it through (generated strings rarely spell a whole frame)."""
    checks = {name: (precheck, findings) for name, precheck, findings in prechecked(detector)}
    precheck, findings = checks[recognizer]
    assert findings(text) > 0
    assert precheck(text)


@pytest.mark.parametrize(
    ("module", "pattern", "text"),
    [
        (names, "_ADDRESSED", "Hi Maria, can you help?"),
        (names, "_ADDRESSED", "Thanks David"),
        (names, "_ADDRESSED", "thank you Anna"),
        (names, "_TITLED", "I spoke to Mr. Pavlović yesterday"),
        (names, "_TITLED", "Write to M. Dupont please"),
        (names, "_TITLED", "Sig.ra Rossi called"),
        (names, "_INTRODUCED", "my name is joseph banter"),
        (names, "_INTRODUCED", "it's under Alvarez"),
        (names, "_INTRODUCED", "The account holder is Lena"),
        (address, "_LOCATED_PLACE", "I'm in Springfield this week"),
        (address, "_LOCATED_PLACE", "we're from Lund"),
        (address, "_LOCATED_PLACE", "She grew up in Oslo"),
        (address, "_LOCATED_PLACE", "He is travelling to Porto"),
        (address, "_STREET_TYPE_LAST", "Send it to 12 Main Street please"),
        (address, "_STREET_TYPE_LAST", "at 4 N Elm St."),
        (address, "_STREET_TYPE_FIRST", "Calle Mayor 5"),
        (address, "_STREET_TYPE_FIRST", "Av. Paulista 1000"),
        (address, "_STREET_TYPE_FIRST", "C/ Mayor 5"),
        (address, "_HOUSE_TYPE_NAME", "33 rue de la Paix"),
        (address, "_NAME_THEN_TYPE", "Gumpendorfer Strasse 44"),
        (address, "_NAME_THEN_TYPE", "Király u. 15"),
    ],
    ids=lambda value: value.__name__.rsplit(".", 1)[-1] if isinstance(value, ModuleType) else None,
)
def test_each_gated_pattern_frame_passes_its_gate(
    module: ModuleType, pattern: str, text: str
) -> None:
    """The chat-name, street and place patterns' word gates, once per frame: the pattern
    matches, the gate opens."""
    compiled = getattr(module, pattern)
    assert compiled.search(text) is not None
    assert module.PATTERN_GATES[compiled](text)
