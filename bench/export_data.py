"""The support table that bench/export.py pushes through every engine, and its labeled slice.

A deterministic generator (one ``random.Random`` stream, so the first N rows of any larger
table are the N-row table) of what a data team exports from a help desk: ticket and customer
ids, names, emails, phones, dates, a postcode, an amount and a ~150-character free-text note.

Most notes are templated with fake PII (no Faker here: small local lists). Every ``LABEL_STRIDE``-th
row of the first ``LABEL_STRIDE * len(labeled)`` rows instead carries a labeled text from
``../shared/data/pii/*.jsonl`` with its gold character spans, so the any-PII character recall of
each engine can be measured on the note column, aligned by ``ticket_id``. Tables are written in
chunks (memory flat in the number of rows) as Parquet and CSV.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from guard.config import PROJECT_ROOT

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PII_DATA = PROJECT_ROOT.parent / "shared" / "data" / "pii"
LABELED_FILES = ("presidio_generated_large.jsonl", "abcd_dev.jsonl", "nemo_curator_pii.jsonl")
SEED = 20240613
#: Every 8th row carries a labeled note, so the labeled slice (2251 texts) sits in the first
#: ~18,000 rows: inside any prefix the slow peers are measured on.
LABEL_STRIDE = 8
CHUNK_ROWS = 50_000

SCHEMA = pa.schema(
    [
        ("ticket_id", pa.int64()),
        ("customer_id", pa.string()),
        ("full_name", pa.string()),
        ("email", pa.string()),
        ("phone", pa.string()),
        ("created_at", pa.date32()),
        ("birth_date", pa.date32()),
        ("postcode", pa.string()),
        ("amount", pa.float64()),
        ("note", pa.string()),
    ]
)

FIRST = (
    "Maria James Aiko Olusegun Priya Lukas Sofia Mateo Chen Fatima Noah Elena Tomasz Grace "
    "Daniel Amara Hiroshi Ingrid Kwame Laura Mohammed Nadia Oscar Paula Rafael Sana Thomas "
    "Ursula Victor Wen Yusuf Zoe Adrian Beatriz Carlos Dmitri Esther Farid Hannah Ivan"
).split()
LAST = (
    "Garcia Okafor Tanaka Schmidt Novak Haddad Kowalski Nguyen Rossi Lindqvist Murphy Silva "
    "Bennett Castillo Dubois Eriksen Fischer Gonzalez Hoffmann Ibrahim Jensen Kim Larsen "
    "Moreau Nakamura Olsen Petrov Quinn Ramirez Sato Thompson Varga Walsh Yamamoto Zimmermann"
).split()
DOMAINS = ("example.com", "mail.example.org", "example.net", "inbox.example.co.uk")
STREETS = ("Elm Street", "Harbour Road", "Maple Drive", "Station Lane", "Oak Court", "Kingsway")
CITIES = ("Portland OR", "Austin TX", "Abington MA", "Denver CO", "Madison WI", "Tucson AZ")
#: Postcode areas (first three digits): a regional help desk's customers cluster, so the
#: profile's (birth year, postcode prefix) groups hold enough rows for k-anonymity.
AREAS = ("970", "971", "972", "973", "974", "977", "980", "981", "983", "984", "986", "988")
PRODUCTS = ("router", "headset", "jacket", "coffee grinder", "monitor", "phone case", "backpack")
NOTES = (
    (
        "{name} called about order {order}: parcel never arrived. Wants a replacement by Friday. "
        "Call back on {phone} once the claim is filed."
    ),
    (
        "Customer asked to change the delivery address to {street}, {city}. Confirmed by email to "
        "{email}. No other changes to the account."
    ),
    (
        "Refund of {amount} approved for the {product}; {name} will get a confirmation at {email} "
        "within two working days. Ticket can close."
    ),
    (
        "Chat: card declined twice for order {order}. Bank confirmed no block. Sent a payment link "
        "by text to {phone}. Follow up on Monday if unpaid."
    ),
    (
        "Wrong size {product} delivered. Return label issued, pick-up booked for Thursday morning. "
        "Customer was patient and polite throughout the call."
    ),
    (
        "{name} reported the {product} stopped charging after a week. Troubleshooting done, "
        "no luck; replacement shipped to {street}, {city}."
    ),
    (
        "Asked how loyalty points work on the silver tier and whether they expire. Explained the "
        "rules and sent the help-centre link. Nothing else needed."
    ),
    (
        "Password reset requested from {email}; identity checked with date of birth {dob}. Reset "
        "link sent, customer logged in while still on the call."
    ),
)


@dataclass(frozen=True, slots=True)
class LabeledNote:
    """A labeled text placed in one row's note, with its gold PII character spans."""

    ticket_id: int
    text: str
    spans: tuple[tuple[int, int], ...]


def load_labeled(data_dir: Path = PII_DATA) -> list[tuple[str, tuple[tuple[int, int], ...]]]:
    """Every labeled text of the development sets with its gold spans, in file order."""
    texts: list[tuple[str, tuple[tuple[int, int], ...]]] = []
    for name in LABELED_FILES:
        with (data_dir / name).open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    record = json.loads(line)
                    spans = tuple((int(s["start"]), int(s["end"])) for s in record["spans"])
                    texts.append((str(record["text"]), spans))
    return texts


def labeled_notes(rows: int, data_dir: Path = PII_DATA) -> list[LabeledNote]:
    """The labeled notes a table of ``rows`` rows holds, keyed by their ticket id."""
    placed = []
    for i, (text, spans) in enumerate(load_labeled(data_dir)):
        row = i * LABEL_STRIDE
        if row >= rows:
            break
        placed.append(LabeledNote(row + 1, text, spans))
    return placed


def _rows(rows: int, labeled: dict[int, str], seed: int) -> Iterator[pa.RecordBatch]:
    rng = random.Random(seed)  # noqa: S311 - fake data, not secrets
    customers = max(1, rows // 4)
    start = date(2023, 1, 1)
    for first_row in range(0, rows, CHUNK_ROWS):
        columns: dict[str, list[object]] = {name: [] for name in SCHEMA.names}
        for row in range(first_row, min(rows, first_row + CHUNK_ROWS)):
            ticket_id = row + 1
            customer = rng.randrange(customers)
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            email = f"{name.lower().replace(' ', '.')}{rng.randrange(1000)}@{rng.choice(DOMAINS)}"
            phone = rng.choice(("+1 ({a}) {b}-{c}", "{a}-{b}-{c}", "({a}) {b} {c}")).format(
                a=rng.randint(201, 989), b=rng.randint(200, 999), c=f"{rng.randrange(10000):04d}"
            )
            birth = date(rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28))
            amount = round(rng.uniform(1, 900), 2)
            template = rng.choice(NOTES)
            templated = template.format(
                name=name,
                email=email,
                phone=phone,
                order=rng.randint(10**8, 10**9 - 1),
                street=f"{rng.randint(1, 9999)} {rng.choice(STREETS)}",
                city=rng.choice(CITIES),
                amount=f"${amount:.2f}",
                product=rng.choice(PRODUCTS),
                dob=birth.isoformat(),
            )
            note = labeled.get(ticket_id, templated)
            columns["ticket_id"].append(ticket_id)
            columns["customer_id"].append(f"C{customer:07d}")
            columns["full_name"].append(name)
            columns["email"].append(email)
            columns["phone"].append(phone)
            columns["created_at"].append(start + timedelta(days=rng.randrange(730)))
            columns["birth_date"].append(birth)
            columns["postcode"].append(f"{rng.choice(AREAS)}{rng.randrange(100):02d}")
            columns["amount"].append(amount)
            columns["note"].append(note)
        yield pa.RecordBatch.from_pydict(columns, schema=SCHEMA)


def write_table(
    folder: Path, rows: int, *, seed: int = SEED, csv: bool = True, row_group_rows: int = 10_000
) -> dict[str, Path]:
    """Write ``support-<rows>.parquet`` (and ``.csv``) under ``folder``; return their paths."""
    labeled = {note.ticket_id: note.text for note in labeled_notes(rows)}
    paths = {"parquet": folder / f"support-{rows}.parquet"}
    if csv:
        paths["csv"] = folder / f"support-{rows}.csv"
    parquet = pq.ParquetWriter(paths["parquet"], SCHEMA)
    text = pacsv.CSVWriter(paths["csv"], SCHEMA) if csv else None
    try:
        for batch in _rows(rows, labeled, seed):
            parquet.write_batch(batch, row_group_size=row_group_rows)
            if text is not None:
                text.write_batch(batch)
    finally:
        parquet.close()
        if text is not None:
            text.close()
    return paths
