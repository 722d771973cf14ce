"""``guard compliance``: the record of processing and the privacy notice, made from policy."""

from __future__ import annotations

import click


@click.group()
def compliance() -> None:
    """Record of processing (GDPR Art 30) and privacy notice, made from the policies."""
