"""Analysis off the request thread: worker processes with a cap, a time budget and cancellation.

Threat: one hostile text that takes minutes to analyse. Regex matching and spaCy hold the GIL,
so analysing in the API process would freeze every other request of that process, health
checks included. Here each analysis runs in a worker process (spawned, never forked: the API
process has threads), one job per worker at a time:

- a bounded queue in front of the workers: when every worker is busy and the queue is full a
  request is refused at once (``ServiceBusyError``, 503 with ``Retry-After``), so waiting
  threads and the memory of waiting bodies stay bounded; a queued request also waits at most
  one time budget;
- a time budget per request (waiting not counted): past it the worker is killed, a fresh one
  is started in the background, and the request fails with ``AnalysisBudgetError``; the text
  is never returned unanalysed;
- cancellation: when the HTTP client has gone (``guard.api.disconnect`` sets the event bound
  by :func:`cancel_when`), a queued job is dropped and a running one is stopped by killing its
  worker;
- a worker that dies on its own (crash, out of memory) fails only its request
  (``ServiceBusyError``) and is replaced.

One long text uses every idle worker: a text longer than one analysis window
(``GUARD_ANALYSIS_WINDOW_CHARS``) has its windows split into contiguous groups, one per idle
worker (at least one, never more groups than windows); each worker cuts the windows itself,
on the text's normalised view (``guard.detection.normalize``; the API process counts the
windows of the text as given, which the view's differ from only when normalisation removes or
expands characters), takes its group, and returns that group's raw findings; one of them then
applies the tenant's lists and resolves overlaps over the whole text, so the API process never
holds its GIL over the findings. The budget, cancellation and death rules hold for the
request as a whole: every worker still working on it is stopped. When no worker is idle, the
text queues as one job, as a batch of texts always does.

Requests that queue together are analysed together (dynamic batching, no timer): a request
that finds a worker idle and nobody waiting goes at once, alone, so a lone request is never
delayed. When every worker is busy, requests wait in the queue; the one that gets the next
free worker takes along the other queued requests of its tenant (tenants' allow- and
deny-lists differ) whose jobs may be batched, up to ``GUARD_ANALYSIS_BATCH_MAX_TEXTS`` texts
and ``GUARD_ANALYSIS_BATCH_MAX_CHARS`` characters, and sends their texts as one job: one
``nlp.pipe`` and one pass of the recognizers over all of them. Each request gets exactly its
own slice of the reply, its texts in its order. A job may be batched only if each of its texts
is at most ``GUARD_ANALYSIS_BATCH_TEXT_CHARS`` long: a long or hostile text always runs as its
own job and cannot hold up, or fail, anyone else's. Split texts are never batched.

- a batch that fails (an error from the worker, e.g. a text it refuses; a worker death; the
  time budget) is not anyone's answer: each of its requests is run again on its own, ahead of
  the queue (its queue limit does not apply: it was admitted once), so a failing text fails
  only its own request;
- the budget and cancellation hold per request: a member whose client has gone is dropped
  from its batch's reply (its thread ends at once); the worker is stopped only when every
  member's client has gone. The budget runs from when the batch is sent, for every member;
- ``GUARD_ANALYSIS_BATCHING=false`` sends every request's job alone.

Errors raised in a worker come back as the same GuardError type and message; any other
exception comes back as ``DetectionFailedError`` naming only its type: a message or a traceback
could quote the text.

``InProcessAnalysis`` is the same interface over a ``Detector`` in the calling thread
(``GUARD_ANALYSIS_WORKERS=0``, tests, embedding): no budget and no cap.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import threading
import time
from collections import deque
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from functools import partial
from multiprocessing.connection import wait as wait_for_any
from typing import TYPE_CHECKING, Any, Literal, Protocol

import structlog

from guard.detection.entities import DetectedEntity
from guard.detection.windows import split_windows, window_bounds
from guard.detection.worker import ErrorInfo, serve
from guard.errors import (
    AnalysisBudgetError,
    ConfigurationError,
    DetectionFailedError,
    GuardError,
    ServiceBusyError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from guard.config import Settings
    from guard.detection.engine import Detector

log = structlog.get_logger(__name__)

#: How often a waiting request looks at its cancellation event (seconds).
POLL_SECONDS = 0.05
#: What a refused client is told to wait before retrying (seconds).
RETRY_AFTER_SECONDS = 1
#: How long a starting worker may take to load the model before it counts as failed.
START_TIMEOUT_SECONDS = 300.0
#: How long a stopped worker gets to exit on SIGTERM before SIGKILL.
TERM_GRACE_SECONDS = 1.0
#: Pause between attempts to start a replacement worker that failed to start, doubling.
RESTART_BACKOFF_SECONDS = (1.0, 30.0)


class AnalysisCancelledError(GuardError):
    """The client closed its connection while its text waited or was analysed; work stopped.

    Nobody reads the response: the status (400, slug ``client-closed-request``, after nginx's
    499) is for guard's own metrics, logs and audit, where the request shows as ended by the
    client rather than as an error of guard's.
    """

    status_code = 400
    type_slug = "client-closed-request"


class Analyzer(Protocol):
    """What callers of detection need: ``Detector`` and the worker pool both provide it."""

    def analyze(self, text: str, *, tenant: str | None = None) -> list[DetectedEntity]:
        """Detect PII in one text."""
        ...

    def analyze_batch(
        self, texts: Sequence[str], *, tenant: str | None = None
    ) -> Iterable[list[DetectedEntity]]:
        """Detect PII in many texts, analysed together; results in input order."""
        ...


@dataclass(frozen=True)
class AnalysisStatus:
    """A snapshot of the analysis service, for readiness and metrics."""

    mode: Literal["processes", "in-process"]
    workers: int
    ready: int
    busy: int
    queued: int
    model_loaded: bool
    starting: int = 0
    pids: tuple[int, ...] = ()
    busy_pids: tuple[int, ...] = ()
    refused_busy: int = 0
    over_budget: int = 0
    cancelled: int = 0
    worker_deaths: int = 0
    worker_restarts: int = 0
    split_requests: int = 0
    split_parts: int = 0
    batches: int = 0
    batched_requests: int = 0
    batched_texts: int = 0
    batch_failures: int = 0
    batch_retries: int = 0


class AnalysisService(Analyzer, Protocol):
    """An analyzer the API owns: it reports its status and can be closed."""

    def status(self) -> AnalysisStatus:
        """Workers, load and counters now."""
        ...

    def close(self) -> None:
        """Stop the workers (if any); later calls fail."""
        ...


# ------------------------------------------------------------------------------ cancellation

_CANCEL: ContextVar[threading.Event | None] = ContextVar("guard_analysis_cancel", default=None)


@contextlib.contextmanager
def cancel_when(event: threading.Event) -> Iterator[None]:
    """Analyses started in this context (and threads that copy it) stop once ``event`` is set."""
    token = _CANCEL.set(event)
    try:
        yield
    finally:
        _CANCEL.reset(token)


_MEANWHILE: ContextVar[list[Callable[[], None]] | None] = ContextVar(
    "guard_analysis_meanwhile", default=None
)


@contextlib.contextmanager
def meanwhile(task: Callable[[], None]) -> Iterator[None]:
    """Run ``task`` in this thread while the next analysis started here runs in a worker.

    The pool sends the text to a worker, runs ``task``, then waits for the reply: the caller's
    own work (the message guard's database lookup) overlaps the NER instead of following it,
    in one thread (no second thread competing for the GIL). ``task`` runs at most once, and
    not at all when no job reaches a worker (in-process analysis, a refusal): callers check
    and run it themselves. It should not raise; if it does, the error is logged by type and
    the analysis goes on.
    """
    token = _MEANWHILE.set([task])
    try:
        yield
    finally:
        _MEANWHILE.reset(token)


def _run_meanwhile() -> None:
    pending = _MEANWHILE.get()
    if not pending:
        return
    task = pending.pop()
    try:
        task()
    except Exception as exc:  # noqa: BLE001 - the analysis must not fail for the caller's task
        log.warning("analysis.meanwhile_failed", error=type(exc).__name__)


def _cancelled(event: threading.Event | None) -> bool:
    return event is not None and event.is_set()


def _cancelled_error() -> AnalysisCancelledError:
    return AnalysisCancelledError("the client closed the connection; the analysis was stopped")


# ------------------------------------------------------------------------------ in-process


class InProcessAnalysis:
    """Analysis in the calling thread with a ``Detector``: no time budget, no cap."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self._lock = threading.Lock()
        self._running = 0

    def analyze(self, text: str, *, tenant: str | None = None) -> list[DetectedEntity]:
        """Detect PII in one text."""
        return self.analyze_batch([text], tenant=tenant)[0]

    def analyze_batch(
        self, texts: Sequence[str], *, tenant: str | None = None
    ) -> list[list[DetectedEntity]]:
        """Detect PII in many texts, unless the client has already gone."""
        if _cancelled(_CANCEL.get()):
            raise _cancelled_error()
        with self._lock:
            self._running += 1
        try:
            return list(self.detector.analyze_batch(texts, tenant=tenant))
        finally:
            with self._lock:
                self._running -= 1

    def status(self) -> AnalysisStatus:
        """The model is loaded in this process; ``busy`` counts analyses running now."""
        pipeline = self.detector.nlp_engine.pipeline
        return AnalysisStatus(
            mode="in-process",
            workers=0,
            ready=1,
            busy=self._running,
            queued=0,
            model_loaded="ner" in pipeline.pipe_names,
        )

    def close(self) -> None:
        """Nothing to stop."""


# ------------------------------------------------------------------------------ processes


class _WorkerStoppedError(Exception):
    """The worker process ended (crash, out of memory, killed from outside) during a job."""

    def __init__(self, worker: _Worker) -> None:
        super().__init__()
        self.worker = worker


class _OverBudgetError(Exception):
    """The job ran past the time budget."""


class _CancelledWhileRunningError(Exception):
    """The client went away while the job ran."""


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    conn: Connection
    pid: int
    model_loaded: bool = False


#: Where a request's job is: ``queued`` for a worker; ``leading`` once handed one (its thread
#: sends the job, maybe with others'); ``riding`` in another request's batch; ``done`` with
#: its share of the batch's reply; ``withdrawn`` from a batch by its own thread (client gone);
#: ``refused`` by ``close()``.
_State = Literal["new", "queued", "leading", "riding", "done", "withdrawn", "refused"]

#: A worker's reply to an ``analyze`` job, or one request's slice of it: ``("ok", entities)``.
_Reply = tuple[Any, ...]


@dataclass(eq=False)
class _Request:
    """One request's plain job on its way through the pool.

    ``state``, ``worker``, ``reply``, ``batchable`` and ``deadline`` change only under the
    pool's lock, and whoever changes them sets ``event``: the request's thread then looks.
    """

    texts: list[str]
    tenant: str | None
    cancel: threading.Event | None
    #: may ride in another request's batch, or lead one (see ``AnalysisExecutor._batch_chars``)
    batchable: bool
    chars: int = 0
    event: threading.Event = field(default_factory=threading.Event)
    state: _State = "new"
    worker: _Worker | None = None
    reply: _Reply | None = None
    #: the latest moment it may still wait in the queue
    deadline: float = 0.0


@dataclass
class _Counters:
    refused_busy: int = 0
    over_budget: int = 0
    cancelled: int = 0
    worker_deaths: int = 0
    worker_restarts: int = 0
    split_requests: int = 0
    split_parts: int = 0
    #: jobs that carried the texts of two requests or more, those requests, their texts
    batches: int = 0
    batched_requests: int = 0
    batched_texts: int = 0
    #: batches that failed, and the requests then run again on their own
    batch_failures: int = 0
    batch_retries: int = 0


class AnalysisExecutor:
    """A pool of analysis worker processes; use it wherever a ``Detector`` was used.

    Build it once per API process (starting blocks until every worker has loaded the model, so
    a missing model is a start-up error), share it across threads, ``close()`` it at shutdown.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        workers: int | None = None,
        queue: int | None = None,
        timeout_seconds: float | None = None,
    ) -> None:
        self.settings = settings
        self.workers = settings.analysis_workers if workers is None else workers
        if self.workers < 1:
            raise ConfigurationError(
                "the analysis pool needs at least one worker (GUARD_ANALYSIS_WORKERS); "
                "use in-process analysis for 0"
            )
        self.queue_limit = settings.analysis_queue_size if queue is None else queue
        self.timeout_seconds = (
            settings.analysis_timeout_seconds if timeout_seconds is None else timeout_seconds
        )
        self.batching = settings.analysis_batching
        self.batch_max_texts = settings.analysis_batch_max_texts
        self.batch_max_chars = settings.analysis_batch_max_chars
        self.batch_text_chars = settings.analysis_batch_text_chars
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._live: list[_Worker] = []  # started and ready: idle or busy
        self._idle: list[_Worker] = []
        self._busy = 0
        self._starting = 0
        self._waiters: deque[_Request] = deque()
        self._counters = _Counters()
        self._closed = False
        self._replacers: set[threading.Thread] = set()
        started = [self._spawn() for _ in range(self.workers)]
        try:
            for worker in started:
                self._await_ready(worker)
        except BaseException:
            for worker in started:
                _stop(worker)
            raise
        self._live.extend(started)
        self._idle.extend(started)
        log.info(
            "analysis.pool_ready",
            workers=self.workers,
            queue=self.queue_limit,
            timeout_seconds=self.timeout_seconds,
            batching=self.batching,
        )

    # --- the Analyzer interface ---------------------------------------------------------

    def analyze(self, text: str, *, tenant: str | None = None) -> list[DetectedEntity]:
        """Detect PII in one text, in a worker process (a long one in every idle worker)."""
        windows = self._windows(text)
        if windows is None:
            return self._submit([text], tenant)[0]
        return self._submit_split(text, tenant, windows)

    def analyze_batch(
        self, texts: Sequence[str], *, tenant: str | None = None
    ) -> list[list[DetectedEntity]]:
        """Detect PII in a request's texts: one job, analysed together in one worker.

        A batch of one text is that text alone: a long one is split between idle workers.
        """
        texts = list(texts)
        if not texts:
            return []
        if len(texts) == 1:
            return [self.analyze(texts[0], tenant=tenant)]
        return self._submit(texts, tenant)

    def status(self) -> AnalysisStatus:
        """Workers ready, busy and queued, and the counters since start."""
        self._reap_idle()
        with self._lock:
            counters = self._counters  # its fields are AnalysisStatus's counters
            return AnalysisStatus(
                mode="processes",
                workers=self.workers,
                ready=len(self._live),
                busy=self._busy,
                queued=len(self._waiters),
                model_loaded=bool(self._live) and all(w.model_loaded for w in self._live),
                starting=self._starting,
                pids=tuple(sorted(w.pid for w in self._live)),
                busy_pids=tuple(sorted(w.pid for w in self._live if w not in self._idle)),
                **asdict(counters),
            )

    def close(self) -> None:
        """Stop every worker; waiting requests are refused, running ones fail."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle = list(self._idle)
            busy = [w for w in self._live if w not in idle]
            self._live.clear()
            self._idle.clear()
            waiters = list(self._waiters)
            self._waiters.clear()
            replacers = list(self._replacers)
            for waiter in waiters:
                waiter.state = "refused"
                waiter.event.set()
        for worker in idle:
            _stop(worker)
        for worker in busy:
            # its request's thread owns the pipe: it sees the worker end and cleans up
            with contextlib.suppress(OSError, ValueError):
                worker.process.terminate()
        for thread in replacers:
            thread.join(timeout=START_TIMEOUT_SECONDS)
        log.info("analysis.pool_closed", workers=len(idle) + len(busy))

    # --- one job: the only place work is submitted ----------------------------------------

    def _submit(self, texts: list[str], tenant: str | None) -> list[list[DetectedEntity]]:
        """A request's plain job: its own turn on a worker, or a ride in another's batch."""
        chars = self._batch_chars(texts, tenant)
        request = _Request(
            texts=texts,
            tenant=tenant,
            cancel=_CANCEL.get(),
            batchable=chars is not None,
            chars=chars or 0,
        )
        return self._serve(request)

    def _batch_chars(self, texts: Sequence[object], tenant: object) -> int | None:
        """The characters of a job that may be batched; None for a job that must run alone.

        Alone: batching off, too many texts or characters for any batch, a text over the
        per-text limit (a long or hostile text never shares a job), or anything but strings
        (the worker reports that request's error; it must not fail a batch first).
        """
        if not self.batching or not (tenant is None or isinstance(tenant, str)):
            return None
        if len(texts) > self.batch_max_texts:
            return None
        chars = 0
        for text in texts:
            if not isinstance(text, str) or len(text) > self.batch_text_chars:
                return None
            chars += len(text)
        return chars if chars <= self.batch_max_chars else None

    def _serve(self, request: _Request, *, first: bool = False) -> list[list[DetectedEntity]]:
        """Wait for the request's turn (bounded); lead its job, or take its share of a batch."""
        turn = self._acquire(request, first=first)
        if isinstance(turn, _Worker):
            return self._lead(turn, request)
        return _decode(turn)

    def _lead(self, worker: _Worker, request: _Request) -> list[list[DetectedEntity]]:
        """Run the request's job on ``worker`` under the budget, with whoever queued to ride."""
        riders = self._take_riders(request)
        deadline = time.monotonic() + self.timeout_seconds
        if riders:
            return self._run_batch(worker, request, riders, deadline)
        job = ("analyze", request.texts, request.tenant)
        (reply,) = self._run_jobs([worker], [job], partial(_cancelled, request.cancel), deadline)
        self._release(worker)
        return _decode(reply)

    def _take_riders(self, leader: _Request) -> list[_Request]:
        """The queued requests that go along with the leader's job: its tenant, the limits.

        Taken in queue order, skipping what does not fit: requests of other tenants keep
        their place, and are next in line sooner for those taken ahead of them.
        """
        if not leader.batchable:
            return []
        texts, chars = len(leader.texts), leader.chars
        riders: list[_Request] = []
        with self._lock:
            for waiter in self._waiters:
                if texts >= self.batch_max_texts:
                    break
                if (
                    waiter.batchable
                    and waiter.tenant == leader.tenant
                    and not _cancelled(waiter.cancel)  # its own thread is dropping it
                    and texts + len(waiter.texts) <= self.batch_max_texts
                    and chars + waiter.chars <= self.batch_max_chars
                ):
                    riders.append(waiter)
                    texts += len(waiter.texts)
                    chars += waiter.chars
            if not riders:
                return []
            for rider in riders:
                rider.state = "riding"
                rider.event.set()  # its thread runs its own work meanwhile, then waits
            self._waiters = deque(w for w in self._waiters if w.state == "queued")
            self._counters.batches += 1
            self._counters.batched_requests += 1 + len(riders)
            self._counters.batched_texts += texts
        return riders

    def _run_batch(
        self, worker: _Worker, leader: _Request, riders: list[_Request], deadline: float
    ) -> list[list[DetectedEntity]]:
        """One job for the leader and its riders; each gets its slice, or all run again alone."""
        try:
            return self._drive_batch(worker, leader, riders, deadline)
        finally:
            # every way out of the batch answers its riders; after a fault (an interruption,
            # a bug) those still waiting run alone rather than wait for ever
            if self._requeue_alone(riders):
                with self._lock:
                    self._counters.batch_failures += 1

    def _drive_batch(
        self, worker: _Worker, leader: _Request, riders: list[_Request], deadline: float
    ) -> list[list[DetectedEntity]]:
        """Send the batch, then hand out its slices, or have every member run again alone."""
        members = [leader, *riders]
        texts = [text for member in members for text in member.texts]

        def everyone_gone() -> bool:
            # one member still waiting keeps the worker on the batch
            return all(_cancelled(member.cancel) for member in members)

        log.debug("analysis.batch", requests=len(members), texts=len(texts), pid=worker.pid)
        job = ("analyze", texts, leader.tenant)
        try:
            (reply,) = self._run_jobs([worker], [job], everyone_gone, deadline)
        except AnalysisBudgetError:
            return self._rerun_alone(None, leader, riders, reason="over_budget")
        except ServiceBusyError:  # the worker died; it is being replaced
            return self._rerun_alone(None, leader, riders, reason="worker_stopped")
        # (AnalysisCancelledError: every client has gone, the worker was stopped; the riders
        # drop themselves, woken on the way out)
        if reply[0] != "ok":  # a text the worker refused: whose, only a run alone tells
            return self._rerun_alone(worker, leader, riders, reason="refused")
        self._release(worker)  # first: the reply is here, whatever happens next
        found = reply[1]
        self._hand_out(riders, found, start=len(leader.texts))
        if _cancelled(leader.cancel):  # it drove the batch for the others; its client left
            with self._lock:
                self._counters.cancelled += 1
            raise _cancelled_error()
        return _decode(("ok", found[: len(leader.texts)]))

    def _hand_out(self, riders: list[_Request], found: list[Any], *, start: int) -> None:
        """Each rider still waiting gets its own texts' slice of the batch's findings."""
        with self._lock:
            for rider in riders:
                end = start + len(rider.texts)
                if rider.state == "riding":  # not withdrawn: its client is still there
                    rider.reply = ("ok", found[start:end])
                    rider.state = "done"
                    rider.event.set()
                start = end

    def _rerun_alone(
        self, worker: _Worker | None, leader: _Request, riders: list[_Request], *, reason: str
    ) -> list[list[DetectedEntity]]:
        """After a failed batch: every member again on its own, ahead of the queue.

        The riders go to idle workers or to the front of the queue; the leader keeps its
        worker when it is sound (it answered with an error), else queues first.
        """
        again = self._requeue_alone(riders)
        with self._lock:
            self._counters.batch_failures += 1
            leader.batchable = False
        log.warning("analysis.batch_failed", reason=reason, requests=1 + len(riders), rerun=again)
        if _cancelled(leader.cancel):
            if worker is not None:
                self._release(worker)
            with self._lock:
                self._counters.cancelled += 1
            raise _cancelled_error()
        with self._lock:
            self._counters.batch_retries += 1
        if worker is None:
            return self._serve(leader, first=True)
        return self._lead(worker, leader)

    def _requeue_alone(self, riders: list[_Request]) -> int:
        """Riders still waiting on a batch that will not answer them: each to run alone.

        Each goes to an idle worker or ahead of the queue (admitted once already, whatever
        the queue's limit); a rider whose client has gone is only woken, to drop itself.
        Returns how many will run again.
        """
        with self._lock:
            again: list[_Request] = []
            for rider in riders:
                if rider.state != "riding":
                    continue
                rider.event.set()
                if not _cancelled(rider.cancel):
                    again.append(rider)
            self._counters.batch_retries += len(again)
            queued: list[_Request] = []
            for rider in again:
                rider.batchable = False
                if self._closed:
                    rider.state = "refused"
                elif self._idle:
                    self._busy += 1
                    rider.worker = self._idle.pop()
                    rider.state = "leading"
                else:
                    rider.state = "queued"
                    rider.deadline = time.monotonic() + self.timeout_seconds
                    queued.append(rider)
            self._waiters.extendleft(reversed(queued))
        return len(again)

    def _windows(self, text: object) -> list[tuple[int, int]] | None:
        """The windows of a text worth splitting between workers; None for one job.

        Cut on the text as given: their number sets how many workers share the text; each
        worker cuts the windows of the normalised view itself (``Detector.window_spans``).
        """
        settings = self.settings
        if not isinstance(text, str) or len(text) <= settings.analysis_window_chars:
            return None
        try:
            too_large = len(text.encode("utf-8")) > settings.max_text_bytes
        except UnicodeEncodeError:  # a lone surrogate: the worker reports it as ever
            return None
        if too_large:
            return None  # one job: the worker refuses it with the usual error
        windows = window_bounds(
            text,
            size=settings.analysis_window_chars,
            overlap=settings.analysis_window_overlap_chars,
        )
        return windows if len(windows) > 1 else None

    def _submit_split(
        self, text: str, tenant: str | None, windows: list[tuple[int, int]]
    ) -> list[DetectedEntity]:
        """One long text on every idle worker: a group of windows each, then one finishes."""
        cancel = _CANCEL.get()
        request = _Request(texts=[text], tenant=tenant, cancel=cancel, batchable=False)
        workers = self._take_idle(cancel, len(windows))
        if len(workers) <= 1:  # nobody else idle: the plain job, no relaying of findings
            return (self._lead(workers[0], request) if workers else self._serve(request))[0]
        deadline = time.monotonic() + self.timeout_seconds
        gone = partial(_cancelled, cancel)
        # each worker cuts the windows of the normalised view and takes its group: the API
        # process never normalises (a hostile text would cost it the GIL for a second)
        parts = len(split_windows(windows, len(workers)))
        replies = self._run_jobs(
            workers,
            [("candidates", text, index, parts) for index in range(parts)],
            gone,
            deadline,
        )
        finisher = workers[0]
        for worker in workers[1:]:
            self._release(worker)  # free for other requests while the finisher resolves
        failed = next((reply for reply in replies if reply[0] != "ok"), None)
        if failed is not None:
            self._release(finisher)
            raise _reply_error(failed)
        with self._lock:
            self._counters.split_requests += 1
            self._counters.split_parts += len(workers)
        log.info(
            "analysis.split",
            parts=len(workers),
            windows=len(windows),
            pids=[worker.pid for worker in workers],
        )
        # the parts travel as the bytes their workers pickled: nothing is unpickled here
        finish = ("finish", text, [reply[1] for reply in replies], tenant)
        (reply,) = self._run_jobs([finisher], [finish], gone, deadline)
        self._release(finisher)
        return _decode(reply)[0]

    def _take_idle(self, cancel: threading.Event | None, most: int) -> list[_Worker]:
        """Every idle worker now (up to ``most``); none when closed, cancelled or all busy."""
        self._reap_idle()
        with self._lock:
            if self._closed or _cancelled(cancel) or not self._idle:
                return []
            count = min(len(self._idle), most)
            taken = [self._idle.pop() for _ in range(count)]
            self._busy += count
            return taken

    def _acquire(self, request: _Request, *, first: bool = False) -> _Worker | _Reply:
        """An idle worker now, or a place in the queue, or ServiceBusyError at once.

        From the queue the request either gets a worker (its thread leads its job) or rides
        in another request's batch and gets its share of that reply. ``first``: a member of
        a failed batch, queued ahead of everyone and whatever the queue's limit.
        """
        self._reap_idle()
        with self._lock:
            if self._closed:
                raise ServiceBusyError("analysis is shutting down", retry_after=RETRY_AFTER_SECONDS)
            if _cancelled(request.cancel):
                self._counters.cancelled += 1
                raise _cancelled_error()
            if self._idle:
                self._busy += 1
                request.state = "leading"
                return self._idle.pop()
            if not first and len(self._waiters) >= self.queue_limit:
                self._counters.refused_busy += 1
                raise ServiceBusyError(
                    f"all {self.workers} analysis workers are busy and {len(self._waiters)} "
                    "requests are waiting (GUARD_ANALYSIS_WORKERS, GUARD_ANALYSIS_QUEUE); "
                    "retry shortly",
                    retry_after=RETRY_AFTER_SECONDS,
                )
            request.state = "queued"
            request.deadline = time.monotonic() + self.timeout_seconds
            if first:
                self._waiters.appendleft(request)
            else:
                self._waiters.append(request)
        return self._await_turn(request)

    def _await_turn(self, request: _Request) -> _Worker | _Reply:
        """Wait in the queue (at most one budget) for a worker, or in a batch for its reply."""
        ran_meanwhile = False
        while True:
            request.event.wait(POLL_SECONDS)
            with self._lock:
                request.event.clear()  # under the lock: no change of state can be missed
                worker = request.worker
                if worker is not None:
                    request.worker = None
                    break
                if request.state == "done":  # its reply is set with it; fail closed if not
                    return request.reply or ("failed", "EmptyReply")
                if request.state == "refused":
                    raise ServiceBusyError(
                        "analysis is shutting down", retry_after=RETRY_AFTER_SECONDS
                    )
                if request.state == "queued":
                    self._leave_queue_if_over(request)
                    continue
                # riding in another request's batch
                if _cancelled(request.cancel):
                    # dropped from the batch's reply; the worker goes on for the others
                    request.state = "withdrawn"
                    self._counters.cancelled += 1
                    raise _cancelled_error()
                if ran_meanwhile:
                    continue
            ran_meanwhile = True
            _run_meanwhile()  # the caller's own work, while its batch is analysed
        if _cancelled(request.cancel):
            self._release(worker)
            with self._lock:
                self._counters.cancelled += 1
            raise _cancelled_error()
        return worker

    def _leave_queue_if_over(self, request: _Request) -> None:
        """Under the lock: a queued request whose client left or whose wait ran out leaves."""
        if _cancelled(request.cancel):
            self._waiters.remove(request)
            self._counters.cancelled += 1
            raise _cancelled_error()
        if time.monotonic() >= request.deadline:
            self._waiters.remove(request)
            self._counters.refused_busy += 1
            raise ServiceBusyError(
                f"no analysis worker became free within {self.timeout_seconds:g} "
                "seconds; retry shortly",
                retry_after=RETRY_AFTER_SECONDS,
            )

    def _run_jobs(
        self,
        workers: list[_Worker],
        jobs: list[tuple[Any, ...]],
        gone: Callable[[], bool],
        deadline: float,
    ) -> list[tuple[Any, ...]]:
        """One job per worker, all at once; their replies, in order, once every one answered.

        ``gone`` tells whether every client the jobs are for has left. On success the workers
        are still the caller's to release. On the budget running out, the clients leaving, a
        worker dying or an interruption, every worker still running a job of the request is
        stopped (and replaced), those that answered are released, and the error is raised.
        """
        replies: list[tuple[Any, ...] | None] = [None] * len(workers)
        running = dict(enumerate(workers))  # removed from as each answers
        try:
            _collect(jobs, running, replies, gone, deadline)
        except _OverBudgetError:
            self._abandon(workers, running.values(), reason="over_budget")
            raise AnalysisBudgetError(
                f"analysis did not finish within {self.timeout_seconds:g} seconds "
                "(GUARD_ANALYSIS_TIMEOUT_SECONDS); the work was stopped and nothing of the "
                "text was processed"
            ) from None
        except _CancelledWhileRunningError:
            self._abandon(workers, running.values(), reason="cancelled")
            raise _cancelled_error() from None
        except _WorkerStoppedError as stopped:
            self._abandon(workers, running.values(), reason="died", culprit=stopped.worker)
            raise ServiceBusyError(
                "the analysis worker stopped unexpectedly and is being replaced; retry shortly",
                retry_after=RETRY_AFTER_SECONDS,
            ) from None
        except BaseException:
            # interrupted mid-job (e.g. KeyboardInterrupt): the workers' state is unknown
            self._abandon(workers, running.values(), reason="interrupted")
            raise
        return [reply for reply in replies if reply is not None]

    def _abandon(
        self,
        workers: list[_Worker],
        running: Iterable[_Worker],
        *,
        reason: str,
        culprit: _Worker | None = None,
    ) -> None:
        """A failed request's workers: the running ones stopped, the ones done released.

        The request's failure is counted once, on the culprit (or the first running worker);
        the others are stopped with it.
        """
        stopping = list(running)
        first = culprit if culprit is not None else (stopping[0] if stopping else None)
        if first is not None and first not in stopping:
            stopping.insert(0, first)
        for worker in stopping:
            self._retire(worker, reason=reason if worker is first else "stopped_with_request")
        for worker in workers:
            if worker not in stopping:
                self._release(worker)

    # --- workers coming and going ---------------------------------------------------------

    def _release(self, worker: _Worker) -> None:
        """Hand the worker to the first waiting request, or put it back as idle."""
        with self._lock:
            if self._closed:
                stop = True
            else:
                stop = False
                if self._waiters:
                    waiter = self._waiters.popleft()
                    waiter.worker = worker
                    waiter.state = "leading"
                    waiter.event.set()
                    return
                self._busy -= 1
                self._idle.append(worker)
        if stop:
            _stop(worker)

    def _retire(self, worker: _Worker, *, reason: str) -> None:
        """Stop a busy worker now and start its replacement in the background."""
        with self._lock:
            self._busy -= 1
            if worker in self._live:
                self._live.remove(worker)
            self._count_retirement(reason)
        self._replace(worker, reason=reason)

    def _count_retirement(self, reason: str) -> None:
        if reason == "over_budget":
            self._counters.over_budget += 1
        elif reason == "cancelled":
            self._counters.cancelled += 1
        elif reason == "died":
            self._counters.worker_deaths += 1

    def _reap_idle(self) -> None:
        """Replace idle workers that died while idle (killed from outside, out of memory)."""
        with self._lock:
            dead = [w for w in self._idle if not w.process.is_alive()]
            for worker in dead:
                self._idle.remove(worker)
                self._live.remove(worker)
                self._counters.worker_deaths += 1
        for worker in dead:
            self._replace(worker, reason="died")

    def _replace(self, worker: _Worker, *, reason: str) -> None:
        """SIGTERM now; the rest (SIGKILL if needed, a fresh worker) in a background thread."""
        with contextlib.suppress(OSError, ValueError):
            worker.process.terminate()
        log.warning("analysis.worker_stopped", pid=worker.pid, reason=reason)
        thread = threading.Thread(
            target=self._start_replacement, args=(worker,), name="guard-analysis", daemon=True
        )
        with self._lock:
            closed = self._closed
            if not closed:
                self._starting += 1
                self._replacers.add(thread)
        if closed:
            _stop(worker)
        else:
            thread.start()

    def _start_replacement(self, old: _Worker) -> None:
        try:
            _stop(old)
            worker = self._start_with_retries()
            if worker is None:
                return
            with self._lock:
                closed = self._closed
                if not closed:
                    self._live.append(worker)
                    self._counters.worker_restarts += 1
                    self._busy += 1  # _release hands it on or makes it idle
            if closed:
                _stop(worker)
                return
            log.info("analysis.worker_started", pid=worker.pid, replaced=old.pid)
            self._release(worker)
        finally:
            with self._lock:
                self._starting -= 1
                self._replacers.discard(threading.current_thread())

    def _start_with_retries(self) -> _Worker | None:
        """A fresh worker with the model loaded, retrying with backoff; None once closed."""
        backoff, ceiling = RESTART_BACKOFF_SECONDS
        while True:
            with self._lock:
                if self._closed:
                    return None
            try:
                worker = self._spawn()
            except OSError:  # out of processes or memory: try again later
                log.exception("analysis.worker_start_failed")
            else:
                try:
                    self._await_ready(worker)
                except GuardError as exc:  # its message names a setting, never a text
                    _stop(worker)
                    log.exception("analysis.worker_start_failed", detail=exc.message)
                else:
                    return worker
            time.sleep(backoff)
            backoff = min(backoff * 2, ceiling)

    def _spawn(self) -> _Worker:
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=serve, args=(child_end, self.settings), name="guard-analysis", daemon=True
        )
        process.start()
        child_end.close()  # the child holds its own copy: EOF here when it dies
        return _Worker(process=process, conn=parent_end, pid=process.pid or 0)

    def _await_ready(self, worker: _Worker) -> None:
        """Block until the worker has loaded the model; its start-up error is raised here."""
        ready = wait_for_any([worker.conn, worker.process.sentinel], timeout=START_TIMEOUT_SECONDS)
        if not ready:
            raise ConfigurationError(
                f"an analysis worker did not load the model within {START_TIMEOUT_SECONDS:g} s"
            )
        try:
            message: tuple[Any, ...] = worker.conn.recv()
        except (EOFError, OSError):
            worker.process.join(TERM_GRACE_SECONDS)
            raise ConfigurationError(
                f"an analysis worker exited while starting (exit code {worker.process.exitcode})"
            ) from None
        if message[0] == "ready":
            worker.model_loaded = bool(message[1])
            return
        if message[0] == "error":
            raise _rebuild(message[1])  # e.g. ModelNotAvailableError, as the worker raised it
        raise ConfigurationError(f"an analysis worker could not start ({message[1]})")


def _collect(
    jobs: list[tuple[Any, ...]],
    running: dict[int, _Worker],
    replies: list[tuple[Any, ...] | None],
    gone: Callable[[], bool],
    deadline: float,
) -> None:
    """Send each job to its worker, then file each reply until none is running, or raise."""
    for index, job in enumerate(jobs):
        worker = running[index]
        try:
            worker.conn.send(job)
        except (OSError, ValueError) as exc:  # broken pipe: the worker is gone
            raise _WorkerStoppedError(worker) from exc
    _run_meanwhile()  # the caller's own work, while the workers analyse
    while running:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _OverBudgetError
        if gone():
            raise _CancelledWhileRunningError
        ready = wait_for_any(
            [w.conn for w in running.values()] + [w.process.sentinel for w in running.values()],
            timeout=min(remaining, POLL_SECONDS),
        )
        for index, worker in list(running.items()):
            if worker.conn in ready:  # a reply first: a worker may exit right after sending
                try:
                    replies[index] = worker.conn.recv()
                except (EOFError, OSError) as exc:
                    raise _WorkerStoppedError(worker) from exc
                del running[index]
            elif worker.process.sentinel in ready:
                raise _WorkerStoppedError(worker)


def _stop(worker: _Worker) -> None:
    """End a worker: ask, then SIGTERM, then SIGKILL; reap it and close its pipe."""
    process = worker.process
    if process.is_alive():
        with contextlib.suppress(OSError, ValueError):
            worker.conn.send(None)
        process.join(TERM_GRACE_SECONDS / 4)
    if process.is_alive():
        process.terminate()
        process.join(TERM_GRACE_SECONDS)
    if process.is_alive():
        process.kill()
        process.join()
    worker.conn.close()
    with contextlib.suppress(ValueError):
        process.close()


def _decode(reply: tuple[Any, ...]) -> list[list[DetectedEntity]]:
    """A worker's reply as entities, or the error it reported raised here."""
    if reply[0] == "ok":
        return [[DetectedEntity(*entity) for entity in entities] for entities in reply[1]]
    raise _reply_error(reply)


def _reply_error(reply: tuple[Any, ...]) -> GuardError:
    """The error a worker's failed reply stands for."""
    if reply[0] == "error":
        return _rebuild(reply[1])
    # only the exception's type crossed: its message or traceback could quote the text
    log.error("analysis.worker_exception", exception_type=str(reply[1]))
    return DetectionFailedError(f"analysis failed in the worker ({reply[1]}); the text was refused")


def _rebuild(info: ErrorInfo) -> GuardError:
    """The worker's GuardError as the same type, message and attributes, in this process."""
    cls: object = None
    if info.module == "guard" or info.module.startswith("guard."):
        with contextlib.suppress(ImportError):
            cls = importlib.import_module(info.module)
            for part in info.qualname.split("."):
                cls = getattr(cls, part, None)
    if not (isinstance(cls, type) and issubclass(cls, GuardError)):
        return GuardError(info.message)
    # not cls(...): subclasses' constructors differ; the state is what the worker had
    exc = cls.__new__(cls)
    Exception.__init__(exc, info.message)
    exc.__dict__.update(info.attributes)
    exc.message = info.message
    return exc
