from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.crypto.keys import MasterKey, RedactionKeys
from guard.detection.entities import DetectedEntity
from guard.redaction.policy import parse_redaction_policy
from guard.redaction.service import RedactionResult, Redactor

# Non-ASCII letters: no replacement (tags, hex, base64, '*') can ever contain them, so a value
# found in the output can only have come from the input.
ALPHABET = "αβγδεζηθικλμνξοπρστυφχψω ΑΒΓΔ.,;"
LETTERS = frozenset("αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔ")
ENTITY_TYPES = ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "PASSWORD", "CREDIT_CARD", "LOCATION"]

KEYS = RedactionKeys(MasterKey(bytes(range(32))))
DELIMITED = parse_redaction_policy(
    {
        "version": 1,
        "channels": {
            "message": {
                "default": {"operator": "tag"},
                "entities": {
                    "PERSON": {"operator": "pseudonym"},
                    "EMAIL_ADDRESS": {"operator": "token"},
                    "PHONE_NUMBER": {"operator": "pseudonym", "params": {"length": 4}},
                },
            }
        },
    }
)
ALL_OPERATORS = parse_redaction_policy(
    {
        "version": 1,
        "channels": {
            "message": {
                "default": {"operator": "tag"},
                "entities": {
                    "PERSON": {"operator": "pseudonym"},
                    "EMAIL_ADDRESS": {"operator": "token"},
                    "PHONE_NUMBER": {"operator": "mask", "params": {"chars_to_keep": 4}},
                    "CREDIT_CARD": {"operator": "mask", "params": {"chars_to_keep": 2}},
                    "PASSWORD": {"operator": "redact"},
                },
            }
        },
    }
)


@st.composite
def text_and_spans(draw: st.DrawFn) -> tuple[str, list[DetectedEntity]]:
    text = draw(st.text(alphabet=ALPHABET, max_size=120))
    cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=12)))
    entities = []
    for start, end in zip(cuts[::2], cuts[1::2], strict=False):
        entity_type = draw(st.sampled_from(ENTITY_TYPES))
        entities.append(DetectedEntity(start, end, entity_type, 1.0))
    return text, entities


def assert_offsets_valid(
    text: str, entities: list[DetectedEntity], result: RedactionResult
) -> None:
    assert len(result.items) == len(entities)
    prev_old, prev_new = 0, 0
    for entity, item in zip(entities, result.items, strict=True):
        assert (item.start, item.end, item.entity_type) == (
            entity.start,
            entity.end,
            entity.entity_type,
        )
        assert 0 <= item.new_start <= item.new_end <= len(result.text)
        # Text between replacements is carried over unchanged.
        assert result.text[prev_new : item.new_start] == text[prev_old : item.start]
        prev_old, prev_new = item.end, item.new_end
    assert result.text[prev_new:] == text[prev_old:]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(text_and_spans(), st.sampled_from(["", "conv-1"]))
def test_when_redacted_then_no_detected_value_survives(
    case: tuple[str, list[DetectedEntity]], scope: str
) -> None:
    text, entities = case
    result = Redactor(policy=DELIMITED, keys=KEYS).redact_text(
        text, entities, tenant="acme", scope=scope
    )
    assert_offsets_valid(text, entities, result)
    outside = "\x00".join(
        text[a:b]
        for a, b in zip(
            [0] + [e.end for e in entities], [e.start for e in entities] + [len(text)], strict=True
        )
    )
    for entity in entities:
        value = text[entity.start : entity.end]
        if len(value) >= 4 and LETTERS.intersection(value) and value not in outside:
            assert value not in result.text


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(text_and_spans())
def test_when_any_operator_then_offsets_valid_and_values_hidden(
    case: tuple[str, list[DetectedEntity]],
) -> None:
    text, entities = case
    result = Redactor(policy=ALL_OPERATORS, keys=KEYS).redact_text(text, entities, tenant="t")
    assert_offsets_valid(text, entities, result)
    for entity, item in zip(entities, result.items, strict=True):
        value = text[entity.start : entity.end]
        replacement = result.text[item.new_start : item.new_end]
        if item.operator == "redact":
            assert replacement == ""
        elif item.operator == "mask":
            assert len(replacement) == len(value)
            assert replacement != value or set(value) == {"*"}
        else:
            assert replacement.startswith("<")
            assert replacement.endswith(">")
            assert value not in replacement or not LETTERS.intersection(value)


@settings(max_examples=100)
@given(st.text(min_size=0, max_size=60))
def test_when_any_text_tokenised_then_reveal_round_trips(value: str) -> None:
    redactor = Redactor(policy=DELIMITED, keys=KEYS)
    entities = [DetectedEntity(0, len(value), "EMAIL_ADDRESS", 1.0)] if value else []
    result = redactor.redact_text(value, entities, tenant="acme")
    assert redactor.reveal_text(result.text, tenant="acme") == value
