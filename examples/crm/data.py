"""The demo CRM's data: a SQLite file seeded with the same fake customers and orders every time.

Every value is made up. Phone numbers are in the fictional 555-01xx range, email addresses are
on the reserved ``example.*`` domains, card numbers are the card networks' published test
numbers. They still *look* like personal data on purpose: guard's detection must find them in
the free-text fields (``internal_notes``, an order's ``note``) the way it would in a real
system.
"""

from __future__ import annotations

import json
import random
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: Customers ``C1001`` ... ``C1050``; the seed makes every start produce the same rows.
CUSTOMER_COUNT = 50
FIRST_CUSTOMER_NUMBER = 1001
SEED = 20240601

_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    customer_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    phone TEXT NOT NULL,
    postal_address TEXT NOT NULL,
    tier TEXT NOT NULL,
    internal_notes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (customer_id),
    placed_on TEXT NOT NULL,
    status TEXT NOT NULL,
    total_cents INTEGER NOT NULL,
    card_last4 TEXT NOT NULL,
    items TEXT NOT NULL,
    note TEXT
);
CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (customer_id);
CREATE TABLE IF NOT EXISTS refunds (
    refund_id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    amount_cents INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS emails (
    email_id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT NOT NULL REFERENCES customers (customer_id),
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""

_FIRST_NAMES = """Olivia Liam Amelia Noah Isla Oliver Ava Elijah Sofia Lucas Mia Mateo Chloe Ethan
    Zara Arjun Hannah Kenji Leila Tomasz Ingrid Kwame Nadia Diego Freya""".split()
_LAST_NAMES = """Walker Patel Nguyen Schmidt Rossi Okonkwo Larsen Dubois Kowalski Tanaka Murphy
    Haddad Fernandes Bergstrom Adeyemi Novak Costa Lindqvist Moreau Brennan""".split()
_STREETS = """Maple Avenue|Harbour Street|Elm Road|Station Lane|Willow Court|Mill Street|
    Orchard Way|King's Road|Beacon Hill|Riverside Drive""".replace("\n", "").split("|")
_CITIES = [
    "Springfield OR 97477",
    "Portland ME 04101",
    "Madison WI 53703",
    "Boulder CO 80302",
    "Ann Arbor MI 48104",
    "Burlington VT 05401",
]
_DOMAINS = ["example.com", "example.org", "example.net"]
_TIERS = ["standard", "standard", "standard", "silver", "gold", "platinum"]
_COLLEAGUES = ["Priya Natarajan", "Tom Becker", "Aisha Okafor", "Lars Eriksen", "Mei Chen"]
#: The card networks' published test numbers: they pass the Luhn check, and charge nobody.
_TEST_CARDS = ["4111 1111 1111 1111", "5555 5555 5555 4444", "4012 8888 8888 1881"]
_NOTES = [
    "Read card {card} out on a call; {colleague} asked them to use the portal next time.",
    "Escalated by {colleague} after a billing dispute. Be patient, very polite.",
    "{colleague} approved a goodwill credit last month. Prefers email.",
    "Card on file {card} (per {colleague}); verify identity before any refund.",
    "Long-standing customer. Ask for {colleague} if they call about deliveries.",
]
_ORDER_NOTES = [
    None,
    None,
    "Leave the parcel with the neighbour at number 12.",
    "Please call {phone} on arrival.",
    "Send the invoice to {email} as well.",
    "Gift: no prices on the packing slip, please.",
]
_CATALOG = [
    ("SKU-1001", "Wireless headphones", 8999),
    ("SKU-1002", "USB-C charger", 2499),
    ("SKU-1003", "Laptop sleeve", 3450),
    ("SKU-1004", "Mechanical keyboard", 11900),
    ("SKU-1005", "Desk lamp", 4275),
    ("SKU-1006", "Travel mug", 1850),
]
_STATUSES = ["placed", "shipped", "delivered", "delivered", "returned", "cancelled"]
_FIRST_ORDER_DAY = date(2024, 1, 8)


class UnknownCustomerError(LookupError):
    """No customer has this id."""


class UnknownOrderError(LookupError):
    """No order has this id."""


class RefundRejectedError(ValueError):
    """A refund larger than what is left of the order's total."""


@dataclass(frozen=True)
class CrmStore:
    """The CRM's SQLite file: one short connection per operation, so any thread may call it."""

    path: Path

    def initialize(self) -> None:
        """Create the tables and, on first start, seed the fake customers and orders."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)
            if conn.execute("SELECT COUNT(*) FROM customers").fetchone()[0] == 0:
                customers, orders = seed_rows()
                conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?)", customers)
                conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?)", orders)

    def customer_ids(self) -> list[str]:
        """Every customer id, in order."""
        with self._connect() as conn:
            rows = conn.execute("SELECT customer_id FROM customers ORDER BY customer_id")
            return [row[0] for row in rows]

    def customer(self, customer_id: str) -> dict[str, Any]:
        """The customer's document with its orders; :class:`UnknownCustomerError` if none."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM customers WHERE customer_id = ?", (customer_id,)
            ).fetchone()
            if row is None:
                raise UnknownCustomerError(customer_id)
            document = dict(row)
            document["orders"] = _orders_of(conn, customer_id)
            return document

    def orders(self, customer_id: str) -> dict[str, Any]:
        """``{"customer_id", "orders": [...]}``; :class:`UnknownCustomerError` if none."""
        with self._connect() as conn:
            _require_customer(conn, customer_id)
            return {"customer_id": customer_id, "orders": _orders_of(conn, customer_id)}

    def update_address(self, customer_id: str, postal_address: str) -> dict[str, Any]:
        """Replace the customer's postal address; the updated customer document."""
        with self._connect() as conn:
            _require_customer(conn, customer_id)
            conn.execute(
                "UPDATE customers SET postal_address = ? WHERE customer_id = ?",
                (postal_address, customer_id),
            )
        return self.customer(customer_id)

    def refund(self, order_id: str, amount: float, reason: str) -> dict[str, Any]:
        """Record a refund of ``amount`` against the order, at most what is left of its total."""
        amount_cents = round(amount * 100)
        with self._connect() as conn:
            order = conn.execute(
                "SELECT customer_id, total_cents FROM orders WHERE order_id = ?", (order_id,)
            ).fetchone()
            if order is None:
                raise UnknownOrderError(order_id)
            refunded = conn.execute(
                "SELECT COALESCE(SUM(amount_cents), 0) FROM refunds WHERE order_id = ?",
                (order_id,),
            ).fetchone()[0]
            if amount_cents <= 0 or refunded + amount_cents > order["total_cents"]:
                raise RefundRejectedError(order_id)
            cursor = conn.execute(
                "INSERT INTO refunds (order_id, amount_cents, reason, created_at)"
                " VALUES (?, ?, ?, ?)",
                (order_id, amount_cents, reason, _now()),
            )
            return {
                "refund_id": f"R{cursor.lastrowid:05d}",
                "order_id": order_id,
                "customer_id": order["customer_id"],
                "amount": amount_cents / 100,
                "status": "approved",
            }

    def queue_email(self, customer_id: str, subject: str, body: str) -> dict[str, Any]:
        """Record an email to the customer (nothing is sent); ``{"queued": true, "id"}``."""
        with self._connect() as conn:
            _require_customer(conn, customer_id)
            cursor = conn.execute(
                "INSERT INTO emails (customer_id, subject, body, created_at) VALUES (?, ?, ?, ?)",
                (customer_id, subject, body, _now()),
            )
            return {"queued": True, "id": f"E{cursor.lastrowid:05d}"}

    def emails(self, customer_id: str) -> list[dict[str, Any]]:
        """The emails queued for the customer, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT email_id, subject, body FROM emails"
                " WHERE customer_id = ? ORDER BY email_id",
                (customer_id,),
            )
            return [dict(row) for row in rows]

    def _connect(self) -> _Connection:
        return _Connection(self.path)


class _Connection:
    """``with`` opens a connection, commits on success, rolls back on error, always closes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None

    def __enter__(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=10)
        conn.row_factory = sqlite3.Row
        self._conn = conn
        return conn

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        assert self._conn is not None  # noqa: S101 - entered before exited, by construction
        with closing(self._conn) as conn:
            if exc_type is None:
                conn.commit()
            else:
                conn.rollback()


def _require_customer(conn: sqlite3.Connection, customer_id: str) -> None:
    found = conn.execute("SELECT 1 FROM customers WHERE customer_id = ?", (customer_id,))
    if found.fetchone() is None:
        raise UnknownCustomerError(customer_id)


def _orders_of(conn: sqlite3.Connection, customer_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT * FROM orders WHERE customer_id = ? ORDER BY order_id", (customer_id,)
    )
    return [
        {
            "order_id": row["order_id"],
            "placed_on": row["placed_on"],
            "status": row["status"],
            "total": row["total_cents"] / 100,
            "card_last4": row["card_last4"],
            "items": json.loads(row["items"]),
            "note": row["note"],
        }
        for row in rows
    ]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


CustomerRow = tuple[str, str, str, str, str, str, str]
OrderRow = tuple[str, str, str, str, int, str, str, str | None]


def seed_rows() -> tuple[list[CustomerRow], list[OrderRow]]:
    """The seed customers and orders: the same rows on every call."""
    customers: list[CustomerRow] = [
        (
            "C1001",
            "Maria Lopez",
            "maria.lopez@example.com",
            "+1 415-555-0142",
            "742 Evergreen Terrace, Springfield OR 97477",
            "gold",
            (
                "Read card 4111 1111 1111 1111 out on a call; Priya Natarajan asked her to use "
                "the portal next time."
            ),
        )
    ]
    orders: list[OrderRow] = [
        _order(50001, "C1001", 3, "delivered", "4242", [("SKU-1001", 1), ("SKU-1006", 2)], None),
        _order(
            50002,
            "C1001",
            40,
            "shipped",
            "4242",
            [("SKU-1004", 1)],
            "Please call +1 415-555-0142 on arrival, or email maria.lopez@example.com.",
        ),
    ]
    rng = random.Random(SEED)  # noqa: S311 - fake demo data, not a secret
    next_order = 50003
    for number in range(FIRST_CUSTOMER_NUMBER + 1, FIRST_CUSTOMER_NUMBER + CUSTOMER_COUNT):
        customer_id = f"C{number}"
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        email = f"{first}.{last}{number % 100}@{rng.choice(_DOMAINS)}".lower()
        phone = f"+1 {rng.choice(['415', '212', '617', '503'])}-555-01{rng.randint(0, 99):02d}"
        address = f"{rng.randint(1, 980)} {rng.choice(_STREETS).strip()}, {rng.choice(_CITIES)}"
        notes = rng.choice(_NOTES).format(
            card=rng.choice(_TEST_CARDS), colleague=rng.choice(_COLLEAGUES)
        )
        customers.append(
            (customer_id, f"{first} {last}", email, phone, address, rng.choice(_TIERS), notes)
        )
        card_last4 = f"{rng.randint(0, 9999):04d}"
        for _ in range(rng.randint(1, 4)):
            items = [(rng.choice(_CATALOG)[0], rng.randint(1, 3)) for _ in range(rng.randint(1, 3))]
            note = rng.choice(_ORDER_NOTES)
            orders.append(
                _order(
                    next_order,
                    customer_id,
                    rng.randint(0, 300),
                    rng.choice(_STATUSES),
                    card_last4,
                    items,
                    note.format(phone=phone, email=email) if note else None,
                )
            )
            next_order += 1
    return customers, orders


def _order(
    number: int,
    customer_id: str,
    day: int,
    status: str,
    card_last4: str,
    lines: list[tuple[str, int]],
    note: str | None,
) -> OrderRow:
    prices = {sku: (name, cents) for sku, name, cents in _CATALOG}
    items = [
        {"sku": sku, "name": prices[sku][0], "quantity": qty, "unit_price": prices[sku][1] / 100}
        for sku, qty in lines
    ]
    total = sum(prices[sku][1] * qty for sku, qty in lines)
    placed_on = (_FIRST_ORDER_DAY + timedelta(days=day)).isoformat()
    return (
        f"O{number}",
        customer_id,
        placed_on,
        status,
        total,
        card_last4,
        json.dumps(items),
        note,
    )


def iter_customer_ids() -> Iterator[str]:
    """The seeded customer ids, without opening a database."""
    for number in range(FIRST_CUSTOMER_NUMBER, FIRST_CUSTOMER_NUMBER + CUSTOMER_COUNT):
        yield f"C{number}"
