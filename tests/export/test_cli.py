"""``guard export`` from the command line: files, records, manifests, purposes, reveal."""

from __future__ import annotations

import csv
import json
import re
import shutil
from typing import TYPE_CHECKING

import pyarrow.parquet as pq
from click.testing import CliRunner, Result

from guard.export.cli import export, manifest_path

if TYPE_CHECKING:
    from pathlib import Path

    from guard.config import Settings
    from tests.fixtures.api import Api

SECRET_NAME = "Wilhelmina Vandersloot"
SECRET_EMAIL = "wilhelmina.vandersloot@example.org"
COLUMNS = [
    "ticket_id",
    "customer_id",
    "full_name",
    "email",
    "phone",
    "created_at",
    "birth_date",
    "postcode",
    "amount",
    "note",
]


def run(settings: Settings, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(export, list(args), obj=settings, input=stdin)


def write_tickets(path: Path, rows: int = 60) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for i in range(rows):
            writer.writerow(
                [
                    i,
                    f"CUST-{i % 9}",
                    SECRET_NAME if i % 2 else "John Smith",
                    SECRET_EMAIL if i % 2 else "john.smith@example.com",
                    "+1 415 555 0132",
                    f"2024-0{1 + i % 3}-15",
                    "1980-06-01" if i < 50 else f"{1900 + i}-01-01",
                    "94110",
                    str(10 * i),
                    f"{SECRET_NAME} asked about order {i}; reply to {SECRET_EMAIL}.",
                ]
            )


def test_a_csv_export_writes_the_output_and_manifest_and_audits_it(
    api: Api, tmp_path: Path
) -> None:
    source, output = tmp_path / "tickets.csv", tmp_path / "out" / "tickets.parquet"
    write_tickets(source)
    result = run(
        api.settings,
        "--profile",
        "support_analytics",
        "--input",
        str(source),
        "--output",
        str(output),
        "--workers",
        "1",
        "--tenant",
        "acme",
    )
    assert result.exit_code == 0, result.output
    # the classification and decisions are printed; the values are not
    assert "column decisions:" in result.output
    assert "note" in result.output
    assert SECRET_EMAIL not in result.output
    table = pq.read_table(output)
    assert table.num_rows == 50  # the ten rows with a unique birth year are suppressed (k=5)
    text = json.dumps(table.to_pylist())
    assert SECRET_EMAIL not in text
    assert "Vandersloot" not in text
    manifest = json.loads(manifest_path(output).read_text())
    assert manifest["rows_suppressed"] == 10
    assert manifest["k_anonymity"]["k"] == 5
    assert manifest["input"]["rows"] == 60
    assert manifest["output"]["rows"] == 50
    assert manifest["profile"]["name"] == "support_analytics"
    manifest_id = re.search(r"manifest (\S+) sha256", result.output)
    assert manifest_id is not None
    assert manifest_id.group(1) == manifest["id"]
    events = api.services.audit.search_events(principal="cli")
    run_events = [e for e in events if e["action"] == "export.run"]
    assert len(run_events) == 1
    assert run_events[0]["details"]["manifest_id"] == manifest["id"]
    shown = run(api.settings, "show", manifest["id"], "--tenant", "acme")
    assert shown.exit_code == 0
    assert json.loads(shown.output)["id"] == manifest["id"]
    listed = run(api.settings, "manifests", "--tenant", "acme")
    assert manifest["id"] in listed.output


def test_a_failed_export_leaves_no_output_and_is_audited(api: Api, tmp_path: Path) -> None:
    source, output = tmp_path / "tickets.csv", tmp_path / "tickets.out.csv"
    write_tickets(source)
    with source.open("a", encoding="utf-8") as handle:
        handle.write(f'1,2,"{SECRET_EMAIL}"\n')  # a row with three fields, not ten
    result = run(
        api.settings,
        "--profile",
        "support_analytics",
        "--input",
        str(source),
        "--output",
        str(output),
        "--workers",
        "1",
    )
    assert result.exit_code != 0
    assert "row 61" in str(result.exception)
    assert SECRET_EMAIL not in str(result.exception)
    assert not output.exists()
    assert not manifest_path(output).exists()
    assert not list(tmp_path.glob(".*partial*"))
    failures = [
        e for e in api.services.audit.search_events(principal="cli") if e["action"] == "export.run"
    ]
    assert [e["outcome"] for e in failures] == ["failure"]


def test_usage_errors(api: Api, tmp_path: Path) -> None:
    assert "missing --profile, --input, --output" in run(api.settings).output
    spark_resume = run(
        api.settings,
        "--profile",
        "p",
        "--input",
        str(tmp_path / "a.csv"),
        "--output",
        str(tmp_path / "b"),
        "--engine",
        "spark",
        "--resume",
    )
    assert spark_resume.exit_code != 0
    assert "apply to --engine local only" in spark_resume.output


def test_records_export_never_goes_past_the_analyst_view(api: Api, tmp_path: Path) -> None:
    for i in range(3):
        body = {
            "full_name": f"Alice Marchetti {i}",
            "email": f"alice{i}@example.org",
            "phone": "+44 20 7946 0321",
            "date_of_birth": "1984-03-09",
            "notes": "Her husband Roberto Marchetti called about the refund.",
        }
        response = api.client.post("/v1/records", json=body, headers=api.headers("agent"))
        assert response.status_code == 201, response.text
    output = tmp_path / "customers.parquet"
    result = run(
        api.settings,
        "records",
        "--profile",
        "customer_records",
        "--output",
        str(output),
        "--tenant",
        "acme",
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(output)
    assert table.num_rows == 3
    # hidden from analysts: never a column; the profile's pseudonyms for the rest
    assert "date_of_birth" not in table.column_names
    assert "notes" not in table.column_names
    rows = table.to_pylist()
    assert all(re.fullmatch(r"<EMAIL_ADDRESS_[0-9a-f]{12}>", str(r["email"])) for r in rows)
    assert "Marchetti" not in json.dumps(rows)
    assert "1984" not in json.dumps(rows)
    manifest = json.loads(manifest_path(output).read_text())
    assert manifest["engine"] == "records"
    assert manifest["input"]["rows"] == 3
    # a profile that asks for a field analysts may not see fails, naming it
    profiles = tmp_path / "policies"
    shutil.copytree(api.settings.policies_dir, profiles)
    (profiles / "exports" / "peek.yaml").write_text(
        "purpose: peek\ncolumns:\n  date_of_birth: keep\n", encoding="utf-8"
    )
    peek = run(
        api.settings.model_copy(update={"policies_dir": profiles}),
        "records",
        "--profile",
        "peek",
        "--output",
        str(tmp_path / "peek.parquet"),
        "--tenant",
        "acme",
    )
    assert peek.exit_code != 0
    assert "column 'date_of_birth'" in str(peek.exception)
    assert not (tmp_path / "peek.parquet").exists()


def test_shredding_a_purpose_unlinks_its_pseudonyms_and_tokens(api: Api, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(api.settings.policies_dir, policies)
    (policies / "exports" / "tok.yaml").write_text(
        "purpose: refunds\ntokens: true\nunknown_columns: fail\ncolumns:\n"
        "  email: {action: token, entity: EMAIL_ADDRESS}\n"
        "  who: {action: pseudonym, entity: EMAIL_ADDRESS}\n",
        encoding="utf-8",
    )
    settings = api.settings.model_copy(update={"policies_dir": policies})
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"email": SECRET_EMAIL, "who": SECRET_EMAIL}) + "\n")

    def exported(name: str) -> dict[str, str]:
        out = tmp_path / name
        result = run(
            settings,
            "--profile",
            "tok",
            "--input",
            str(source),
            "--output",
            str(out),
            "--workers",
            "1",
        )
        assert result.exit_code == 0, result.output
        row: dict[str, str] = json.loads(out.read_text().splitlines()[0])
        return row

    first = exported("one.jsonl")
    assert SECRET_EMAIL not in json.dumps(first)
    assert exported("two.jsonl")["who"] == first["who"]  # stable within the purpose
    revealed = run(
        settings,
        "reveal",
        "--purpose",
        "refunds",
        "--reason",
        f"refund for {SECRET_EMAIL}",
        stdin=first["email"],
    )
    assert revealed.exit_code == 0, revealed.output
    assert revealed.output.endswith(f"\n{SECRET_EMAIL}")  # (after the log lines)
    reveal_events = [
        e
        for e in api.services.audit.search_events(principal="cli")
        if e["action"] == "export.token_reveal"
    ]
    assert reveal_events
    assert SECRET_EMAIL not in json.dumps(reveal_events)
    shred = run(settings, "shred-purpose", "refunds", "--yes")
    assert shred.exit_code == 0
    assert "generation 1" in shred.output
    after = run(settings, "reveal", "--purpose", "refunds", "--reason", "x", stdin=first["email"])
    assert after.exit_code != 0
    assert exported("three.jsonl")["who"] != first["who"]  # a new generation: unlinkable
    purposes = run(settings, "purposes").output
    assert "generation 1\tshredded" in purposes
    assert "generation 2\tactive" in purposes
