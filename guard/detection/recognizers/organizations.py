"""Organisations named with a legal form or an institutional head noun.

"Smith Ltd.", "Think Computer Corporation", "Nationwide Mutual Insurance Company",
"Department of Better Technology", and firm names of the form "Craig, Palmer and Quinn".
An employer or a lawyer's firm narrows down who a customer is; the NER finds some of these,
in lower case almost none.
"""

from __future__ import annotations

import re

from spacy.lang.en.stop_words import STOP_WORDS

from guard.detection.recognizers.base import RegexRecognizer

_NAME_WORD = r"[A-Za-zÀ-ÖØ-öø-ÿ0-9][\w'’&.\-]*"
_SUFFIX = (
    r"ltd\.?|limited|inc\.?|incorporated|llc|l\.l\.c\.|llp|plc|gmbh|s\.a\.|s\.l\.|b\.v\.|"
    r"n\.v\.|(?-i:AG|OY|AB|AS|A/S|SA|NV|BV)|s\.p\.a\.|corp\.?|corporation|company|co\.|group|holdings|"
    r"partners|associates|and\s+sons|&\s+sons|bank|insurance|foundation|institute|university|"
    r"college|hospital|clinic|agency|services|solutions|technologies|systems|industries"
)
_ORG = re.compile(
    rf"""(?<![\w])(?:
        (?:{_NAME_WORD}[ \t]+){{0,3}}{_NAME_WORD}[ \t]+(?:{_SUFFIX})(?![\w])
      | (?:department|ministry|office|bureau)[ \t]+of[ \t]+(?:{_NAME_WORD}[ \t]+){{0,3}}{_NAME_WORD}
      | [A-Z][\w'’\-]+,[ \t]+[A-Z][\w'’\-]+[ \t]+and[ \t]+[A-Z][\w'’\-]+
      | [a-z][\w'’\-]+,[ \t]+[a-z][\w'’\-]+[ \t]+and[ \t]+[a-z][\w'’\-]+(?=[ \t]*(?:\n|$))
    )""",
    re.VERBOSE | re.IGNORECASE,
)
_FIRM = re.compile(r"^[A-Z][\w'’\-]+,[ \t]+[A-Z][\w'’\-]+[ \t]+and[ \t]+[A-Z][\w'’\-]+$")


_JOINERS = frozenset({"of", "and", "&", "de", "for"})


def _plausible(value: str) -> bool:
    words = value.split()
    if len(words) < 2:  # noqa: PLR2004 - "Ltd." alone is not a name
        return False
    # "our company", "it is just a bank": function words are not part of a name
    return not any(w.lower() in STOP_WORDS and w.lower() not in _JOINERS for w in words[:-1])


def organization_recognizer() -> RegexRecognizer:
    """ORGANIZATION: names ending in a legal form or institutional noun; 'X, Y and Z'."""
    return RegexRecognizer(
        entity="ORGANIZATION",
        name="GuardOrganizationRecognizer",
        pattern=_ORG,
        score=0.65,
        validate=_plausible,
    )
