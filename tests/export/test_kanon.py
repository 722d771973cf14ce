"""k-anonymity over quasi-identifiers: groups below k suppressed (or the export fails)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest

from guard.export.errors import KAnonymityError
from guard.export.io import StagedOutput
from guard.export.kanon import KAnonymityCheck, QuasiIdentifierCounter
from guard.export.profile import KAnonymity

if TYPE_CHECKING:
    from pathlib import Path

RARE_POSTCODE = "ZZ9"


def _batches() -> list[pa.RecordBatch]:
    """12 rows: (1990, SW1) x5, (1985, N1) x4, (None, N1) x2, (1990, ZZ9) x1; over 3 batches."""
    years = ["1990"] * 5 + ["1985"] * 4 + [None, None] + ["1990"]
    codes = ["SW1"] * 5 + ["N1"] * 4 + ["N1", "N1"] + [RARE_POSTCODE]
    ids = list(range(12))
    table = pa.table({"id": ids, "birth_year": years, "postcode": codes})
    batches: list[pa.RecordBatch] = table.to_batches(max_chunksize=5)
    return batches


def test_when_batches_are_counted_then_groups_span_batches_and_null_is_a_value() -> None:
    counter = QuasiIdentifierCounter(["birth_year", "postcode"])
    for batch in _batches():
        counter.add(batch)
    assert counter.rows == 12
    assert counter.counts == {
        ("1990", "SW1"): 5,
        ("1985", "N1"): 4,
        (None, "N1"): 2,
        ("1990", RARE_POSTCODE): 1,
    }
    assert counter.small_groups(4) == {(None, "N1"), ("1990", RARE_POSTCODE)}


def test_when_floats_are_nan_then_they_form_one_group() -> None:
    counter = QuasiIdentifierCounter(["x"])
    counter.add(pa.record_batch({"x": pa.array([float("nan"), float("nan"), 1.0])}))
    assert counter.counts == {("NaN",): 2, (1.0,): 1}


def test_when_groups_are_below_k_then_their_rows_are_suppressed_at_commit(tmp_path: Path) -> None:
    check = KAnonymityCheck(KAnonymity(quasi_identifiers=["birth_year", "postcode"], k=4))
    out = tmp_path / "out.jsonl"
    staged = StagedOutput(out, "jsonl", _batches()[0].schema, state={})
    for batch in _batches():
        staged.write(batch)
        check.add(batch)
    keep = check.resolve()
    assert keep is not None
    rows, _ = staged.commit(keep)
    kept = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows == 9
    assert [row["id"] for row in kept] == list(range(9))
    assert check.rows_suppressed == 3
    assert check.report() == {
        "k": 4,
        "quasi_identifiers": ["birth_year", "postcode"],
        "on_violation": "suppress",
        "rows": 12,
        "groups": 4,
        "groups_below_k": 2,
        "rows_below_k": 3,
        "rows_suppressed": 3,
        "smallest_group_after": 4,
    }


def test_when_every_group_reaches_k_then_nothing_is_filtered() -> None:
    check = KAnonymityCheck(KAnonymity(quasi_identifiers=["postcode"], k=2))
    check.add(pa.record_batch({"postcode": ["A", "A", "B", "B"]}))
    assert check.resolve() is None
    assert check.report()["rows_suppressed"] == 0
    assert check.report()["smallest_group_after"] == 2


def test_when_the_profile_says_fail_then_the_error_counts_rows_and_groups_without_values() -> None:
    check = KAnonymityCheck(
        KAnonymity(quasi_identifiers=["birth_year", "postcode"], k=5, on_violation="fail")
    )
    for batch in _batches():
        check.add(batch)
    with pytest.raises(KAnonymityError) as caught:
        check.resolve()
    message = str(caught.value)
    assert "7 of 12 rows, in 3 groups" in message
    assert "(birth_year, postcode)" in message
    assert "k=5" in message
    assert RARE_POSTCODE not in message
    assert "1985" not in message
