"""``guard retention``: apply policies/retention.yaml, and legal holds."""

from __future__ import annotations

import click


@click.group()
def retention() -> None:
    """Retention: remove what is past its period (policies/retention.yaml); legal holds."""
