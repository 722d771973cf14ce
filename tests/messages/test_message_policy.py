"""policies/messages.yaml: the shipped file loads; every mistake is refused naming its entry."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import pytest

from guard.api.app import create_app
from guard.errors import PolicyError
from guard.messages.policy import POLICY_FILENAME, load_message_policy, parse_message_policy

if TYPE_CHECKING:
    from pathlib import Path

    from guard.config import Settings


def test_the_shipped_policy_loads(settings: Settings) -> None:
    policy = load_message_policy(settings.policies_dir / POLICY_FILENAME)
    assert {"PASSWORD", "API_KEY", "PIN", "SECURITY_ANSWER"} <= policy.secrets
    assert policy.own_rule("message", "email") is None  # kept
    phone = policy.own_rule("message", "phone")
    assert phone is not None
    assert phone.name == "mask"
    assert policy.own_rule("note", "phone") is None


BASE: dict[str, Any] = {"version": 1, "secrets": ["PASSWORD"]}


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (
            {**BASE, "channels": {"message": {"own": {"phone": {"operator": "maks"}}}}},
            "channels.message.own.phone: unknown operator 'maks'",
        ),
        ({**BASE, "channels": {"message": {"own": {"card": "keep"}}}}, "channels.message.own.card"),
        ({**BASE, "channels": {"export": {}}}, "channels.export"),
        ({**BASE, "channels": {"note": {"own": {"email": "show"}}}}, "channels.note.own.email"),
        ({**BASE, "secrets": ["password"]}, "secrets"),
        ({**BASE, "secrets": []}, "secrets"),
        ({**BASE, "version": 2}, "version"),
        ({**BASE, "blocks": True}, "blocks"),
        (
            {
                **BASE,
                "channels": {
                    "message": {"own": {"phone": {"operator": "mask", "params": {"chars": 2}}}}
                },
            },
            "channels.message.own.phone",
        ),
    ],
)
def test_when_an_entry_is_wrong_then_the_error_names_it(data: dict[str, Any], named: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_message_policy(data, source="messages.yaml")
    assert named in caught.value.message
    assert caught.value.message.startswith("messages.yaml: ")


def test_when_a_message_or_tone_policy_is_wrong_then_the_app_does_not_start(
    settings: Settings, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(settings.policies_dir, policies)
    broken = settings.model_copy(update={"policies_dir": policies})
    (policies / "messages.yaml").write_text(
        "version: 1\nsecrets: [PASSWORD]\nchannels: {message: {own: {phone: {operator: maks}}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match=r"channels\.message\.own\.phone: unknown operator"):
        create_app(broken)
    shutil.copy(settings.policies_dir / "messages.yaml", policies / "messages.yaml")
    (policies / "tone.yaml").write_text("version: 1\ncategories: {}\nsurprise: 1\n", "utf-8")
    with pytest.raises(PolicyError, match=r"tone\.yaml"):
        create_app(broken)
