"""Dynamic batching in the analysis pool: a real worker process, the real model, order not clock.

The pool here has one worker. A test takes that worker out of service (``held``: idle, model
loaded, handed back when the block ends), queues requests behind it one by one until the pool
reports each waiting, and hands the worker back: the request at the head of the queue then
leads a batch, exactly as when requests pile up behind busy workers. What happens while a batch
is in the worker is paced by the leader's own ``meanwhile`` task, which runs after the job is
sent and before its reply is read: a test holds it there to act on a batch in flight.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING

import hypothesis
import pytest
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from guard.api.metrics import Metrics
from guard.detection.executor import (
    AnalysisCancelledError,
    AnalysisExecutor,
    cancel_when,
    meanwhile,
)
from guard.errors import InputTooLargeError
from tests.fixtures.analysis import HANG_GUARD_SECONDS, PROSE, settled, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from guard.config import Settings
    from guard.detection.engine import Detector
    from guard.detection.entities import DetectedEntity

    Request = tuple[str | None, list[str]]
    Results = list[list[DetectedEntity]]

#: The worker of this module refuses texts over this many bytes (the default is 1,000,000).
REFUSED_BYTES = 8_000
#: 2,500 four-byte characters: short enough to be batched (<= 4,000 characters), too many
#: bytes for the worker, which refuses it with InputTooLargeError.
REFUSED_TEXT = "\U0001f600" * 2_500
#: Over the per-text limit of batching (4,000 characters), under the worker's byte limit.
LONG_TEXT = (PROSE * 40)[:4_500]
#: Long enough never to end a queued request's wait, whatever the machine's load.
BUDGET_SECONDS = 120.0

SHORT = [
    "Call Ann Smith at ann.smith@example.org or +1 415 555 0100 before Friday.",
    "My card is 4111 1111 1111 1111 and I live at 12 Elm Street, Springfield.",
    "Joseph Banter is a Gold member of AcmeCorp since 2019, write to support@acme.example.",
    "nothing personal here, the parcel was shipped on time",
    "Maria Garcia from Boston asked about Project Falcon and order 5512.",
    "Hi, this is Li Wei, my account is 88213344 and my zip is 94105.",
    "Olu Adebayo (olu@example.net) wants the refund on his Silver plan today.",
]


@pytest.fixture(scope="module")
def pool(settings: Settings) -> Iterator[AnalysisExecutor]:
    """One worker that refuses texts over ``REFUSED_BYTES``, batching on with its defaults."""
    strict = settings.model_copy(update={"max_text_bytes": REFUSED_BYTES})
    executor = AnalysisExecutor(strict, workers=1, queue=64, timeout_seconds=BUDGET_SECONDS)
    try:
        yield executor
    finally:
        executor.close()


# ------------------------------------------------------------------------------ helpers


@contextlib.contextmanager
def held(pool: AnalysisExecutor) -> Iterator[None]:
    """The pool's only worker out of service (idle, model loaded) until the block ends."""
    wait_until(settled(pool), "the pool is idle")
    (worker,) = pool._take_idle(None, 1)
    try:
        yield
    finally:
        pool._release(worker)  # to the head of the queue, which leads


def queued(pool: AnalysisExecutor, count: int) -> bool:
    """Exactly ``count`` requests wait in the pool's queue."""
    return pool.status().queued == count


def queue_in_turn(
    pool: AnalysisExecutor, threads: ThreadPoolExecutor, calls: list[Callable[[], Results]]
) -> list[Future[Results]]:
    """Start each call in its own thread once the one before waits in the queue."""
    futures: list[Future[Results]] = []
    for call in calls:
        futures.append(threads.submit(call))
        wait_until(partial(queued, pool, len(futures)), "the request waits in the queue")
    return futures


def request_call(
    pool: AnalysisExecutor,
    texts: list[str],
    tenant: str | None,
    *,
    gone: threading.Event | None = None,
    pause: Callable[[], None] | None = None,
) -> Callable[[], Results]:
    """One request as the API makes it: its texts, its tenant, maybe a client that leaves."""

    def run() -> Results:
        with contextlib.ExitStack() as stack:
            if gone is not None:
                stack.enter_context(cancel_when(gone))
            if pause is not None:
                stack.enter_context(meanwhile(pause))
            return pool.analyze_batch(texts, tenant=tenant)

    return run


def run_queued(pool: AnalysisExecutor, requests: list[Request]) -> list[Results]:
    """Queue the requests behind the held worker, hand it back, and collect every result."""
    with ThreadPoolExecutor(max_workers=len(requests)) as threads:
        with held(pool):
            futures = queue_in_turn(
                pool, threads, [request_call(pool, texts, tenant) for tenant, texts in requests]
            )
        return [future.result(timeout=HANG_GUARD_SECONDS) for future in futures]


def expected_counts(requests: list[Request]) -> tuple[int, int, int]:
    """Batches, batched requests and batched texts when all queue before one worker frees.

    The head of the queue leads and takes every later request of its tenant (nothing here
    reaches the limits); a tenant with one request runs alone.
    """
    by_tenant: Counter[str | None] = Counter(tenant for tenant, _ in requests)
    shared = [(tenant, texts) for tenant, texts in requests if by_tenant[tenant] > 1]
    return (
        sum(1 for count in by_tenant.values() if count > 1),
        len(shared),
        sum(len(texts) for _, texts in shared),
    )


class Pause:
    """A leader's ``meanwhile`` task that holds its batch's reply unread until released."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.gate = threading.Event()

    def __call__(self) -> None:
        self.reached.set()
        self.gate.wait(HANG_GUARD_SECONDS)

    def wait_reached(self) -> None:
        if not self.reached.wait(HANG_GUARD_SECONDS):
            pytest.fail("the leader never sent its batch")


# ------------------------------------------------------------------------------ results


def _distinct(requests: list[Request]) -> list[Request]:
    """Each text made distinct by a prefix of its own length: a mix-up shifts every offset."""
    distinct: list[Request] = []
    number = 0
    for tenant, texts in requests:
        own = []
        for text in texts:
            number += 1
            own.append(f"Re{'.' * number} {text}")
        distinct.append((tenant, own))
    return distinct


REQUESTS = st.lists(
    st.tuples(
        st.sampled_from(["acme", "globex", None]),
        st.lists(st.sampled_from(SHORT), min_size=1, max_size=3),
    ),
    min_size=2,
    max_size=8,
).map(_distinct)


@hypothesis.settings(max_examples=20, deadline=None)
@hypothesis.given(REQUESTS)
def test_when_requests_queue_together_then_each_gets_exactly_its_own_results(
    pool: AnalysisExecutor, detector: Detector, requests: list[Request]
) -> None:
    before = pool.status()
    results = run_queued(pool, requests)
    for (tenant, texts), found in zip(requests, results, strict=True):
        assert found == list(detector.analyze_batch(texts, tenant=tenant))
    after = pool.status()
    batches, batched_requests, batched_texts = expected_counts(requests)
    assert after.batches - before.batches == batches
    assert after.batched_requests - before.batched_requests == batched_requests
    assert after.batched_texts - before.batched_texts == batched_texts
    assert after.batch_failures == before.batch_failures


def test_when_tenants_and_a_long_text_queue_then_only_same_tenant_short_jobs_share_a_job(
    pool: AnalysisExecutor, detector: Detector
) -> None:
    requests: list[Request] = [
        ("acme", [SHORT[2]]),  # leads: takes the other short acme jobs
        ("globex", [SHORT[2]]),  # the same text: acme's allow-list must not reach it
        ("acme", [LONG_TEXT]),  # over the per-text limit: alone
        ("acme", [SHORT[4], SHORT[6]]),
        (None, [SHORT[0]]),
        ("globex", [SHORT[1]]),
        ("acme", [SHORT[0]]),
    ]
    before = pool.status()
    results = run_queued(pool, requests)
    for (tenant, texts), found in zip(requests, results, strict=True):
        assert found == list(detector.analyze_batch(texts, tenant=tenant))
    # the tenant's lists made a difference: a cross-tenant batch could not have passed
    assert results[0] != results[1]
    after = pool.status()
    # acme: 3 requests, 4 texts; globex: 2 requests, 2 texts; the long text and None alone
    assert after.batches - before.batches == 2
    assert after.batched_requests - before.batched_requests == 5
    assert after.batched_texts - before.batched_texts == 6


def test_when_a_request_finds_a_worker_free_then_it_runs_alone(
    pool: AnalysisExecutor, detector: Detector
) -> None:
    wait_until(settled(pool), "the pool is idle")
    before = pool.status()
    assert pool.analyze_batch(SHORT[:3], tenant="acme") == list(
        detector.analyze_batch(SHORT[:3], tenant="acme")
    )
    after = pool.status()
    assert (after.batches, after.batched_requests) == (before.batches, before.batched_requests)


def test_when_batches_reach_their_limits_then_the_rest_waits_for_the_next_job(
    pool: AnalysisExecutor, detector: Detector
) -> None:
    requests: list[Request] = [("acme", [text]) for text in SHORT[:5]]
    limits = (pool.batch_max_texts, pool.batch_max_chars)
    try:
        pool.batch_max_texts = 3  # 3 requests, then 2
        before = pool.status()
        results = run_queued(pool, requests)
        after = pool.status()
        assert (after.batches - before.batches, after.batched_texts - before.batched_texts) == (
            2,
            5,
        )
        pool.batch_max_texts = limits[0]
        pool.batch_max_chars = len(SHORT[0]) + len(SHORT[1])  # two of these texts per job
        before = pool.status()
        again = run_queued(pool, requests[:4])
        after = pool.status()
        assert (after.batches - before.batches, after.batched_texts - before.batched_texts) == (
            2,
            4,
        )
    finally:
        pool.batch_max_texts, pool.batch_max_chars = limits
    for (tenant, texts), found in zip(requests + requests[:4], results + again, strict=True):
        assert found == list(detector.analyze_batch(texts, tenant=tenant))


def test_when_batching_is_off_then_every_request_runs_alone(
    pool: AnalysisExecutor, detector: Detector
) -> None:
    requests: list[Request] = [("acme", [text]) for text in SHORT[:3]]
    try:
        pool.batching = False
        before = pool.status()
        results = run_queued(pool, requests)
    finally:
        pool.batching = True
    assert pool.status().batches == before.batches
    for (tenant, texts), found in zip(requests, results, strict=True):
        assert found == list(detector.analyze_batch(texts, tenant=tenant))


# ------------------------------------------------------------------------------ failures


def test_when_the_worker_refuses_a_text_of_a_batch_then_only_its_request_fails(
    pool: AnalysisExecutor, detector: Detector
) -> None:
    requests: list[Request] = [
        ("acme", [SHORT[0]]),
        ("acme", [SHORT[1], REFUSED_TEXT]),
        ("acme", [SHORT[2], SHORT[3]]),
        ("acme", [SHORT[4]]),
    ]
    before = pool.status()
    with ThreadPoolExecutor(max_workers=len(requests)) as threads:
        with held(pool):
            futures = queue_in_turn(
                pool, threads, [request_call(pool, texts, tenant) for tenant, texts in requests]
            )
        with pytest.raises(InputTooLargeError) as refused:
            futures[1].result(timeout=HANG_GUARD_SECONDS)
        for index in (0, 2, 3):
            tenant, texts = requests[index]
            assert futures[index].result(timeout=HANG_GUARD_SECONDS) == list(
                detector.analyze_batch(texts, tenant=tenant)
            )
    assert "\U0001f600" not in refused.value.message
    after = pool.status()
    assert after.batches == before.batches + 1
    assert after.batch_failures == before.batch_failures + 1
    assert after.batch_retries == before.batch_retries + 4  # every member, on its own
    # the worker answered with an error: it was not stopped
    assert after.pids == before.pids
    assert after.worker_restarts == before.worker_restarts


def test_when_a_batch_runs_out_of_budget_then_each_member_runs_again_alone(
    pool: AnalysisExecutor, detector: Detector
) -> None:
    requests: list[Request] = [("acme", [SHORT[0]]), ("acme", [SHORT[1]]), ("globex", [SHORT[2]])]
    pause = Pause()
    calls = [request_call(pool, requests[0][1], "acme", pause=pause)]
    calls += [request_call(pool, texts, tenant) for tenant, texts in requests[1:]]
    before = pool.status()
    with ThreadPoolExecutor(max_workers=len(calls)) as threads:
        with held(pool):
            futures = queue_in_turn(pool, threads, calls)
            pool.timeout_seconds = 0.5  # the batch's budget, counted from when it is sent
        try:
            pause.wait_reached()
        finally:
            pool.timeout_seconds = BUDGET_SECONDS  # the re-runs get the usual budget
        time.sleep(0.6)  # ordering, not measuring: the batch's budget is spent
        pause.gate.set()
        for future, (tenant, texts) in zip(futures, requests, strict=True):
            assert future.result(timeout=HANG_GUARD_SECONDS) == list(
                detector.analyze_batch(texts, tenant=tenant)
            )
    wait_until(settled(pool), "a replacement worker is ready")
    after = pool.status()
    assert after.over_budget == before.over_budget + 1
    assert after.batch_failures == before.batch_failures + 1
    assert after.batch_retries == before.batch_retries + 2  # globex's request was not in it
    assert after.worker_restarts == before.worker_restarts + 1
    assert not set(after.pids) & set(before.pids)


# ------------------------------------------------------------------------------ cancellation


def test_when_a_member_leaves_its_batch_then_the_rest_get_their_results(
    pool: AnalysisExecutor, detector: Detector
) -> None:
    pause = Pause()
    gone = threading.Event()
    calls = [
        request_call(pool, [SHORT[0]], "acme", pause=pause),
        request_call(pool, [SHORT[1]], "acme", gone=gone),
        request_call(pool, [SHORT[2], SHORT[3]], "acme"),
    ]
    before = pool.status()
    with ThreadPoolExecutor(max_workers=len(calls)) as threads:
        with held(pool):
            leader, leaving, staying = queue_in_turn(pool, threads, calls)
        pause.wait_reached()  # the batch is in the worker; its reply is not read yet
        assert pool.status().batched_requests == before.batched_requests + 3
        gone.set()
        with pytest.raises(AnalysisCancelledError):
            leaving.result(timeout=HANG_GUARD_SECONDS)
        # it left at once, while the others still wait for the batch
        assert not leader.done()
        assert not staying.done()
        pause.gate.set()
        assert leader.result(timeout=HANG_GUARD_SECONDS) == [
            detector.analyze(SHORT[0], tenant="acme")
        ]
        assert staying.result(timeout=HANG_GUARD_SECONDS) == list(
            detector.analyze_batch([SHORT[2], SHORT[3]], tenant="acme")
        )
    after = pool.status()
    assert after.cancelled == before.cancelled + 1
    # the worker was not stopped for the one that left
    assert after.pids == before.pids
    assert after.worker_restarts == before.worker_restarts
    assert after.batch_failures == before.batch_failures


def test_when_every_member_leaves_then_the_batch_is_stopped(pool: AnalysisExecutor) -> None:
    pause = Pause()
    leaving = [threading.Event() for _ in range(3)]
    calls = [request_call(pool, [SHORT[0]], "acme", gone=leaving[0], pause=pause)]
    calls += [
        request_call(pool, [text], "acme", gone=gone)
        for text, gone in zip(SHORT[1:3], leaving[1:], strict=True)
    ]
    before = pool.status()
    with ThreadPoolExecutor(max_workers=len(calls)) as threads:
        with held(pool):
            futures = queue_in_turn(pool, threads, calls)
        pause.wait_reached()
        for gone, future in zip(leaving[1:], futures[1:], strict=True):
            gone.set()
            with pytest.raises(AnalysisCancelledError):
                future.result(timeout=HANG_GUARD_SECONDS)
        assert not futures[0].done()  # one client is still there: the batch goes on
        leaving[0].set()
        pause.gate.set()
        with pytest.raises(AnalysisCancelledError):
            futures[0].result(timeout=HANG_GUARD_SECONDS)
    wait_until(settled(pool), "a replacement worker is ready")
    after = pool.status()
    assert after.cancelled == before.cancelled + 3  # each request, once
    assert after.worker_restarts == before.worker_restarts + 1
    assert not set(after.pids) & set(before.pids)
    assert after.batch_retries == before.batch_retries


# ------------------------------------------------------------------------------ metrics


def test_metrics_show_the_batching_counters(pool: AnalysisExecutor) -> None:
    run_queued(pool, [("acme", [SHORT[0]]), ("acme", [SHORT[1]])])
    metrics = Metrics()
    metrics.watch_analysis(pool)
    status = pool.status()
    assert status.batches >= 1
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }
    assert samples["guard_analysis_batches_total"] == status.batches
    assert samples["guard_analysis_batched_requests_total"] == status.batched_requests
    assert samples["guard_analysis_batched_texts_total"] == status.batched_texts
    assert samples["guard_analysis_batch_failures_total"] == status.batch_failures
    assert samples["guard_analysis_batch_retries_total"] == status.batch_retries
