"""One analysis worker process: build the detector once, then analyse one job at a time.

The API process talks to it over a pipe (see ``guard.detection.executor``). Messages:

- from the API: ``None`` to stop, or one of three jobs:
  ``("analyze", texts, tenant)``: a request's texts, analysed whole;
  ``("candidates", text, index, parts)``: the raw findings of the ``index``-th of ``parts``
  contiguous groups of a long text's windows (one part of a text split between workers);
  the worker cuts the windows itself, on the text's normalised view, which the API process
  never computes (see ``guard.detection.normalize``);
  ``("finish", text, parts, tenant)``: the tenant's lists and overlap resolution over all the
  parts' findings;
- to the API: ``("ready", model_has_ner)`` once at start, then one reply per job:
  ``("ok", [[(start, end, entity_type, score), ...], ...])`` for analyze and finish,
  ``("ok", part)`` for candidates, ``("error", ErrorInfo)`` for a GuardError,
  ``("failed", exception_type_name)`` for anything else.

A part is the list of candidate tuples pickled into bytes by the worker that found them: the
API process hands those bytes on to the finishing worker without unpickling them, so it never
spends its GIL on the hundreds of thousands of findings a hostile text can produce.

Replies never carry a message or traceback of an unexpected exception: those can quote the
text. GuardError messages are written never to carry input (see ``guard.errors``).
"""

from __future__ import annotations

import pickle
import signal
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from guard.detection.entities import Candidate
from guard.detection.windows import split_windows
from guard.errors import GuardError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from guard.config import Settings
    from guard.detection.engine import Detector

#: One finding as it crosses the pipe: plain tuples pickle smaller and faster than objects.
EntityTuple = tuple[int, int, str, float]


@dataclass(frozen=True)
class ErrorInfo:
    """A GuardError as it crosses the pipe: its class by name, its message and attributes."""

    module: str
    qualname: str
    message: str
    attributes: dict[str, str | int | float | bool | None]

    @classmethod
    def of(cls, exc: GuardError) -> ErrorInfo:
        """Describe ``exc``; only plain attribute values (status code, retry-after) travel."""
        attributes = {
            key: value
            for key, value in vars(exc).items()
            if isinstance(value, str | int | float | bool | type(None))
        }
        return cls(type(exc).__module__, type(exc).__qualname__, exc.message, attributes)


def serve(conn: Connection, settings: Settings) -> None:
    """The worker's life: load the model, say ready, answer jobs until told to stop."""
    # Ctrl-C reaches the whole process group; the API process decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from guard.logging import configure_logging  # noqa: PLC0415 - the child's own imports

    configure_logging(settings)
    # the pinned 3.6 model under spaCy 3.7: known and decided (see DESIGN.md), as in the CLI
    warnings.filterwarnings("ignore", message=r".*\[W095\].*")
    try:
        from guard.detection.engine import Detector  # noqa: PLC0415 - heavy, child only

        detector = Detector(settings=settings)
    except GuardError as exc:
        conn.send(("error", ErrorInfo.of(exc)))
        return
    except Exception as exc:  # noqa: BLE001 - reported to the API process by type only
        conn.send(("failed", type(exc).__name__))
        return
    conn.send(("ready", "ner" in detector.nlp_engine.pipeline.pipe_names))
    while True:
        try:
            job = conn.recv()
        except EOFError:  # the API process has gone: nothing left to serve
            return
        if job is None:
            return
        reply: tuple[Any, ...]
        try:
            reply = ("ok", _answer(detector, job))
        except GuardError as exc:
            reply = ("error", ErrorInfo.of(exc))
        except Exception as exc:  # noqa: BLE001 - the type only: a message could quote the text
            reply = ("failed", type(exc).__name__)
        conn.send(reply)


def _answer(detector: Detector, job: tuple[Any, ...]) -> object:
    """The result of one job (see the module's docstring for the three kinds)."""
    kind = job[0]
    if kind == "analyze":
        _, texts, tenant = job
        return [
            [(e.start, e.end, e.entity_type, e.score) for e in entities]
            for entities in detector.analyze_batch(texts, tenant=tenant)
        ]
    if kind == "candidates":
        _, text, index, parts = job
        groups = split_windows(detector.window_spans(text), parts)
        # the view can have fewer windows than the text had: a part beyond them has none
        found = detector.candidates(text, groups[index]) if index < len(groups) else []
        return pickle.dumps(
            [(c.start, c.end, c.entity_type, c.score, c.validated) for c in found],
            protocol=pickle.HIGHEST_PROTOCOL,
        )
    if kind == "finish":
        _, text, parts, tenant = job
        candidates = [
            Candidate(*found)
            for part in parts
            # bytes another worker of the same pool pickled, relayed untouched by the API
            # process over its private pipes: no more trusted or less than the pipe itself
            for found in pickle.loads(part)  # noqa: S301
        ]
        entities = detector.finish(text, candidates, tenant=tenant)
        return [[(e.start, e.end, e.entity_type, e.score) for e in entities]]
    raise TypeError(kind)  # a bug in the API process: reported by type only
