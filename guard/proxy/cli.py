"""``guard tools``: list the tools of policies/tools.yaml; pin the upstream MCP tools they call.

``guard tools pin`` is the administrator's review step against tool poisoning: it connects to
each MCP upstream the policy uses, hashes each tool's definition (name, description, input
schema), prints the hash and whether it changed since the last pin, and writes the pins file
(``<GUARD_VAR_DIR>/tool-pins.json``) atomically. From then on a call whose upstream tool no
longer matches its pin is refused (see :mod:`guard.proxy.mcp_upstream`). Every pin is audited
(action ``tools.pin``, principal ``cli``) with its counts.

Register with ``main.add_command(tools)``; commands receive :class:`~guard.config.Settings` as
``ctx.obj``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from guard.proxy.mcp_upstream import PINS_FILENAME, McpToolClient, read_pins, write_pins
from guard.proxy.policy import TOOLS_FILENAME, HttpRoute, McpRoute, load_tool_policy

if TYPE_CHECKING:
    from guard.config import Settings
    from guard.proxy.mcp_upstream import UpstreamTool
    from guard.proxy.policy import ToolPolicy

CLI_PRINCIPAL = "cli"
#: Exit code when an upstream could not be listed or lacks a tool the policy calls.
EXIT_INCOMPLETE = 1
_DESCRIPTION_SHOWN = 100


def _policy(settings: Settings) -> ToolPolicy:
    from guard.access.principals import ROLES  # noqa: PLC0415

    return load_tool_policy(settings.policies_dir / TOOLS_FILENAME, roles=ROLES)


@click.group()
def tools() -> None:
    """The agent tool proxy's tools: list them; pin the upstream MCP tools they call."""


@tools.command("list")
@click.pass_obj
def tools_list(settings: Settings) -> None:
    """Each tool of policies/tools.yaml: name, upstream (kind), roles with a view."""
    policy = _policy(settings)
    for spec in policy.tools.values():
        route = spec.upstream
        if isinstance(route, HttpRoute):
            upstream = f"http {route.upstream.name} {route.method} {route.path}"
        else:
            upstream = f"mcp {route.upstream.name} tool {route.tool}"
        roles = ", ".join(sorted(spec.views)) or "-"
        click.echo(f"{spec.name:<24} {upstream:<48} roles: {roles}")


@tools.command("pin")
@click.option("--tool", "only", default=None, help="Pin only the upstream tool of this tool.")
@click.pass_obj
def tools_pin(settings: Settings, only: str | None) -> None:
    """Hash each upstream MCP tool the policy calls and record the hashes as trusted."""
    policy = _policy(settings)
    routes = [
        (spec.name, spec.upstream)
        for spec in policy.tools.values()
        if isinstance(spec.upstream, McpRoute) and (only is None or spec.name == only)
    ]
    if only is not None and not routes:
        raise click.BadParameter(f"no MCP-backed tool {only!r} in the policy", param_hint="--tool")
    path = settings.var_dir / PINS_FILENAME
    pins = read_pins(path)
    client = McpToolClient(pins_path=path)
    counts = {"pinned": 0, "unchanged": 0, "changed": 0, "new": 0, "missing": 0, "unreachable": 0}
    listings: dict[str, dict[str, UpstreamTool]] = {}
    for name, route in routes:
        upstream = route.upstream
        if upstream.name not in listings:
            try:
                listings[upstream.name] = dict(client.list_upstream_tools(upstream))
            except Exception as exc:  # noqa: BLE001 - reported per upstream; the rest go on
                click.echo(f"guard: error: {exc}", err=True)
                listings[upstream.name] = {}
                counts["unreachable"] += 1
                continue
        found = listings[upstream.name].get(route.tool)
        if found is None:
            click.echo(
                f"guard: error: tool {name!r}: upstream {upstream.name!r} offers no tool "
                f"{route.tool!r}; nothing pinned for it",
                err=True,
            )
            counts["missing"] += 1
            continue
        digest = found.digest
        previous = pins.get(upstream.name, {}).get(route.tool)
        status = "unchanged" if previous == digest else "new" if previous is None else "changed"
        counts[status] += 1
        counts["pinned"] += 1
        pins.setdefault(upstream.name, {})[route.tool] = digest
        click.echo(f"{name:<24} {upstream.name}/{route.tool:<20} {digest}  {status}")
        if status != "unchanged":
            description = found.description
            shown = description[:_DESCRIPTION_SHOWN] + (
                "..." if len(description) > _DESCRIPTION_SHOWN else ""
            )
            click.echo(f"    description: {shown!r}")
    write_pins(path, pins)
    _audit(settings, counts)
    click.echo(f"wrote {path}: {counts['pinned']} pinned ({counts['changed']} changed)")
    if counts["missing"] or counts["unreachable"]:
        sys.exit(EXIT_INCOMPLETE)


def _audit(settings: Settings, counts: dict[str, int]) -> None:
    from guard.audit.service import AuditTrail  # noqa: PLC0415
    from guard.storage.engine import create_engine_for, make_session_factory  # noqa: PLC0415
    from guard.storage.migrate import upgrade_to_head  # noqa: PLC0415

    engine = create_engine_for(settings)
    try:
        upgrade_to_head(engine)
        trail = AuditTrail(settings, make_session_factory(engine))
        failed = counts["missing"] or counts["unreachable"]
        trail.record(
            action="tools.pin",
            resource="tools",
            decision="allow",
            outcome="failure" if failed else "success",
            principal=CLI_PRINCIPAL,
            details=dict(counts),
        )
    finally:
        engine.dispose()
