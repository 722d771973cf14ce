"""Every recognizer guard registers runs in time linear in its input, on adversarial input.

For each family of hostile text below and each recognizer the detector registers (its own,
the Presidio ones it enables, and every user regex of ``policies/recognizers.yaml``; the spaCy
NER is timed elsewhere), the recognizer alone is timed on ``n`` and ``8n`` characters. Linear
work grows about 8 times, quadratic 64, cubic 512: the test fails when it grows more than 24
times and the larger run takes over 50 ms (so that noise on tiny timings cannot fail it), after
measuring a failing case a second time. ``n`` starts at 1 KB and grows until the recognizer
takes a measurable time on it, so a slow quadratic is caught as well as a fast one.

This is the one timing assertion of the suite: a regex that backtracks super-linearly lets a
small request hold a worker for minutes (issue 8: 6 KB took 42 s), and only a measurement
over growing input shows it. A run that would exceed the allowed growth is stopped in a child
process rather than waited for, so a regression fails in seconds instead of hanging the run.
"""

from __future__ import annotations

import gc
import multiprocessing
import random
import time
from typing import TYPE_CHECKING

import pytest
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

from guard.config import PROJECT_ROOT
from guard.detection.custom import load_recognizers_file

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from presidio_analyzer import EntityRecognizer

    from guard.detection.engine import Detector

FIRST_SIZE = 1_000
LARGEST_BASE = 16_000
GROWTH = 8
RATIO_LIMIT = 24.0
FLOOR_SECONDS = 0.05
#: Below this a timing is mostly noise: the base size grows until a run takes at least this.
MEASURABLE_SECONDS = 0.002
#: Past this a run at the larger size is made in a child process that can be stopped.
IN_PROCESS_SECONDS = 1.0


def _repeat(unit: str, size: int, *, prefix: str = "", suffix: str = "") -> str:
    count = max(1, (size - len(prefix) - len(suffix)) // len(unit))
    return prefix + unit * count + suffix


def _mixed(size: int) -> str:
    """Pieces of every family in a fixed random order."""
    rng = random.Random(8)  # noqa: S311 - a fixed order of test input, not a secret
    pieces = [
        "address 1 ", "a.", "a-", "1 ", "Ann ", "Ann, ", "@", "http://", "password ",
        "my name is ", "4111", "-", ".", "\n", "com", "Street ", "Ltd ", "xxxxx", "(", ")",
    ]  # fmt: skip
    out: list[str] = []
    length = 0
    while length < size:
        piece = rng.choice(pieces)
        out.append(piece)
        length += len(piece)
    return "".join(out)[:size]


#: Hostile text by family, at about ``size`` characters.
FAMILIES: dict[str, Callable[[int], str]] = {
    "address intro (cubic before)": lambda n: _repeat("address 1 ", n, suffix="?x"),
    "compound street": lambda n: _repeat("a-", n, prefix="1 "),
    "a. pairs": lambda n: _repeat("a.", n),
    "a- pairs": lambda n: _repeat("a-", n),
    "digits and spaces": lambda n: _repeat("1 ", n),
    "digits and dashes": lambda n: _repeat("1-", n),
    "digits and dots": lambda n: _repeat("1.", n),
    "digit run": lambda n: "1" * n,
    "long digit runs": lambda n: _repeat(" " + "1234567890" * 4, n),
    "private key headers": lambda n: _repeat("-----BEGIN PRIVATE KEY----- ", n),
    "url host": lambda n: _repeat("a.", n, prefix="http://", suffix="com"),
    "email local part": lambda n: _repeat("a.", n, suffix="@"),
    "at signs": lambda n: "@" * n,
    "password words": lambda n: _repeat("password ", n),
    "my name is": lambda n: _repeat("my name is ", n),
    "lives at": lambda n: _repeat("lives at 1 ", n, suffix="!x"),
    "one letter": lambda n: "a" * n,
    "one capital": lambda n: "A" * n,
    "capitalised words": lambda n: _repeat("Ann ", n),
    "name list": lambda n: _repeat("Ann, ", n),
    "quotes": lambda n: _repeat("'a.", n),
    "mixed": _mixed,
    # each finding once searched its whole line back to its start (quadratic on one line)
    "street list": lambda n: _repeat("1 Main St ", n),
    "address lines": lambda n: _repeat("1 Main St\n", n),
    "numbers on one line": lambda n: _repeat("1 ", n, prefix="\n"),
}


def _seconds(recognizer: EntityRecognizer, text: str, repeats: int = 3) -> float:
    """Best of ``repeats`` runs of the recognizer alone (no NLP: none of them reads it).

    Timed in this thread's CPU time, not wall time: on a shared machine other processes take
    the cores away for tens of milliseconds at a time, which a wall clock counts against the
    recognizer (a CI run beside busy neighbours once failed a linear recognizer at x25).

    The garbage collector is paused while timing (and the objects already alive are frozen,
    see :func:`_frozen_heap`): with the model loaded, a full collection walks millions of
    objects (~0.1 s) whenever one falls into a run, which says nothing about the recognizer.
    """
    entities = list(recognizer.supported_entities)
    best = float("inf")
    gc.disable()
    try:
        for _ in range(repeats):
            started = time.thread_time()
            recognizer.analyze(text, entities, None)  # type: ignore[arg-type] # none reads the NLP
            best = min(best, time.thread_time() - started)
    finally:
        gc.enable()
    return best


def _seconds_within(recognizer: EntityRecognizer, text: str, limit: float) -> float:
    """Like :func:`_seconds`, but in a child stopped after ``limit`` seconds (then infinity)."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def run() -> None:
        sender.send(_seconds(recognizer, text))

    child = context.Process(target=run, daemon=True)
    child.start()
    try:
        if receiver.poll(limit):
            return float(receiver.recv())
        return float("inf")
    finally:
        child.kill()
        child.join()


def _growth(recognizer: EntityRecognizer, family: Callable[[int], str]) -> tuple[int, float, float]:
    """(n, t(n), t(8n)), with n grown from FIRST_SIZE until t(n) is measurable."""
    size = FIRST_SIZE
    small = _seconds(recognizer, family(size), repeats=1)
    while small < MEASURABLE_SECONDS and size < LARGEST_BASE:
        size *= 4
        small = _seconds(recognizer, family(size), repeats=1)
    small = min(small, _seconds(recognizer, family(size)))
    large_text = family(size * GROWTH)
    allowed = max(small * RATIO_LIMIT, FLOOR_SECONDS)
    if allowed > IN_PROCESS_SECONDS:
        large = _seconds_within(recognizer, large_text, limit=2 * allowed + 1.0)
    else:
        large = _seconds(recognizer, large_text)
    return size, small, large


def _superlinear(small: float, large: float) -> bool:
    return large > FLOOR_SECONDS and large > RATIO_LIMIT * small


@pytest.fixture(autouse=True)
def _frozen_heap() -> Iterator[None]:
    """Leave the objects alive now (the model's) out of garbage collections while timing."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


def _registered(detector: Detector) -> list[EntityRecognizer]:
    """Every recognizer the detector runs, less spaCy's NER (timed with the tokenizer)."""
    return [r for r in detector._recognizers if not isinstance(r, SpacyRecognizer)]


def _name(recognizer: EntityRecognizer) -> str:
    return str(getattr(recognizer, "name", type(recognizer).__name__))


def test_every_user_regex_is_among_the_timed_recognizers(detector: Detector) -> None:
    spec = load_recognizers_file(PROJECT_ROOT / "policies" / "recognizers.yaml")
    names = {_name(r) for r in _registered(detector)}
    expected = {
        f"custom:{entry.name}:{index}"
        for entry in spec.recognizers
        for index in range(len(entry.patterns))
    }
    assert expected
    assert expected <= names


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_when_input_grows_eightfold_then_no_recognizer_takes_24_times_longer(
    detector: Detector, family: str
) -> None:
    make = FAMILIES[family]
    failures = []
    for recognizer in _registered(detector):
        size, small, large = _growth(recognizer, make)
        if _superlinear(small, large):
            size, small, large = _growth(recognizer, make)  # once more: noise or real?
        if _superlinear(small, large):
            failures.append(
                f"{_name(recognizer)} on {family!r}: {size} chars {small:.4f} s, "
                f"{size * GROWTH} chars {large:.4f} s (x{large / max(small, 1e-9):.0f})"
            )
    assert not failures, "super-linear recognizers:\n" + "\n".join(failures)
