"""Authorization: Casbin RBAC with domains (tenants), deny by default, one choke point.

Threat: a caller doing more than its role allows — an agent revealing tokens or reading the
audit trail, a principal of one tenant acting in another, or an operator's typo in the policy
opening everything up (or locking everyone out). Every decision goes through ``enforce``;
cross-tenant requests are refused before Casbin is asked; anything no policy line grants is
denied. A policy is parsed strictly (unknown sections, roles, objects and actions are errors,
where Casbin alone would skip them silently), loaded into a new enforcer and self-checked
before it replaces the one in force, so a broken file never takes effect.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import casbin
import structlog
from casbin.util import key_match

from guard.access.permissions import POLICY_RELOAD, Permission, is_known
from guard.access.principals import ROLES, validate_tenant
from guard.errors import GuardError, InvalidInputError, PolicyError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from guard.access.audit import AuditRecorder
    from guard.access.principals import Principal
    from guard.config import Settings

MODEL_FILE: Final = "model.conf"
POLICY_FILE: Final = "policy.csv"
ANY_TENANT: Final = "*"
#: A tenant name no deployment uses (not a valid tenant), for the self-checks.
_SELF_CHECK_TENANT: Final = "self-check.tenant"
_REQUEST_TOKENS: Final = ("r_sub", "r_dom", "r_obj", "r_act")
_P_FIELDS: Final = 4
_G_FIELDS: Final = 3
DENIED_BY_DEFAULT: Final = "no policy line allows it: denied by default"
#: How often (seconds) a process looks for a policy reload made elsewhere (another worker,
#: another host, ``guard policies reload``).
FOLLOW_SECONDS: Final = 1.0

log = structlog.get_logger(__name__)
#: Casbin evaluates a matcher by parsing it with ``ast.parse`` on every decision, and CPython
#: 3.11's parser keeps its recursion depth per interpreter, not per thread: two parses at once
#: (a decision while another thread loads a policy) can fail with "AST constructor recursion
#: depth mismatch". Every parse of the process's enforcers therefore takes this lock.
_EVAL_LOCK = threading.Lock()


@dataclass(frozen=True)
class PolicyLine:
    """One line of policy.csv, with where it came from."""

    ptype: str
    fields: tuple[str, ...]
    line_number: int

    def __str__(self) -> str:
        return f"{self.ptype}, {', '.join(self.fields)} (policy.csv line {self.line_number})"


@dataclass(frozen=True)
class Decision:
    """Allowed or not, and why (a policy line, cross-tenant refusal, or deny by default)."""

    allowed: bool
    reason: str


@dataclass(frozen=True)
class Explanation:
    """A decision for (role, tenant, action, object), with the policy line that allowed it."""

    role: str
    tenant: str
    action: str
    object: str
    allowed: bool
    reason: str
    policy_line: PolicyLine | None


#: Most decisions one loaded policy remembers; past it the memo starts again (``explain`` takes
#: actions and objects from its caller, so the set of questions asked is not bounded).
DECISION_MEMO_SIZE = 4096


@dataclass(frozen=True)
class _LoadedPolicy:
    """One parsed policy and the decisions already taken under it.

    A Casbin decision depends only on the request (role, tenant, object, action) and the
    policy: the matcher reads no clock and no state. So each decision is taken once per loaded
    policy and remembered; a reload builds a new ``_LoadedPolicy`` with an empty memo, and a
    request is never answered from an older policy. Casbin's own evaluation of the matcher
    takes about 0.1-0.3 ms, and every API request asks at least once.
    """

    enforcer: Any  # casbin.Enforcer, untyped
    lines: dict[tuple[str, ...], PolicyLine]
    decisions: dict[tuple[str, str, str, str], tuple[bool, tuple[str, ...]]] = field(
        default_factory=dict, compare=False
    )

    def decide(self, role: str, tenant: str, obj: str, action: str) -> tuple[bool, tuple[str, ...]]:
        """Casbin's answer and the rule behind it, from the memo when it was asked before."""
        key = (role, tenant, obj, action)
        known = self.decisions.get(key)
        if known is not None:
            return known
        with _EVAL_LOCK:
            allowed, rule = self.enforcer.enforce_ex(role, tenant, obj, action)
        answer = (bool(allowed), tuple(rule))
        if len(self.decisions) >= DECISION_MEMO_SIZE:
            self.decisions.clear()
        self.decisions[key] = answer
        return answer


def parse_policy(text: str) -> tuple[list[PolicyLine], list[PolicyLine]]:
    """The ``p`` and ``g`` lines of a policy file; PolicyError names the first bad line."""
    grants: list[PolicyLine] = []
    inheritance: list[PolicyLine] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        ptype, *fields = (token.strip() for token in line.split(","))
        where = f"policy.csv line {number}"
        if ptype == "p":
            grants.append(_check_grant(PolicyLine("p", tuple(fields), number), where))
        elif ptype == "g":
            inheritance.append(_check_inheritance(PolicyLine("g", tuple(fields), number), where))
        else:
            raise PolicyError(f"{where}: unknown line type (expected 'p' or 'g')")
    if not grants:
        raise PolicyError("policy.csv: no 'p' lines; every request would be denied")
    return grants, inheritance


def _check_domain(domain: str, where: str) -> None:
    if domain == ANY_TENANT:
        return
    try:
        validate_tenant(domain)
    except InvalidInputError:
        raise PolicyError(f"{where}: tenant must be '*' or a valid tenant name") from None


def _check_role(role: str, where: str) -> None:
    if role not in ROLES:
        raise PolicyError(f"{where}: unknown role {role!r}; known roles: {', '.join(ROLES)}")


def _check_grant(line: PolicyLine, where: str) -> PolicyLine:
    if len(line.fields) != _P_FIELDS or not all(line.fields):
        raise PolicyError(f"{where}: expected 'p, role, tenant-or-*, object, action'")
    role, domain, obj, action = line.fields
    _check_role(role, where)
    _check_domain(domain, where)
    if not is_known(action, obj):
        raise PolicyError(f"{where}: unknown action {action!r} on object {obj!r}")
    return line


def _check_inheritance(line: PolicyLine, where: str) -> PolicyLine:
    if len(line.fields) != _G_FIELDS or not all(line.fields):
        raise PolicyError(f"{where}: expected 'g, role, inherited-role, tenant-or-*'")
    role, inherited, domain = line.fields
    _check_role(role, where)
    _check_role(inherited, where)
    if role == inherited:
        raise PolicyError(f"{where}: a role cannot inherit from itself")
    _check_domain(domain, where)
    return line


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read ({type(exc).__name__})") from None


def load_policy(policies_dir: Path) -> _LoadedPolicy:
    """Load and check the policy (see :func:`_load_policy`), one parse in the process at a time."""
    with _EVAL_LOCK:
        return _load_policy(policies_dir)


def _load_policy(policies_dir: Path) -> _LoadedPolicy:
    """Parse, load and self-check model.conf and policy.csv into a new enforcer."""
    model_path = policies_dir / MODEL_FILE
    policy_path = policies_dir / POLICY_FILE
    _read(model_path)  # a clear error for a missing file before Casbin's own
    grants, inheritance = parse_policy(_read(policy_path))
    try:
        enforcer = casbin.Enforcer(str(model_path))
    except Exception as exc:  # noqa: BLE001 - Casbin raises many types for a bad model
        raise PolicyError(f"{model_path}: not a valid Casbin model ({exc})") from None
    _check_model(enforcer, model_path)
    # "*" as a domain in a g line means: this inheritance holds in every tenant
    enforcer.add_named_domain_matching_func("g", key_match)
    try:
        enforcer.add_policies([list(line.fields) for line in grants])
        if inheritance:
            enforcer.add_grouping_policies([list(line.fields) for line in inheritance])
    except Exception as exc:  # noqa: BLE001 - Casbin's own checks on the rules
        raise PolicyError(f"{policy_path}: Casbin rejected the policy ({exc})") from None
    loaded = _LoadedPolicy(
        enforcer=enforcer, lines={line.fields: line for line in grants + inheritance}
    )
    _self_check(loaded, model_path)
    return loaded


def _check_model(enforcer: Any, model_path: Path) -> None:  # noqa: ANN401 - casbin is untyped
    sections = enforcer.model.model
    for section in ("r", "p", "g", "e", "m"):
        if section not in sections:
            raise PolicyError(f"{model_path}: section for {section!r} is missing")
    request = tuple(sections["r"]["r"].tokens)
    if request != _REQUEST_TOKENS:
        raise PolicyError(f"{model_path}: request must be 'r = sub, dom, obj, act'")
    if len(sections["p"]["p"].tokens) != _P_FIELDS:
        raise PolicyError(f"{model_path}: policy must be 'p = sub, dom, obj, act'")


def _self_check(loaded: _LoadedPolicy, model_path: Path) -> None:
    """Refuse a policy that allows by default or leaves nobody able to repair it."""
    checks = (
        ("admin", POLICY_RELOAD, True, "admin must be able to reload the policy"),
        ("agent", Permission("nothing", "nothing"), False, "an unknown action must be denied"),
        ("agent", Permission("reload", "nonexistent"), False, "an unknown object must be denied"),
    )
    for role, permission, expected, why in checks:
        try:
            allowed = bool(
                loaded.enforcer.enforce(
                    role, _SELF_CHECK_TENANT, permission.object, permission.action
                )
            )
        except Exception as exc:  # noqa: BLE001 - a broken matcher fails at evaluation
            raise PolicyError(f"{model_path}: the matcher cannot be evaluated ({exc})") from None
        if allowed != expected:
            raise PolicyError(f"self-check failed: {why}")


class AccessControl:
    """Casbin decisions for principals; reloadable at run time without a window of doubt."""

    def __init__(
        self,
        settings: Settings,
        *,
        audit: AuditRecorder | None = None,
        follow: Callable[[], int | None] | None = None,
        follow_seconds: float = FOLLOW_SECONDS,
    ) -> None:
        """``follow``: the seq of the newest successful ``policy.reload`` in the audit trail.

        With it, a reload made anywhere (another worker process, another host on the same
        database, ``guard policies reload``) reaches this one within ``follow_seconds``: the
        audited reload event is the signal, so there is no second channel to keep in step.
        """
        self._policies_dir = settings.policies_dir
        self._audit = audit
        self._lock = threading.RLock()
        self._loaded = load_policy(self._policies_dir)
        self._follow = follow
        self._follow_seconds = follow_seconds
        self._next_follow = 0.0
        # the reloads already in the trail are what this process has just loaded
        self._applied_seq = follow() if follow is not None else None

    def enforce(
        self, principal: Principal, permission: Permission, *, tenant: str | None = None
    ) -> Decision:
        """Whether ``principal`` may ``permission`` in ``tenant`` (its own tenant by default)."""
        target = principal.tenant if tenant is None else tenant
        if target != principal.tenant:
            return Decision(
                allowed=False,
                reason="denied: a principal may act only in its own tenant",
            )
        explanation = self._decide(principal.role, target, permission.action, permission.object)
        return Decision(allowed=explanation.allowed, reason=explanation.reason)

    def require(
        self, principal: Principal, permission: Permission, *, tenant: str | None = None
    ) -> None:
        """Return if allowed; raise PermissionDeniedError otherwise."""
        from guard.access.errors import PermissionDeniedError  # noqa: PLC0415 - cycle-free

        decision = self.enforce(principal, permission, tenant=tenant)
        if not decision.allowed:
            raise PermissionDeniedError(
                f"role {principal.role!r} may not {permission.action} {permission.object}"
                + ("" if tenant in (None, principal.tenant) else " in another tenant")
            )

    def explain(self, role: str, tenant: str, action: str, obj: str) -> Explanation:
        """The decision for ``role`` in ``tenant`` and the policy line behind it (audited)."""
        if role not in ROLES:
            raise InvalidInputError(f"role: unknown role; expected one of {', '.join(ROLES)}")
        validate_tenant(tenant)
        explanation = self._decide(role, tenant, action, obj)
        self._record(
            "policy.check",
            decision="allow" if explanation.allowed else "deny",
            outcome="success",
            tenant=tenant,
            details={"role": role, "action": action, "object": obj},
        )
        return explanation

    def reload(self, *, principal: Principal | None = None) -> None:
        """Load the policy files into a new enforcer; swap only if it validates (audited)."""
        try:
            loaded = load_policy(self._policies_dir)
        except GuardError as exc:
            self._record(
                "policy.reload",
                decision="deny",
                outcome="failure",
                principal=principal,
                details={"reason": exc.message[:200]},
            )
            raise
        with self._lock:
            self._loaded = loaded
        seq = self._record(
            "policy.reload",
            decision="allow",
            outcome="success",
            principal=principal,
            details={"lines": len(loaded.lines)},
        )
        if seq is not None:
            with self._lock:
                self._applied_seq = max(seq, self._applied_seq or 0)

    def follow_reloads(self) -> bool:
        """Load the policy files again if a reload was recorded since ours; return whether.

        Checked at most every ``follow_seconds`` (one indexed query). A following load is not
        audited again (the reload that caused it is), and one that fails keeps the policy in
        force, as a reload does.
        """
        if self._follow is None:
            return False
        now = time.monotonic()
        with self._lock:
            if now < self._next_follow:
                return False
            self._next_follow = now + self._follow_seconds
        latest = self._follow()
        with self._lock:
            if latest is None or (self._applied_seq is not None and latest <= self._applied_seq):
                return False
            self._applied_seq = latest
        try:
            loaded = load_policy(self._policies_dir)
        except GuardError as exc:
            log.warning("policy.follow_failed", error=exc.type_slug)
            return False
        with self._lock:
            self._loaded = loaded
        log.info("policy.followed_reload", seq=latest, lines=len(loaded.lines))
        return True

    def _decide(self, role: str, tenant: str, action: str, obj: str) -> Explanation:
        self.follow_reloads()
        with self._lock:
            loaded = self._loaded
        allowed, rule = loaded.decide(role, tenant, obj, action)
        line = loaded.lines.get(rule) if allowed else None
        if allowed and line is not None:
            via = "" if line.fields[0] == role else f" (role {role!r} inherits {line.fields[0]!r})"
            reason = f"allowed by {line}{via}"
        elif allowed:  # pragma: no cover - every allowing rule comes from policy.csv
            reason = "allowed by the policy"
        else:
            reason = DENIED_BY_DEFAULT
        return Explanation(
            role=role,
            tenant=tenant,
            action=action,
            object=obj,
            allowed=bool(allowed),
            reason=reason,
            policy_line=line,
        )

    def _record(
        self,
        action: str,
        *,
        decision: str,
        outcome: str,
        details: dict[str, str | int | bool],
        principal: Principal | None = None,
        tenant: str | None = None,
    ) -> int | None:
        if self._audit is None:
            return None
        return self._audit.record(
            action=action,
            resource="policy",
            decision=decision,
            outcome=outcome,
            principal=principal.id if principal else None,
            role=principal.role if principal else None,
            tenant=tenant or (principal.tenant if principal else None),
            details=details,
        )
