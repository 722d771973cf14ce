"""Evaluation of detection against labeled data: per-entity precision, recall, F1, F2.

Scoring (the project's convention, see ../shared/data/pii/README.md):
- a predicted span is a true positive when it overlaps a gold span of the same label;
- a gold span is found when a prediction of its label overlaps it;
- F2 weighs recall twice as much as precision: missing PII costs more than over-redacting;
- "any-PII" character recall is the share of gold characters covered by any prediction,
  whatever its label: that is what decides whether a value leaks.

``--by-format`` scores the generated format variants (guard.detection.variants) instead: per
entity type and notation, the share of values whose every character is covered by predictions
of their own type, and by any prediction.

Predicted labels that the data set never annotates (a date in a set that labels no dates) are
reported apart and left out of the micro average, since the set cannot say whether they are right.
Guard's finer labels are mapped onto the data's coarser ones (a street address is a LOCATION).
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from guard.errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from pathlib import Path

    from guard.detection.entities import DetectedEntity
    from guard.detection.variants import VariantText

#: guard entity type -> the label evaluation data uses for it.
LABEL_MAP = {
    "STREET_ADDRESS": "LOCATION",
    "US_BANK_NUMBER": "ACCOUNT_ID",
    "MEMBER_NUMBER": "ACCOUNT_ID",
    "ZIP_CODE": "LOCATION",
}


@dataclass(frozen=True)
class GoldRecord:
    """One labeled text."""

    id: str
    text: str
    spans: tuple[tuple[int, int, str], ...]
    kind: str | None = None


@dataclass(frozen=True)
class Span:
    """A predicted span, already mapped to the evaluation label set."""

    start: int
    end: int
    label: str


@dataclass
class LabelScore:
    """Counts for one label."""

    predicted: int = 0
    predicted_correct: int = 0
    gold: int = 0
    gold_found: int = 0

    @property
    def precision(self) -> float:
        """Share of predictions that overlap a gold span of the same label."""
        return self.predicted_correct / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        """Share of gold spans overlapped by a prediction of the same label."""
        return self.gold_found / self.gold if self.gold else 0.0

    def f_beta(self, beta: float) -> float:
        """The F-measure weighing recall ``beta`` times as much as precision."""
        p, r = self.precision, self.recall
        if p + r == 0:
            return 0.0
        b2 = beta * beta
        return (1 + b2) * p * r / (b2 * p + r)


@dataclass
class EvalReport:
    """Everything ``guard eval`` prints for one system."""

    system: str
    records: int
    per_label: dict[str, LabelScore]
    micro: LabelScore
    any_pii_char_recall: float
    unscored_predictions: Counter[str]
    negative_records: int
    negative_predictions: int
    seconds: float = 0.0
    leaks: list[tuple[str, str]] = field(default_factory=list)

    @property
    def texts_per_second(self) -> float:
        """Throughput over the whole data set."""
        return self.records / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary (no raw text)."""
        return {
            "system": self.system,
            "records": self.records,
            "texts_per_second": round(self.texts_per_second, 1),
            "any_pii_char_recall": round(self.any_pii_char_recall, 4),
            "micro": _score_dict(self.micro),
            "per_label": {k: _score_dict(v) for k, v in sorted(self.per_label.items())},
            "unscored_predictions": dict(self.unscored_predictions),
            "negative_records": self.negative_records,
            "negative_predictions": self.negative_predictions,
        }


def _score_dict(score: LabelScore) -> dict[str, float | int]:
    return {
        "precision": round(score.precision, 4),
        "recall": round(score.recall, 4),
        "f1": round(score.f_beta(1.0), 4),
        "f2": round(score.f_beta(2.0), 4),
        "gold": score.gold,
        "predicted": score.predicted,
    }


def load_dataset(path: Path) -> list[GoldRecord]:
    """Read an evaluation JSONL file, naming the line of any malformed record."""
    records: list[GoldRecord] = []
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(
            f"{path}: cannot read ({exc.strerror or type(exc).__name__})"
        ) from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record = _parse_record(line, number)
            if record is None:
                raise InvalidInputError(
                    f"{path}, line {number}: not an evaluation record "
                    '({"id", "text", "spans": [{"start", "end", "label"}]} with valid offsets)'
                )
            records.append(record)
    return records


def _parse_record(line: str, number: int) -> GoldRecord | None:
    """One evaluation record, or None when the line is not one."""
    try:
        raw = json.loads(line)
        text = raw["text"]
        spans = tuple(
            (int(s["start"]), int(s["end"]), str(s["label"])) for s in raw.get("spans", [])
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(text, str) or not all(0 <= s < e <= len(text) for s, e, _ in spans):
        return None
    return GoldRecord(str(raw.get("id", number)), text, spans, raw.get("kind"))


def score(
    system: str,
    records: Sequence[GoldRecord],
    predictions: Sequence[Iterable[Span]],
    *,
    seconds: float = 0.0,
) -> EvalReport:
    """Score predictions (one iterable per record, same order) against the gold spans."""
    gold_labels = {label for r in records for _, _, label in r.spans}
    per_label: dict[str, LabelScore] = defaultdict(LabelScore)
    unscored: Counter[str] = Counter()
    covered_chars = total_chars = 0
    negative_records = negative_predictions = 0
    leaks: list[tuple[str, str]] = []
    for record, predicted in zip(records, predictions, strict=True):
        preds = list(predicted)
        if record.kind == "negative" or (record.kind is None and not record.spans):
            negative_records += 1
            negative_predictions += len(preds)
        for start, end, label in record.spans:
            entry = per_label[label]
            entry.gold += 1
            if any(p.label == label and p.start < end and start < p.end for p in preds):
                entry.gold_found += 1
            chars = set(range(start, end))
            total_chars += len(chars)
            hit = {i for p in preds for i in range(max(p.start, start), min(p.end, end))}
            covered_chars += len(hit)
            if not hit:
                leaks.append((record.id, label))
        for p in preds:
            if p.label not in gold_labels:
                unscored[p.label] += 1
                continue
            entry = per_label[p.label]
            entry.predicted += 1
            if any(label == p.label and p.start < e and s < p.end for s, e, label in record.spans):
                entry.predicted_correct += 1
    micro = LabelScore(
        predicted=sum(s.predicted for s in per_label.values()),
        predicted_correct=sum(s.predicted_correct for s in per_label.values()),
        gold=sum(s.gold for s in per_label.values()),
        gold_found=sum(s.gold_found for s in per_label.values()),
    )
    return EvalReport(
        system=system,
        records=len(records),
        per_label=dict(per_label),
        micro=micro,
        any_pii_char_recall=covered_chars / total_chars if total_chars else 1.0,
        unscored_predictions=unscored,
        negative_records=negative_records,
        negative_predictions=negative_predictions,
        seconds=seconds,
        leaks=leaks,
    )


def map_label(entity_type: str) -> str:
    """The evaluation label for a guard entity type."""
    return LABEL_MAP.get(entity_type, entity_type)


def format_table(reports: Sequence[EvalReport]) -> str:
    """Side-by-side text table: one row per label, one column group per system."""
    labels = sorted({label for r in reports for label in r.per_label})
    header = f"{'label':<20}{'gold':>6}" + "".join(f" | {r.system[:22]:^22}" for r in reports)
    sub = f"{'':<20}{'':>6}" + "".join(f" | {'P':>5}{'R':>6}{'F1':>6}{'F2':>5}" for _ in reports)
    lines = [header, sub, "-" * len(sub)]

    def row(name: str, gold: int, scores: list[LabelScore]) -> str:
        cells = "".join(
            f" | {s.precision:5.2f}{s.recall:6.2f}{s.f_beta(1):6.2f}{s.f_beta(2):5.2f}"
            for s in scores
        )
        return f"{name:<20}{gold:>6}{cells}"

    for label in labels:
        scores = [r.per_label.get(label, LabelScore()) for r in reports]
        gold = max(s.gold for s in scores)
        lines.append(row(label, gold, scores))
    lines.append("-" * len(sub))
    lines.append(row("micro", reports[0].micro.gold, [r.micro for r in reports]))
    lines.append("")
    for r in reports:
        unscored = ", ".join(f"{k} {v}" for k, v in r.unscored_predictions.most_common()) or "none"
        lines.append(
            f"{r.system}: any-PII character recall {r.any_pii_char_recall:.3f}, "
            f"micro F2 {r.micro.f_beta(2):.3f}, {r.texts_per_second:.0f} texts/s "
            f"({r.records} texts in {r.seconds:.2f} s); predictions on {r.negative_records} "
            f"no-PII texts: {r.negative_predictions}; labels the data does not score: {unscored}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------- recall per notation
@dataclass
class NotationScore:
    """How many values of one notation were fully covered: by their own type, by any label."""

    values: int = 0
    found: int = 0
    covered: int = 0

    @property
    def recall(self) -> float:
        """Share of values whose every character a prediction of their own type covers."""
        return self.found / self.values if self.values else 0.0

    @property
    def any_label_recall(self) -> float:
        """Share of values whose every character some prediction covers, whatever its label."""
        return self.covered / self.values if self.values else 0.0


@dataclass
class FormatReport:
    """``guard eval --by-format`` for one system: scores per (entity type, notation)."""

    system: str
    per_notation: dict[tuple[str, str], NotationScore]
    seconds: float = 0.0
    misses: list[tuple[str, str, str, str]] = field(default_factory=list)

    def per_entity(self) -> dict[str, NotationScore]:
        """The notations of each entity type added up."""
        totals: dict[str, NotationScore] = defaultdict(NotationScore)
        for (entity, _), entry in self.per_notation.items():
            total = totals[entity]
            total.values += entry.values
            total.found += entry.found
            total.covered += entry.covered
        return dict(totals)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary: recall per entity type and per notation."""
        entities: dict[str, object] = {}
        for entity, total in self.per_entity().items():
            entities[entity] = {
                **_notation_dict(total),
                "notations": {
                    notation: _notation_dict(entry)
                    for (kind, notation), entry in self.per_notation.items()
                    if kind == entity
                },
            }
        return {"system": self.system, "seconds": round(self.seconds, 2), "entities": entities}


def _notation_dict(entry: NotationScore) -> dict[str, float | int]:
    return {
        "values": entry.values,
        "recall": round(entry.recall, 4),
        "any_label_recall": round(entry.any_label_recall, 4),
    }


def same_label(predicted: str, gold: str) -> bool:
    """Whether a predicted entity type counts as ``gold``'s under the evaluation's mapping."""
    return predicted == gold or map_label(predicted) == map_label(gold)


def _covers(spans: Iterable[tuple[int, int]], start: int, end: int) -> bool:
    """Whether the union of ``spans`` covers every character of [start, end)."""
    reach = start
    for span_start, span_end in sorted(spans):
        if span_start > reach:
            break
        reach = max(reach, span_end)
        if reach >= end:
            return True
    return reach >= end


def score_variants(
    system: str,
    samples: Sequence[VariantText],
    predictions: Sequence[Iterable[tuple[int, int, str]]],
    *,
    seconds: float = 0.0,
) -> FormatReport:
    """Score (start, end, entity type) predictions on the generated variants, one per sample.

    A value is *found* when predictions of its own type (or one the evaluation maps to the
    same label) cover all of its characters, and *covered* when any predictions do: a value
    covered but not found is redacted under the wrong label.
    """
    per_notation: dict[tuple[str, str], NotationScore] = {}
    misses: list[tuple[str, str, str, str]] = []
    for sample, predicted in zip(samples, predictions, strict=True):
        preds = list(predicted)
        entry = per_notation.setdefault((sample.entity_type, sample.notation), NotationScore())
        entry.values += 1
        typed = [(s, e) for s, e, label in preds if same_label(label, sample.entity_type)]
        found = _covers(typed, sample.start, sample.end)
        covered = found or _covers([(s, e) for s, e, _ in preds], sample.start, sample.end)
        entry.found += found
        entry.covered += covered
        if not found:
            misses.append(
                (
                    sample.entity_type,
                    sample.notation,
                    sample.carrier,
                    "wrong label" if covered else "leak",
                )
            )
    return FormatReport(system, per_notation, seconds, misses)


def format_notation_table(reports: Sequence[FormatReport]) -> str:
    """Recall per entity type and notation, one column pair per system."""
    width = 52
    header = f"{'entity type / notation':<{width}}{'values':>7}" + "".join(
        f" | {r.system[:17]:^17}" for r in reports
    )
    sub = f"{'':<{width}}{'':>7}" + "".join(f" | {'type':>8}{'any':>8} " for _ in reports)
    lines = [header, sub, "-" * len(sub)]

    def row(name: str, entries: list[NotationScore]) -> str:
        cells = "".join(f" | {e.recall:8.3f}{e.any_label_recall:8.3f} " for e in entries)
        return f"{name[:width]:<{width}}{entries[0].values:>7}{cells}"

    totals = [r.per_entity() for r in reports]
    for entity in totals[0]:
        lines.append(row(entity, [t[entity] for t in totals]))
        for kind, notation in reports[0].per_notation:
            if kind == entity:
                entries = [r.per_notation[kind, notation] for r in reports]
                marker = "" if all(e.recall == 1.0 for e in entries[:1]) else " *"
                lines.append(row(f"  {notation}{marker}", entries))
    lines.append("-" * len(sub))
    for report in reports:
        entries = list(report.per_notation.values())
        perfect = sum(e.recall == 1.0 for e in entries)
        values = sum(e.values for e in entries)
        found = sum(e.found for e in entries)
        lines.append(
            f"{report.system}: {perfect}/{len(entries)} notations at recall 1.0; "
            f"{found}/{values} values found under their own type ({report.seconds:.2f} s); "
            "* marks a notation below 1.0"
        )
    return "\n".join(lines)


def score_system(
    system: str,
    samples: Sequence[VariantText],
    analyze: Callable[[], Iterable[Sequence[DetectedEntity]]],
) -> FormatReport:
    """Run ``analyze`` (the detection of every sample's text, in order) and score it, timed."""
    started = time.perf_counter()
    predictions = [[(e.start, e.end, e.entity_type) for e in found] for found in analyze()]
    return score_variants(system, samples, predictions, seconds=time.perf_counter() - started)
