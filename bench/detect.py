"""Detection throughput: guard against vanilla Presidio and the bare spaCy NER pass.

One run, same texts, same machine, same spaCy model:
- vanilla Presidio: AnalyzerEngine defaults, one text at a time (how it is used);
- the bare NER pass: spaCy tok2vec + ner over the texts with nlp.pipe (in batches as large
  as guard's), nothing else; the physical limit of an NER-based detector with this model;
- guard: Detector.analyze_batch, single process; then both cores (two worker processes).

Prints texts/second for each and the ratios guard/vanilla and guard/NER, plus micro F2 and
any-PII character recall for guard and vanilla so that speed is never bought with accuracy.

    .venv/bin/python bench/detect.py [--data FILE.jsonl] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from guard.config import PROJECT_ROOT, get_settings
from guard.detection.baseline import VanillaPresidio
from guard.detection.engine import Detector
from guard.detection.evaluation import Span, load_dataset, map_label, score
from guard.detection.model import load_pipeline
from guard.detection.windows import DEFAULT_BATCH_TEXTS

warnings.filterwarnings("ignore", message=r".*\[W095\].*")

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "pii" / "presidio_generated_large.jsonl"
RESULTS = PROJECT_ROOT / "bench" / "results" / "detect.json"

_worker: Detector | None = None


def _init_worker() -> None:
    global _worker  # noqa: PLW0603 - one detector per worker process
    warnings.filterwarnings("ignore", message=r".*\[W095\].*")
    _worker = Detector()


def _work(chunk: list[str]) -> int:
    assert _worker is not None
    return sum(len(r) for r in _worker.analyze_batch(chunk))


def best_rate(run: Callable[[], object], count: int, repeat: int) -> float:
    """Texts per second of the best of ``repeat`` runs (least disturbed by other load)."""
    rates = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        rates.append(count / (time.perf_counter() - started))
    return max(rates)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and write bench/results/detect.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    records = load_dataset(args.data)
    texts = [r.text for r in records]
    gold_labels = {label for r in records for _, _, label in r.spans}
    settings = get_settings()
    n = len(texts)

    nlp = load_pipeline(settings)
    ner_rate = best_rate(
        lambda: [len(d.ents) for d in nlp.pipe(texts, batch_size=DEFAULT_BATCH_TEXTS)],
        n,
        args.repeat,
    )

    detector = Detector(settings=settings, nlp=nlp)
    guard_rate = best_rate(lambda: list(detector.analyze_batch(texts)), n, args.repeat)

    vanilla = VanillaPresidio(settings)
    vanilla_rate = best_rate(lambda: list(vanilla.analyze_batch(texts)), n, max(1, args.repeat - 1))

    cores = min(2, os.cpu_count() or 1)
    chunks = [texts[i::cores] for i in range(cores)]
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=cores, mp_context=ctx, initializer=_init_worker) as pool:
        list(pool.map(_work, [texts[:50]] * cores))  # warm up: load the model in each worker
        guard_multi_rate = best_rate(lambda: list(pool.map(_work, chunks)), n, args.repeat)

    def spans(predictions: list[list[object]]) -> list[list[Span]]:
        return [
            [
                Span(
                    e.start,
                    e.end,
                    e.entity_type if e.entity_type in gold_labels else map_label(e.entity_type),
                )  # type: ignore[attr-defined]
                for e in p
            ]
            for p in predictions
        ]

    guard_report = score("guard", records, spans(list(detector.analyze_batch(texts))))  # type: ignore[arg-type]
    vanilla_report = score("vanilla", records, spans(list(vanilla.analyze_batch(texts))))  # type: ignore[arg-type]

    result = {
        "data": str(args.data.name),
        "texts": n,
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
        "texts_per_second": {
            "vanilla_presidio": round(vanilla_rate, 1),
            "spacy_ner_only": round(ner_rate, 1),
            "guard_1_process": round(guard_rate, 1),
            f"guard_{cores}_processes": round(guard_multi_rate, 1),
        },
        "ratios": {
            "guard_vs_vanilla_presidio": round(guard_rate / vanilla_rate, 2),
            "guard_vs_spacy_ner_only": round(guard_rate / ner_rate, 2),
            f"guard_{cores}_processes_vs_vanilla_presidio": round(
                guard_multi_rate / vanilla_rate, 2
            ),
        },
        "accuracy": {
            "guard": {
                "micro_f2": round(guard_report.micro.f_beta(2), 4),
                "any_pii_char_recall": round(guard_report.any_pii_char_recall, 4),
            },
            "vanilla_presidio": {
                "micro_f2": round(vanilla_report.micro.f_beta(2), 4),
                "any_pii_char_recall": round(vanilla_report.any_pii_char_recall, 4),
            },
        },
    }
    print(json.dumps(result, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"\nguard {guard_rate:.0f} texts/s = x{guard_rate / vanilla_rate:.2f} vanilla Presidio "
        f"({vanilla_rate:.0f}/s), {guard_rate / ner_rate:.0%} of the bare NER pass "
        f"({ner_rate:.0f}/s); "
        f"{cores} processes: {guard_multi_rate:.0f} texts/s"
    )


if __name__ == "__main__":
    main()
