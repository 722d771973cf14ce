from __future__ import annotations

import copy
import json
import re
from typing import TYPE_CHECKING

import pytest

from guard.config import PROJECT_ROOT, Settings
from guard.crypto.errors import KeyConfigurationError
from guard.detection.entities import DetectedEntity
from guard.errors import InvalidInputError
from guard.redaction.service import Detect, Redactor

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from guard.redaction.policy import RedactionPolicy


def ent(text: str, value: str, entity_type: str) -> DetectedEntity:
    start = text.index(value)
    return DetectedEntity(start, start + len(value), entity_type, 0.9)


TEXT = "Hi Jane Doe, call +1 555 010 0100 or mail jane@example.com; pw hunter22."


def entities_for(text: str) -> list[DetectedEntity]:
    return [
        ent(text, "Jane Doe", "PERSON"),
        ent(text, "+1 555 010 0100", "PHONE_NUMBER"),
        ent(text, "jane@example.com", "EMAIL_ADDRESS"),
        ent(text, "hunter22", "PASSWORD"),
    ]


def test_when_message_redacted_then_each_operator_applied(redactor: Redactor) -> None:
    result = redactor.redact_text(TEXT, entities_for(TEXT), tenant="acme", scope="conv-1")
    assert re.fullmatch(
        r"Hi <PERSON_[0-9a-f]{6}>, call \*{11}0100 or mail <EMAIL_ADDRESS>; pw <PASSWORD>\.",
        result.text,
    ), result.text
    assert [i.operator for i in result.items] == ["pseudonym", "mask", "tag", "tag"]


def test_when_redacted_then_items_have_original_and_new_offsets(redactor: Redactor) -> None:
    entities = entities_for(TEXT)
    result = redactor.redact_text(TEXT, entities, tenant="acme")
    for entity, item in zip(entities, result.items, strict=True):
        assert (item.start, item.end, item.entity_type) == (
            entity.start,
            entity.end,
            entity.entity_type,
        )
    tag = result.items[2]
    assert result.text[tag.new_start : tag.new_end] == "<EMAIL_ADDRESS>"
    pw = result.items[3]
    assert result.text[pw.new_start : pw.new_end] == "<PASSWORD>"
    assert "hunter22" not in json.dumps([i.to_dict() for i in result.items])


def test_when_entities_unsorted_then_same_result(redactor: Redactor) -> None:
    entities = entities_for(TEXT)
    assert redactor.redact_text(TEXT, entities[::-1]) == redactor.redact_text(TEXT, entities)


def test_when_note_redacted_then_tokens_reveal_back(redactor: Redactor) -> None:
    result = redactor.redact_text(TEXT, entities_for(TEXT), channel="note", tenant="acme")
    assert "jane@example.com" not in result.text
    assert "<EMAIL_ADDRESS:tok_v1_" in result.text
    revealed = redactor.reveal_text(result.text, tenant="acme")
    # Tokens come back; the password was only tagged, so it stays hidden.
    assert revealed == TEXT.replace("hunter22", "<PASSWORD>")


def test_when_same_person_in_conversation_then_same_pseudonym(redactor: Redactor) -> None:
    text = "Jane Doe wrote. Later jane  doe called."
    entities = [
        DetectedEntity(0, 8, "PERSON", 0.9),
        DetectedEntity(22, 31, "PERSON", 0.9),
    ]
    out = redactor.redact_text(text, entities, tenant="acme", scope="conv-9").text
    tokens = re.findall(r"<PERSON_[0-9a-f]{6}>", out)
    assert len(tokens) == 2
    assert tokens[0] == tokens[1]


@pytest.mark.parametrize(
    ("entity", "fragment"),
    [
        (DetectedEntity(5, 100, "PERSON", 0.9), "outside the text"),
        (DetectedEntity(-1, 3, "PERSON", 0.9), "outside the text"),
        (DetectedEntity(4, 4, "PERSON", 0.9), "outside the text"),
    ],
)
def test_when_entity_offsets_invalid_then_invalid_input(
    redactor: Redactor, entity: DetectedEntity, fragment: str
) -> None:
    with pytest.raises(InvalidInputError, match=fragment) as info:
        redactor.redact_text("secret value", [entity])
    assert "secret" not in str(info.value)


def test_when_entities_overlap_then_invalid_input(redactor: Redactor) -> None:
    entities = [DetectedEntity(0, 6, "PERSON", 0.9), DetectedEntity(3, 9, "PERSON", 0.9)]
    with pytest.raises(InvalidInputError, match="overlaps"):
        redactor.redact_text("secret value", entities)


def test_when_unknown_channel_then_invalid_input(redactor: Redactor) -> None:
    with pytest.raises(InvalidInputError, match="unknown channel"):
        redactor.redact_text("x", [], channel="sms")


def test_when_no_entities_then_text_unchanged(redactor: Redactor) -> None:
    result = redactor.redact_text(TEXT, [])
    assert result.text == TEXT
    assert result.items == ()


# --- JSON ----------------------------------------------------------------------------------


def fake_detect(calls: list[list[str]]) -> Detect:
    """Detect emails and the word 'Jane Doe' by plain search; records its calls."""

    def detect(texts: list[str]) -> Sequence[Sequence[DetectedEntity]]:
        calls.append(list(texts))
        found: list[list[DetectedEntity]] = []
        for text in texts:
            hits = [
                DetectedEntity(m.start(), m.end(), "EMAIL_ADDRESS", 0.9)
                for m in re.finditer(r"\S+@\S+\.com", text)
            ]
            hits += [
                DetectedEntity(m.start(), m.end(), "PERSON", 0.9)
                for m in re.finditer(r"Jane Doe", text)
            ]
            found.append(sorted(hits))
        return found

    return detect


DOC: dict[str, object] = {
    "ticket": {
        "subject": "Refund for Jane Doe",
        "customer": {
            "Email": "not-an-email-but-redacted",
            "phone": 5550100100,
            "first_name": "Jane",
            "address": {"street": "1 Main St", "city": "Springfield"},
            "verified": True,
            "score": 0.5,
        },
        "messages": [
            {"body": "Contact me at jane@example.com please", "at": None},
            "plain text",
            42,
        ],
    },
    "a/b~c": "Jane Doe",
}


def test_when_json_redacted_then_strings_and_fields_replaced(redactor: Redactor) -> None:
    calls: list[list[str]] = []
    original = copy.deepcopy(DOC)
    out, items = redactor.redact_json(
        DOC, fake_detect(calls), channel="message", tenant="acme", scope="t-1"
    )
    assert original == DOC  # input not mutated
    ticket = out["ticket"]
    customer = ticket["customer"]
    assert customer["Email"] == "<EMAIL_ADDRESS>"
    assert customer["phone"] == "******0100"  # number stringified, masked
    assert re.fullmatch(r"<PERSON_[0-9a-f]{6}>", customer["first_name"])
    assert customer["address"] == {"street": "<STREET_ADDRESS>", "city": "<STREET_ADDRESS>"}
    assert customer["verified"] is True
    assert customer["score"] == 0.5
    assert ticket["messages"][0] == {"body": "Contact me at <EMAIL_ADDRESS> please", "at": None}
    assert ticket["messages"][1:] == ["plain text", 42]
    assert re.fullmatch(r"Refund for <PERSON_[0-9a-f]{6}>", ticket["subject"])
    assert re.fullmatch(r"<PERSON_[0-9a-f]{6}>", out["a/b~c"])
    # One batched detect call, without field-rule values.
    assert len(calls) == 1
    assert "not-an-email-but-redacted" not in calls[0]
    assert "plain text" in calls[0]

    paths = {(i.path, i.by_field_name) for i in items}
    assert paths == {
        ("/ticket/subject", False),
        ("/ticket/customer/Email", True),
        ("/ticket/customer/phone", True),
        ("/ticket/customer/first_name", True),
        ("/ticket/customer/address/street", True),
        ("/ticket/customer/address/city", True),
        ("/ticket/messages/0/body", False),
        ("/a~1b~0c", False),
    }
    body_item = next(i for i in items if i.path == "/ticket/messages/0/body")
    assert (body_item.item.start, body_item.item.end) == (14, 30)
    dumped = json.dumps([i.to_dict() for i in items])
    assert "jane@example.com" not in dumped
    assert "5550100100" not in dumped


def test_when_json_pseudonyms_then_join_with_text(redactor: Redactor) -> None:
    out, _ = redactor.redact_json(
        {"name": "Jane Doe", "note": "Jane Doe called"}, fake_detect([]), tenant="acme", scope="s"
    )
    assert out["note"].startswith(out["name"])


def test_when_json_top_level_string_then_pointer_is_root(redactor: Redactor) -> None:
    out, items = redactor.redact_json("mail jane@example.com", fake_detect([]))
    assert out == "mail <EMAIL_ADDRESS>"
    assert [i.path for i in items] == [""]


def test_when_detect_returns_wrong_count_then_invalid_input(redactor: Redactor) -> None:
    # the key "a" and the value "text" are both sent to detection
    with pytest.raises(InvalidInputError, match="detect returned 0 results for 2 strings"):
        redactor.redact_json({"a": "text"}, lambda _texts: [])


def test_when_detect_returns_bad_offsets_then_error_names_pointer(redactor: Redactor) -> None:
    def detect(texts: list[str]) -> list[list[DetectedEntity]]:
        return [[DetectedEntity(0, 99, "PERSON", 0.9)] if t == "short" else [] for t in texts]

    with pytest.raises(InvalidInputError, match=r"^/a/0: entity 0"):
        redactor.redact_json({"a": ["short"]}, detect)


# --- JSON object keys and nesting ----------------------------------------------------------


def test_when_a_key_holds_pii_then_it_is_redacted_and_the_path_is_the_redacted_key(
    redactor: Redactor,
) -> None:
    calls: list[list[str]] = []
    document = {"jane@example.com": {"note": "hello"}, "plain": 1}
    out, items = redactor.redact_json(document, fake_detect(calls), channel="message")
    assert out == {"<EMAIL_ADDRESS>": {"note": "hello"}, "plain": 1}
    assert "jane@example.com" in calls[0]
    assert [(i.path, i.in_key, i.item.entity_type) for i in items] == [
        ("/<EMAIL_ADDRESS>", True, "EMAIL_ADDRESS")
    ]
    assert "jane@example.com" not in json.dumps([i.to_dict() for i in items])


def test_when_redacted_keys_collide_then_later_ones_get_a_numbered_suffix(
    redactor: Redactor,
) -> None:
    document = {
        "a@example.com": 1,
        "<EMAIL_ADDRESS>#2": "kept as it is",
        "b@example.com": 2,
        "c@example.com": {"x@example.com": "y"},
    }
    out, items = redactor.redact_json(document, fake_detect([]), channel="message")
    # keys that need no redaction keep their names; redacted ones avoid them, in order
    assert list(out) == [
        "<EMAIL_ADDRESS>",
        "<EMAIL_ADDRESS>#2",
        "<EMAIL_ADDRESS>#3",
        "<EMAIL_ADDRESS>#4",
    ]
    assert out["<EMAIL_ADDRESS>#2"] == "kept as it is"
    assert out["<EMAIL_ADDRESS>#3"] == 2
    assert out["<EMAIL_ADDRESS>#4"] == {"<EMAIL_ADDRESS>": "y"}
    assert {i.path for i in items if i.in_key} == {
        "/<EMAIL_ADDRESS>",
        "/<EMAIL_ADDRESS>#3",
        "/<EMAIL_ADDRESS>#4",
        "/<EMAIL_ADDRESS>#4/<EMAIL_ADDRESS>",
    }
    again, _ = redactor.redact_json(document, fake_detect([]), channel="message")
    assert list(again) == list(out)  # deterministic


def test_when_a_field_rule_names_a_key_then_the_value_is_redacted_and_the_key_kept(
    redactor: Redactor,
) -> None:
    out, items = redactor.redact_json({"email": "not detected"}, fake_detect([]))
    assert out == {"email": "<EMAIL_ADDRESS>"}
    assert [(i.path, i.by_field_name, i.in_key) for i in items] == [("/email", True, False)]


@pytest.mark.parametrize("max_depth", [1, 3, 64])
def test_when_a_document_nests_deeper_than_the_limit_then_invalid_input(
    redactor: Redactor, max_depth: int
) -> None:
    at_limit: object = "x"
    for _ in range(max_depth):
        at_limit = [at_limit]
    out, _ = redactor.redact_json(at_limit, fake_detect([]), max_depth=max_depth)
    assert out == at_limit
    with pytest.raises(InvalidInputError, match=f"nested more than {max_depth} levels"):
        redactor.redact_json({"k": at_limit}, fake_detect([]), max_depth=max_depth)


def test_when_a_document_is_far_deeper_than_the_stack_then_invalid_input_not_recursion(
    redactor: Redactor,
) -> None:
    deep: object = {}
    for _ in range(5000):
        deep = {"k": deep}
    with pytest.raises(InvalidInputError, match="nested more than 64 levels"):
        redactor.redact_json(deep, fake_detect([]))


# --- construction --------------------------------------------------------------------------


def test_when_redactor_built_from_settings_then_dev_key_and_repo_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GUARD_REDACTION_KEY", raising=False)
    settings = Settings(
        env="development", keys_dir=tmp_path, policies_dir=PROJECT_ROOT / "policies"
    )
    redactor = Redactor(settings=settings)
    assert (tmp_path / "redaction.key").exists()
    again = Redactor(settings=settings)
    entities = [DetectedEntity(0, 8, "PERSON", 0.9)]
    assert (
        redactor.redact_text("Jane Doe", entities).text
        == again.redact_text("Jane Doe", entities).text
    )


def test_when_production_without_key_then_redactor_fails_at_start(
    tmp_path: Path, policy: RedactionPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GUARD_REDACTION_KEY", raising=False)
    settings = Settings(env="production", keys_dir=tmp_path)
    with pytest.raises(KeyConfigurationError, match="GUARD_REDACTION_KEY"):
        Redactor(policy=policy, settings=settings)
    assert list(tmp_path.iterdir()) == []


def test_when_redactor_repr_then_no_key_material(redactor: Redactor) -> None:
    text = repr(redactor)
    assert "<redacted>" in text
    assert bytes(range(32)).hex() not in text
