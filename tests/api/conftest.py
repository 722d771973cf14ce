"""The API fixtures (tests/fixtures/api.py): an app per test on SQLite and PostgreSQL."""

from tests.fixtures.api import Api, api, open_api

__all__ = ["Api", "api", "open_api"]
