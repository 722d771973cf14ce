"""Tone advice: precision and recall per category on the labeled replies, and advise() latency.

Quality: every reply of ``tests/messages/data/tone_replies.jsonl`` (agent replies labeled with
the categories that should fire; an empty list is a good reply) goes through
``ToneAdvisor.advise`` with its customer's last message; a category counts as predicted when at
least one finding of it is returned. Precision, recall and F1 per category (targets: precision
>= 0.9, recall >= 0.8), and for all categories together (micro).

Speed, in the same run:

- ``advise()`` on each reply of the set (with its customer message);
- ``advise()`` on 300-character replies with a 200-character customer message (the budget of
  the message check: well under 0.4 ms at p50), made by joining replies of the set;
- the peer: the readability formula alone (textstat) on the same 300-character replies, the one
  part of advise() that is a library's, so the rules' own cost is the difference;
- hostile text: advise() once on each of several 1 MB texts (runs of punctuation, capitals,
  apostrophes, a phrase repeated), as the rules ship (``limits.max_chars``) and reading the
  whole megabyte.

Results: ``bench/results/tone.json``.

    .venv/bin/python bench/tone.py [--data FILE.jsonl] [--repeat 20] [--show-errors]
                                   [--no-hostile] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from guard.config import PROJECT_ROOT
from guard.messages.tone import (
    CATEGORIES,
    TONE_FILENAME,
    ReadabilitySpec,
    ToneAdvisor,
    load_tone_policy,
    measure_readability,
    parse_tone_policy,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

DATA = PROJECT_ROOT / "tests" / "messages" / "data" / "tone_replies.jsonl"
RESULTS = PROJECT_ROOT / "bench" / "results" / "tone.json"
POLICY = PROJECT_ROOT / "policies" / TONE_FILENAME
TARGET_PRECISION = 0.9
TARGET_RECALL = 0.8
SEED = 20241130
REPLY_CHARS = 300
CUSTOMER_CHARS = 200
SIZED_TEXTS = 200
MEGABYTE = 1_000_000
HOSTILE = {
    "exclamations": "!" * MEGABYTE,
    "full stops": "." * MEGABYTE,
    "capitals": "A" * MEGABYTE,
    "capitals then a digit": ("A" * 999 + "1") * (MEGABYTE // 1000),
    "apostrophes": "A'" * (MEGABYTE // 2),
    "linked capitals": "AB-" * (MEGABYTE // 3),
    "acronym in brackets": "(RMA " * (MEGABYTE // 5),
    "line breaks": "\n" * MEGABYTE,
    "a phrase, repeated": "I can't " * (MEGABYTE // 8),
    "exclaimed word, repeated": "Sorry!! " * (MEGABYTE // 8),
}


def load_replies(path: Path) -> list[dict[str, Any]]:
    """The labeled replies, one JSON object per line."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def evaluate(advisor: ToneAdvisor, replies: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-category counts, precision, recall and F1, and the misclassified reply ids."""
    counts = {category: {"tp": 0, "fp": 0, "fn": 0} for category in CATEGORIES}
    errors: list[dict[str, Any]] = []
    for reply in replies:
        advice = advisor.advise(
            reply["text"], customer_last_message=reply.get("customer_last_message")
        )
        predicted = {finding.category for finding in advice.findings}
        expected = set(reply["labels"])
        for category in CATEGORIES:
            if category in predicted and category in expected:
                counts[category]["tp"] += 1
            elif category in predicted:
                counts[category]["fp"] += 1
            elif category in expected:
                counts[category]["fn"] += 1
        if predicted != expected:
            errors.append(
                {
                    "id": reply["id"],
                    "false_positives": sorted(predicted - expected),
                    "false_negatives": sorted(expected - predicted),
                }
            )
    per_category = {category: _scores(**counts[category]) for category in CATEGORIES}
    total = {key: sum(counts[c][key] for c in CATEGORIES) for key in ("tp", "fp", "fn")}
    return {
        "replies": len(replies),
        "good_replies": sum(1 for reply in replies if not reply["labels"]),
        "per_category": per_category,
        "micro": _scores(**total),
        "errors": errors,
    }


def _scores(tp: int, fp: int, fn: int) -> dict[str, Any]:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "positives": tp + fn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def _percentiles(samples_us: list[float]) -> dict[str, float]:
    ordered = sorted(samples_us)
    return {
        "n": len(ordered),
        "p50_us": statistics.median(ordered),
        "p99_us": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        "mean_us": statistics.fmean(ordered),
    }


def _time_each(calls: Sequence[Callable[[], object]], repeat: int) -> dict[str, float]:
    for call in calls[: min(len(calls), 50)]:  # warm-up
        call()
    samples: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(repeat):
        for call in calls:
            started = clock()
            call()
            samples.append((clock() - started) / 1000)
    return _percentiles(samples)


def _sized(texts: Sequence[str], size: int, rng: random.Random) -> str:
    """Replies of the set joined until ``size`` characters, cut at a word boundary."""
    pieces: list[str] = []
    length = 0
    while length < size:
        piece = rng.choice(texts)
        pieces.append(piece)
        length += len(piece) + 1
    joined = " ".join(pieces)[:size]
    return joined.rsplit(" ", 1)[0] if " " in joined else joined


def measure_speed(
    advisor: ToneAdvisor, replies: Sequence[dict[str, Any]], repeat: int
) -> dict[str, Any]:
    """advise() on the set and on 300/200-character texts, and the readability formula alone."""
    on_set = [
        (
            lambda r=reply: advisor.advise(
                r["text"], customer_last_message=r["customer_last_message"]
            )
        )
        for reply in replies
    ]
    rng = random.Random(SEED)  # noqa: S311 - reproducible test data, not secrets
    agent_texts = [reply["text"] for reply in replies]
    customer_texts = [
        reply["customer_last_message"] for reply in replies if reply["customer_last_message"]
    ]
    sized = [
        (_sized(agent_texts, REPLY_CHARS, rng), _sized(customer_texts, CUSTOMER_CHARS, rng))
        for _ in range(SIZED_TEXTS)
    ]
    on_sized = [
        (lambda t=text, c=customer: advisor.advise(t, customer_last_message=c))
        for text, customer in sized
    ]
    spec = ReadabilitySpec()
    readability_only = [(lambda t=text: measure_readability(t, spec)) for text, _ in sized]
    sized_repeat = max(1, repeat * len(replies) // SIZED_TEXTS)
    return {
        "advise_on_set": _time_each(on_set, repeat),
        "advise_300_chars_with_200_char_customer_message": {
            "reply_chars_mean": statistics.fmean(len(text) for text, _ in sized),
            "customer_chars_mean": statistics.fmean(len(customer) for _, customer in sized),
            **_time_each(on_sized, sized_repeat),
        },
        "peer_readability_only_300_chars": _time_each(readability_only, sized_repeat),
    }


def measure_hostile(advisor: ToneAdvisor, whole: ToneAdvisor) -> dict[str, Any]:
    """Seconds for one advise() on each hostile megabyte: as shipped, and reading all of it."""
    result: dict[str, Any] = {}
    for name, text in HOSTILE.items():
        timings = {}
        for label, which in (("as_shipped_s", advisor), ("whole_text_s", whole)):
            started = time.perf_counter()
            which.advise(text, customer_last_message=text)
            timings[label] = time.perf_counter() - started
        result[name] = timings
    return result


def print_report(
    quality: dict[str, Any],
    speed: dict[str, Any],
    hostile: dict[str, Any],
    *,
    show_errors: bool,
) -> None:
    """The quality table, the latency lines, hostile timings and, if asked, the errors."""
    print(
        f"{quality['replies']} replies ({quality['good_replies']} good), "
        f"targets: precision >= {TARGET_PRECISION}, recall >= {TARGET_RECALL}"
    )
    print(f"{'category':<18} {'pos':>4} {'tp':>4} {'fp':>4} {'fn':>4} {'P':>6} {'R':>6} {'F1':>6}")
    rows = [*quality["per_category"].items(), ("micro", quality["micro"])]
    for name, row in rows:
        flag = ""
        if name != "micro" and (
            row["precision"] < TARGET_PRECISION or row["recall"] < TARGET_RECALL
        ):
            flag = "  below target"
        print(
            f"{name:<18} {row['positives']:>4} {row['tp']:>4} {row['fp']:>4} {row['fn']:>4} "
            f"{row['precision']:>6.3f} {row['recall']:>6.3f} {row['f1']:>6.3f}{flag}"
        )
    print()
    for name, figures in speed.items():
        print(
            f"{name}: p50 {figures['p50_us']:.0f} us, p99 {figures['p99_us']:.0f} us "
            f"(n={figures['n']})"
        )
    if hostile:
        print()
        print(f"{'hostile 1 MB text':<26} {'as shipped':>11} {'whole text':>11}")
        for name, timings in hostile.items():
            print(f"{name:<26} {timings['as_shipped_s']:>10.3f}s {timings['whole_text_s']:>10.3f}s")
    if show_errors:
        print()
        for error in quality["errors"]:
            print(
                f"{error['id']}: false positives {error['false_positives']}, "
                f"false negatives {error['false_negatives']}"
            )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the quality evaluation and the timings, print them, write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeat", type=int, default=20, help="timing passes over the set")
    parser.add_argument("--show-errors", action="store_true")
    parser.add_argument(
        "--no-hostile", dest="hostile", action="store_false", help="skip the 1 MB texts"
    )
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    replies = load_replies(args.data)
    advisor = ToneAdvisor(load_tone_policy(POLICY))
    quality = evaluate(advisor, replies)
    speed = measure_speed(advisor, replies, args.repeat)
    data = yaml.safe_load(POLICY.read_text(encoding="utf-8"))
    data["limits"]["max_chars"] = 2 * MEGABYTE
    whole = ToneAdvisor(parse_tone_policy(data, source=str(POLICY)), warm_up=False)
    hostile = measure_hostile(advisor, whole) if args.hostile else {}
    print_report(quality, speed, hostile, show_errors=args.show_errors)

    result = {
        "machine": platform.platform(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": str(args.data),
        "policy": str(POLICY.relative_to(PROJECT_ROOT)),
        "targets": {"precision": TARGET_PRECISION, "recall": TARGET_RECALL},
        "quality": quality,
        "speed": speed,
        "hostile_1mb": hostile,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
