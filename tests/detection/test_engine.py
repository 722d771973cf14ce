"""The detector as a whole: one label per region, tenant lists, batches, limits, no network."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.detection.custom import TenantLists, TenantsFile
from guard.detection.engine import Detector, _AllowList
from guard.detection.entities import Candidate, DetectedEntity, resolve_overlaps
from guard.detection.nlp import MAX_CHUNK_CHARS, MAX_SYMBOL_RUN, MIN_LETTERLESS_RUN, ner_view
from guard.errors import InputTooLargeError, InvalidInputError

if TYPE_CHECKING:
    from guard.config import Settings


def test_when_spans_overlap_then_the_highest_score_takes_the_region() -> None:
    text = "4929-3813-3266-4295"
    out = resolve_overlaps(
        [Candidate(0, 19, "US_BANK_NUMBER", 0.4), Candidate(0, 19, "CREDIT_CARD", 1.0)], text
    )
    assert out == [DetectedEntity(0, 19, "CREDIT_CARD", 1.0)]


def test_when_a_loser_sticks_out_then_its_uncovered_part_is_kept() -> None:
    text = "Apt 5 Springfield"
    out = resolve_overlaps(
        [Candidate(0, 5, "STREET_ADDRESS", 0.9), Candidate(4, 17, "LOCATION", 0.5)], text
    )
    covered = {i for e in out for i in range(e.start, e.end)}
    assert set(range(17)) - covered <= {5}  # only the space between may stay uncovered
    assert all(a.end <= b.start for a, b in itertools.pairwise(out))


def test_when_an_email_is_found_then_its_domain_is_not_also_a_url(detector: Detector) -> None:
    text = "write to josephb8@email.com"
    assert [e.entity_type for e in detector.analyze(text)] == ["EMAIL_ADDRESS"]


def test_when_a_tenant_allows_its_own_name_then_it_is_not_reported(detector: Detector) -> None:
    text = "Hello and welcome to AcmeCorp, how can I help you today?"
    assert detector.analyze(text, tenant="acme") == []


def test_when_a_tenant_denies_a_value_then_it_is_always_reported(detector: Detector) -> None:
    text = "the project falcon launch is on track"
    assert [
        (text[e.start : e.end], e.entity_type) for e in detector.analyze(text, tenant="acme")
    ] == [("project falcon", "INTERNAL_CODENAME")]
    assert "INTERNAL_CODENAME" not in {
        e.entity_type for e in detector.analyze(text, tenant="other")
    }


def test_when_texts_are_batched_then_results_equal_one_by_one(detector: Detector) -> None:
    texts = [
        "Call me at (845) 450-5693",
        "",
        "My name is Joseph Banter and I live at 12 Main Street",
        "nothing here",
    ]
    assert list(detector.analyze_batch(texts, batch_size=2)) == [detector.analyze(t) for t in texts]


def test_when_text_is_not_a_string_then_the_error_says_so(detector: Detector) -> None:
    with pytest.raises(InvalidInputError, match="must be a string"):
        detector.analyze(b"bytes")  # type: ignore[arg-type]


def test_when_text_is_over_the_limit_then_it_is_refused(settings: Settings) -> None:
    small = Detector(settings=settings.model_copy(update={"max_text_bytes": 100}))
    with pytest.raises(InputTooLargeError, match="over the limit of 100 bytes"):
        small.analyze("x" * 101)


def test_when_sockets_are_blocked_then_detection_still_works(
    detector: Detector, network_attempts: list[object]
) -> None:
    fresh = Detector(settings=detector.settings, nlp=detector.nlp_engine.pipeline)
    text = "email me at someone@example.co.uk or visit https://example.org"
    kinds = {e.entity_type for e in fresh.analyze(text)}
    assert "EMAIL_ADDRESS" in kinds
    assert network_attempts == []


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=30),
            st.sampled_from(
                [
                    "John Smith",
                    "(845) 450-5693",
                    "a@b.com",
                    "12 Main St",
                    "4929-3813-3266-4295",
                    "\n",
                    " Apt. 5\n",
                    "password: x1y2z3",
                    # disguised: the view differs from the text, offsets are mapped back
                    "\uff4a\uff4f\uff45\uff20\uff45\uff58.com",
                    "4111\u00a01111\u200b1111 1111",
                    "o\ufb03ce@ex.com",
                    "Jose\u0301\u200b",
                    "\u200b\u00ad",
                ]
            ),
        ),
        max_size=8,
    )
)
def test_offsets_are_always_valid_and_regions_never_overlap(
    detector: Detector, parts: list[str]
) -> None:
    text = " ".join(parts)
    entities = detector.analyze(text)
    for entity in entities:
        assert 0 <= entity.start < entity.end <= len(text)
        assert 0.0 <= entity.score <= 1.0
    for left, right in itertools.pairwise(entities):
        assert left.end <= right.start


# ------------------------------------------------------------------ hostile input: the view


@pytest.mark.parametrize("symbol", list("!,?()\";:*'_-.~"))
def test_when_a_symbol_runs_on_then_the_ner_sees_a_few_of_them(symbol: str) -> None:
    text = f"Hi {symbol * 5000} there"
    view = ner_view(text)
    assert len(view) == len(text)
    assert view == f"Hi {symbol * MAX_SYMBOL_RUN}{' ' * (5000 - MAX_SYMBOL_RUN)} there"


def test_when_a_chunk_is_absurdly_long_then_the_ner_sees_its_start() -> None:
    text = "see " + "a-b." * 1000 + " ok"
    view = ner_view(text)
    assert len(view) == len(text)
    assert view[: 4 + MAX_CHUNK_CHARS] == text[: 4 + MAX_CHUNK_CHARS]
    assert not view[4 + MAX_CHUNK_CHARS : -3].strip()
    assert view.endswith(" ok")


@given(st.text(alphabet=st.sampled_from("ab !?.,_-\n\t é"), max_size=300))
def test_the_view_keeps_every_offset(text: str) -> None:
    view = ner_view(text)
    assert len(view) == len(text)
    for ours, theirs in zip(text, view, strict=True):
        assert theirs in (ours, " ")  # the same character, or a space in its place


def test_when_ordinary_text_is_viewed_then_it_is_unchanged() -> None:
    text = "Hi David!!! My card... is 4929-3813-3266-4295 :-) (thanks)"
    assert ner_view(text) is text


def test_when_punctuation_runs_on_then_the_ner_reads_few_tokens(detector: Detector) -> None:
    # spaCy's tokenizer is quadratic on such runs; the view hands it a handful of tokens
    for symbol in "!,?()\";:*'":
        doc = detector.nlp_engine.pipeline(ner_view(symbol * 16_000))
        assert len(doc) <= MAX_SYMBOL_RUN + 1


def test_when_a_text_is_one_absurd_token_then_nothing_is_reported(detector: Detector) -> None:
    assert detector.analyze("x" * 900_000) == []


def test_when_punctuation_runs_on_then_names_beside_it_are_still_found(
    detector: Detector,
) -> None:
    text = "My name is Joseph Banter" + "!" * 20_000 + " and I live at 12 Main Street."
    kinds = {(text[e.start : e.end], e.entity_type) for e in detector.analyze(text)}
    assert ("Joseph Banter", "PERSON") in kinds
    assert any(kind == "STREET_ADDRESS" and "12 Main Street" in value for value, kind in kinds)


# ------------------------------------------------------- hostile input: letterless runs

#: Prose as customers write it, digits and all: no run of letterless chunks is long enough.
PROSE_WITH_NUMBERS = (
    "Order 5512 of 12/03/2024 (2 x 19.99 = 39.98 USD) went to 12 Elm St., Apt. 5 - call "
    "(845) 450-5693 or +1 415 555 0100, card 4929 3813 3266 4295 exp 04/27, ref 1 2 3 4 5 6 7."
)


def test_when_prose_has_numbers_then_the_view_leaves_it_alone() -> None:
    assert ner_view(PROSE_WITH_NUMBERS) is PROSE_WITH_NUMBERS


def test_when_a_digit_table_is_viewed_then_it_is_blanked() -> None:
    rows = "".join(
        f"{i:>4} | 555-01{i:02} | {i * 3.5:8.2f} | 2024-01-{i % 28 + 1:02}\n" for i in range(40)
    )
    text = f"Totals for Ann Smith\n{rows}signed, Boston"
    view = ner_view(text)
    assert len(view) == len(text)
    assert view.startswith("Totals for Ann Smith\n")
    assert view.endswith("signed, Boston")
    assert not view[len("Totals for Ann Smith\n") : -len("signed, Boston")].strip()


def test_when_a_letterless_run_is_short_then_the_view_keeps_it() -> None:
    short = " ".join(["12"] * (MIN_LETTERLESS_RUN - 1))
    long = " ".join(["12"] * MIN_LETTERLESS_RUN)
    assert ner_view(f"Ann {short} Bob") == f"Ann {short} Bob"
    assert ner_view(f"Ann {long} Bob") == f"Ann {' ' * len(long)} Bob"
    # a chunk with one letter in it breaks the run
    assert ner_view(f"{short} x1 {short}") == f"{short} x1 {short}"


@given(st.text(alphabet=st.sampled_from("ab12 -.()!\n\t_é٣"), max_size=400))
def test_the_letterless_view_keeps_every_offset(text: str) -> None:
    view = ner_view(text)
    assert len(view) == len(text)
    for ours, theirs in zip(text, view, strict=True):
        assert theirs in (ours, " ")
        if ours.isalpha():
            assert theirs == ours  # a letter is never blanked (runs are letterless)


def test_when_a_name_is_next_to_a_long_digit_run_then_it_is_still_found(
    detector: Detector,
) -> None:
    digits = "555-123-4567 " * 2_000
    text = f"{digits}My name is Joseph Banter and I live in Chicago. {digits}"
    assert not ner_view(text)[: len(digits)].strip()
    kinds = {(text[e.start : e.end], e.entity_type) for e in detector.analyze(text)}
    assert ("Joseph Banter", "PERSON") in kinds
    assert ("Chicago", "LOCATION") in kinds


# ---------------------------------------------------------------- the allow-list, one pass

ALLOW = ["AcmeCorp", "AcmeCorp Support Desk", "Straße 5", "desk"]


def _reference_allowed(text: str, candidate: Candidate, allow: list[str]) -> bool:
    """Inside an occurrence of an allowed value (compared case-folded), by brute force."""
    for value in allow:
        folded = value.casefold()
        for i in range(len(text) - len(folded) + 1):
            if (
                text[i : i + len(folded)].casefold() == folded
                and i <= candidate.start
                and candidate.end <= i + len(folded)
            ):
                return True
    return False


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ("ACMECORP", True),
        ("ACMECORP SUPPORT DESK", True),
        ("SUPPORT", True),  # inside the longer value
        ("DESK or", False),  # sticks out of every value
        ("STRASSE 5", True),  # "ß" folds to "ss"
        ("HAUPTSTRASSE 5", False),
        ("now", False),
    ],
)
def test_when_a_finding_lies_inside_an_allowed_value_then_it_is_dropped(
    value: str, allowed: bool
) -> None:
    text = "Call ACMECORP SUPPORT DESK or HAUPTSTRASSE 5 now"
    start = text.index(value)
    candidate = Candidate(start, start + len(value), "ORGANIZATION", 0.9)
    kept = _AllowList(ALLOW).filter(text, [candidate])
    assert kept == ([] if allowed else [candidate])


@given(
    st.text(alphabet="acmeorp dsk", max_size=60),
    st.lists(st.tuples(st.integers(0, 60), st.integers(1, 12)), max_size=12),
)
def test_the_one_pass_allow_list_agrees_with_brute_force(
    text: str, spans: list[tuple[int, int]]
) -> None:
    allow = ["acme", "acme corp", "corp d", "e", "desk desk"]
    candidates = [
        Candidate(start, min(start + length, len(text)), "X", 1.0)
        for start, length in spans
        if start < len(text)
    ]
    expected = [c for c in candidates if not _reference_allowed(text, c, allow)]
    assert _AllowList(allow).filter(text, candidates) == expected


@pytest.fixture(scope="module")
def allowing(detector: Detector) -> Detector:
    tenants = TenantsFile(version=1, tenants={"t": TenantLists(allow=ALLOW)})
    return Detector(settings=detector.settings, nlp=detector.nlp_engine.pipeline, tenants=tenants)


def test_when_a_tenant_allows_a_value_then_the_detector_drops_it(allowing: Detector) -> None:
    text = "Message from acmecorp support desk: please call Joseph Banter"
    everything = {text[e.start : e.end] for e in allowing.analyze(text)}
    assert "Joseph Banter" in everything
    assert any("acmecorp" in value for value in everything)
    allowed = [text[e.start : e.end] for e in allowing.analyze(text, tenant="t")]
    assert allowed == ["Joseph Banter"]


def test_when_the_allow_list_has_many_findings_to_check_then_each_is_checked_once(
    allowing: Detector,
) -> None:
    # findings x text used to be searched: 26,000 findings in 200 KB
    text = "Ann, AcmeCorp, " * 13_000
    assert {text[e.start : e.end] for e in allowing.analyze(text)} == {"Ann", "AcmeCorp"}
    assert {text[e.start : e.end] for e in allowing.analyze(text, tenant="t")} == {"Ann"}
