"""The API fixtures (tests/fixtures/api.py), and records to write messages about."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.fixtures.api import Api, api, open_api

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Api", "api", "customer", "open_api"]


@pytest.fixture
def customer(api: Api) -> Callable[..., str]:
    """Creates a record in tenant acme (as the admin) and returns its id."""

    def create(**fields: Any) -> str:
        response = api.client.post("/v1/records", json=fields, headers=api.headers("admin"))
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    return create
