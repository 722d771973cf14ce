"""The demo CRM fixture (tests/fixtures/crm.py): one server per test module."""

from tests.fixtures.crm import crm

__all__ = ["crm"]
