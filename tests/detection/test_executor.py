"""The analysis pool: real worker processes, a real slow text, checks by order, not by clock.

A text "takes longer than the budget" here because it is 900 KB of chat prose: spaCy alone
needs seconds for it, whatever the recognizers do, while the tight pool's budget is 1 s.

A long text alone is split between the idle workers; a batch of texts is one job in one
worker. Tests of what happens to "the" worker of a request therefore send the slow text in a
batch (``slow_batch``); the tests of split texts are at the end.
"""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

from guard.detection.executor import (
    AnalysisCancelledError,
    AnalysisExecutor,
    AnalysisStatus,
    InProcessAnalysis,
    cancel_when,
    meanwhile,
)
from guard.detection.windows import window_bounds
from guard.errors import (
    AnalysisBudgetError,
    DetectionFailedError,
    GuardError,
    InputTooLargeError,
    InvalidInputError,
    ModelNotAvailableError,
    ServiceBusyError,
)
from tests.fixtures.analysis import PROSE, SLOW_TEXT, settled, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from guard.config import Settings
    from guard.detection.engine import Detector

TEXTS = [
    "Call Ann Smith at ann.smith@example.org or +1 415 555 0100 before Friday.",
    "My card is 4111 1111 1111 1111 and I live at 12 Elm Street, Springfield.",
    "nothing personal here",
]
#: The slow text as a batch: one job, one worker, however many are idle.
SLOW_BATCH = [SLOW_TEXT, "nothing personal here"]


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def tight(settings: Settings) -> Iterator[AnalysisExecutor]:
    """One worker, no queue, a one-second budget."""
    pool = AnalysisExecutor(settings, workers=1, queue=0, timeout_seconds=1.0)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def threads() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as executor:
        yield executor


def _in_background(threads: ThreadPoolExecutor, run: Callable[[], object]) -> Future[object]:
    return threads.submit(run)


# ------------------------------------------------------------------------------ results


def test_when_texts_are_analysed_in_a_worker_then_results_equal_the_detectors(
    analysis: AnalysisExecutor, detector: Detector
) -> None:
    expected = list(detector.analyze_batch(TEXTS, tenant="acme"))
    assert analysis.analyze_batch(TEXTS, tenant="acme") == expected
    assert analysis.analyze(TEXTS[0], tenant="acme") == expected[0]
    assert expected[0], "the sample must contain PII for the comparison to mean anything"
    assert analysis.analyze_batch([], tenant="acme") == []


def test_when_analysed_in_process_then_results_equal_the_detectors(detector: Detector) -> None:
    in_process = InProcessAnalysis(detector)
    assert in_process.analyze_batch(TEXTS, tenant="acme") == list(
        detector.analyze_batch(TEXTS, tenant="acme")
    )
    status = in_process.status()
    assert (status.mode, status.ready, status.busy, status.model_loaded) == (
        "in-process",
        1,
        0,
        True,
    )
    gone = threading.Event()
    gone.set()
    with cancel_when(gone), pytest.raises(AnalysisCancelledError):
        in_process.analyze(TEXTS[0])


def test_when_the_caller_has_work_meanwhile_then_it_runs_once_while_the_worker_analyses(
    analysis: AnalysisExecutor, detector: Detector
) -> None:
    seen: list[int] = []
    with meanwhile(lambda: seen.append(analysis.status().busy)):
        found = analysis.analyze(TEXTS[0], tenant="acme")
    assert found == detector.analyze(TEXTS[0], tenant="acme")
    assert len(seen) == 1
    assert seen[0] >= 1, "the task ran while the text was in a worker"
    # outside the block nothing is left to run
    assert analysis.analyze(TEXTS[0], tenant="acme") == found
    assert len(seen) == 1


def test_when_the_meanwhile_task_fails_then_the_analysis_still_answers(
    analysis: AnalysisExecutor, detector: Detector
) -> None:
    def broken() -> None:
        raise RuntimeError("a secret value must not reach the log")

    with capture_logs() as logs, meanwhile(broken):
        found = analysis.analyze(TEXTS[0], tenant="acme")
    assert found == detector.analyze(TEXTS[0], tenant="acme")
    (event,) = [e for e in logs if e["event"] == "analysis.meanwhile_failed"]
    assert event["error"] == "RuntimeError"
    assert "secret" not in str(logs)


def test_when_analysed_in_process_then_the_meanwhile_task_is_left_to_the_caller(
    detector: Detector,
) -> None:
    seen: list[str] = []
    with meanwhile(lambda: seen.append("ran")):
        InProcessAnalysis(detector).analyze(TEXTS[0], tenant="acme")
    assert seen == []


# ------------------------------------------------------------------------------ errors


def test_when_the_worker_raises_a_guard_error_then_the_caller_gets_the_same_type_and_message(
    analysis: AnalysisExecutor, detector: Detector
) -> None:
    cases: list[list[object]] = [[12345], ["x" * 1_000_001]]
    for texts in cases:
        with pytest.raises(GuardError) as in_process:
            list(detector.analyze_batch(texts))  # type: ignore[arg-type] # bad input on purpose
        with pytest.raises(GuardError) as crossed:
            analysis.analyze_batch(texts)  # type: ignore[arg-type]
        assert type(crossed.value) is type(in_process.value)
        assert crossed.value.message == in_process.value.message
        assert crossed.value.status_code == in_process.value.status_code
    assert isinstance(crossed.value, InputTooLargeError)
    with pytest.raises(InvalidInputError, match="text must be a string, not int"):
        analysis.analyze_batch([12345])  # type: ignore[list-item]


def test_when_the_worker_hits_an_unexpected_exception_then_only_its_type_crosses(
    analysis: AnalysisExecutor,
) -> None:
    text = "Ann Smith, ann.smith@example.org"
    # an unhashable tenant breaks the detector's tenant lookup with a TypeError
    with pytest.raises(DetectionFailedError) as failed:
        analysis.analyze(text, tenant=["acme"])  # type: ignore[arg-type]
    assert "TypeError" in failed.value.message
    assert "Ann" not in str(failed.value)
    assert "example.org" not in str(failed.value)
    assert failed.value.__cause__ is None
    assert failed.value.__context__ is None
    # the worker survived its own exception and serves the next request
    assert analysis.analyze(text, tenant="acme")


def test_when_the_model_is_missing_then_the_pool_fails_to_start_with_the_same_error(
    settings: Settings, tmp_path: Path
) -> None:
    missing = settings.model_copy(update={"nlp_model": str(tmp_path / "no-such-model")})
    with pytest.raises(ModelNotAvailableError):
        AnalysisExecutor(missing, workers=1)


# ------------------------------------------------------------------------------ budget


def test_when_the_budget_runs_out_then_the_worker_is_replaced_and_the_next_request_succeeds(
    tight: AnalysisExecutor,
) -> None:
    wait_until(settled(tight), "the tight pool is idle")
    before = tight.status()
    with pytest.raises(AnalysisBudgetError) as over:
        tight.analyze(SLOW_TEXT)
    assert over.value.status_code == 422
    assert "Ann" not in over.value.message
    assert tight.status().over_budget == before.over_budget + 1
    wait_until(settled(tight), "a replacement worker is ready")
    after = tight.status()
    assert after.pids != before.pids
    assert process_gone(before.pids[0])
    assert after.worker_restarts == before.worker_restarts + 1
    assert tight.analyze(TEXTS[0])


def test_when_every_worker_is_busy_and_the_queue_is_full_then_a_request_is_refused_at_once(
    tight: AnalysisExecutor, threads: ThreadPoolExecutor
) -> None:
    wait_until(settled(tight), "the tight pool is idle")
    refused_before = tight.status().refused_busy
    slow = _in_background(threads, lambda: tight.analyze(SLOW_TEXT))
    wait_until(lambda: tight.status().busy == 1, "the slow text is being analysed")
    with pytest.raises(ServiceBusyError) as busy:
        tight.analyze(TEXTS[0])
    # refused while the slow one still runs: the refusal did not wait for a worker
    assert not slow.done()
    assert busy.value.status_code == 503
    assert busy.value.retry_after >= 1
    assert tight.status().refused_busy == refused_before + 1
    with pytest.raises(AnalysisBudgetError):
        slow.result()
    wait_until(settled(tight), "a replacement worker is ready")


# ------------------------------------------------------------------------------ deaths


def test_when_a_busy_worker_is_killed_from_outside_then_only_its_request_fails(
    analysis: AnalysisExecutor, threads: ThreadPoolExecutor
) -> None:
    wait_until(settled(analysis), "the shared pool is idle")
    before = analysis.status()
    slow = _in_background(threads, lambda: analysis.analyze_batch(SLOW_BATCH))
    wait_until(lambda: len(analysis.status().busy_pids) == 1, "the slow text is being analysed")
    victim = analysis.status().busy_pids[0]
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(ServiceBusyError) as died:
        slow.result()
    assert died.value.retry_after >= 1
    # the other worker serves at once, without waiting for the replacement to load
    assert analysis.analyze(TEXTS[0], tenant="acme")
    wait_until(settled(analysis), "a replacement worker is ready")
    after = analysis.status()
    assert victim not in after.pids
    assert after.worker_deaths == before.worker_deaths + 1
    assert after.worker_restarts == before.worker_restarts + 1
    assert analysis.analyze_batch(TEXTS, tenant="acme")


def test_when_an_idle_worker_is_killed_from_outside_then_it_is_replaced(
    analysis: AnalysisExecutor,
) -> None:
    wait_until(settled(analysis), "the shared pool is idle")
    before = analysis.status()
    victim = before.pids[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: process_gone(victim) or victim not in analysis.status().pids, "reaped")
    for _ in range(4):  # every worker takes a turn: none of them is the dead one
        assert analysis.analyze(TEXTS[0], tenant="acme")
    wait_until(settled(analysis), "a replacement worker is ready")
    after = analysis.status()
    assert victim not in after.pids
    assert after.worker_deaths == before.worker_deaths + 1


# ------------------------------------------------------------------------------ cancellation


def _cancellable(
    pool: AnalysisExecutor, texts: list[str], event: threading.Event
) -> Callable[[], object]:
    def run() -> object:
        with cancel_when(event):
            return pool.analyze_batch(texts)

    return run


def test_when_the_client_goes_away_during_analysis_then_the_worker_is_stopped(
    analysis: AnalysisExecutor, threads: ThreadPoolExecutor
) -> None:
    wait_until(settled(analysis), "the shared pool is idle")
    before = analysis.status()
    gone = threading.Event()
    slow = _in_background(threads, _cancellable(analysis, SLOW_BATCH, gone))
    wait_until(lambda: len(analysis.status().busy_pids) == 1, "the slow text is being analysed")
    victim = analysis.status().busy_pids[0]
    gone.set()
    with pytest.raises(AnalysisCancelledError) as cancelled:
        slow.result()
    assert cancelled.value.type_slug == "client-closed-request"
    wait_until(lambda: process_gone(victim), "the cancelled worker has ended")
    wait_until(settled(analysis), "a replacement worker is ready")
    after = analysis.status()
    assert after.cancelled == before.cancelled + 1
    assert after.over_budget == before.over_budget
    assert victim not in after.pids


def test_when_the_client_goes_away_while_queued_then_the_job_is_dropped(
    analysis: AnalysisExecutor, threads: ThreadPoolExecutor
) -> None:
    wait_until(settled(analysis), "the shared pool is idle")
    before = analysis.status()
    holders = [threading.Event() for _ in range(analysis.workers)]
    running = [
        _in_background(threads, _cancellable(analysis, SLOW_BATCH, event)) for event in holders
    ]
    wait_until(lambda: analysis.status().busy == analysis.workers, "every worker is busy")
    busy_pids = analysis.status().busy_pids
    gone = threading.Event()
    queued = _in_background(threads, _cancellable(analysis, [TEXTS[0]], gone))
    wait_until(lambda: analysis.status().queued == 1, "the request waits for a worker")
    gone.set()
    with pytest.raises(AnalysisCancelledError):
        queued.result()
    status = analysis.status()
    # dropped from the queue: no worker was stopped for it, both still run their texts
    assert status.queued == 0
    assert status.busy_pids == busy_pids
    assert status.cancelled == before.cancelled + 1
    for event in holders:
        event.set()
    for future in running:
        with pytest.raises(AnalysisCancelledError):
            future.result()
    wait_until(settled(analysis), "replacement workers are ready")


def test_status_reports_the_pool(analysis: AnalysisExecutor) -> None:
    wait_until(settled(analysis), "the shared pool is idle")
    status = analysis.status()
    assert isinstance(status, AnalysisStatus)
    assert (status.mode, status.workers, status.ready, status.model_loaded) == (
        "processes",
        2,
        2,
        True,
    )
    assert len(status.pids) == 2
    assert all(pid != os.getpid() for pid in status.pids)


# ------------------------------------------------------------------------------ one long text

#: Sentences in which guard finds nothing: the space between the entities of the long texts.
FILLER = (
    "The order was packed and shipped on time, and the tracking page shows the latest "
    "status of the parcel. "
)


def _with_entity_across_the_first_cut(settings: Settings) -> str:
    """About 90 KB of filler with a name that the first window's cut falls inside."""
    size = settings.analysis_window_chars
    intro = "My name is Joseph "
    room = size - 3 - len(intro)  # "Banter" starts 3 characters before the nominal edge
    prefix = (FILLER * (size // len(FILLER) + 1))[:room]
    prefix = prefix[: prefix.rfind(" ") + 1].ljust(room)
    text = prefix + intro + "Banter, write to joseph.banter@example.com. " + FILLER * 700
    cut = window_bounds(text, size=size, overlap=settings.analysis_window_overlap_chars)[0][1]
    name = text.index("Joseph Banter")
    assert name < cut < name + len("Joseph Banter")
    return text


def _long_texts(settings: Settings) -> list[str]:
    return [
        # chat prose: names, places, numbers in every window
        (PROSE * 600)[:90_000],
        _with_entity_across_the_first_cut(settings),
        # allow-listed values (acme's own name, its tier names) beside real PII
        (FILLER * 20 + "AcmeCorp Gold member Ann Smith, support@acme.example, 415-555-0100. ") * 40,
    ]


@pytest.fixture(scope="module")
def tight_pair(settings: Settings) -> Iterator[AnalysisExecutor]:
    """Two workers, no queue, a one-second budget: a long text is split between both."""
    pool = AnalysisExecutor(settings, workers=2, queue=0, timeout_seconds=1.0)
    try:
        yield pool
    finally:
        pool.close()


def test_when_a_long_text_goes_to_the_pool_then_each_worker_takes_a_part_and_results_match(
    analysis: AnalysisExecutor, detector: Detector, settings: Settings
) -> None:
    for text in _long_texts(settings):
        assert (
            len(
                window_bounds(
                    text,
                    size=settings.analysis_window_chars,
                    overlap=settings.analysis_window_overlap_chars,
                )
            )
            > 2
        )
        expected = detector.analyze(text, tenant="acme")
        assert expected, "the sample must contain PII for the comparison to mean anything"
        wait_until(settled(analysis), "the shared pool is idle")
        before = analysis.status()
        with capture_logs() as logs:
            found = analysis.analyze(text, tenant="acme")
        assert found == expected
        after = analysis.status()
        assert after.split_requests == before.split_requests + 1
        assert after.split_parts == before.split_parts + 2
        (split,) = [event for event in logs if event["event"] == "analysis.split"]
        assert sorted(split["pids"]) == list(after.pids)
        # no value of the text reaches the log line
        assert "Ann" not in str(split)
    # a batch of one text is that text: split too
    text = _long_texts(settings)[1]
    wait_until(settled(analysis), "the shared pool is idle")
    before = analysis.status()
    assert analysis.analyze_batch([text]) == [detector.analyze(text)]
    assert analysis.status().split_parts == before.split_parts + 2


def test_when_the_entity_across_the_cut_is_allow_listed_then_the_pool_drops_it_too(
    analysis: AnalysisExecutor, detector: Detector, settings: Settings
) -> None:
    # the tenant's allow-list holds "Acme Corp": here it is a name the first cut falls inside
    text = _with_entity_across_the_first_cut(settings).replace("Joseph Banter", "Acme Corp....")
    value = text.index("Acme Corp")
    wait_until(settled(analysis), "the shared pool is idle")
    before = analysis.status()
    found = analysis.analyze(text, tenant="acme")
    assert analysis.status().split_parts == before.split_parts + 2
    assert found == detector.analyze(text, tenant="acme")
    assert not any(e.start < value + len("Acme Corp") and value < e.end for e in found)
    # without the tenant's allow-list something is found there: the list did the dropping
    unlisted = analysis.analyze(text)
    assert unlisted == detector.analyze(text)
    assert any(e.start < value + len("Acme Corp") and value < e.end for e in unlisted)


def test_when_a_split_text_is_disguised_then_workers_cut_the_view_and_results_match(
    analysis: AnalysisExecutor, detector: Detector, settings: Settings
) -> None:
    # zero-width spaces after every character of prose: the text is cut into several windows
    # in the API process, its normalised view (a third as long) into fewer, or one, in the
    # workers; the parts beyond the view's windows find nothing, and the result is the same
    size = settings.analysis_window_chars
    for length in (size // 2, 2 * size):
        prose = (PROSE * (length // len(PROSE) + 1))[:length]
        text = "".join(char + "\u200b\u200b" for char in prose)
        expected = detector.analyze(text, tenant="acme")
        assert expected, "the sample must contain PII for the comparison to mean anything"
        wait_until(settled(analysis), "the shared pool is idle")
        before = analysis.status()
        assert analysis.analyze(text, tenant="acme") == expected
        assert analysis.status().split_parts == before.split_parts + 2


def test_when_a_short_text_or_a_batch_is_analysed_then_it_is_not_split(
    analysis: AnalysisExecutor, settings: Settings
) -> None:
    wait_until(settled(analysis), "the shared pool is idle")
    before = analysis.status()
    long_text = _long_texts(settings)[0]
    analysis.analyze(TEXTS[0])
    analysis.analyze_batch([long_text, TEXTS[0]])
    assert analysis.status().split_requests == before.split_requests


def test_when_a_split_text_runs_out_of_budget_then_every_worker_on_it_is_stopped(
    tight_pair: AnalysisExecutor,
) -> None:
    wait_until(settled(tight_pair), "the tight pair is idle")
    before = tight_pair.status()
    with pytest.raises(AnalysisBudgetError):
        tight_pair.analyze(SLOW_TEXT)
    after = tight_pair.status()
    assert after.over_budget == before.over_budget + 1  # one request, counted once
    for pid in before.pids:
        wait_until(partial(process_gone, pid), "a worker of the request has ended")
    wait_until(settled(tight_pair), "replacement workers are ready")
    after = tight_pair.status()
    assert not set(after.pids) & set(before.pids)
    assert after.worker_restarts == before.worker_restarts + 2
    assert tight_pair.analyze(TEXTS[0])


def test_when_the_client_leaves_a_split_text_then_every_worker_on_it_is_stopped(
    analysis: AnalysisExecutor, threads: ThreadPoolExecutor
) -> None:
    wait_until(settled(analysis), "the shared pool is idle")
    before = analysis.status()
    gone = threading.Event()
    slow = _in_background(threads, _cancellable(analysis, [SLOW_TEXT], gone))
    wait_until(lambda: len(analysis.status().busy_pids) == 2, "both workers analyse the text")
    gone.set()
    with pytest.raises(AnalysisCancelledError):
        slow.result()
    for pid in before.pids:
        wait_until(partial(process_gone, pid), "a worker of the request has ended")
    wait_until(settled(analysis), "replacement workers are ready")
    after = analysis.status()
    assert after.cancelled == before.cancelled + 1
    assert not set(after.pids) & set(before.pids)


def test_when_a_worker_of_a_split_text_dies_then_the_request_fails_and_its_partner_stops(
    analysis: AnalysisExecutor, threads: ThreadPoolExecutor
) -> None:
    wait_until(settled(analysis), "the shared pool is idle")
    before = analysis.status()
    slow = _in_background(threads, lambda: analysis.analyze(SLOW_TEXT))
    wait_until(lambda: len(analysis.status().busy_pids) == 2, "both workers analyse the text")
    os.kill(before.pids[0], signal.SIGKILL)
    with pytest.raises(ServiceBusyError):
        slow.result()
    wait_until(lambda: process_gone(before.pids[1]), "the partner has been stopped")
    wait_until(settled(analysis), "replacement workers are ready")
    after = analysis.status()
    assert after.worker_deaths == before.worker_deaths + 1
    assert not set(after.pids) & set(before.pids)
    assert analysis.analyze(TEXTS[0], tenant="acme")
