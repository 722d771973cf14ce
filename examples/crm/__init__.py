"""A demo customer system (CRM): the upstream guard's tool proxy forwards agents' calls to.

It stands in for a real system of record: it holds fake customers and orders in its own SQLite
file, answers plain HTTP/JSON and MCP (streamable HTTP at ``/mcp``), and trusts whoever holds
its bearer token. It returns everything it has, internal notes included: deciding what an
agent may see is guard's job, not this service's. Start it with
``python -m examples.crm --port 8481 --db crm.sqlite3``.
"""

from examples.crm.app import create_app
from examples.crm.data import CrmStore

__all__ = ["CrmStore", "create_app"]
