"""Detection throughput of this checkout against another, timed in pairs.

On a shared machine the spread between two runs of bench/detect.py is wider than a few per
cent, so a small change of speed cannot be read off them. Here two long-lived processes, one
importing guard from each checkout, analyse the same texts in turn, alternating which goes
first; each round gives a ratio of the two rates taken a few seconds apart, and the median of
the ratios is the figure.

    git worktree add --detach /tmp/guard-before <commit>
    .venv/bin/python bench/detect_ab.py --baseline /tmp/guard-before [--rounds 12]

Prints the median and range of the rates and of the ratio (this checkout ÷ the baseline).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "pii" / "presidio_generated_large.jsonl"
_READY = "ready"


def _worker(data: Path) -> None:
    """Load a detector from whichever guard is on the path; time one pass per line of stdin."""
    warnings.filterwarnings("ignore")
    from guard.detection.engine import Detector  # noqa: PLC0415 - the checkout under test
    from guard.detection.evaluation import load_dataset  # noqa: PLC0415

    texts = [r.text for r in load_dataset(data)]
    detector = Detector()
    list(detector.analyze_batch(texts))  # warm up
    print(_READY, flush=True)
    for _ in sys.stdin:
        started = time.perf_counter()
        list(detector.analyze_batch(texts))
        print(len(texts) / (time.perf_counter() - started), flush=True)


class _Side:
    """One checkout's worker process."""

    def __init__(self, checkout: Path, data: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(checkout))
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, __file__, "--worker", "--data", str(data)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=checkout,
        )
        while self._line() != _READY:  # the detector's log lines come first
            pass

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit("a worker exited before it was ready (is the checkout set up?)")
        return line.strip()

    def rate(self) -> float:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        while True:
            try:
                return float(self._line())
            except ValueError:
                continue

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the paired comparison and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="the other checkout (a git worktree)")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.data)
        return
    if args.baseline is None or not (args.baseline / "guard").is_dir():
        parser.error("--baseline must be a checkout of guard (a directory holding guard/)")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    baseline, current = _Side(args.baseline.resolve(), args.data), _Side(PROJECT_ROOT, args.data)
    try:
        before: list[float] = []
        now: list[float] = []
        for index in range(args.rounds):
            if index % 2 == 0:
                before.append(baseline.rate())
                now.append(current.rate())
            else:
                now.append(current.rate())
                before.append(baseline.rate())
    finally:
        baseline.close()
        current.close()
    ratios = [n / b for n, b in zip(now, before, strict=True)]
    print(
        f"baseline: median {statistics.median(before):.1f} texts/s "
        f"({min(before):.1f}-{max(before):.1f}); this checkout: median "
        f"{statistics.median(now):.1f} ({min(now):.1f}-{max(now):.1f}); "
        f"ratio median {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}), "
        f"{args.rounds} rounds"
    )


if __name__ == "__main__":
    main()
