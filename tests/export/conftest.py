"""Export fixtures: one SparkSession (local[2]) for every Spark test of the run.

Starting Spark takes seconds and loading the model in its Python workers more: every Spark
test shares this session, and with it the workers and their loaded analyzers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.fixtures.api import api, open_api  # noqa: F401 - fixtures for the API tests

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """A local[2] SparkSession for the whole run: quiet, no UI, few shuffle partitions."""
    from guard.export.spark import spark_session, spark_unavailable  # noqa: PLC0415

    reason = spark_unavailable()
    if reason is not None:
        pytest.skip(reason)

    session = spark_session(
        "local[2]",
        "guard-tests",
        config={"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "2"},
    )
    try:
        yield session
    finally:
        session.stop()
