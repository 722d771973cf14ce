"""Organisations named with a legal form or an institutional head noun.

"Smith Ltd.", "Think Computer Corporation", "Nationwide Mutual Insurance Company",
"Department of Better Technology", and firm names of the form "Craig, Palmer and Quinn".
An employer or a lawyer's firm narrows down who a customer is; the NER finds some of these,
in lower case almost none.
"""

from __future__ import annotations

import itertools
import re
from functools import lru_cache
from typing import TYPE_CHECKING

from spacy.lang.en.stop_words import STOP_WORDS

from guard.detection.recognizers.base import (
    Finding,
    GuardRecognizer,
    RegexRecognizer,
    contains_any,
    folded,
    has_upper,
    prefix_tree,
    searches,
    searches_folded,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from presidio_analyzer import RecognizerResult
    from presidio_analyzer.nlp_engine import NlpArtifacts

#: A name word of at most 41 characters, read possessively (what follows it is a space or tab,
#: which it cannot hold). Unbounded, every word boundary of a long dotted or hyphenated run
#: ("a.a.a...") started a scan to the run's end: quadratic in its length.
_NAME_WORD = r"[^\W_][\w'’&.\-]{0,40}+"
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
      | (?-i:[A-Z]){_FIRM_WORD},[ \t]+(?-i:[A-Z]){_FIRM_WORD}[ \t]+and[ \t]+(?-i:[A-Z]){_FIRM_WORD}
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


#: Every match of ``_ORG`` holds one of these keywords (a legal form, a head noun), one of
#: the upper-case legal forms (matched case-sensitively), or the ", Y and" of a firm name:
#: text without any is skipped ("1 1 1 ...": 1.4 s for 1 MB before). The short forms and
#: "and" are in nearly every English text, so they are looked for only where ``_ORG`` can
#: match them: after a blank, and in a list "X, Y and Z" (tests/detection: the pre-check
#: invariant holds the three to it).
_ORG_KEYWORDS = (
    "ltd", "limited", "inc", "llc", "l.l.c.", "llp", "plc", "gmbh", "s.a.", "s.l.", "b.v.",
    "n.v.", "s.p.a.", "corp", "company", "co.", "group", "holdings", "partners", "associates",
    "sons", "bank", "insurance", "foundation", "institute", "university", "college", "hospital",
    "clinic", "agency", "services", "solutions", "technologies", "systems", "industries",
    "department", "ministry", "office", "bureau",
)  # fmt: skip
_HAS_ORG_KEYWORD = contains_any(*_ORG_KEYWORDS)
_HAS_UPPER_LEGAL_FORM = searches(r"[ \t](?:A[GBS]|A/S|OY|SA|NV|BV)")
_HAS_FIRM_LIST = searches_folded(r",[ \t]+[\w'’\-]+[ \t]+and[ \t]")


def _may_hold_an_organization(text: str) -> bool:
    """``organization_recognizer``'s pre-check: a keyword, an upper-case form, a firm list."""
    return _HAS_ORG_KEYWORD(text) or _HAS_UPPER_LEGAL_FORM(text) or _HAS_FIRM_LIST(text)


def organization_recognizer() -> RegexRecognizer:
    """ORGANIZATION: names ending in a legal form or institutional noun; 'X, Y and Z'."""
    return RegexRecognizer(
        entity="ORGANIZATION",
        name="GuardOrganizationRecognizer",
        pattern=_ORG,
        score=0.65,
        precheck=_may_hold_an_organization,
        validate=_plausible,
    )


#: A capitalised name word of a firm in any alphabet, at most 41 characters, possessive.
_FIRM_NAME_WORD = r"[^\W\d_][\w'’\-]{1,40}+"
#: "Ernst & Young", "Procter & Gamble", "Skadden, Arps, Slate, Meagher & Flom", "Smith & Co."
_AMPERSAND_FIRM = re.compile(
    rf"(?<![\w'’\-])(?P<names>{_FIRM_NAME_WORD}(?:,[ \t]+{_FIRM_NAME_WORD}){{0,4}}),?[ \t]+&[ \t]+"
    rf"(?P<last>{_FIRM_NAME_WORD}\.?)(?![\w'’\-])"
)
#: "Davis, Reynolds and Williamson", "Jones, Mitchell and Williams": three or more surnames in a
#: list with "and", the way law and accounting firms are named (two, "Smith and Jones", are as
#: often two people).
_AND_FIRM = re.compile(
    rf"(?<![\w'’\-])(?P<names>{_FIRM_NAME_WORD}(?:,[ \t]+{_FIRM_NAME_WORD}){{1,4}}),?"
    rf"[ \t]+and[ \t]+"
    rf"(?P<last>{_FIRM_NAME_WORD}\.?)(?![\w'’\-])"
)
#: What may follow the "&" of a firm instead of a surname.
_FIRM_TAILS = frozenset({"co", "co.", "company", "sons", "daughters", "partners", "associates"})


class FirmNameRecognizer(GuardRecognizer):
    """ORGANIZATION: surnames joined the way partnerships are named.

    "Ernst & Young", "Smith & Wesson" and "Davis, Reynolds & Williamson" are firms, and so is a
    list of three or more surnames with "and" ("Davis, Reynolds and Williamson", the way law
    firms are named; two, "Smith and Jones", are as often two people). Every word must be a
    common census surname (``gazetteer.surnames``) or a firm's tail ("& Co.", "& Sons"), so that
    "Terms & Conditions", "Sales & Marketing" and "Q & A" stay text. The form is stronger
    evidence than the NER's reading of each surname as a person, so it scores just above it.
    """

    SCORE = 0.86

    def __init__(self) -> None:
        from guard.detection.recognizers.gazetteer import surnames  # noqa: PLC0415 - no cycle

        super().__init__(
            entity="ORGANIZATION",
            name="GuardFirmNameRecognizer",
            precheck=contains_any("&", " and "),
        )
        self.surnames = surnames()  # loaded with the detector, not on the first request

    def find(self, text: str) -> Iterable[Finding]:
        """Every "X & Y", "X, Y & Z" and "X, Y and Z" whose words are capitalised surnames."""
        known = self.surnames
        for match in itertools.chain(_AMPERSAND_FIRM.finditer(text), _AND_FIRM.finditer(text)):
            words = [w.strip() for w in match.group("names").split(",")]
            last = match.group("last")
            bare = last.rstrip(".").lower()
            if not all(w[0].isupper() and w.lower() in known for w in words):
                continue
            if not last[0].isupper() or (bare not in known and bare not in _FIRM_TAILS):
                continue
            # the dot of "& Co." is part of the name; a full stop after a surname is not
            end = match.end("last")
            if last.endswith(".") and bare != "co":
                end -= 1
            yield match.start(), end, self.SCORE


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
    nanny babysitter caregiver janitor custodian housekeeper maid cleaner gardener
    landscaper handyman paramedic firefighter midwife veterinarian vet courier postman
    mailman stylist barber hairdresser barista sommelier actor actress singer musician
    artist dancer athlete coach trainer tutor lecturer dean principal recruiter strategist
    marketer executive associate salesperson salesman saleswoman steward stewardess
    translator interpreter archivist curator notary solicitor barrister judge detective
    sheriff deputy sergeant lieutenant captain colonel soldier sailor entrepreneur
    freelancer contractor bookkeeper biller coder transcriptionist sonographer
    """.split()
)
#: Endings that make an occupation of their stem in English word formation ("platemaker",
#: "publicist", "beautician", "locksmith", "shipwright", "gatekeeper", "stenographer"); a
#: head noun with one of them is read as a job where the frame says a job is named.
JOB_SUFFIXES = ("maker", "smith", "wright", "keeper", "grapher", "ician", "ologist", "ist")
#: Heads that name a job in a signature or after "the", but in a chat more often a role
#: towards the company ("I'm the account owner", "I'm an authorized user", "my partner").
_AMBIGUOUS_HEADS = frozenset("owner partner host server helper agent founder guard aide".split())
#: Endings of agents in general ("-er", "-or", "-ian", "-ant"): after "I work as a", where the
#: frame names a job, "sommelier", "translator", "custodian" and "attendant" are jobs; "team"
#: and "whole" ("we work as a team") are not.
_AGENT_ENDINGS = ("er", "or", "ist", "ian", "ant", "ent", "eer", "ier", "ee", "man", "woman")


def job_head(word: str, *, strong_frame: bool = False) -> bool:
    """Whether ``word`` can end a job title: an occupation noun, in the singular or plural.

    ``strong_frame``: the words around say a job is named ("I work as a ..."), so any agent
    noun counts; elsewhere only the occupation list and the occupational word endings do.
    """
    low = word.lower().strip(".,'’")
    singular = low[:-1] if low.endswith("s") and len(low) > 3 else low  # noqa: PLR2004
    for form in (low, singular):
        if form in JOB_NOUNS:
            return True
        if len(form) >= 7 and form.endswith(JOB_SUFFIXES) and not form.endswith("list"):  # noqa: PLR2004
            return True
        if strong_frame and len(form) >= 5 and form.endswith(_AGENT_ENDINGS):  # noqa: PLR2004
            return True
    return False


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
                last_word = content.split()[-1]
                score = self.TITLE_SCORE if job_head(last_word) else self.ORGANIZATION_SCORE
                yield start + lead, start + lead + len(content), score


_APPOSITIVE_TITLE = re.compile(
    r",[ \t]+(?:the|our|a|an|their|his|her)[ \t]+(?P<value>(?:[\w'’\-]{1,40}+[ \t]+){0,7}"
    r"[\w'’\-]{1,40}+)(?=[ \t]*[,.;])",
    re.IGNORECASE,
)


def _ends_in_job(value: str) -> bool:
    """A noun phrase ending in a job: no common words but "and" ("a reload *by a* supervisor")."""
    *modifiers, head = value.split()
    return job_head(head) and not any(
        w.lower() in STOP_WORDS and w.lower() not in _TITLE_JOINERS for w in modifiers
    )


def appositive_title_recognizer() -> RegexRecognizer:
    """TITLE: "Susan Tougas, the immunology technologist, said" - a job next to a name."""
    return RegexRecognizer(
        entity="TITLE",
        name="GuardAppositiveTitleRecognizer",
        pattern=_APPOSITIVE_TITLE,
        group="value",
        score=0.65,
        precheck=contains_any(","),
        validate=_ends_in_job,
    )


#: A word of a job title: letters of any alphabet, with "-", "/", "&" and apostrophes inside
#: ("vice-president", "HR/payroll"), read possessively.
_TITLE_WORD = r"[^\W\d_](?:[^\W\d_]|['’\-/&])*+"
#: Up to eight words (commas between them: "Crushing, grinding, and polishing machine
#: tender"); which of them make the title is decided word by word (``_title_end``).
_TITLE_PHRASE = rf"(?P<phrase>{_TITLE_WORD}(?:,?[ \t]+{_TITLE_WORD}){{0,7}})"
_ARTICLE = r"(?:(?:an?|the|our|their|his|her|my)[ \t]+)"
#: Frames that say a job is named, whatever the noun ("I work as a sommelier").
_STRONG_FRAMES = re.compile(
    rf"""\b(?:(?:work(?:s|ed|ing)?|employed|hired|job)[ \t]+as[ \t]+{_ARTICLE}?
          |(?:job[ \t]*title|occupation|profession|designation)[ \t]*(?:[:=]|is)[ \t]*{_ARTICLE}?)
        {_TITLE_PHRASE}""",
    re.VERBOSE | re.IGNORECASE,
)
#: Frames where a job is one reading among others ("I'm a nurse", "I'm a big fan"): the
#: phrase must end in an occupation noun.
_WEAK_FRAMES = re.compile(
    rf"""\b(?:(?:i[ \t]*['’]?m|i[ \t]+am|i[ \t]+was|(?:he|she)[ \t]*['’]s
           |(?:he|she)[ \t]+(?:is|was)|they[ \t]*['’]re|they[ \t]+(?:are|were)
           |(?:my|his|her)[ \t]+(?:job|role|position)[ \t]+is)[ \t]+{_ARTICLE}
          |\d{{1,3}}[ \t]?-?[ \t]?years?[ \t]?-?[ \t]?old[ \t]+
          |(?:serv(?:e|es|ed|ing)[ \t]+as|(?:re)?trained[ \t]+as|qualified[ \t]+as|retired[ \t]+as
           |volunteer(?:s|ed|ing)?[ \t]+as|promoted[ \t]+to)[ \t]+{_ARTICLE}?
          |(?:position|role|title)[ \t]*[:=][ \t]*{_ARTICLE}?)
        {_TITLE_PHRASE}""",
    re.VERBOSE | re.IGNORECASE,
)
#: "Best regards," and the like, alone on a line: a name, then perhaps a job title, follows.
_SIGN_OFF = re.compile(
    r"""^[ \t>]*(?:(?:best|kind|warm|warmest|many)[ \t]+)?(?:regards|wishes|sincerely|cheers|thanks
        |thank[ \t]+you|yours(?:[ \t]+(?:truly|sincerely|faithfully))?|respectfully|best)
        [ \t]*[,.!]?[ \t]*$""",
    re.VERBOSE | re.IGNORECASE | re.MULTILINE,
)
#: An occupation noun or ending anywhere in the text, in folded text: every weak frame's
#: title ends in one (``job_head``), so where none is, the weak frames cannot find a title.
_JOB_NOUN_SEARCH = re.compile(r"\b" + prefix_tree(sorted(JOB_NOUNS)) + r"s?\b").search
_JOB_SUFFIX_SEARCH = re.compile(r"(?:" + prefix_tree(JOB_SUFFIXES) + r")s?\b").search


@lru_cache(maxsize=4)
def _any_job_head(text: str) -> bool:
    """Whether ``text`` holds an occupation noun or ending; cached, the recognizer asks twice.

    Two searches: an ending (unanchored) is a short alternation the engine tries fast, and
    the nouns are anchored at word starts.
    """
    low = folded(text)
    return _JOB_SUFFIX_SEARCH(low) is not None or _JOB_NOUN_SEARCH(low) is not None


def _may_name_a_job(text: str) -> bool:
    """``JobTitleRecognizer``'s pre-check: a strong frame's word or an occupation noun."""
    return TITLE_GATES[_STRONG_FRAMES](text) or _any_job_head(text)


#: For each frame, a cheap search without which it finds no title (a property test checks
#: it): a frame whose gate is closed is not run. Weak frames are gated by their title's head,
#: which is rarer in text than the verbs of the frame.
TITLE_GATES: dict[re.Pattern[str], Callable[[str], bool]] = {
    _STRONG_FRAMES: searches_folded(r"work|employed|hired|job|occupation|profession|designation"),
    _WEAK_FRAMES: _any_job_head,
}
#: Words that may join the words of a title ("Time and attendance clerk").
_TITLE_JOINERS = frozenset({"and", "&"})
#: Subjects for which "works as a" describes a use, not a job ("this works as a filter").
_THING_SUBJECTS = frozenset("it this that which what something everything nothing".split())


def _title_end(match: re.Match[str], *, strong: bool) -> int | None:
    """Where the title in ``match``'s phrase ends; None if it names no job.

    The title is the phrase's words up to the first common word ("a nurse *at* the clinic")
    and then back to its last occupation noun (in a strong frame, any agent noun). Words
    joined by "and" stay in ("Time and attendance clerk").
    """
    start = match.start("phrase")
    kept: list[tuple[str, int]] = []
    for word in re.finditer(r"[^\s,]+", match.group("phrase")):
        low = word.group().lower()
        if low in STOP_WORDS and low not in _TITLE_JOINERS:
            break
        kept.append((word.group(), start + word.end()))
    heads = [
        (index, end)
        for index, (word, end) in enumerate(kept)
        if word.lower() not in _TITLE_JOINERS and job_head(word, strong_frame=strong)
    ]
    if not heads:
        return None  # "we work as a team", "I'm a big fan"
    index, end = heads[-1]
    if not strong and kept[index][0].lower().strip(".,'’") in _AMBIGUOUS_HEADS:
        return None  # "I'm the account owner": a role towards the company, not a job
    return end


class JobTitleRecognizer(GuardRecognizer):
    """TITLE: a job named in its frame: "I work as a ...", "Occupation: ...", "I'm a nurse".

    Job titles are quasi-identifiers (with an employer or a town they single a person out),
    and occupations are too many for a list: the frame decides. Where the frame says a job is
    named ("work as", "job title:"), any noun phrase is taken; where it is one reading among
    others ("I'm a ...", "served as", "position:", "a 62-year-old retired teacher"), the phrase
    must end in an occupation noun (``job_head``). The line under the name after a sign-off
    ("Best regards," / "Jane Doe" / "Senior Account Manager") is a title when it ends in one.
    """

    #: "work as a" is stronger evidence than the NER's reading of the words after it as a
    #: person or a place ("I WORK AS A NURSE": NURSE a place), so it scores just above it.
    STRONG_SCORE = 0.86
    WEAK_SCORE = 0.65

    def __init__(self) -> None:
        super().__init__(entity="TITLE", name="GuardJobTitleRecognizer", precheck=_may_name_a_job)

    def find(self, text: str) -> Iterable[Finding]:
        """Titles in each frame, and under the name in a signature."""
        for pattern, strong in ((_STRONG_FRAMES, True), (_WEAK_FRAMES, False)):
            if not TITLE_GATES[pattern](text):
                continue
            for match in pattern.finditer(text):
                if strong and _subject(text, match.start()) in _THING_SUBJECTS:
                    continue
                end = _title_end(match, strong=strong)
                if end is not None:
                    score = self.STRONG_SCORE if strong else self.WEAK_SCORE
                    yield match.start("phrase"), end, score
        if "\n" in text and _any_job_head(text):
            yield from self._signature_titles(text)

    def _signature_titles(self, text: str) -> Iterable[Finding]:
        for sign_off in _SIGN_OFF.finditer(text):
            position = sign_off.end() + 1
            while text.startswith("\n", position):  # blank lines before the name
                position += 1
            # the name line, then at most two lines of title
            for line_number in range(_MAX_HEADER_LINES):
                end = text.find("\n", position)
                line = text[position : end if end >= 0 else len(text)]
                content = line.strip(_LINE_MARKS)
                if position >= len(text) or not _header_line(content):
                    break
                if line_number > 0 and job_head(content.split()[-1]):
                    lead = len(line) - len(line.lstrip(_LINE_MARKS))
                    yield position + lead, position + lead + len(content), self.STRONG_SCORE
                if end < 0:
                    break
                position = end + 1


def _subject(text: str, position: int) -> str:
    """The word before ``position`` (lower case), the subject of "works as a"."""
    before = text[max(0, position - 30) : position].split()
    return before[-1].lower() if before else ""


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


#: A word every frame of ``_EMPLOYER`` holds: the pattern tries every word boundary of a
#: text, and most texts name no employer.
_MAY_NAME_EMPLOYER = contains_any(
    "work", "employ", "spent", "intern", "recorded", "joined", "hired", "behalf", "office",
    "headquarters", "hq", "brainchild",
)  # fmt: skip


class EmployerRecognizer(GuardRecognizer):
    """ORGANIZATION: the name after "works at", "employed by", before "office is at".

    The frame is stronger evidence than the NER's guess, so it scores just above it.
    """

    SCORE = 0.86

    def __init__(self) -> None:
        super().__init__(
            entity="ORGANIZATION", name="GuardEmployerRecognizer", precheck=_MAY_NAME_EMPLOYER
        )

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
