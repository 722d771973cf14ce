"""Detection reads a normalised view of the text; offsets map back to the original exactly."""

# ruff: noqa: RUF001 - full-width letters and digits in strings are what is tested

from __future__ import annotations

import time
import unicodedata
from typing import TYPE_CHECKING

import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.config import PROJECT_ROOT
from guard.crypto.keys import MasterKey, RedactionKeys
from guard.detection.normalize import MAX_CLUSTER, MAX_GROWTH, NormalizedText, normalize
from guard.detection.recognizers.card import PaymentCardRecognizer
from guard.redaction.policy import load_redaction_policy, parse_redaction_policy
from guard.redaction.service import Redactor

if TYPE_CHECKING:
    from collections.abc import Callable

    from guard.detection.engine import Detector
    from guard.detection.entities import DetectedEntity

ZWSP = "\u200b"
NBSP = "\u00a0"


def _spans(normal: NormalizedText) -> list[tuple[int, int]]:
    return [normal.span(i, i + 1) for i in range(len(normal.text))]


# --- the map, exactly ------------------------------------------------------------------


def test_when_a_text_is_empty_then_its_view_is_empty() -> None:
    normal = normalize("")
    assert (normal.text, normal.is_identity, normal.span(0, 0)) == ("", True, (0, 0))


def test_when_a_text_is_ascii_then_the_view_is_the_text_itself() -> None:
    text = "Call me at 415-555-0132\r\nThanks"
    normal = normalize(text)
    assert normal.text is text
    assert normal.is_identity
    assert normal.span(11, 23) == (11, 23)


def test_when_a_text_is_already_normal_then_no_map_is_built() -> None:
    text = "Grüße aus Köln, 東京, Ελλάδα"
    normal = normalize(text)
    assert normal.text is text
    assert normal.is_identity


def test_when_spaces_are_no_break_then_they_become_spaces_in_place() -> None:
    # no-break, narrow no-break, figure, ideographic, ogham space mark (NFKC keeps that one)
    text = f"4111{NBSP}1111\u202f1111\u20071111\u3000ok\u1680x"
    normal = normalize(text)
    assert normal.text == "4111 1111 1111 1111 ok x"
    assert normal.is_identity  # one for one: offsets unchanged


def test_when_letters_are_full_width_then_they_become_ascii_in_place() -> None:
    text = "ｊｏｅ＠ｅｘａｍｐｌｅ．ｃｏｍ ０１２"
    normal = normalize(text)
    assert normal.text == "joe@example.com 012"
    assert normal.is_identity


def test_when_a_ligature_expands_then_each_of_its_letters_maps_to_it() -> None:
    normal = normalize("a \ufb01le")  # "ﬁ"
    assert normal.text == "a file"
    assert _spans(normal) == [(0, 1), (1, 2), (2, 3), (2, 3), (3, 4), (4, 5)]
    assert normal.span(3, 6) == (2, 5)  # "ile": from the ligature on


def test_when_accents_are_decomposed_then_they_compose_and_map_to_both() -> None:
    normal = normalize("Jose\u0301 e\u0301")
    assert normal.text == "José é"
    assert _spans(normal) == [(0, 1), (1, 2), (2, 3), (3, 5), (5, 6), (6, 8)]


def test_when_accents_are_composed_then_nothing_changes() -> None:
    normal = normalize("José\u200b")
    assert normal.text == "José"
    assert _spans(normal) == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_when_invisible_characters_are_removed_then_offsets_skip_them() -> None:
    # zero-width space at the start, soft hyphen and word joiner inside, BOM at the end
    text = f"{ZWSP}ab\u00adc\u2060d\ufeff"
    normal = normalize(text)
    assert normal.text == "abcd"
    assert _spans(normal) == [(1, 2), (2, 3), (4, 5), (6, 7)]
    assert normal.span(0, 4) == (1, 7)  # the removed characters inside are inside the span
    assert normal.span(4, 4) == (8, 8)  # the end of the view is the end of the text


def test_when_a_zero_width_character_splits_a_value_then_its_span_covers_it() -> None:
    text = f"mail joe{ZWSP}@exa{ZWSP}mple.com now"
    normal = normalize(text)
    start = normal.text.index("joe")
    assert normal.span(start, start + len("joe@example.com")) == (5, 5 + 17)


def test_when_characters_are_astral_then_they_map_one_for_one() -> None:
    # mathematical bold digits, and an emoji sequence whose joiner is removed
    normal = normalize("\U0001d7d2\U0001d7cf \U0001f469\u200d\U0001f4bb")
    assert normal.text == "41 \U0001f469\U0001f4bb"
    assert _spans(normal) == [(0, 1), (1, 2), (2, 3), (3, 4), (5, 6)]


def test_when_hangul_jamo_are_conjoined_then_they_compose_into_one_syllable() -> None:
    normal = normalize("\u1100\u1161\u11a8!")
    assert normal.text == "\uac01!"
    assert _spans(normal) == [(0, 3), (3, 4)]


def test_when_a_character_would_grow_too_much_then_it_stays_as_written() -> None:
    text = "x\ufdfa y \u2474"  # one character that NFKC makes 18; "(1)" is 3, kept normalised
    normal = normalize(text)
    assert normal.text == "x\ufdfa y (1)"


def test_when_a_text_is_only_invisible_then_its_view_is_empty() -> None:
    normal = normalize(ZWSP * 5)
    assert normal.text == ""
    assert normal.span(0, 0) == (5, 5)


def test_when_a_span_lies_outside_the_view_then_it_is_refused() -> None:
    with pytest.raises(ValueError, match="outside the view"):
        normalize(f"a{ZWSP}b").span(0, 3)


#: Characters that exercise every path: removed, spaces, one for one, expanding, composing,
#: reordering non-starters, Hangul, astral, line breaks.
_ALPHABET = [
    "a", "e", "1", " ", "\r", "\n", "\u0301", "\u0316", "\u0308", ZWSP, "\u200d", "\u00ad",
    "\ufeff", "\u034f", "\ufe0f", NBSP, "\u3000", "ｊ", "１", "\ufb01", "\u2474", "é", "\u212b",
    "\u1100", "\u1161", "\u11a8", "\U0001d7d2", "\u00bd", "\u0130",
]  # fmt: skip
_REMOVED = regex.compile(r"[\p{Cf}\p{Default_Ignorable_Code_Point}]")
_SPACE = regex.compile(r"[[\p{Zs}]--[\x20]]", regex.V1)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_ALPHABET), max_size=MAX_CLUSTER - 2).map("".join))
def test_the_view_is_nfkc_without_invisibles_and_maps_every_character_in_order(
    text: str,
) -> None:
    normal = normalize(text)
    expected = _SPACE.sub(" ", unicodedata.normalize("NFKC", _REMOVED.sub("", text)))
    assert normal.text == expected
    spans = _spans(normal)
    for start, end in spans:
        assert 0 <= start < end <= len(text)
    # in order, and every character that is not removed is inside some character's span
    assert spans == sorted(spans)
    covered = {i for start, end in spans for i in range(start, end)}
    assert all(i in covered for i, char in enumerate(text) if not _REMOVED.match(char))


# --- hostile input: linear time, bounded memory -----------------------------------------

_HOSTILE: dict[str, Callable[[int], str]] = {
    "combining marks": lambda n: "a" + "\u0301\u0316" * (n // 2),
    "zero-width characters": lambda n: ZWSP * n,
    "zero-width between letters": lambda n: ("ab" + ZWSP) * (n // 3),
    "ligatures": lambda n: "\ufb01" * n,
    "decomposed accents": lambda n: "e\u0301" * (n // 2),
    "no-break spaces": lambda n: ("ab" + NBSP) * (n // 3),
    "growing characters": lambda n: "\ufdfa" * n,
    "conjoining jamo": lambda n: "\u1100" + "\u1161" * n,
}


def _seconds(text: str) -> float:
    started = time.perf_counter()
    normalize(text)
    return time.perf_counter() - started


@pytest.mark.parametrize("family", sorted(_HOSTILE))
def test_when_hostile_text_is_normalised_then_time_is_linear_and_growth_bounded(
    family: str,
) -> None:
    build = _HOSTILE[family]
    normalize(build(1_000))  # the one for one table is built on first use
    small, large = build(64_000), build(512_000)
    normal = normalize(large)
    assert len(normal.text) <= MAX_GROWTH * len(large)
    if normal.view_starts is not None:
        assert len(normal.view_starts) <= len(large)
    ratio = _seconds(large) / max(_seconds(small), 1e-4)
    # linear grows 8 times; allow noise on the small run, as test_linear_time does
    assert ratio < 24 or _seconds(large) < 0.05, ratio


def test_when_a_megabyte_of_combining_marks_is_normalised_then_it_takes_well_under_a_second() -> (
    None
):
    started = time.perf_counter()
    normal = normalize("a" + "\u0301\u0316\u0308" * 333_333)
    assert time.perf_counter() - started < 2.0
    assert normal.span(0, 1) == (0, MAX_CLUSTER)  # "a" composes with its first mark


# --- detection on the view --------------------------------------------------------------

_CARRIERS = [
    "Please use {} for the payment.",
    "{}",
    "my details: {}, thanks",
    "Le client a donné {} hier.",
]
#: Values of every pattern type, as the recognizers find them when written plainly.
_VALUES = [
    "4111 1111 1111 1111",
    "4111111111111111",
    "joe.bloggs@example.com",
    "(415) 555-0132",
    "415-555-0132",
    "GB82 WEST 1234 5698 7654 32",
    "192.168.10.1",
]
#: Zero-width space, non-joiner, joiner, word joiner and zero-width no-break space (both
#: "no-break" and invisible), soft hyphen, left-to-right mark.
_INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e"]
_SPACES = ["\u00a0", "\u202f", "\u2007"]


def _full_width(value: str) -> str:
    return "".join(
        chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in value
    )


@st.composite
def _disguised(draw: st.DrawFn) -> tuple[str, str, str, set[int]]:
    """A carrier text holding a value disguised as an evader would write it.

    Zero-width and other invisible characters (the zero-width no-break ones included) inserted
    anywhere inside the value, its spaces made no-break spaces, and/or the whole of it written
    in full-width forms. Returns the text, the carrier and the plain value, and the offsets in
    the text of the value's own characters (not the inserted ones).
    """
    carrier = draw(st.sampled_from(_CARRIERS))
    value = draw(st.sampled_from(_VALUES))
    written = _full_width(value) if draw(st.booleans()) else value
    chars: list[str] = []
    own: list[int] = []
    for index, char in enumerate(written):
        if index > 0 and draw(st.integers(0, 2)) == 0:
            chars.extend(draw(st.lists(st.sampled_from(_INVISIBLE), min_size=1, max_size=3)))
        own.append(len(chars))
        chars.append(draw(st.sampled_from([char, *_SPACES])) if char == " " else char)
    start = carrier.index("{}")
    text = carrier.format("".join(chars))
    return text, carrier, value, {start + i for i in own}


def _assert_valid(text: str, entities: list[DetectedEntity]) -> None:
    previous = 0
    for entity in entities:
        assert 0 <= entity.start < entity.end <= len(text)
        assert entity.start >= previous
        previous = entity.end


@pytest.fixture(scope="module")
def plain_found(detector: Detector) -> dict[tuple[str, str], bool]:
    """Whether each value is found whole in each carrier when written plainly."""
    found: dict[tuple[str, str], bool] = {}
    for carrier in _CARRIERS:
        for value in _VALUES:
            text = carrier.format(value)
            start = carrier.index("{}")
            found[carrier, value] = any(
                e.start <= start and start + len(value) <= e.end for e in detector.analyze(text)
            )
    assert sum(found.values()) >= len(found) - 2, "the plain values must be found"
    return found


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_disguised())
def test_when_a_value_is_disguised_then_every_character_of_it_is_still_covered(
    detector: Detector,
    plain_found: dict[tuple[str, str], bool],
    case: tuple[str, str, str, set[int]],
) -> None:
    text, carrier, value, own = case
    entities = detector.analyze(text)
    _assert_valid(text, entities)
    if not plain_found[carrier, value]:
        return
    covered = {i for e in entities for i in range(e.start, e.end)}
    assert own <= covered, (text, entities)


def test_when_a_card_has_no_break_spaces_then_the_redactor_leaves_no_digit(
    detector: Detector,
) -> None:
    text = f"card 4111{NBSP}1111{NBSP}1111{NBSP}1111, ph 415{NBSP}555{NBSP}0132."
    entities = detector.analyze(text)
    assert [e.entity_type for e in entities] == ["CREDIT_CARD", "PHONE_NUMBER"]
    # every value replaced by its tag, so that any digit left would be one the span missed
    policy = parse_redaction_policy(
        {"version": 1, "channels": {"message": {"default": {"operator": "tag"}}}}
    )
    redactor = Redactor(policy=policy, keys=RedactionKeys(MasterKey(bytes(range(32)))))
    result = redactor.redact_text(text, entities, channel="message")
    assert result.text == "card <CREDIT_CARD>, ph <PHONE_NUMBER>."
    # with the repository's policy the card is masked as usual: the original characters,
    # no-break spaces included, are the ones masked, and only the last four digits show
    masked = Redactor(
        policy=load_redaction_policy(PROJECT_ROOT / "policies" / "redaction.yaml"),
        keys=RedactionKeys(MasterKey(bytes(range(32)))),
    ).redact_text(text, entities, channel="message")
    assert masked.text.startswith("card " + "*" * 15 + "1111, ")


def test_when_an_email_is_split_by_zero_width_spaces_then_all_of_it_is_one_entity(
    detector: Detector,
) -> None:
    text = f"write to jo{ZWSP}e@exam{ZWSP}ple.com today"
    entities = detector.analyze(text)
    assert [(text[e.start : e.end], e.entity_type) for e in entities] == [
        (f"jo{ZWSP}e@exam{ZWSP}ple.com", "EMAIL_ADDRESS")
    ]


def test_when_values_are_full_width_then_they_are_found(detector: Detector) -> None:
    text = "mail ｊｏｅ＠ｅｘａｍｐｌｅ．ｃｏｍ, card ４１１１１１１１１１１１１１１１"
    assert [(text[e.start : e.end], e.entity_type) for e in detector.analyze(text)] == [
        ("ｊｏｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "EMAIL_ADDRESS"),
        ("４１１１１１１１１１１１１１１１", "CREDIT_CARD"),
    ]


def test_when_a_ligature_is_inside_a_value_then_the_span_covers_it(detector: Detector) -> None:
    text = "write to of\ufb01ce@example.com today"  # "ofﬁce"
    assert [(text[e.start : e.end], e.entity_type) for e in detector.analyze(text)] == [
        ("of\ufb01ce@example.com", "EMAIL_ADDRESS")
    ]


def test_when_texts_are_batched_then_each_is_mapped_to_its_own_offsets(
    detector: Detector,
) -> None:
    texts = [f"{ZWSP * 3}call 415-555-0132", "call 415-555-0132", f"ｃａｌｌ ４１５-555-0132{ZWSP}"]
    batched = list(detector.analyze_batch(texts))
    assert batched == [detector.analyze(t) for t in texts]
    values = [[t[e.start : e.end] for e in found] for t, found in zip(texts, batched, strict=True)]
    assert values == [["415-555-0132"], ["415-555-0132"], ["４１５-555-0132"]]


def test_when_a_deny_listed_value_is_split_by_zero_width_spaces_then_it_is_found(
    detector: Detector,
) -> None:
    text = f"the project\u00a0fal{ZWSP}con launch"
    assert [
        (text[e.start : e.end], e.entity_type) for e in detector.analyze(text, tenant="acme")
    ] == [(f"project\u00a0fal{ZWSP}con", "INTERNAL_CODENAME")]


def test_when_an_allow_listed_value_is_disguised_then_it_is_still_allowed(
    detector: Detector,
) -> None:
    # acme allows its support address; written with zero-width spaces it is still that address
    text = f"write to support@{ZWSP}acme.example or to ann.smith@example.com"
    found = [text[e.start : e.end] for e in detector.analyze(text, tenant="acme")]
    assert found == ["ann.smith@example.com"]


def test_the_card_recognizer_alone_misses_what_the_view_lets_it_find() -> None:
    # why the view matters: on the original text the pattern does not match at all
    text = f"card 4111{NBSP}1111{ZWSP}1111 1111"
    recognizer = PaymentCardRecognizer()
    assert not [r for r in recognizer.analyze(text, ["CREDIT_CARD"]) if r.end - r.start > 8]
    assert recognizer.analyze(normalize(text).text, ["CREDIT_CARD"])
