"""The export plan and the transformer: one code path for the API, the local pool and Spark.

:func:`plan_export` decides, once per export, what happens to every column: the profile's rule
for the columns it names; for the others, a classification from a sample (the first non-empty
cells, so every engine decides alike) and the profile's ``unknown_columns``. A
:class:`Transformer` then applies the plan to Arrow record batches. Pseudonyms and tokens are
keyed by the export purpose's key, in columns and in free text alike, so a customer's email
in the ``email`` column and in a note become the same ``<EMAIL_ADDRESS_...>`` within one
purpose, and nothing links them across purposes.

The plan is small and picklable; :class:`TransformerSpec` (plan, purpose key, settings) is what
travels to worker processes and Spark executors, where :meth:`TransformerSpec.build` loads the
model once per process.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from guard.crypto.keys import MasterKey, RedactionKeys
from guard.export.errors import ExportInputError
from guard.redaction.operators import (
    MaskOperator,
    Operator,
    OperatorContext,
    PseudonymOperator,
    TokenOperator,
)
from guard.redaction.service import Redactor

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from guard.config import Settings
    from guard.detection.engine import Detector
    from guard.detection.entities import DetectedEntity
    from guard.export.profile import ColumnRule, ExportProfile
    from guard.redaction.policy import RedactionPolicy

    Detect = Callable[[list[str]], list[list[DetectedEntity]]]

#: The redaction channel free text and classified columns are redacted with.
CHANNEL = "export"
#: Entity type shown in a pseudonym or token when neither the profile nor the data names one.
FALLBACK_ENTITY = "ID"
#: A cell takes an entity type when that type's spans cover this share of its characters.
CELL_COVERAGE = 0.6
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NESTED = (pa.types.is_nested, pa.types.is_dictionary)


@dataclass(frozen=True, slots=True)
class ColumnDecision:
    """What happens to one input column, and why."""

    column: str
    #: keep, drop, pseudonym, token, mask, generalize, scan, or ``entity``: an unnamed column
    #: classified as one entity type, each cell replaced whole by the export channel's operator
    action: str
    entity: str | None
    #: ``profile`` (named there), ``classified`` (by name or content) or ``unknown``
    source: str
    parameters: dict[str, Any] = field(default_factory=dict)
    #: share of sampled cells that held ``entity`` (classification by content)
    share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form, for the report and the manifest."""
        out: dict[str, Any] = {"column": self.column, "action": self.action, "source": self.source}
        if self.entity is not None:
            out["entity"] = self.entity
        if self.parameters:
            out["parameters"] = dict(self.parameters)
        if self.share is not None:
            out["share"] = round(self.share, 4)
        return out


@dataclass(frozen=True, slots=True)
class Classified:
    """What the sample says a column holds."""

    column: str
    entity: str | None
    by: str | None  # "name" | "content" | None
    share: float
    sampled: int


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """Every column's decision for one export; picklable."""

    profile: ExportProfile
    tenant: str
    decisions: tuple[ColumnDecision, ...]
    classification: tuple[Classified, ...] = ()

    @property
    def input_columns(self) -> list[str]:
        """The input's columns, in order."""
        return [d.column for d in self.decisions]

    @property
    def output_columns(self) -> list[str]:
        """The columns that leave, in input order."""
        return [d.column for d in self.decisions if d.action != "drop"]

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        """Kept columns keep their type; every transformed column is a string."""
        fields = []
        for decision in self.decisions:
            if decision.action == "drop":
                continue
            source = input_schema.field(decision.column)
            kind = source.type if decision.action == "keep" else pa.string()
            fields.append(pa.field(decision.column, kind, nullable=True))
        return pa.schema(fields)

    def fingerprint(self) -> str:
        """A stable identity of the decisions (resume checks that a plan did not change)."""
        import hashlib  # noqa: PLC0415 - rarely used
        import json  # noqa: PLC0415

        text = json.dumps(
            [self.profile.sha256, self.tenant, [d.to_dict() for d in self.decisions]],
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def report(self) -> dict[str, Any]:
        """The column decisions and the classification report (no cell values)."""
        return {
            "profile": self.profile.name,
            "profile_sha256": self.profile.sha256,
            "purpose": self.profile.purpose,
            "unknown_columns": self.profile.spec.unknown_columns,
            "columns": [d.to_dict() for d in self.decisions],
            "classification": {
                "sample_rows": self.profile.spec.classification.sample_rows,
                "threshold": self.profile.spec.classification.threshold,
                "columns": [
                    {
                        "column": c.column,
                        "entity": c.entity,
                        "by": c.by,
                        "share": round(c.share, 4),
                        "sampled": c.sampled,
                    }
                    for c in self.classification
                ],
            },
        }


@dataclass
class RunResult:
    """What one export did, for the manifest and the command's summary."""

    engine: str
    workers: int
    plan: ExportPlan
    input_path: str
    output_path: str
    input_format: str
    output_format: str
    rows_in: int
    rows_out: int
    rows_suppressed: int
    input_sha256: str
    output_sha256: str
    entity_counts: dict[str, int]
    kanon: dict[str, object] | None
    seconds: float
    extra: dict[str, object] = field(default_factory=dict)


# ----------------------------------------------------------------------------- cells as text


def cell_text(value: object) -> str:
    """A cell as the text detection sees (and a transformed column shows)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value)) if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


# ----------------------------------------------------------------------------- classification


def _cell_entity(text: str, entities: Sequence[DetectedEntity]) -> str | None:
    """The entity type covering most of a cell, if it covers enough of it."""
    length = len(text.strip())
    if not length or not entities:
        return None
    covered: Counter[str] = Counter()
    for entity in entities:
        covered[entity.entity_type] += entity.end - entity.start
    kind, chars = covered.most_common(1)[0]
    return kind if chars >= CELL_COVERAGE * length else None


def classify_columns(
    columns: Sequence[str],
    sample: pa.Table,
    detect: Detect,
    policy: RedactionPolicy,
    *,
    sample_rows: int,
    threshold: float,
) -> list[Classified]:
    """Classify columns by name (the redaction policy's field names) or by sampled content."""
    by_name: dict[str, str] = {}
    cells: dict[str, list[str]] = {}
    for column in columns:
        named = policy.entity_type_for_field(column)
        if named is not None:
            by_name[column] = named
            continue
        texts: list[str] = []
        for value in sample.column(column).to_pylist():
            if value is None:
                continue
            text = cell_text(value)
            if text.strip():
                texts.append(text)
            if len(texts) >= sample_rows:
                break
        cells[column] = texts
    flat = [text for texts in cells.values() for text in texts]
    found = detect(flat) if flat else []
    results: list[Classified] = []
    cursor = 0
    for column in columns:
        if column in by_name:
            results.append(Classified(column, by_name[column], "name", 1.0, 0))
            continue
        results.append(_classify_cells(column, cells[column], found[cursor:], threshold))
        cursor += len(cells[column])
    return results


def _classify_cells(
    column: str, texts: list[str], found: Sequence[Sequence[DetectedEntity]], threshold: float
) -> Classified:
    """One column's type from its sampled cells' findings (``found`` starts at its cells)."""
    labels = Counter(
        label
        for text, entities in zip(texts, found[: len(texts)], strict=True)
        if (label := _cell_entity(text, entities)) is not None
    )
    if not labels:
        return Classified(column, None, None, 0.0, len(texts))
    kind, count = labels.most_common(1)[0]
    share = count / len(texts)
    if share >= threshold:
        return Classified(column, kind, "content", share, len(texts))
    return Classified(column, None, None, share, len(texts))


def _check_columns(profile: ExportProfile, schema: pa.Schema, source: str) -> None:
    """The input has every profile column once, and nothing the profile cannot handle."""
    names = list(schema.names)
    missing = [column for column in profile.spec.columns if column not in names]
    if missing:
        raise ExportInputError(
            f"the profile {profile.name!r} names it, but the input has no such column",
            source=source,
            column=missing[0],
        )
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise ExportInputError("the input has this column twice", source=source, column=duplicate)
    unknown = [column for column in names if profile.rule(column) is None]
    if unknown and profile.spec.unknown_columns == "fail":
        raise ExportInputError(
            f"the profile {profile.name!r} does not name it and says unknown columns fail "
            f"({len(unknown)} unnamed: {', '.join(repr(c) for c in unknown[:5])})",
            source=source,
            column=unknown[0],
        )
    for column in names:
        kind = schema.field(column).type
        rule = profile.rule(column)
        action = rule.action if rule is not None else profile.spec.unknown_columns
        if any(test(kind) for test in _NESTED) and action not in {"keep", "drop"}:
            raise ExportInputError(
                f"nested type {kind} can only be kept or dropped", source=source, column=column
            )


def _needs_classifying(profile: ExportProfile, column: str) -> bool:
    """Unnamed columns (when scanned), and named ones whose pseudonym needs an entity type."""
    rule = profile.rule(column)
    if rule is None:
        return profile.spec.unknown_columns == "scan"
    return rule.action in {"pseudonym", "token", "mask"} and rule.entity is None


def plan_export(
    profile: ExportProfile,
    schema: pa.Schema,
    sample: pa.Table,
    detect: Detect,
    *,
    tenant: str,
    policy: RedactionPolicy,
    source: str = "input",
) -> ExportPlan:
    """Decide every column's fate; a missing or unsupported column is an error naming it."""
    names = list(schema.names)
    _check_columns(profile, schema, source)
    wanted = [column for column in names if _needs_classifying(profile, column)]
    settings = profile.spec.classification
    classified = classify_columns(
        wanted,
        sample,
        detect,
        policy,
        sample_rows=settings.sample_rows,
        threshold=settings.threshold,
    )
    by_column = {c.column: c for c in classified}
    decisions = []
    for column in names:
        rule = profile.rule(column)
        found = by_column.get(column)
        if rule is not None:
            entity = rule.entity or (found.entity if found else None)
            if rule.action in {"pseudonym", "token", "mask"}:
                entity = entity or FALLBACK_ENTITY
            else:
                entity = None
            decisions.append(
                ColumnDecision(column, rule.action, entity, "profile", rule.parameters())
            )
        elif profile.spec.unknown_columns == "drop":
            decisions.append(ColumnDecision(column, "drop", None, "unknown"))
        elif found is not None and found.entity is not None:
            operator = policy.operator_for(CHANNEL, found.entity)
            decisions.append(
                ColumnDecision(
                    column,
                    "entity",
                    found.entity,
                    "classified",
                    {"operator": operator.name, "by": found.by},
                    found.share if found.by == "content" else None,
                )
            )
        else:
            decisions.append(ColumnDecision(column, "scan", None, "unknown"))
    return ExportPlan(profile, tenant, tuple(decisions), tuple(classified))


# ----------------------------------------------------------------------------- generalisation


def _as_date(value: object) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if _ISO_DATE.fullmatch(text[:10]):
                return dt.date.fromisoformat(text[:10])
            return dt.datetime.fromisoformat(text).date()
        except ValueError:
            return None
    return None


def _as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _fmt(number: float) -> str:
    return str(int(number)) if number.is_integer() else f"{number:g}"


def _date_part(value: object, unit: str) -> str:
    day = _as_date(value)
    if day is None:
        raise ValueError("not an ISO-8601 date")
    if unit == "year":
        return f"{day.year:04d}"
    if unit == "quarter":
        return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year:04d}-{day.month:02d}"


def _band(value: object, width: int, top: int | None) -> str:
    number = _as_number(value)
    if number is None or number < 0:
        raise ValueError("not a non-negative number")
    if top is not None and number >= top:
        return f"{top}+"
    low = math.floor(number / width) * width
    return f"{low}-{low + width - 1}" if width > 1 else str(low)


def _bucket(value: object, width: float) -> str:
    number = _as_number(value)
    if number is None:
        raise ValueError("not a number")
    low = math.floor(number / width) * width
    return f"{_fmt(low)}-{_fmt(low + width)}"


def generalize(value: object, rule: ColumnRule) -> str:
    """The generalised form of one non-null cell; ValueError names what the value is not.

    Dates become ``2024-05`` (month), ``2024-Q2`` (quarter) or ``2024`` (year); ages fall in
    bands (``30-39``, or ``90+`` from ``top``); postcodes keep their first characters
    (spaces removed, upper case); numbers fall in buckets ``[low, low + width)``, ``100-150``.
    """
    if rule.date is not None:
        return _date_part(value, rule.date)
    if rule.band is not None:
        return _band(value, rule.band, rule.top)
    if rule.truncate is not None:
        return "".join(cell_text(value).split()).upper()[: rule.truncate]
    if rule.bucket is not None:
        return _bucket(value, rule.bucket)
    raise ValueError("no generalisation configured")  # pragma: no cover - validated on load


# ----------------------------------------------------------------------------- the transformer


def purpose_redaction_keys(purpose_key: bytes) -> RedactionKeys:
    """Pseudonym and token keys derived from the purpose key (not the tenant's master key)."""
    return RedactionKeys(MasterKey(purpose_key))


class Transformer:
    """Applies a plan to record batches; build one per process and reuse it."""

    def __init__(
        self,
        plan: ExportPlan,
        *,
        purpose_key: bytes,
        detect: Detect,
        redaction_policy: RedactionPolicy,
    ) -> None:
        self.plan = plan
        self._detect = detect
        self._policy = redaction_policy
        self._keys = purpose_redaction_keys(purpose_key)
        self._redactor = Redactor(redaction_policy, self._keys)
        self._channel = redaction_policy.rules_for(CHANNEL)
        self._operators: dict[str, Operator] = {}
        for decision in plan.decisions:
            rule = plan.profile.rule(decision.column)
            if decision.action == "pseudonym" and rule is not None:
                self._operators[decision.column] = PseudonymOperator({"length": rule.length})
            elif decision.action == "token":
                self._operators[decision.column] = TokenOperator()
            elif decision.action == "mask" and rule is not None:
                keep = 4 if rule.keep_last is None else rule.keep_last
                self._operators[decision.column] = MaskOperator({"chars_to_keep": keep})
            elif decision.action == "entity" and decision.entity is not None:
                self._operators[decision.column] = self._channel.operator_for(decision.entity)
        self.entity_counts: Counter[str] = Counter()

    def _context(self, entity: str) -> OperatorContext:
        return OperatorContext(
            entity_type=entity, tenant=self.plan.tenant, scope="", keys=self._keys
        )

    def transform(
        self, batch: pa.RecordBatch, *, first_row: int = 1, source: str = "input"
    ) -> pa.RecordBatch:
        """Transform one batch; the output has the plan's output columns, in order."""
        columns = {name: batch.column(name) for name in batch.schema.names}
        scans = self._scan(batch, columns)
        arrays = []
        fields = []
        for decision in self.plan.decisions:
            if decision.action == "drop":
                continue
            name = decision.column
            column = columns.get(name)
            if column is None:
                raise ExportInputError(
                    "the batch has no such column (the input's schema changed)",
                    source=source,
                    column=name,
                )
            if decision.action == "keep":
                arrays.append(column)
                fields.append(pa.field(name, column.type, nullable=True))
                continue
            values = column.to_pylist()
            if decision.action == "scan":
                out = scans[name]
            elif decision.action == "generalize":
                out = self._generalize(name, values, first_row, source)
            else:
                out = self._whole_cells(decision, values)
            arrays.append(pa.array(out, type=pa.string()))
            fields.append(pa.field(name, pa.string(), nullable=True))
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))

    def _scan(self, batch: pa.RecordBatch, columns: dict[str, Any]) -> dict[str, list[str | None]]:
        """Every scanned column of the batch, detected in one call (one NER batch)."""
        names = [d.column for d in self.plan.decisions if d.action == "scan"]
        cells: dict[str, list[str | None]] = {}
        texts: list[str] = []
        for name in names:
            if name not in columns:
                continue
            values = [None if v is None else cell_text(v) for v in columns[name].to_pylist()]
            cells[name] = values
            texts.extend(v for v in values if v)
        found = iter(self._detect(texts) if texts else [])
        out: dict[str, list[str | None]] = {}
        for name, values in cells.items():
            redacted: list[str | None] = []
            for value in values:
                if not value:
                    redacted.append(value)
                    continue
                result = self._redactor.redact_text(
                    value, next(found), channel=CHANNEL, tenant=self.plan.tenant
                )
                self.entity_counts.update(item.entity_type for item in result.items)
                redacted.append(result.text)
            out[name] = redacted
        del batch
        return out

    def _generalize(
        self, name: str, values: list[Any], first_row: int, source: str
    ) -> list[str | None]:
        rule = self.plan.profile.rule(name)
        assert rule is not None  # noqa: S101 - generalize comes from a profile rule
        out: list[str | None] = []
        for offset, value in enumerate(values):
            if value is None or value == "":
                out.append(None if value is None else "")
                continue
            try:
                out.append(generalize(value, rule))
            except ValueError as exc:
                raise ExportInputError(
                    f"cannot generalize: {exc}", source=source, row=first_row + offset, column=name
                ) from None
        return out

    def _whole_cells(self, decision: ColumnDecision, values: list[Any]) -> list[str | None]:
        operator = self._operators[decision.column]
        context = self._context(decision.entity or FALLBACK_ENTITY)
        out: list[str | None] = []
        counted = 0
        for value in values:
            if value is None:
                out.append(None)
                continue
            text = cell_text(value)
            if not text.strip():
                out.append(text)
                continue
            out.append(operator.operate(text, context))
            counted += 1
        if decision.action == "entity" and decision.entity is not None and counted:
            self.entity_counts[decision.entity] += counted
        return out


# ----------------------------------------------------------------------------- portable spec


def detect_with(detector: Detector, tenant: str) -> Detect:
    """A ``Detect`` over a loaded detector, honouring the tenant's allow and deny lists."""

    def detect(texts: list[str]) -> list[list[DetectedEntity]]:
        return list(detector.analyze_batch(texts, tenant=tenant))

    return detect


@dataclass(frozen=True)
class TransformerSpec:
    """What a worker process or Spark executor needs to build a Transformer: picklable.

    The purpose key travels in it (to local worker processes over a pipe; to Spark executors
    inside the task) because a worker must compute the same pseudonyms; it never reaches a log.
    """

    plan: ExportPlan
    purpose_key: bytes = field(repr=False)
    settings: Settings

    def detector(self) -> Detector:
        """Load the detector (the NLP model): once per process."""
        from guard.detection.engine import Detector  # noqa: PLC0415 - heavy, per process

        return Detector(settings=self.settings)

    def build(self, detector: Detector | None = None) -> Transformer:
        """A transformer with its own detector (or ``detector``, when one is loaded already)."""
        from guard.redaction.policy import POLICY_FILENAME, load_redaction_policy  # noqa: PLC0415

        loaded = detector or self.detector()
        policy = load_redaction_policy(self.settings.policies_dir / POLICY_FILENAME)
        return Transformer(
            self.plan,
            purpose_key=self.purpose_key,
            detect=detect_with(loaded, self.plan.tenant),
            redaction_policy=policy,
        )


def make_plan(
    profile: ExportProfile,
    schema: pa.Schema,
    sample: pa.Table,
    *,
    tenant: str,
    settings: Settings,
    detector: Detector,
    source: str = "input",
) -> ExportPlan:
    """:func:`plan_export` with the configured redaction policy and a loaded detector."""
    from guard.redaction.policy import POLICY_FILENAME, load_redaction_policy  # noqa: PLC0415

    policy = load_redaction_policy(settings.policies_dir / POLICY_FILENAME)
    return plan_export(
        profile,
        schema,
        sample,
        detect_with(detector, tenant),
        tenant=tenant,
        policy=policy,
        source=source,
    )
