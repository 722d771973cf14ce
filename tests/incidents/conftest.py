"""The API fixtures (tests/fixtures/api.py): incident rules are checked against real events too."""

from __future__ import annotations

from tests.fixtures.api import Api, api, open_api

__all__ = ["Api", "api", "open_api"]
