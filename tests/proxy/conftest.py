"""The API fixtures, the demo CRM as a real upstream, and guard pointed at it."""

from __future__ import annotations

import pytest

from tests.fixtures.api import Api, api, open_api
from tests.fixtures.crm import Crm, crm

__all__ = ["Api", "Crm", "api", "crm", "open_api", "upstream"]


@pytest.fixture(autouse=True)
def upstream(crm: Crm, monkeypatch: pytest.MonkeyPatch) -> Crm:
    """guard's policies/tools.yaml reads the CRM's address and token from these variables."""
    monkeypatch.setenv("GUARD_UPSTREAM_CRM_URL", crm.url)
    monkeypatch.setenv("GUARD_UPSTREAM_CRM_MCP_URL", crm.mcp_url)
    if crm.token is not None:
        monkeypatch.setenv("GUARD_UPSTREAM_CRM_TOKEN", crm.token)
    return crm
