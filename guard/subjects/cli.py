"""``guard subjects``: data subject requests from the command line."""

from __future__ import annotations

import click


@click.group()
def subjects() -> None:
    """Data subject requests: access, portability and erasure (GDPR Arts 15, 17, 20)."""
