"""The record of processing activities (GDPR Art. 30(1)), as Markdown and as JSON.

Written from :func:`guard.subjects.facts.collect_facts` alone, under the headings of Art. 30(1)
in their order: (a) the controller and the data protection officer, (b) the purposes, (c) the
categories of data subjects and of personal data, (d) the recipients (roles inside the
organisation; systems of record and analytics exports outside it), (e) transfers to third
countries, (f) the time limits for erasure, (g) the technical and organisational security
measures of Art. 32. The JSON document holds the same content, structured, with the source
(file and sha256) of every fact.

Deterministic: no clock is read, so the same policies and settings give byte-identical
documents; a date appears only when the caller passes one.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any, Literal

from guard.records.views import VIEW_FIELDS
from guard.redaction.policy import CHANNELS
from guard.subjects.facts import (
    DEFAULT_SCOPE,
    PAIRS,
    RETENTION_WORDS,
    Document,
    Facts,
    FieldAccess,
    OperatorFacts,
    Source,
    collect_facts,
)
from guard.subjects.policy import RETENTION_KINDS, Period

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date

    from guard.config import Settings

RopaFormat = Literal["md", "json"]
FORMATS: tuple[RopaFormat, ...] = ("md", "json")
MEDIA_TYPES: dict[str, str] = {
    "md": "text/markdown; charset=utf-8",
    "json": "application/json",
}
TITLE = "Record of processing activities"
#: The Art. 30(1) point of each section, in order.
ARTICLES: dict[str, str] = {
    "controller": "Art. 30(1)(a)",
    "purposes": "Art. 30(1)(b)",
    "categories": "Art. 30(1)(c)",
    "recipients": "Art. 30(1)(d)",
    "transfers": "Art. 30(1)(e)",
    "retention": "Art. 30(1)(f)",
    "security": "Art. 30(1)(g), Art. 32(1)",
}


def record_of_processing(
    settings: Settings,
    *,
    tenant: str | None = None,
    fmt: str = "md",
    generated_on: date | None = None,
) -> Document:
    """The record of processing for ``tenant`` (None: the default) as ``md`` or ``json``."""
    from guard.errors import InvalidInputError  # noqa: PLC0415 - only on this path

    if fmt not in FORMATS:
        raise InvalidInputError(f"format: must be one of {', '.join(FORMATS)}")
    facts = collect_facts(settings, tenant=tenant)
    stem = f"record-of-processing-{facts.scope}"
    if fmt == "json":
        text = json.dumps(ropa_json(facts, generated_on=generated_on), indent=2) + "\n"
        return Document(text=text, media_type=MEDIA_TYPES["json"], filename=f"{stem}.json")
    return Document(
        text=ropa_markdown(facts, generated_on=generated_on),
        media_type=MEDIA_TYPES["md"],
        filename=f"{stem}.md",
    )


# --- Markdown -------------------------------------------------------------------------------


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`" if "`" not in text else text


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        _row(*header),
        _row(*("---" for _ in header)),
        *(_row(*(_cell(c) for c in row)) for row in rows),
    ]


def _source_line(*sources: Source) -> str:
    names = ", ".join(f"{s.file} (sha256 {s.sha256[:12]})" for s in sources)
    return f"*Source: {names}.*"


def _period_text(period: Period | None) -> str:
    if period is None:
        return "kept until erased"
    if period.amount == 0:
        return "0 (removed at once)"
    words = period.in_words()
    return str(period) if words == str(period) else f"{period} ({words})"


def _access_text(access: FieldAccess) -> str:
    if access.mode == "masked":
        return f"masked (last {access.keep_last})"
    return access.mode


def _operator_text(operator: OperatorFacts) -> str:
    if not operator.params:
        return operator.operator
    params = ", ".join(
        f'{k} "{v}"' if isinstance(v, str) else f"{k} {v}" for k, v in operator.params
    )
    return f"{operator.operator} ({params})"


def ropa_markdown(facts: Facts, *, generated_on: date | None = None) -> str:
    """The record of processing as Markdown."""
    lines = [f"# {TITLE}", ""]
    lines += _preamble(facts, generated_on)
    lines += _sources(facts)
    lines += _controller(facts)
    lines += _purposes(facts)
    lines += _categories(facts)
    lines += _recipients(facts)
    lines += _transfers(facts)
    lines += _retention(facts)
    lines += _security(facts)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


def _preamble(facts: Facts, generated_on: date | None) -> list[str]:
    lines = [
        (
            "GDPR Art. 30(1). Generated by guard "
            f"{facts.guard_version} from its policies and settings: every statement below is read "
            "off the configuration in force, so a change of policy changes this record."
        ),
        "",
    ]
    if facts.tenant is None:
        own = ", ".join(_code(t) for t in facts.tenants_with_own_entries) or "none"
        lines.append(
            "Scope: every tenant without entries of its own in processing.yaml or "
            f"retention.yaml. Tenants with their own entries: {own} (see `--tenant`)."
        )
    else:
        whose = "its own entry" if facts.controller.own_entry else "the default controller"
        lines.append(f"Scope: tenant {_code(facts.tenant)} (controller: {whose}).")
    if generated_on is not None:
        lines += ["", f"Date: {generated_on.isoformat()}"]
    return [*lines, ""]


def _sources(facts: Facts) -> list[str]:
    rows = [(_code(s.file), s.sha256, s.policy_sha256 or "-") for s in facts.sources]
    return [
        "## Sources",
        "",
        (
            "The files this record was made from (under `policies/`; `settings` is guard's "
            "configuration, hashed over the values read, never a secret). `sha256` is the file's "
            "(as `sha256sum` prints it); `canonical sha256` is what retention runs and export "
            "manifests record."
        ),
        "",
        *_table(("file", "sha256", "canonical sha256"), rows),
        "",
    ]


def _controller(facts: Facts) -> list[str]:
    c = facts.controller
    return [
        f"## (a) Controller and data protection officer ({ARTICLES['controller']})",
        "",
        f"- Controller: {c.name}",
        f"- Contact: {c.contact}",
        f"- Data protection officer: {c.dpo or 'none appointed'}",
        f"- Supervisory authority: {c.authority or 'not stated'}",
        "",
        _source_line(c.source),
        "",
    ]


def _purposes(facts: Facts) -> list[str]:
    rows = [
        (
            _code(p.id),
            p.description,
            f"{p.lawful_basis.replace('_', ' ')}, {p.article}",
            ", ".join(p.data),
            ", ".join(p.export_purposes) or "-",
        )
        for p in facts.purposes
    ]
    header = ("purpose", "description", "lawful basis", "data used", "export purposes")
    return [
        f"## (b) Purposes of the processing ({ARTICLES['purposes']})",
        "",
        *_table(header, rows),
        "",
        _source_line(facts.purposes[0].source),
        "",
    ]


def _categories(facts: Facts) -> list[str]:
    lines = [
        f"## (c) Categories of data subjects and of personal data ({ARTICLES['categories']})",
        "",
        "### Data subjects",
        "",
        *(f"- {s.label}." for s in facts.data_subjects),
        "",
        "### Personal data",
        "",
    ]
    rows = [
        (_code(c.id), c.label, c.stored, ", ".join(c.purposes) or "none (no purpose uses it)")
        for c in facts.personal_data
    ]
    lines += _table(("data", "what it is", "how guard holds it", "purposes"), rows)
    return [*lines, "", _source_line(facts.personal_data[0].source), ""]


def _recipients(facts: Facts) -> list[str]:
    lines = [
        f"## (d) Recipients ({ARTICLES['recipients']})",
        "",
        "### Inside the organisation: roles",
        "",
        (
            "What each role sees of a customer record (views.yaml; a role without `records:read` "
            "in policy.csv sees no field):"
        ),
        "",
    ]
    rows = [(r.role, *(_access_text(r.access(name)) for name in VIEW_FIELDS)) for r in facts.roles]
    lines += _table(("role", *VIEW_FIELDS), rows)
    lines += ["", "What each role may do (policy.csv, with inherited roles resolved):", ""]
    for role in facts.roles:
        extra = []
        if role.reveals_records:
            extra.append("may reveal the full record in clear with a stated reason (audited)")
        if role.makes_packages:
            extra.append("decrypts a customer's whole record to answer an access request")
        notes = f" It {'; it '.join(extra)}." if extra else ""
        permissions = ", ".join(role.permissions) or "none"
        lines.append(f"- **{role.role}** ({role.label}): {permissions}.{notes}")
    roles = facts.roles[0]
    lines += ["", _source_line(roles.views_source, roles.access_source), ""]
    lines += _processors(facts)
    lines += _exports(facts)
    return lines


def _processors(facts: Facts) -> list[str]:
    lines = [
        "### Outside guard: systems of record (processors)",
        "",
        (
            "The upstream systems guard's tool proxy calls (tools.yaml): what each tool sends, "
            "and what each role allowed to call it (policy.csv) gets back."
        ),
        "",
    ]
    if not facts.processors:
        return [*lines, "None: tools.yaml names no upstream.", ""]
    for processor in facts.processors:
        lines += [
            f"#### {processor.name}",
            "",
            f"- Kind: {processor.kind}; transport: {processor.transport}"
            + (" (not encrypted in transit)" if processor.transport == "http" else ""),
        ]
        if not processor.tools:
            lines.append("- No tool calls it.")
        for tool in processor.tools:
            sends = ", ".join(tool.sends) or "nothing"
            who = (
                f"; `{tool.customer_argument}` names the customer" if tool.customer_argument else ""
            )
            out = "; arguments checked like an outgoing message" if tool.sends_data else ""
            lines.append(f"- `{tool.name}`: {tool.description} Sends: {sends}{who}{out}.")
            if not tool.roles:
                lines.append("  - No role may call it.")
            for view in tool.roles:
                fields = "; ".join(f"{pointer} {action}" for pointer, action in view.fields)
                lines.append(
                    f"  - {view.role}: {fields or 'no field rules'}; other strings: "
                    f"{view.other_strings} ({view.channel} channel)."
                )
        lines.append("")
    return [*lines, _source_line(facts.processors[0].source), ""]


def _exports(facts: Facts) -> list[str]:
    lines = ["### Analytics exports", "", "Export profiles (policies/exports):", ""]
    if not facts.exports:
        return [*lines, "None: no export profile is configured.", ""]
    for export in facts.exports:
        serves = ", ".join(export.serves) or "no purpose in processing.yaml"
        lines += [
            f"#### {export.name}",
            "",
            (
                f"{export.description or 'No description.'} Purpose `{export.purpose}` (serves: "
                f"{serves})."
            ),
            "",
        ]
        rows = [
            (c.column, c.action, ", ".join(f"{k} {v}" for k, v in c.params) or "-")
            for c in export.columns
        ]
        lines += _table(("column", "action", "parameters"), rows)
        k_anon = export.k_anonymity
        lines += [
            "",
            f"- Columns the profile does not name: {export.unknown_columns}.",
            f"- Reversible tokens: {'allowed' if export.tokens else 'not allowed'}.",
            "- k-anonymity: "
            + (
                "none declared."
                if k_anon is None
                else f"k = {k_anon.k} on {', '.join(k_anon.quasi_identifiers)} "
                f"({k_anon.on_violation} smaller groups)."
            ),
            "- Personal data leaving in clear: "
            + (", ".join(export.clear_identifiers) or "none")
            + ".",
            "",
            _source_line(export.source),
            "",
        ]
    return lines


def _transfers(facts: Facts) -> list[str]:
    lines = [f"## (e) Transfers to third countries ({ARTICLES['transfers']})", ""]
    if facts.transfers:
        lines += [f"- {t}" for t in facts.transfers]
    else:
        lines.append("None: processing.yaml declares no transfer outside the EEA.")
    return [*lines, "", _source_line(facts.transfers_source), ""]


def _retention(facts: Facts) -> list[str]:
    scopes = list(dict.fromkeys(r.scope for r in facts.retention))
    lines = [
        f"## (f) Time limits for erasure ({ARTICLES['retention']})",
        "",
        (
            "Applied by `guard retention run` and `guard serve`'s scheduler, by crypto-shredding; "
            "a legal hold suspends them for what it covers."
        ),
        "",
    ]
    if facts.tenant is None and len(scopes) > 1:
        lines.append(f"`{DEFAULT_SCOPE}` applies to every tenant not listed beside it.")
        lines.append("")
    rows = []
    for kind in RETENTION_KINDS:
        periods = {r.scope: r.period for r in facts.retention if r.kind == kind}
        rows.append((RETENTION_WORDS[kind][0], *(_period_text(periods[s]) for s in scopes)))
    lines += _table(("data", *scopes), rows)
    return [*lines, "", _source_line(facts.retention[0].source), ""]


def _security(facts: Facts) -> list[str]:
    lines = [f"## (g) Security measures ({ARTICLES['security']})", ""]
    for measure in facts.security:
        lines += [f"### {measure.title}", "", measure.text, ""]
    lines += [_source_line(facts.security[0].source), "", "### Redaction per channel", ""]
    lines += [
        (
            "What detection's findings become in each channel (redaction.yaml): `message` is "
            "outgoing text, `note` internal notes, `export` analytics exports."
        ),
        "",
    ]
    by_channel = {c.channel: c for c in facts.redaction}
    entities = sorted({o.entity for c in facts.redaction for o in c.entities})
    rows = [("default", *(_operator_text(by_channel[ch].default) for ch in CHANNELS))]
    for entity in entities:
        cells = []
        for channel in CHANNELS:
            rule = next((o for o in by_channel[channel].entities if o.entity == entity), None)
            default = by_channel[channel].default
            cells.append(_operator_text(rule or default) + ("" if rule else " (default)"))
        rows.append((entity, *cells))
    lines += _table(("entity type", *CHANNELS), rows)
    return [*lines, "", _source_line(facts.redaction[0].source), ""]


# --- JSON -----------------------------------------------------------------------------------


def _plain(value: object) -> Any:  # noqa: ANN401 - JSON
    """Facts as JSON values; fields marked :data:`PAIRS` as objects."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: (
                {str(k): v for k, v in getattr(value, f.name)}
                if f.metadata.get("json") == PAIRS["json"]
                else _plain(getattr(value, f.name))
            )
            for f in dataclasses.fields(value)
        }
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def ropa_json(facts: Facts, *, generated_on: date | None = None) -> dict[str, Any]:
    """The record of processing as one JSON object, sections in the order of Art. 30(1)."""
    return {
        "document": "record-of-processing",
        "regulation": "GDPR Art. 30(1)",
        "guard_version": facts.guard_version,
        "tenant": facts.tenant,
        "tenants_with_own_entries": list(facts.tenants_with_own_entries),
        "date": None if generated_on is None else generated_on.isoformat(),
        "sources": _plain(facts.sources),
        "controller": {"article": ARTICLES["controller"], **_plain(facts.controller)},
        "purposes": {"article": ARTICLES["purposes"], "purposes": _plain(facts.purposes)},
        "categories": {
            "article": ARTICLES["categories"],
            "data_subjects": _plain(facts.data_subjects),
            "personal_data": _plain(facts.personal_data),
        },
        "recipients": {
            "article": ARTICLES["recipients"],
            "roles": _plain(facts.roles),
            "processors": _plain(facts.processors),
            "exports": _plain(facts.exports),
        },
        "transfers": {
            "article": ARTICLES["transfers"],
            "transfers": list(facts.transfers),
            "source": _plain(facts.transfers_source),
        },
        "retention": {
            "article": ARTICLES["retention"],
            "periods": [
                {
                    "scope": r.scope,
                    "kind": r.kind,
                    "amount": None if r.period is None else r.period.amount,
                    "unit": None if r.period is None else r.period.unit,
                    "text": _period_text(r.period),
                    "source": _plain(r.source),
                }
                for r in facts.retention
            ],
        },
        "security": {
            "article": ARTICLES["security"],
            "measures": _plain(facts.security),
            "redaction": _plain(facts.redaction),
        },
    }
