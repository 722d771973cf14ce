"""The detector as a whole: one label per region, tenant lists, batches, limits, no network."""

from __future__ import annotations

import itertools
import socket
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.detection.engine import Detector
from guard.detection.entities import Candidate, DetectedEntity, resolve_overlaps
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
    detector: Detector, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        attempts.append((args, kwargs))
        raise OSError("network is blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    fresh = Detector(settings=detector.settings, nlp=detector.nlp_engine.pipeline)
    text = "email me at someone@example.co.uk or visit https://example.org"
    kinds = {e.entity_type for e in fresh.analyze(text)}
    assert "EMAIL_ADDRESS" in kinds
    assert attempts == []


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
