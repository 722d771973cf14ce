"""Secrets customers paste into chats: passwords, PINs, security answers, API keys and tokens.

A password is only recognisable by what introduces it ("my password is ...", "password:"),
so these recognizers anchor on that phrase and report the value after it. API keys and
tokens are recognised by their published prefixes (sk-, ghp_, AKIA, xoxb-, eyJ... for JWTs)
or, after words such as "api key" or "token", by length and mixed character classes.
"""

from __future__ import annotations

import re

from guard.detection.recognizers.base import RegexRecognizer, contains_any

_FILLER = (
    r"(?:\s+(?:is|was|will\s+be|would\s+be|should\s+be|has\s+been|now|currently|set\s+to"
    r"|changed\s+to|for\s+you|for\s+your\s+account|of\s+my\s+account|i\s+use|i\s+used))*"
)

_PASSWORD = re.compile(
    rf"""\b(?:pass(?:word|code|phrase)|pwd|pw)s?\b{_FILLER}\s*(?:[:=]|\bis\b)?\s*
         ["'“‘]?(?P<value>[^\s"'”’]{{4,128}}?)["'”’]?(?=[\s,;!?]|\.(?:\s|$)|$)""",
    re.VERBOSE | re.IGNORECASE,
)

#: Words that follow "password is" without being one ("my password is not working").
_NOT_A_PASSWORD = frozenset(
    """
    not wrong incorrect invalid expired correct working broken locked reset changed the
    my your a an too still same different blank empty case sensitive required needed
    below above attached here there this that what missing weak strong long short
    """.split()
)


def _is_password_value(value: str) -> bool:
    if value.lower().strip(".,") in _NOT_A_PASSWORD:
        return False
    has_digit_or_symbol = any(not ch.isalpha() for ch in value)
    mixed_case = any(ch.isupper() for ch in value) and any(ch.islower() for ch in value)
    return has_digit_or_symbol or mixed_case or len(value) >= 8  # noqa: PLR2004


_PIN = re.compile(
    rf"\b(?:pin|pin\s*code|pin\s*number|passcode|security\s+code|cvv|cvc|cvv2){_FILLER}"
    rf"\s*(?:[:=#]|\bis\b)?\s*(?P<value>\d{{3,8}})\b",
    re.IGNORECASE,
)

_SECURITY_ANSWER = re.compile(
    r"""\b(?:(?:my\s+)?mother'?s\s+maiden\s+name|(?:my\s+)?first\s+pet(?:'s\s+name)?
         |(?:name\s+of\s+)?(?:my\s+)?first\s+(?:pet|school|car|teacher|street)
         |security\s+(?:answer|word|phrase)|secret\s+(?:answer|word|question\s+answer)
         |answer\s+to\s+(?:my|the)\s+security\s+question|memorable\s+(?:word|answer))
         \s*(?:is|was|[:=])\s*["'“]?(?P<value>[^\n.,;!?"”]{2,60}?)["'”]?(?=[\n.,;!?]|\s+(?:and|but)\b|$)""",
    re.VERBOSE | re.IGNORECASE,
)

#: A private key's body stops at the next BEGIN line: with a lazy ``[\s\S]+?`` every BEGIN
#: without an END scanned to the end of the text (``"-----BEGIN PRIVATE KEY----- " * N``:
#: quadratic).
_KNOWN_TOKENS = re.compile(
    r"""(?<![\w\-])(?P<value>
        sk-(?:proj-|live-|test-)?[A-Za-z0-9_\-]{20,}
      | (?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}
      | gh[pousr]_[A-Za-z0-9]{30,}
      | github_pat_[A-Za-z0-9_]{40,}
      | (?:AKIA|ASIA)[0-9A-Z]{16}
      | xox[abprs]-[A-Za-z0-9\-]{10,}
      | AIza[0-9A-Za-z_\-]{35}
      | glpat-[A-Za-z0-9_\-]{20,}
      | eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}
      | -----BEGIN[A-Z\ ]{0,40}PRIVATE\ KEY-----
        (?:(?!-----BEGIN|-----END[A-Z\ ]{0,40}PRIVATE\ KEY-----)[\s\S])++
        -----END[A-Z\ ]{0,40}PRIVATE\ KEY-----
    )(?![\w\-])""",
    re.VERBOSE,
)

_INTRODUCED_TOKEN = re.compile(
    r"""\b(?:api[\s_\-]?key|access[\s_\-]?key|secret(?:[\s_\-]?key)?|auth(?:orization)?[\s_\-]?token
         |access[\s_\-]?token|bearer|token|client[\s_\-]?secret)s?\b
         (?:\s+(?:is|was|=))?\s*[:=]?\s*["'“]?(?P<value>[A-Za-z0-9_\-+/=.]{16,256})""",
    re.VERBOSE | re.IGNORECASE,
)


def _looks_random(value: str) -> bool:
    classes = sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
        )
    )
    return classes >= 2  # noqa: PLR2004 - two character classes at least


def password_recognizer() -> RegexRecognizer:
    """PASSWORD: the value after "password is" / "password:"."""
    return RegexRecognizer(
        entity="PASSWORD",
        name="GuardPasswordRecognizer",
        pattern=_PASSWORD,
        group="value",
        score=0.95,
        precheck=contains_any("pass", "pwd", "pw"),
        validate=_is_password_value,
    )


def pin_recognizer() -> RegexRecognizer:
    """PIN: digits introduced as a PIN, passcode or card security code."""
    return RegexRecognizer(
        entity="PIN",
        name="GuardPinRecognizer",
        pattern=_PIN,
        group="value",
        score=0.95,
        # "security", not "security code": the pattern allows any spaces between the words
        precheck=contains_any("pin", "passcode", "security", "cvv", "cvc"),
    )


def security_answer_recognizer() -> RegexRecognizer:
    """SECURITY_ANSWER: the answer after "mother's maiden name is", "first pet was"..."""
    return RegexRecognizer(
        entity="SECURITY_ANSWER",
        name="GuardSecurityAnswerRecognizer",
        pattern=_SECURITY_ANSWER,
        group="value",
        score=0.95,
        precheck=contains_any("maiden", "first", "security", "secret", "memorable"),
    )


def known_token_recognizer() -> RegexRecognizer:
    """API_KEY: keys and tokens in their providers' published formats."""
    return RegexRecognizer(
        entity="API_KEY",
        name="GuardKnownTokenRecognizer",
        pattern=_KNOWN_TOKENS,
        group="value",
        score=0.95,
        precheck=contains_any(
            "sk-",
            "sk_",
            "pk_",
            "rk_",
            "gh",
            "github_pat_",
            "akia",
            "asia",
            "xox",
            "aiza",
            "glpat-",
            "eyj",
            "private key",
        ),
    )


def introduced_token_recognizer() -> RegexRecognizer:
    """API_KEY: a long random-looking value after "api key", "token", "secret"..."""
    return RegexRecognizer(
        entity="API_KEY",
        name="GuardIntroducedTokenRecognizer",
        pattern=_INTRODUCED_TOKEN,
        group="value",
        score=0.75,
        precheck=contains_any("key", "token", "secret", "bearer"),
        validate=_looks_random,
    )
