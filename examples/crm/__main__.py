"""``python -m examples.crm [--host H] [--port P] [--db PATH]``: serve the demo CRM with uvicorn.

The bearer token comes from the environment (``CRM_TOKEN``), never from the command line, where
other users of the machine could read it in the process list.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import uvicorn

from examples.crm.app import create_app

DEFAULT_PORT = 8481
#: Outside the repository, so the demo leaves no untracked file behind.
DEFAULT_DB = Path(tempfile.gettempdir()) / "guard-demo-crm.sqlite3"


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m examples.crm", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    parser.add_argument(
        "--db", type=Path, default=DEFAULT_DB, help="SQLite file (created and seeded if missing)"
    )
    args = parser.parse_args(argv)
    app = create_app(args.db, token=os.environ.get("CRM_TOKEN") or None, host=args.host)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
