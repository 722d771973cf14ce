"""Tool routes as policy: ``policies/tools.yaml``, validated on load, and argument handling.

An agent reaches customer systems only through the tools this file describes. Each tool names
its JSON Schema (arguments are checked before anything is forwarded), its upstream (an HTTP
endpoint whose path template is filled from the arguments, or a tool of an upstream MCP
server), the argument that names the customer, what each role may see of the response, and a
budget. The file is validated as a whole when it is loaded: a typo stops start-up with a
message naming the tool and field, e.g.
``tools[0] (tool 'lookup_customer').views.agent.fields[2].pointer: ...``.

Two threats shape :func:`render_path`: an argument that walks out of the route (``..``,
``%2f``, ``a/b``) or out of the upstream host (``http://evil``, ``//evil``). Every placeholder
is one percent-encoded path segment, and values that could mean anything else are refused
rather than cleaned. Upstream credentials are read from the environment when a call needs
them, never stored on the policy objects (so never in a ``repr``, a log or a traceback).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast
from urllib.parse import quote, urlsplit

from jsonschema import Draft202012Validator  # type: ignore[import-untyped] # no stubs shipped
from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped] # same
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from guard.errors import GuardError, InvalidInputError, PolicyError
from guard.policyfiles import describe_validation_error, read_policy_yaml
from guard.redaction.operators import Operator, OperatorParamsError, default_registry

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping, Sequence
    from pathlib import Path

TOOLS_FILENAME = "tools.yaml"

Action = Literal["clear", "mask", "pseudonym", "redact", "drop"]
OtherStrings = Literal["scan", "drop"]
Channel = Literal["message", "note", "export"]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]

#: A pointer segment that matches any array index or object member.
WILDCARD = "*"
#: Scope of the pseudonyms tool responses carry (stable per tenant within this scope).
PSEUDONYM_SCOPE = "tools"
#: Entity type shown by ``redact`` when the rule names none: ``<REDACTED>``.
DEFAULT_REDACT_ENTITY = "REDACTED"
#: Entity type inside a pseudonym when the rule names none: ``<VALUE_3f9a1c>``.
DEFAULT_PSEUDONYM_ENTITY = "VALUE"
MAX_TIMEOUT_SECONDS = 60.0
MAX_RESPONSE_BYTES = 10 * 1024 * 1024
MAX_WINDOW_SECONDS = 7 * 24 * 3600
MAX_PATH_VALUE_LENGTH = 1024

_TOOL_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,127}")
_ENTITY_TYPE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_MCP_TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: Which parameters each action takes (``entity`` names what the counters and tags say).
_ACTION_PARAMS: dict[str, frozenset[str]] = {
    "clear": frozenset(),
    "drop": frozenset(),
    "mask": frozenset({"chars_to_keep", "masking_char", "entity"}),
    "pseudonym": frozenset({"length", "entity"}),
    "redact": frozenset({"entity"}),
}
#: Operator behind each transforming action (``redact`` shows the tag ``<ENTITY>``).
_ACTION_OPERATORS = {"mask": "mask", "pseudonym": "pseudonym", "redact": "tag"}


# --- the file, as pydantic models -----------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _env_name(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME.fullmatch(value):
        raise ValueError("environment variable names are UPPER_SNAKE_CASE")
    return value


def _check_base_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold credentials: use credential_env")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return value


class HttpUpstreamSpec(_Strict):
    """An HTTP upstream: base URL from an environment variable or a default, and a credential."""

    kind: Literal["http"]
    base_url_env: str | None = None
    default_base_url: str | None = None
    credential_env: str | None = None

    _env = field_validator("base_url_env", "credential_env")(_env_name)
    _url = field_validator("default_base_url")(_check_base_url)

    @model_validator(mode="after")
    def _has_a_url(self) -> HttpUpstreamSpec:
        if self.base_url_env is None and self.default_base_url is None:
            raise ValueError("needs base_url_env, default_base_url or both")
        return self


class McpUpstreamSpec(_Strict):
    """An upstream MCP server (streamable HTTP): URL from the environment or a default."""

    kind: Literal["mcp"]
    url_env: str | None = None
    default_url: str | None = None
    credential_env: str | None = None

    _env = field_validator("url_env", "credential_env")(_env_name)
    _url = field_validator("default_url")(_check_base_url)

    @model_validator(mode="after")
    def _has_a_url(self) -> McpUpstreamSpec:
        if self.url_env is None and self.default_url is None:
            raise ValueError("needs url_env, default_url or both")
        return self


UpstreamSpec = Annotated[HttpUpstreamSpec | McpUpstreamSpec, Field(discriminator="kind")]


class RouteSpec(_Strict):
    """Where a tool goes: an upstream by name, then method + path (HTTP) or tool (MCP)."""

    name: str = Field(min_length=1)
    method: HttpMethod | None = None
    path: str | None = None
    tool: str | None = None

    @field_validator("path")
    @classmethod
    def _path_template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("/") or value.startswith("//"):
            raise ValueError("path must start with a single '/'")
        if any(ch in value for ch in "?#\\%") or _CONTROL.search(value):
            raise ValueError("path must not contain '?', '#', '\\', '%' or control characters")
        outside = _PLACEHOLDER.sub("", value)
        if "{" in outside or "}" in outside:
            raise ValueError("path has an unbalanced '{' or '}'")
        segments = outside.split("/")[1:]
        if "." in segments or ".." in segments or "//" in value:
            raise ValueError("path must not contain '.', '..' or empty segments")
        for name in _PLACEHOLDER.findall(value):
            if not _IDENTIFIER.fullmatch(name):
                raise ValueError(f"placeholder {{{name}}} is not an argument name")
        return value

    @field_validator("tool")
    @classmethod
    def _mcp_tool(cls, value: str | None) -> str | None:
        if value is not None and not _MCP_TOOL_NAME.fullmatch(value):
            raise ValueError("tool must be 1-128 letters, digits, '_', '.' or '-'")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> RouteSpec:
        http = self.method is not None or self.path is not None
        if http and self.tool is not None:
            raise ValueError("give method and path (HTTP) or tool (MCP), not both")
        if http and (self.method is None or self.path is None):
            raise ValueError("an HTTP route needs both method and path")
        if not http and self.tool is None:
            raise ValueError("give method and path (HTTP upstream) or tool (MCP upstream)")
        return self


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """The segments of an RFC 6901 pointer (``~1`` is ``/``, ``~0`` is ``~``; ``*`` is a wildcard).

    The empty pointer (the whole document) is refused: a rule names a part of the response.
    """
    if not pointer.startswith("/"):
        raise ValueError("a pointer starts with '/' (RFC 6901)")
    segments = []
    for raw in pointer[1:].split("/"):
        if re.search(r"~(?![01])", raw):
            raise ValueError("'~' must be followed by 0 or 1 (RFC 6901)")
        segments.append(raw.replace("~1", "/").replace("~0", "~"))
    return tuple(segments)


def build_operator(action: str, params: Mapping[str, object]) -> Operator | None:
    """The operator behind a transforming action (``None`` for ``clear`` and ``drop``)."""
    name = _ACTION_OPERATORS.get(action)
    if name is None:
        return None
    operator_params = {key: value for key, value in params.items() if key != "entity"}
    return default_registry().create(name, operator_params)


class FieldRuleSpec(_Strict):
    """One response rule: a pointer (``*`` wildcards) and what to do with what it names."""

    pointer: str
    action: Action
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("pointer")
    @classmethod
    def _pointer_parses(cls, value: str) -> str:
        parse_pointer(value)
        return value

    @model_validator(mode="after")
    def _params_fit_action(self) -> FieldRuleSpec:
        allowed = _ACTION_PARAMS[self.action]
        unknown = sorted(set(self.params) - allowed)
        if unknown:
            takes = ", ".join(sorted(allowed)) or "no params"
            raise ValueError(f"{self.action!r} takes {takes}; not {', '.join(unknown)}")
        entity = self.params.get("entity")
        if entity is not None and (
            not isinstance(entity, str) or not _ENTITY_TYPE.fullmatch(entity)
        ):
            raise ValueError("params.entity must be an UPPER_SNAKE_CASE entity type")
        try:
            build_operator(self.action, self.params)
        except OperatorParamsError as exc:
            raise ValueError(exc.message) from None
        return self


class RoleViewSpec(_Strict):
    """What one role sees of a tool's response."""

    fields: list[FieldRuleSpec] = Field(default_factory=list)
    other_strings: OtherStrings = "scan"
    channel: Channel = "message"

    @model_validator(mode="after")
    def _unique_pointers(self) -> RoleViewSpec:
        seen: set[str] = set()
        for rule in self.fields:
            if rule.pointer in seen:
                raise ValueError(f"pointer {rule.pointer!r} has more than one rule")
            seen.add(rule.pointer)
        return self


class BudgetSpec(_Strict):
    """Per principal and tool: calls, and distinct customers, per sliding window."""

    calls: int = Field(gt=0)
    customers: int | None = Field(default=None, gt=0)
    window_seconds: int = Field(gt=0, le=MAX_WINDOW_SECONDS)


class ToolSpecModel(_Strict):
    """One entry of ``tools:``."""

    name: str
    description: str = Field(min_length=1, max_length=2000)
    input_schema: dict[str, Any]
    upstream: RouteSpec
    customer_argument: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=MAX_TIMEOUT_SECONDS)
    max_response_bytes: int = Field(default=1024 * 1024, gt=0, le=MAX_RESPONSE_BYTES)
    sends_data: bool = False
    views: dict[str, RoleViewSpec] = Field(default_factory=dict)
    budget: BudgetSpec | None = None

    @field_validator("name")
    @classmethod
    def _tool_name(cls, value: str) -> str:
        if not _TOOL_NAME.fullmatch(value):
            raise ValueError("tool names are 1-64 of a-z, 0-9, '_', starting with a letter")
        return value

    @field_validator("input_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as exc:
            where = "/".join(str(part) for part in exc.path)
            raise ValueError(
                f"not a valid JSON Schema (at '{where}': {exc.validator} rule)"
            ) from None
        if value.get("type") != "object":
            raise ValueError("must have type: object (arguments are a JSON object)")
        return value

    @model_validator(mode="after")
    def _arguments_exist(self) -> ToolSpecModel:
        properties = self.input_schema.get("properties", {})
        required = set(self.input_schema.get("required", []))
        if self.upstream.path is not None:
            for name in _PLACEHOLDER.findall(self.upstream.path):
                if name not in properties:
                    raise ValueError(f"upstream.path: {{{name}}} is not an input_schema property")
                if name not in required:
                    raise ValueError(f"upstream.path: {{{name}}} must be a required argument")
        if self.customer_argument is not None:
            if self.customer_argument not in properties:
                raise ValueError("customer_argument: not an input_schema property")
            if self.customer_argument not in required:
                # An optional customer argument would let a caller step around the budget.
                raise ValueError("customer_argument: must be a required argument")
        budget = self.budget
        if budget is not None and budget.customers is not None and self.customer_argument is None:
            raise ValueError("budget.customers needs a customer_argument")
        return self


class ToolPolicyFile(_Strict):
    """The whole of ``policies/tools.yaml``; top-level ``x-`` keys hold YAML anchors only."""

    version: Literal[1]
    upstreams: dict[str, UpstreamSpec] = Field(default_factory=dict)
    tools: list[ToolSpecModel] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _without_extensions(cls, value: object) -> object:
        # ``x-views: {customer_agent: &customer_agent ...}`` lets tools share a view by alias.
        if isinstance(value, dict):
            return {
                k: v for k, v in value.items() if not (isinstance(k, str) and k.startswith("x-"))
            }
        return value

    @field_validator("upstreams")
    @classmethod
    def _upstream_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [name for name in value if not _TOOL_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"upstream names are lower-case identifiers: {', '.join(bad)}")
        return value


# --- the built policy -----------------------------------------------------------------------


class _CredentialFromEnvironment:
    """An upstream whose bearer credential lives in an environment variable (its subclasses)."""

    __slots__ = ()
    credential_env: str | None
    _environ: Mapping[str, str]

    def credential(self) -> str | None:
        """The bearer credential, read from the environment now (never kept on the object)."""
        if self.credential_env is None:
            return None
        return self._environ.get(self.credential_env) or None


@dataclass(frozen=True, slots=True)
class HttpUpstream(_CredentialFromEnvironment):
    """An HTTP upstream: where it is and which environment variable holds its credential."""

    name: str
    base_url: str
    credential_env: str | None = None
    _environ: Mapping[str, str] = field(
        default_factory=lambda: os.environ, repr=False, compare=False
    )


@dataclass(frozen=True, slots=True)
class McpUpstream(_CredentialFromEnvironment):
    """An upstream MCP server (streamable HTTP) and the environment variable of its credential."""

    name: str
    url: str
    credential_env: str | None = None
    _environ: Mapping[str, str] = field(
        default_factory=lambda: os.environ, repr=False, compare=False
    )


@dataclass(frozen=True, slots=True)
class HttpRoute:
    """An HTTP tool: method and path template (placeholders are required arguments)."""

    upstream: HttpUpstream
    method: str
    path: str

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The argument names the path template uses, in order."""
        return tuple(_PLACEHOLDER.findall(self.path))


@dataclass(frozen=True, slots=True)
class McpRoute:
    """An MCP tool: the upstream server and the name of the tool there."""

    upstream: McpUpstream
    tool: str


@dataclass(frozen=True, slots=True)
class FieldRule:
    """A built response rule: parsed pointer, action, and its operator (if it transforms)."""

    pointer: str
    segments: tuple[str, ...]
    action: Action
    entity: str | None = None
    operator: Operator | None = None

    @property
    def counted_as(self) -> str:
        """What the entity counters call a value this rule handled."""
        return self.entity or self.action


@dataclass(frozen=True, slots=True)
class RoleView:
    """What one role sees of a response: rules by pointer, then every other string."""

    fields: tuple[FieldRule, ...]
    other_strings: OtherStrings = "scan"
    channel: Channel = "message"


@dataclass(frozen=True, slots=True)
class Budget:
    """Calls and distinct customers a principal may use on one tool per sliding window."""

    calls: int
    customers: int | None
    window_seconds: int


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool as guard runs it."""

    name: str
    description: str
    input_schema: dict[str, Any]
    upstream: HttpRoute | McpRoute
    customer_argument: str | None
    timeout_seconds: float
    max_response_bytes: int
    sends_data: bool
    views: dict[str, RoleView]
    budget: Budget | None
    _validator: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._validator is None:
            object.__setattr__(self, "_validator", Draft202012Validator(self.input_schema))


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    """The loaded tools, by name, and the upstreams they use."""

    tools: dict[str, ToolSpec]
    upstreams: dict[str, HttpUpstream | McpUpstream]


# --- loading --------------------------------------------------------------------------------


def _where(data: object) -> Callable[[Sequence[int | str]], str]:
    """Turn a pydantic location into ``tools[0] (tool 'x').views.agent.fields[2].pointer``."""
    raw_tools = data.get("tools") if isinstance(data, dict) else None

    def where(loc: Sequence[int | str]) -> str:
        text = ""
        parts = list(loc)
        for index, part in enumerate(parts):
            if isinstance(part, int):
                text += f"[{part}]"
                if index == 1 and parts[0] == "tools":
                    text += _tool_label(raw_tools, part)
            else:
                text += f".{part}" if text else str(part)
        return text

    return where


def _tool_label(raw_tools: object, index: int) -> str:
    if isinstance(raw_tools, list) and 0 <= index < len(raw_tools):
        entry = raw_tools[index]
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and len(name) <= 64:  # noqa: PLR2004 - as long as a tool name
            return f" (tool {name!r})"
    return ""


def _tool_where(index: int, name: str) -> str:
    return f"tools[{index}] (tool {name!r})"


def _build_upstream(
    name: str, spec: HttpUpstreamSpec | McpUpstreamSpec, environ: Mapping[str, str], source: str
) -> HttpUpstream | McpUpstream:
    env_name = spec.base_url_env if isinstance(spec, HttpUpstreamSpec) else spec.url_env
    default = spec.default_base_url if isinstance(spec, HttpUpstreamSpec) else spec.default_url
    url = (environ.get(env_name) if env_name else None) or default
    if url is None:
        raise PolicyError(f"{source}: upstreams.{name}: {env_name} is not set and no default given")
    try:
        url = cast("str", _check_base_url(url))
    except ValueError as exc:
        raise PolicyError(f"{source}: upstreams.{name}: {env_name}: {exc}") from None
    url = url.rstrip("/")
    if isinstance(spec, HttpUpstreamSpec):
        return HttpUpstream(name, url, spec.credential_env, environ)
    return McpUpstream(name, url, spec.credential_env, environ)


def _build_view(spec: RoleViewSpec) -> RoleView:
    rules = []
    for rule in spec.fields:
        entity = rule.params.get("entity")
        if entity is None and rule.action == "redact":
            entity = DEFAULT_REDACT_ENTITY
        rules.append(
            FieldRule(
                pointer=rule.pointer,
                segments=parse_pointer(rule.pointer),
                action=rule.action,
                entity=entity,
                operator=build_operator(rule.action, rule.params),
            )
        )
    return RoleView(tuple(rules), spec.other_strings, spec.channel)


def parse_tool_policy(
    data: object,
    *,
    roles: Collection[str],
    source: str = "tool policy",
    environ: Mapping[str, str] | None = None,
) -> ToolPolicy:
    """Validate parsed YAML into a :class:`ToolPolicy`; every error names the tool and field."""
    environ = os.environ if environ is None else environ
    try:
        spec = ToolPolicyFile.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(describe_validation_error(source, exc, where=_where(data))) from None

    upstreams = {
        name: _build_upstream(name, upstream, environ, source)
        for name, upstream in spec.upstreams.items()
    }
    tools: dict[str, ToolSpec] = {}
    for index, tool in enumerate(spec.tools):
        where = f"{source}: {_tool_where(index, tool.name)}"
        if tool.name in tools:
            raise PolicyError(f"{where}.name: another tool already has this name")
        upstream = upstreams.get(tool.upstream.name)
        if upstream is None:
            known = ", ".join(sorted(upstreams)) or "none"
            raise PolicyError(f"{where}.upstream.name: unknown upstream (known: {known})")
        route: HttpRoute | McpRoute
        if isinstance(upstream, HttpUpstream):
            if tool.upstream.method is None or tool.upstream.path is None:
                raise PolicyError(f"{where}.upstream: an HTTP upstream needs method and path")
            route = HttpRoute(upstream, tool.upstream.method, tool.upstream.path)
        else:
            if tool.upstream.tool is None:
                raise PolicyError(f"{where}.upstream: an MCP upstream needs tool")
            route = McpRoute(upstream, tool.upstream.tool)
        unknown_roles = sorted(set(tool.views) - set(roles))
        if unknown_roles:
            raise PolicyError(
                f"{where}.views: unknown role(s) {', '.join(unknown_roles)} "
                f"(known: {', '.join(roles)})"
            )
        budget = tool.budget
        tools[tool.name] = ToolSpec(
            name=tool.name,
            description=tool.description,
            input_schema=tool.input_schema,
            upstream=route,
            customer_argument=tool.customer_argument,
            timeout_seconds=tool.timeout_seconds,
            max_response_bytes=tool.max_response_bytes,
            sends_data=tool.sends_data,
            views={role: _build_view(view) for role, view in tool.views.items()},
            budget=None
            if budget is None
            else Budget(budget.calls, budget.customers, budget.window_seconds),
        )
    return ToolPolicy(tools=tools, upstreams=upstreams)


def load_tool_policy(
    path: Path, *, roles: Collection[str], environ: Mapping[str, str] | None = None
) -> ToolPolicy:
    """Read and validate ``policies/tools.yaml``; URLs come from ``environ`` (default: os's)."""
    return parse_tool_policy(read_policy_yaml(path), roles=roles, source=str(path), environ=environ)


# --- arguments ------------------------------------------------------------------------------

_KEYWORD_WORDS: dict[str, str] = {
    "pattern": "does not match the required pattern",
    "enum": "is not one of the allowed values",
    "const": "is not the allowed value",
    "format": "is not in the required format",
    "minLength": "is too short",
    "maxLength": "is too long",
    "minimum": "is below the minimum",
    "maximum": "is above the maximum",
    "exclusiveMinimum": "is below the minimum",
    "exclusiveMaximum": "is above the maximum",
    "multipleOf": "is not an allowed multiple",
    "minItems": "has too few items",
    "maxItems": "has too many items",
    "uniqueItems": "has duplicate items",
    "minProperties": "has too few members",
    "maxProperties": "has too many members",
    "propertyNames": "has a member name that is not allowed",
    "anyOf": "does not match any allowed form",
    "oneOf": "does not match exactly one allowed form",
    "allOf": "does not match every required form",
    "not": "matches a form that is not allowed",
    "contains": "does not contain a required item",
    "dependentRequired": "is missing a member another member requires",
    "unevaluatedProperties": "has unexpected members",
    "unevaluatedItems": "has unexpected items",
}


def _path_text(parts: Sequence[object]) -> str:
    # Member names can come from the caller (additionalProperties): only identifier-like names
    # are shown, anything else is named by its place.
    text = "arguments"
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and _IDENTIFIER.fullmatch(part):
            text += f".{part}"
        else:
            text += ".<member>"
    return text


def _describe(error: Any) -> str:  # noqa: ANN401 - jsonschema's ValidationError is untyped
    keyword = str(error.validator)
    value = error.validator_value
    if keyword == "type":
        types = value if isinstance(value, list) else [value]
        return "must be of type " + " or ".join(str(t) for t in types)
    if keyword == "required" and isinstance(error.instance, dict):
        missing = [name for name in value if name not in error.instance]
        return "missing required argument(s): " + ", ".join(
            name if _IDENTIFIER.fullmatch(name) else "<member>" for name in missing
        )
    if keyword == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(str(name) for name in error.instance if name not in allowed)
        shown = [name for name in extra if _IDENTIFIER.fullmatch(name)]
        names = ", ".join(shown) if len(shown) == len(extra) else f"{len(extra)} member(s)"
        return f"unexpected argument(s): {names}"
    return _KEYWORD_WORDS.get(keyword, f"fails the {keyword!r} rule")


def validate_arguments(spec: ToolSpec, arguments: object) -> None:
    """Check ``arguments`` against the tool's schema; InvalidInputError names where, not what.

    The message is built from the error's place and keyword only: jsonschema's own messages
    quote the offending value, and arguments may be a customer's data.
    """
    if not isinstance(arguments, dict):
        raise InvalidInputError("arguments: must be a JSON object")
    errors = sorted(
        spec._validator.iter_errors(arguments),  # noqa: SLF001 - built with the spec
        key=lambda error: (list(map(str, error.absolute_path)), str(error.validator)),
    )
    if errors:
        problems = [f"{_path_text(list(e.absolute_path))}: {_describe(e)}" for e in errors[:5]]
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""  # noqa: PLR2004
        raise InvalidInputError(f"tool {spec.name!r}: " + "; ".join(problems) + more)


def customer_value(spec: ToolSpec, arguments: Mapping[str, Any]) -> str | None:
    """The customer the call is about (``customer_argument``), as text, if the tool names one."""
    if spec.customer_argument is None:
        return None
    value = arguments.get(spec.customer_argument)
    return None if value is None else str(value)


def _path_value(name: str, value: object) -> str:
    where = f"arguments.{name}"
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInputError(f"{where}: must be a string or an integer to be used in a path")
    text = str(value)
    if not text:
        raise InvalidInputError(f"{where}: must not be empty")
    if len(text) > MAX_PATH_VALUE_LENGTH:
        raise InvalidInputError(f"{where}: longer than {MAX_PATH_VALUE_LENGTH} characters")
    if text in {".", ".."}:
        raise InvalidInputError(f"{where}: must not be '.' or '..'")
    if any(ch in text for ch in "/\\%"):
        raise InvalidInputError(f"{where}: must not contain '/', '\\' or '%'")
    if _CONTROL.search(text):
        raise InvalidInputError(f"{where}: must not contain control characters")
    if _SCHEME.match(text):
        raise InvalidInputError(f"{where}: must not start with a URL scheme")
    return quote(text, safe="")


def render_path(template: str, arguments: Mapping[str, Any]) -> str:
    r"""The upstream path: each ``{name}`` replaced by its argument as ONE encoded segment.

    Values that could leave the segment (``/``, ``\``, ``%``, ``.``/``..``, control characters,
    a scheme) are refused with an InvalidInputError naming the argument. The result always
    starts with a single ``/``, so joining it to the base URL never changes the host.
    """
    if not template.startswith("/") or template.startswith("//"):
        raise GuardError("path template must start with a single '/'")

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in arguments:
            raise InvalidInputError(f"arguments.{name}: required for the upstream path")
        return _path_value(name, arguments[name])

    path = _PLACEHOLDER.sub(fill, template)
    if not path.startswith("/") or path.startswith("//"):  # pragma: no cover - by construction
        raise GuardError("rendered path does not start with a single '/'")
    return path
