"""Hostile input: seconds per MB and peak memory of detection, per input family and size.

For ordinary prose (the development sets' texts, concatenated) and for each family of hostile
input found in issue 8, at 10 KB, 100 KB and 1 MB, one ``Detector.analyze`` call in a fresh
subprocess per (family, size), so that peak RSS (``ru_maxrss``) is that case's alone. With
``--engines pool`` (or ``guard pool`` for both) the same call goes through an
``AnalysisExecutor`` with the default worker count, as the API runs it: a long text is split
between the workers; its peak RSS is the largest worker's. The peer,
in the same run: vanilla Presidio (``AnalyzerEngine`` defaults, same spaCy model) on the same
texts at 10 KB only; it is far too slow beyond. Every case has a time cap; a case that hits it
is killed and reported as "> cap".

Targets (issue 8): every family linear (time at 1 MB / time at 100 KB <= 12), a 1 MB
hostile text under 10 s, and 1 MB of any family under 1 GB peak RSS.

    .venv/bin/python bench/adversarial.py [--families prose bang ...] [--sizes 10000 ...]
                                          [--engines guard pool] [--cap 60] [--no-peer]
    .venv/bin/python bench/adversarial.py --profile FAMILY SIZE   # cProfile of one case
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import platform
import pstats
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from guard.config import PROJECT_ROOT, get_settings

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from guard.config import Settings

RESULTS = PROJECT_ROOT / "bench" / "results" / "adversarial.json"
DATA_DIR = PROJECT_ROOT.parent / "shared" / "data" / "pii"
SIZES = (10_000, 100_000, 1_000_000)
#: The ratio of a linear family is 10 (1 MB / 100 KB); the issue allows up to 12.
LINEAR_RATIO = 12.0
TARGET_SECONDS_1MB = 10.0
TARGET_PEAK_MB = 1024.0

_FIRST_NAMES = (
    "Mary John Linda James Patricia Robert Jennifer Michael Elizabeth William Barbara David "
    "Susan Richard Jessica Joseph Sarah Thomas Karen Charles Nancy Daniel Lisa Matthew Ann"
).split()


def _repeat(unit: str) -> Callable[[int], str]:
    def build(size: int) -> str:
        return (unit * (size // len(unit) + 1))[:size]

    return build


def _prose(size: int) -> str:
    """The development sets' texts, one per line, until ``size`` UTF-8 bytes."""
    parts: list[str] = []
    total = 0
    while total < size:
        for path in sorted(DATA_DIR.glob("*.jsonl")):
            with path.open(encoding="utf-8") as lines:
                for line in lines:
                    text = json.loads(line)["text"] + "\n"
                    parts.append(text)
                    total += len(text.encode("utf-8"))
                    if total >= size:
                        break
            if total >= size:
                break
    return "".join(parts).encode("utf-8")[:size].decode("utf-8", errors="ignore")


def _address(size: int) -> str:
    return _repeat("address 1 ")(size - 2) + "?x"


def _url(size: int) -> str:
    return "http://" + _repeat("a.")(size - 10) + "com"


def _first_names(size: int) -> str:
    return _repeat(" ".join(_FIRST_NAMES) + " ")(size)


def _dash_tokens(size: int) -> str:
    return "1 " + _repeat("a-")(size - 2)


#: family -> (what it is, how to build a text of a given size)
FAMILIES: dict[str, tuple[str, Callable[[int], str]]] = {
    "prose": ("development sets' texts, concatenated", _prose),
    "address": ('"address 1 " * N + "?x" (cubic _INTRODUCED_ADDRESS)', _address),
    "bang": ('"!" * N (quadratic in spaCy\'s tokenizer)', _repeat("!")),
    "comma": ('"," * N', _repeat(",")),
    "question": ('"?" * N', _repeat("?")),
    "paren_open": ('"(" * N', _repeat("(")),
    "paren_close": ('")" * N', _repeat(")")),
    "quote": ("'\"' * N", _repeat('"')),
    "semicolon": ('";" * N', _repeat(";")),
    "colon": ('":" * N', _repeat(":")),
    "star": ('"*" * N', _repeat("*")),
    "apostrophe": ('"\'" * N', _repeat("'")),
    "ann": ('"Ann, " * N (many findings)', _repeat("Ann, ")),
    "dash_tokens": ('"1 " + "a-" * N (one token per character)', _dash_tokens),
    "dots": ('"a." * N (_ORG)', _repeat("a.")),
    "first_names": ("first names, space-separated (the first-name list)", _first_names),
    "private_key": ('"-----BEGIN PRIVATE KEY----- " * N', _repeat("-----BEGIN PRIVATE KEY----- ")),
    "url": ('"http://" + "a." * N + "com" (Presidio\'s URL regex)', _url),
    "at": ('"a@" * N (email regex)', _repeat("a@")),
    "email_like": ('"a.b@c." * N', _repeat("a.b@c.")),
    "digits": ('"0123456789" * N (phone regex on digit runs)', _repeat("0123456789")),
    "phones": ('"555-123-4567 " * N', _repeat("555-123-4567 ")),
    "x": ('"x" * N (one absurd token)', _repeat("x")),
}


# ------------------------------------------------------------------------- one case (child)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _pool_analyze(settings: Settings) -> tuple[Callable[[str], list[object]], Callable[[], None]]:
    """An AnalysisExecutor's analyze with every worker warmed up, and how to close it."""
    from guard.detection.executor import AnalysisExecutor  # noqa: PLC0415 - heavy, child only

    pool = AnalysisExecutor(settings)
    warm = "warm up: Joseph Banter, 12 Main Street, (845) 450-5693. "
    # longer than two windows: split, so that every worker has run the pipeline once
    pool.analyze(warm * (2 * settings.analysis_window_chars // len(warm) + 1))
    return pool.analyze, pool.close  # type: ignore[return-value]


def run_case(family: str, size: int, engine: str, *, profile: bool = False) -> dict[str, object]:
    """Build the text, load the engine, analyse once; seconds, entities and peak RSS."""
    warnings.filterwarnings("ignore")
    text = FAMILIES[family][1](size)
    settings = get_settings()
    analyze: Callable[[str], list[object]]
    close: Callable[[], None] = lambda: None  # noqa: E731 - nothing to close in process
    if engine == "pool":
        analyze, close = _pool_analyze(settings)
    elif engine == "guard":
        from guard.detection.engine import Detector  # noqa: PLC0415 - heavy, child only

        analyze = Detector(settings=settings).analyze  # type: ignore[assignment]
        analyze("warm up: Joseph Banter, 12 Main Street, (845) 450-5693")
    else:
        from guard.detection.baseline import VanillaPresidio  # noqa: PLC0415

        analyze = VanillaPresidio(settings).analyze  # type: ignore[assignment]
        analyze("warm up: Joseph Banter, 12 Main Street, (845) 450-5693")
    gc.collect()
    loaded_mb = _peak_rss_mb()
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    entities = analyze(text)
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - started
    if profiler is not None:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    close()  # the workers exit and are reaped: their peak is in RUSAGE_CHILDREN
    result: dict[str, object] = {
        "chars": len(text),
        "seconds": round(seconds, 3),
        "entities": len(entities),
        "rss_after_load_mb": round(loaded_mb, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }
    if engine == "pool":
        result["workers"] = settings.analysis_workers
        result["api_peak_rss_mb"] = result["peak_rss_mb"]
        result["peak_rss_mb"] = round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        )
    return result


# ------------------------------------------------------------------------- the run (parent)


def _in_subprocess(family: str, size: int, engine: str, cap: float) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--case", family, str(size), engine]
    try:
        proc = subprocess.run(  # noqa: S603 - our own script, fixed arguments
            cmd, capture_output=True, text=True, timeout=cap + 30, check=False
        )
    except subprocess.TimeoutExpired:  # the child is killed by run() on time-out
        return {"seconds": None, "over_cap": True}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["exit " + str(proc.returncode)]}
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    seconds = result["seconds"]
    assert isinstance(seconds, float | int)
    result["over_cap"] = seconds > cap
    return result


def _show(result: object, cap: float) -> str:
    if not isinstance(result, dict):
        return "-"
    if "error" in result:
        return "error"
    if result.get("over_cap") or result.get("seconds") is None:
        return f"> {cap:g} s"
    return f"{result['seconds']:.2f} s / {result['peak_rss_mb']:.0f} MB"


def _seconds(result: object) -> float | None:
    """A finished case's seconds; None when it failed or hit the cap."""
    if not isinstance(result, dict) or result.get("over_cap") or "error" in result:
        return None
    seconds = result.get("seconds")
    return float(seconds) if isinstance(seconds, int | float) else None


#: Where each engine's figures go in a family's row: in process as before, the pool prefixed.
_PREFIX = {"guard": "", "pool": "pool_"}


def _family_row(
    family: str,
    sizes: list[int],
    cap: float,
    *,
    peer: bool,
    engines: list[str],
    row: dict[str, object],
) -> dict[str, object]:
    row["what"] = FAMILIES[family][0]
    for engine in engines:
        prefix = _PREFIX[engine]
        for size in sizes:
            result = _in_subprocess(family, size, engine, cap)
            row[f"{prefix}{size}"] = result
            print(f"{family:12s} {size:>9,d}  {engine} {_show(result, cap)}", flush=True)
        small = _seconds(row.get(f"{prefix}100000"))
        large = _seconds(row.get(f"{prefix}1000000"))
        if small is not None and large is not None:
            row[f"{prefix}ratio_1mb_100kb"] = round(large / max(small, 1e-3), 2)
        if large is not None:
            row[f"{prefix}seconds_per_mb"] = large
    if peer and 10_000 in sizes:
        row["presidio_10000"] = _in_subprocess(family, 10_000, "presidio", cap)
        print(f"{family:12s} {10_000:>9,d}  presidio {_show(row['presidio_10000'], cap)}")
    return row


def _over_target(report: dict[str, dict[str, object]]) -> list[str]:
    over: list[str] = []
    for family, row in report.items():
        for engine, prefix in _PREFIX.items():
            name = f"{family} ({engine})"
            ratio = row.get(f"{prefix}ratio_1mb_100kb")
            if isinstance(ratio, float) and ratio > LINEAR_RATIO:
                over.append(f"{name}: 1 MB / 100 KB = {ratio}")
            large = row.get(f"{prefix}1000000")
            if not isinstance(large, dict):
                continue
            seconds = _seconds(large)
            if seconds is None:
                over.append(f"{name}: 1 MB did not finish")
                continue
            if seconds > TARGET_SECONDS_1MB:
                over.append(f"{name}: 1 MB in {seconds} s")
            peak = large.get("peak_rss_mb")
            if isinstance(peak, int | float) and peak > TARGET_PEAK_MB:
                over.append(f"{name}: 1 MB peak {peak} MB")
    return over


def resolution_seconds(count: int) -> float:
    """Seconds to resolve ``count`` random overlapping candidates over ~20 characters each."""
    import random  # noqa: PLC0415 - only here

    from guard.detection.entities import TYPE_PRIORITY, Candidate, resolve_overlaps  # noqa: PLC0415

    rng = random.Random(8)  # noqa: S311 - benchmark data, not a secret
    text = "Ann, Bob and 12 Main St. " * (count // 5)
    kinds = sorted(TYPE_PRIORITY)
    candidates = []
    for _ in range(count):
        start = rng.randrange(0, len(text) - 40)
        candidates.append(
            Candidate(
                start,
                start + rng.randrange(1, 40),
                rng.choice(kinds),
                rng.choice([0.4, 0.6, 0.85, 1.0]),
            )
        )
    started = time.perf_counter()
    resolve_overlaps(candidates, text)
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> None:
    """Run every case, print a table, write bench/results/adversarial.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", choices=sorted(FAMILIES), default=list(FAMILIES))
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    parser.add_argument("--cap", type=float, default=60.0, help="seconds per case")
    parser.add_argument("--no-peer", action="store_true", help="skip vanilla Presidio")
    parser.add_argument(
        "--engines",
        nargs="+",
        choices=sorted(_PREFIX),
        default=["guard"],
        help="guard: Detector.analyze in process; pool: through an AnalysisExecutor",
    )
    parser.add_argument("--case", nargs=3, metavar=("FAMILY", "SIZE", "ENGINE"))
    parser.add_argument("--profile", nargs=2, metavar=("FAMILY", "SIZE"))
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    if args.case:  # a child: one case, one JSON line
        family, size, engine = args.case
        print(json.dumps(run_case(family, int(size), engine)))
        return
    if args.profile:
        family, size = args.profile
        print(json.dumps(run_case(family, int(size), "guard", profile=True)))
        return

    resolution = {str(n): round(resolution_seconds(n), 3) for n in (10_000, 100_000)}
    print(f"overlap resolution, seconds for 10,000 / 100,000 candidates: {resolution}")
    # a partial run (some families, sizes or engines) updates the figures it measured and
    # keeps the rest of the last results
    previous = json.loads(args.json.read_text(encoding="utf-8")) if args.json.exists() else {}
    report: dict[str, dict[str, object]] = previous.get("families", {})
    for family in args.families:
        report[family] = _family_row(
            family,
            args.sizes,
            args.cap,
            peer=not args.no_peer,
            engines=args.engines,
            row=report.get(family, {}),
        )
    over = _over_target(report)
    settings = get_settings()
    result = {
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
        "cap_seconds": args.cap,
        "analysis_workers": settings.analysis_workers,
        "window_chars": settings.analysis_window_chars,
        "window_overlap_chars": settings.analysis_window_overlap_chars,
        "targets": {
            "ratio_1mb_100kb_max": LINEAR_RATIO,
            "seconds_1mb_max": TARGET_SECONDS_1MB,
            "peak_rss_mb_max": TARGET_PEAK_MB,
        },
        "overlap_resolution_seconds": resolution,
        "families": report,
        "over_target": over,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        "\nfamily        engine 10 KB             100 KB            1 MB              ratio   "
        "peer 10 KB"
    )
    for family, row in report.items():
        for engine, prefix in _PREFIX.items():
            cells = [_show(row.get(f"{prefix}{size}"), args.cap) for size in SIZES]
            if cells == ["-"] * len(cells):
                continue
            ratio = row.get(f"{prefix}ratio_1mb_100kb", "-")
            peer = _show(row.get("presidio_10000"), args.cap) if engine == "guard" else ""
            print(
                f"{family:12s}  {engine:6s} {cells[0]:17s} {cells[1]:17s} {cells[2]:17s} "
                f"{ratio!s:7s} {peer}"
            )
    print("\nover target:" if over else "\nevery family within target", *over, sep="\n  ")


if __name__ == "__main__":
    main()
