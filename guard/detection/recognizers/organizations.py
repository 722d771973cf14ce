"""Organisations named with a legal form or an institutional head noun.

"Smith Ltd.", "Think Computer Corporation", "Nationwide Mutual Insurance Company",
"Department of Better Technology", and firm names of the form "Craig, Palmer and Quinn".
An employer or a lawyer's firm narrows down who a customer is; the NER finds some of these,
in lower case almost none.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from spacy.lang.en.stop_words import STOP_WORDS

from guard.detection.recognizers.base import (
    Finding,
    GuardRecognizer,
    RegexRecognizer,
    contains_any,
    has_upper,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from presidio_analyzer import RecognizerResult
    from presidio_analyzer.nlp_engine import NlpArtifacts

#: A name word of at most 41 characters, read possessively (what follows it is a space or tab,
#: which it cannot hold). Unbounded, every word boundary of a long dotted or hyphenated run
#: ("a.a.a...") started a scan to the run's end: quadratic in its length.
_NAME_WORD = r"[A-Za-zÀ-ÖØ-öø-ÿ0-9][\w'’&.\-]{0,40}+"
_SUFFIX = (
    r"ltd\.?|limited|inc\.?|incorporated|llc|l\.l\.c\.|llp|plc|gmbh|s\.a\.|s\.l\.|b\.v\.|"
    r"n\.v\.|(?-i:AG|OY|AB|AS|A/S|SA|NV|BV)|s\.p\.a\.|corp\.?|corporation|company|co\.|group|holdings|"
    r"partners|associates|and\s+sons|&\s+sons|bank|insurance|foundation|institute|university|"
    r"college|hospital|clinic|agency|services|solutions|technologies|systems|industries"
)
#: The rest of a word in a firm name ("Craig, Palmer and Quinn"), bounded and possessive too.
_FIRM_WORD = r"[\w'’\-]{1,40}+"
_ORG = re.compile(
    rf"""(?<![\w])(?:
        (?:{_NAME_WORD}[ \t]+){{0,3}}{_NAME_WORD}[ \t]+(?:{_SUFFIX})(?![\w])
      | (?:department|ministry|office|bureau)[ \t]+of[ \t]+(?:{_NAME_WORD}[ \t]+){{0,3}}{_NAME_WORD}
      | [A-Z]{_FIRM_WORD},[ \t]+[A-Z]{_FIRM_WORD}[ \t]+and[ \t]+[A-Z]{_FIRM_WORD}
      | [a-z]{_FIRM_WORD},[ \t]+[a-z]{_FIRM_WORD}[ \t]+and[ \t]+[a-z]{_FIRM_WORD}(?=[ \t]*(?:\n|$))
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


#: Every match of ``_ORG`` holds one of these (a legal form, a head noun, the "and" of a
#: firm name): text without any is skipped ("1 1 1 ...": 1.4 s for 1 MB before).
_ORG_KEYWORDS = (
    "ltd", "limited", "inc", "llc", "l.l.c.", "llp", "plc", "gmbh", "s.a.", "s.l.", "b.v.",
    "n.v.", "ag", "oy", "ab", "as", "a/s", "sa", "nv", "bv", "s.p.a.", "corp", "company", "co.",
    "group", "holdings", "partners", "associates", "sons", "bank", "insurance", "foundation",
    "institute", "university", "college", "hospital", "clinic", "agency", "services",
    "solutions", "technologies", "systems", "industries", "department", "ministry", "office",
    "bureau", "and",
)  # fmt: skip


def organization_recognizer() -> RegexRecognizer:
    """ORGANIZATION: names ending in a legal form or institutional noun; 'X, Y and Z'."""
    return RegexRecognizer(
        entity="ORGANIZATION",
        name="GuardOrganizationRecognizer",
        pattern=_ORG,
        score=0.65,
        precheck=contains_any(*_ORG_KEYWORDS),
        validate=_plausible,
    )


#: Head nouns of job titles: "Systems administrator", "Outside order clerk".
JOB_NOUNS = frozenset(
    """
    manager administrator clerk operator coordinator representative technician technologist
    engineer assistant director officer analyst consultant specialist tender installer
    repairer cashier surgeon drafter lineman nurse teacher developer designer accountant
    attorney lawyer paralegal agent supervisor secretary receptionist driver mechanic
    electrician plumber carpenter machinist welder inspector auditor architect scientist
    researcher professor instructor librarian pharmacist therapist physician dentist
    hygienist counselor advisor adviser planner producer editor writer journalist
    photographer programmer tester scheduler dispatcher estimator appraiser underwriter
    broker banker teller adjuster examiner investigator worker laborer helper aide
    attendant guard porter cook chef baker butcher server waiter bartender host stocker
    loader packer sorter assembler fabricator fitter setter finisher polisher grinder cutter
    sewer tailor upholsterer painter roofer glazier mason paver surveyor mapper cartographer
    economist statistician actuary mathematician chemist biologist physicist geologist
    pilot navigator dispatcher conductor engineer fisher farmer rancher forester logger
    ceo cto cfo coo president vice-president chairman founder owner partner intern
    """.split()
)
_ADDRESS_START = re.compile(
    r"^[ \t>?*•|\-]*(?:\d{1,6}[ \t]|unit[ \t]+\d|psc[ \t]+\d|p\.?[ \t]?o\.?[ \t]*box|"
    r"the[ \t]+corner[ \t]+of|uss[ \t]|usns[ \t]|usnv[ \t]|uscgc[ \t])",
    re.IGNORECASE,
)
_LINE_MARKS = " \t>?*•|-"
_MAX_HEADER_LINES = 3


def _header_line(content: str) -> bool:
    """A short line that can be a name, a job title or a company in a signature block."""
    if not content or len(content) > 60 or any(ch in content for ch in "?!:@;"):  # noqa: PLR2004
        return False
    return len(content.split()) <= 7 and sum(ch.isdigit() for ch in content) <= 2  # noqa: PLR2004


class SignatureBlockRecognizer(GuardRecognizer):
    """ORGANIZATION / TITLE: the short lines above a postal address in a signature or card.

    "Jane Doe / Systems administrator / Universal Design Partners / 91 Main St": whoever
    reads it knows the company and the job; together with the address they identify a person.
    A line whose last word is a job noun is a TITLE, any other an ORGANIZATION (a name line
    is claimed by the name recognizers, which score higher).
    """

    TITLE_SCORE = 0.65
    ORGANIZATION_SCORE = 0.6

    def __init__(self) -> None:
        super().__init__(entity="ORGANIZATION", name="GuardSignatureBlockRecognizer")
        self.supported_entities = ["ORGANIZATION", "TITLE"]

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
    ) -> list[RecognizerResult]:
        """Findings of both types this recognizer reports."""
        del nlp_artifacts, entities
        if "\n" not in text:
            return []
        results = []
        for start, end, score in self.find(text):
            kind = "TITLE" if score == self.TITLE_SCORE else "ORGANIZATION"
            result = self.result(start, end, score)
            result.entity_type = kind
            results.append(result)
        return results

    def find(self, text: str) -> Iterable[Finding]:
        """Header lines directly above each address line."""
        lines: list[tuple[int, str]] = []
        offset = 0
        for raw in text.split("\n"):
            lines.append((offset, raw))
            offset += len(raw) + 1
        for index, (_, raw) in enumerate(lines):
            if index == 0 or not _ADDRESS_START.match(raw):
                continue
            for back in range(index - 1, max(index - 1 - _MAX_HEADER_LINES, -1), -1):
                start, line = lines[back]
                content = line.strip(_LINE_MARKS)
                if not content and back == index - 1:
                    continue  # a blank line between the card and the address
                if not _header_line(content):
                    break
                lead = len(line) - len(line.lstrip(_LINE_MARKS))
                last_word = content.split()[-1].lower().strip(".,")
                score = self.TITLE_SCORE if last_word in JOB_NOUNS else self.ORGANIZATION_SCORE
                yield start + lead, start + lead + len(content), score


_APPOSITIVE_TITLE = re.compile(
    r",[ \t]+(?:the|our|a|an|their|his|her)[ \t]+(?P<value>(?:[\w'’\-]+[ \t]+){0,5}(?:"
    + "|".join(sorted(JOB_NOUNS))
    + r"))(?=[ \t]*[,.;])",
    re.IGNORECASE,
)


def appositive_title_recognizer() -> RegexRecognizer:
    """TITLE: "Susan Tougas, the immunology technologist, said" - a job next to a name."""
    return RegexRecognizer(
        entity="TITLE",
        name="GuardAppositiveTitleRecognizer",
        pattern=_APPOSITIVE_TITLE,
        group="value",
        score=0.6,
    )


_ORG_WORD = r"[^\W_][\w&'’\-]*"
#: "works at Citysourced", "the Vazquez-Riggs office", "Bridgewater is the brainchild of"
_EMPLOYER = re.compile(
    rf"""(?:
        \b(?i:work(?:s|ed|ing)?[ \t]+(?:at|for)|employed[ \t]+(?:by|at)|my[ \t]+employer[ \t]+is
          |spent[ \t]+(?:a|one|two|three|\w+)[ \t]+years?[ \t]+at|interned?[ \t]+at
          |recorded[ \t]+for|joined|hired[ \t]+by|on[ \t]+behalf[ \t]+of)[ \t]+
        (?P<after>{_ORG_WORD}(?:[ \t]+{_ORG_WORD}){{0,3}}?)
        (?=[ \t]*(?:[,.;:!?\n]|$|[ \t]+(?i:as|in|on|since|for|became|and|where)\b))
      | \b(?i:the)[ \t]+(?P<office>{_ORG_WORD}(?:[ \t]+{_ORG_WORD}){{0,3}}?)
        [ \t]+(?i:office|offices|headquarters|hq)\b
      | (?:^|(?<=[.!?][ \t]))(?P<subject>{_ORG_WORD}(?:[ \t]+{_ORG_WORD}){{0,3}}?)
        [ \t]+is[ \t]+the[ \t]+brainchild
    )""",
    re.VERBOSE | re.MULTILINE,
)


class EmployerRecognizer(GuardRecognizer):
    """ORGANIZATION: the name after "works at", "employed by", before "office is at".

    The frame is stronger evidence than the NER's guess, so it scores just above it.
    """

    SCORE = 0.86

    def __init__(self) -> None:
        super().__init__(entity="ORGANIZATION", name="GuardEmployerRecognizer")

    def find(self, text: str) -> Iterable[Finding]:
        """Employer names in their usual frames, if they are not plain words."""
        lower_text = not has_upper(text)
        for match in _EMPLOYER.finditer(text):
            group = next(g for g in ("after", "office", "subject") if match.group(g))
            value = match.group(group)
            words = value.split()
            if words[0].lower() in STOP_WORDS or words[-1].lower() in STOP_WORDS:
                continue
            if not lower_text and not value[0].isupper() and not value[0].isdigit():
                continue
            yield *match.span(group), self.SCORE
