"""Long texts are analysed in overlapping windows: nothing is lost at a window's edge."""

from __future__ import annotations

import itertools
import warnings
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.detection.engine import Detector
from guard.detection.windows import WINDOW_MARGIN, split_windows, window_bounds
from guard.errors import ConfigurationError, InvalidInputError

if TYPE_CHECKING:
    from guard.config import Settings
    from guard.detection.entities import DetectedEntity

#: A tiny window, so that a few KB of text make several windows.
WINDOW = 1_000
OVERLAP = 400
#: The longest entity a window is sure to hold whole, away from its cut edges.
LONGEST_WHOLE = OVERLAP - 2 * WINDOW_MARGIN

#: Ordinary sentences in which guard finds nothing (checked below).
FILLER = (
    "The order was packed and shipped on time, and the tracking page shows the latest "
    "status of the parcel. "
)


@pytest.fixture(scope="module")
def windowed(detector: Detector) -> Detector:
    """The session's detector, with windows of 1,000 characters overlapping by 400."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*\[W095\].*")
        return Detector(
            settings=detector.settings.model_copy(
                update={"analysis_window_chars": WINDOW, "analysis_window_overlap_chars": OVERLAP}
            ),
            nlp=detector.nlp_engine.pipeline,
        )


# ---------------------------------------------------------------------------- the cuts


@pytest.mark.parametrize(
    "text",
    [
        "x" * 5_003,  # no space at all: cuts anywhere
        ("word " * 2_000),
        ("a line of text\n" * 700),
        FILLER * 50,
    ],
)
def test_windows_cover_the_text_with_the_overlap_and_stay_within_size(text: str) -> None:
    bounds = window_bounds(text, size=WINDOW, overlap=OVERLAP)
    assert bounds[0][0] == 0
    assert bounds[-1][1] == len(text)
    for start, end in bounds:
        assert 0 < end - start <= WINDOW
    for (_, left_end), (right_start, right_end) in itertools.pairwise(bounds):
        assert left_end - right_start >= OVERLAP  # shared characters
        assert right_end > left_end  # progress


def test_when_a_text_has_line_breaks_then_windows_start_at_a_line() -> None:
    text = "a line of text\n" * 700
    for start, _ in window_bounds(text, size=WINDOW, overlap=OVERLAP)[1:]:
        assert text[start - 1] == "\n"


def test_when_a_text_has_spaces_then_windows_start_at_a_word() -> None:
    text = "word " * 2_000
    for start, end in window_bounds(text, size=WINDOW, overlap=OVERLAP)[1:]:
        assert text[start - 1] == " "
        assert text[end - 1] == " " or end == len(text)


def test_when_a_text_fits_then_it_is_one_window() -> None:
    assert window_bounds("short", size=WINDOW, overlap=OVERLAP) == [(0, 5)]
    assert window_bounds("", size=WINDOW, overlap=OVERLAP) == [(0, 0)]


def test_when_the_window_is_under_twice_the_overlap_then_the_detector_refuses_it(
    detector: Detector, settings: Settings
) -> None:
    bad = settings.model_copy(
        update={"analysis_window_chars": 1_000, "analysis_window_overlap_chars": 600}
    )
    with pytest.raises(ConfigurationError, match="twice"):
        Detector(settings=bad, nlp=detector.nlp_engine.pipeline)


# ---------------------------------------------------------------- entities across the cuts

#: (snippet, the PII value inside it, the label it must get)
ENTITIES = [
    (
        "Please write to joseph.banter@example.com today. ",
        "joseph.banter@example.com",
        "EMAIL_ADDRESS",
    ),
    ("You can call me at (845) 450-5693 after five. ", "(845) 450-5693", "PHONE_NUMBER"),
    ("My card number is 4929-3813-3266-4295 thanks. ", "4929-3813-3266-4295", "CREDIT_CARD"),
    (
        "Please send it to:\n52 Chorophilakis Street\nSpringfield, IL 62704\nThank you. ",
        "52 Chorophilakis Street\nSpringfield, IL 62704",
        "STREET_ADDRESS",
    ),
    ("Hello, my name is Joseph Banter and I need help. ", "Joseph Banter", "PERSON"),
]


def _text_with(snippet: str, at: int) -> str:
    """Filler, with ``snippet`` starting at character ``at`` (the filler cut at a space)."""
    before = (FILLER * 40)[:at]
    before = before[: before.rfind(" ") + 1] if " " in before else before
    return before + snippet + FILLER * 12


def _covering(entities: list[DetectedEntity], start: int, end: int, label: str) -> bool:
    return any(e.entity_type == label and e.start <= start and end <= e.end for e in entities)


def test_the_filler_holds_nothing(detector: Detector) -> None:
    assert detector.analyze(FILLER * 40) == []


@pytest.mark.parametrize(("snippet", "value", "label"), ENTITIES, ids=[e[2] for e in ENTITIES])
@pytest.mark.parametrize("shift", range(-120, 480, 20))
def test_when_an_entity_lies_across_a_window_edge_then_it_is_found_whole(
    detector: Detector, windowed: Detector, snippet: str, value: str, label: str, shift: int
) -> None:
    # slide the snippet through the overlap of the first two windows: across the first
    # window's end, the second's start, and the margins of both
    first_end = window_bounds(FILLER * 60, size=WINDOW, overlap=OVERLAP)[0][1]
    text = _text_with(snippet, first_end - OVERLAP + shift)
    start = text.index(value)
    end = start + len(value)
    bounds = window_bounds(text, size=WINDOW, overlap=OVERLAP)
    assert len(bounds) >= 3
    assert bounds[1][0] - 150 < end  # in or by the overlap
    assert start < bounds[0][1] + 150

    found = windowed.analyze(text)
    assert _covering(found, start, end, label), (shift, [(e.entity_type) for e in found])
    # and exactly what one pass over the whole text finds
    assert found == detector.analyze(text)


def test_when_short_texts_are_joined_then_the_long_text_gives_their_findings(
    detector: Detector, windowed: Detector
) -> None:
    texts = [snippet for snippet, _, _ in ENTITIES] * 6
    texts = [f"{FILLER}{t}{FILLER}" for t in texts]
    separator = "\n.\n"  # nothing joins across it (address parts join across spaces, commas)
    joined = separator.join(texts)
    assert len(window_bounds(joined, size=WINDOW, overlap=OVERLAP)) > 10
    expected: list[tuple[int, int, str]] = []
    offset = 0
    for text in texts:
        expected.extend(
            (e.start + offset, e.end + offset, e.entity_type) for e in detector.analyze(text)
        )
        offset += len(text) + len(separator)
    got = [(e.start, e.end, e.entity_type) for e in windowed.analyze(joined)]
    assert got == expected


# --------------------------------------------------------------- windows never lose a find

#: Pieces of chat with PII in them, every clause closed and no line breaks, so that no
#: recognizer reports more than ``LONGEST_WHOLE`` characters: a longer finding (an address
#: block run on over many lines) is beyond what a window of this size promises, and where it
#: loses, the parts it keeps change the labels of its neighbours. Line breaks at window edges
#: are covered above (the address block).
FRAGMENTS = [
    "John Smith",
    "(845) 450-5693",
    "a@b.com",
    "12 Main St.",
    "4929-3813-3266-4295",
    "Apt. 5.",
    "password: x1y2z3.",
    "My name is Joseph Banter.",
    "thanks David!",
    "Springfield, IL 62704.",
    "I live at 52 Chorophilakis Street.",
    "IBAN DE89370400440532013000",
    "Mary",
    "Paris",
    "the order",
    "was shipped",
    "and",
    ",",
    ".",
    "today",
]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=60, max_size=300))
def test_windowed_analysis_finds_every_entity_the_whole_text_analysis_finds(
    detector: Detector, windowed: Detector, parts: list[str]
) -> None:
    text = " ".join(parts)
    whole = detector.analyze(text)
    found = windowed.analyze(text)
    for entity in whole:
        # an entity a window can hold is found whole, with its label (longer ones, which only
        # clause-long patterns produce, may come out in parts or not at all: the default
        # overlap makes that 3,840 characters)
        if entity.end - entity.start <= LONGEST_WHOLE:
            assert _covering(found, entity.start, entity.end, entity.entity_type), entity
    for left, right in itertools.pairwise(found):
        assert left.end <= right.start


def test_when_a_window_starts_inside_a_line_then_line_anchored_patterns_do_not_fire(
    detector: Detector, windowed: Detector
) -> None:
    # 'Status: "' at the start of a line reads as a speaker's name; inside a line it is not.
    # A window can start inside this one long line: what it finds at its very start is left
    # to the window before, which sees the line as it is.
    text = 'Status: "ok" ' * 400
    assert len(window_bounds(text, size=WINDOW, overlap=OVERLAP)) > 3
    assert windowed.analyze(text) == detector.analyze(text)


# ------------------------------------------------------- one long text in parts (the pool)


@pytest.mark.parametrize(("count", "parts"), [(1, 1), (1, 4), (5, 2), (7, 3), (8, 8), (3, 0)])
def test_when_windows_are_split_then_the_groups_are_contiguous_and_cover_them(
    count: int, parts: int
) -> None:
    windows = [(i * 10, i * 10 + 15) for i in range(count)]
    groups = split_windows(windows, parts)
    assert len(groups) == max(1, min(parts, count))
    assert [w for group in groups for w in group] == windows
    sizes = [len(group) for group in groups]
    assert max(sizes) - min(sizes) <= 1
    assert min(sizes) >= 1


def _long_text() -> str:
    snippets = "".join(snippet for snippet, _, _ in ENTITIES)
    return (FILLER * 9 + snippets) * 4


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_when_a_text_is_analysed_in_parts_then_the_result_equals_analyze(
    windowed: Detector, parts: int
) -> None:
    text = _long_text()
    windows = windowed.window_spans(text)
    assert len(windows) > 3
    found = [c for group in split_windows(windows, parts) for c in windowed.candidates(text, group)]
    assert windowed.finish(text, found, tenant="acme") == windowed.analyze(text, tenant="acme")
    assert windowed.finish(text, found) == windowed.analyze(text)


def _disguised(text: str) -> str:
    """``text`` as an evader writes it: zero-width spaces between characters, no-break spaces
    for spaces, and a ligature: the normalised view is shorter than the text, with other
    windows, and its offsets are not the text's."""
    return "".join(
        "\u00a0" if char == " " else char + "\u200b" if index % 3 == 0 else char
        for index, char in enumerate(text.replace("fi", "\ufb01"))
    )


@pytest.mark.parametrize("parts", [1, 3])
def test_when_a_disguised_text_is_analysed_in_parts_then_the_result_equals_analyze(
    windowed: Detector, detector: Detector, parts: int
) -> None:
    text = _disguised(_long_text())
    windows = windowed.window_spans(text)
    assert len(windows) > 3
    assert windows[-1][1] < len(text)  # the windows are the view's
    found = [c for group in split_windows(windows, parts) for c in windowed.candidates(text, group)]
    entities = windowed.finish(text, found, tenant="acme")
    assert entities == windowed.analyze(text, tenant="acme")
    # and the windowed analysis covers what the whole one finds
    covered = {i for e in entities for i in range(e.start, e.end)}
    for entity in detector.analyze(text, tenant="acme"):
        assert all(i in covered for i in range(entity.start, entity.end) if text[i] != "\u200b")


def test_when_windows_lie_outside_the_text_then_candidates_are_refused(windowed: Detector) -> None:
    with pytest.raises(InvalidInputError, match="windows must lie inside the text"):
        windowed.candidates("short text", [(0, 500)])
