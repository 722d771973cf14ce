"""k-anonymity over an export's quasi-identifiers, checked after transformation.

Why: removing names is not enough. A row whose combination of quasi-identifiers (birth month,
postcode prefix, gender, ...) is shared by fewer than ``k`` rows can single a customer out by
linking it with another data set. The profile declares the quasi-identifiers and ``k``; the
runners count the combinations on the *transformed* batches (after generalisation, so the
check is on what actually leaves) as they stage them, and at commit either suppress (drop)
the rows of groups smaller than ``k`` or fail the export. The report gives counts only, never
a group's values.

A null is a value like any other (rows with a null postcode form a group), and a float NaN
equals every other NaN. Memory is one counter entry per distinct combination of values: it
grows with the number of groups, not with the number of rows.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING

import pyarrow as pa

from guard.export.errors import KAnonymityError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from collections.abc import Set as AbstractSet

    from guard.export.profile import KAnonymity

Group = tuple[object, ...]
_NAN = "NaN"  # a column has one type, so this cannot collide with a float column's values


class QuasiIdentifierCounter:
    """Counts rows per combination of quasi-identifier values, batch by batch."""

    def __init__(self, columns: Sequence[str]) -> None:
        if not columns:
            raise ValueError("k-anonymity needs at least one quasi-identifier")
        self.columns = list(columns)
        self.counts: Counter[Group] = Counter()
        self.rows = 0

    def _groups(self, batch: pa.RecordBatch) -> Iterator[Group]:
        """Each row's combination of quasi-identifier values, NaN made comparable."""
        values: list[list[object]] = []
        for name in self.columns:
            column = batch.column(name)
            items = column.to_pylist()
            if pa.types.is_floating(column.type):
                items = [_NAN if isinstance(v, float) and math.isnan(v) else v for v in items]
            values.append(items)
        return zip(*values, strict=True)

    def add(self, batch: pa.RecordBatch) -> None:
        """Count one transformed batch."""
        self.counts.update(self._groups(batch))
        self.rows += batch.num_rows

    def small_groups(self, k: int) -> set[Group]:
        """The combinations shared by fewer than ``k`` rows."""
        return {group for group, count in self.counts.items() if count < k}

    def keep_mask(self, batch: pa.RecordBatch, small: AbstractSet[Group]) -> pa.BooleanArray:
        """True for the rows of ``batch`` outside ``small``."""
        return pa.array([group not in small for group in self._groups(batch)], type=pa.bool_())

    def report(self, k: int, suppressed_rows: int) -> dict[str, object]:
        """Counts for the manifest: groups, groups below k, rows suppressed; no values."""
        below = [count for count in self.counts.values() if count < k]
        after = [count for count in self.counts.values() if count >= k]
        return {
            "k": k,
            "quasi_identifiers": list(self.columns),
            "rows": self.rows,
            "groups": len(self.counts),
            "groups_below_k": len(below),
            "rows_below_k": sum(below),
            "rows_suppressed": suppressed_rows,
            "smallest_group_after": min(after) if after else None,
        }


class KAnonymityCheck:
    """A profile's k-anonymity rule over an export: count, then suppress or fail."""

    def __init__(self, spec: KAnonymity) -> None:
        self.spec = spec
        self.counter = QuasiIdentifierCounter(spec.quasi_identifiers)
        self._suppressed = 0

    def add(self, batch: pa.RecordBatch) -> None:
        """Count one transformed batch."""
        self.counter.add(batch)

    def resolve(self) -> Callable[[pa.RecordBatch], pa.BooleanArray | None] | None:
        """After the last batch: the filter that suppresses small groups (None if none).

        Raises KAnonymityError when groups are below k and the profile says ``fail``.
        """
        k = self.spec.k
        small = self.counter.small_groups(k)
        if not small:
            self._suppressed = 0
            return None
        rows = sum(self.counter.counts[group] for group in small)
        if self.spec.on_violation == "fail":
            raise KAnonymityError(
                f"k-anonymity not met: {rows} of {self.counter.rows} rows, in {len(small)} "
                f"groups of quasi-identifiers ({', '.join(self.spec.quasi_identifiers)}), "
                f"are shared by fewer than k={k} rows; the profile says fail "
                "(on_violation: suppress would drop them)"
            )
        self._suppressed = rows

        def keep(batch: pa.RecordBatch) -> pa.BooleanArray | None:
            return self.counter.keep_mask(batch, small)

        return keep

    @property
    def rows_suppressed(self) -> int:
        """Rows the filter from :meth:`resolve` drops."""
        return self._suppressed

    def report(self) -> dict[str, object]:
        """The k-anonymity result for the manifest (after :meth:`resolve`)."""
        return {
            **self.counter.report(self.spec.k, self._suppressed),
            "on_violation": self.spec.on_violation,
        }
