"""``POST /v1/messages/check``: the check every outgoing message and note passes before it is sent.

Every check is audited (action ``message.check``): the verdict, finding counts by reason and
type, the conversation customer's keyed hash and the keyed hashes of other customers' records
the draft matched. A failed check (unknown customer, lookup down, bad input) is audited too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Request

from guard.access.permissions import MESSAGES_CHECK
from guard.api.routing import GuardRoute
from guard.api.security import Caller, record_allowed, requires, services_of
from guard.errors import GuardError
from guard.messages.policy import POLICY_FILENAME, MessagePolicy, load_message_policy
from guard.messages.schemas import MessageCheckRequest, MessageCheckResponse
from guard.messages.service import MessageGuard
from guard.messages.tone import TONE_FILENAME, ToneAdvisor, load_tone_policy
from guard.records.endpoints import records_of

if TYPE_CHECKING:
    from pathlib import Path

    from guard.config import Settings

router = APIRouter(prefix="/v1/messages", tags=["messages"], route_class=GuardRoute)
ACTION = "message.check"


@dataclass(frozen=True)
class MessagePolicies:
    """The message policy and the tone advisor, loaded once per app."""

    policy: MessagePolicy
    advisor: ToneAdvisor


def load_message_policies(settings: Settings) -> MessagePolicies:
    """``policies/messages.yaml`` and ``policies/tone.yaml``, validated, rules compiled.

    The app loads them at start-up, so a mistake in either stops it with a message naming the
    entry instead of failing the first check. Both are immutable once built, so apps of one
    process share them while the files are unchanged (compiling the tone rules takes ~80 ms).
    """
    paths = (settings.policies_dir / POLICY_FILENAME, settings.policies_dir / TONE_FILENAME)
    return _load_policies(*paths, _stamp(paths[0]), _stamp(paths[1]))


def _stamp(path: Path) -> tuple[int, int] | None:
    """The file's modification time and size (None if missing: the loader says so)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=8)
def _load_policies(
    messages_path: Path,
    tone_path: Path,
    messages_stamp: tuple[int, int] | None,
    tone_stamp: tuple[int, int] | None,
) -> MessagePolicies:
    del messages_stamp, tone_stamp  # part of the cache key only: a changed file is reloaded
    return MessagePolicies(
        policy=load_message_policy(messages_path),
        advisor=ToneAdvisor(load_tone_policy(tone_path)),
    )


def messages_of(request: Request) -> MessageGuard:
    """The app's MessageGuard (``app.state.messages``), built on first use."""
    state = request.app.state
    guard: MessageGuard | None = getattr(state, "messages", None)
    if guard is None:
        services = services_of(request)
        policies: MessagePolicies | None = getattr(state, "message_policies", None)
        if policies is None:
            policies = load_message_policies(services.settings)
        guard = MessageGuard(
            services.settings,
            records=records_of(request),
            analyzer=services.analysis,
            redactor=services.redactor,
            policy=policies.policy,
            advisor=policies.advisor,
        )
        state.messages = guard
    return guard


@router.post(
    "/check",
    response_model=MessageCheckResponse,
    response_model_exclude_none=True,
    # the conversation's customer: not in the tenant, or erased
    responses={404: {"description": "-"}, 410: {"description": "-"}},
)
def check_message(
    body: MessageCheckRequest,
    request: Request,
    caller: Annotated[Caller, Depends(requires(MESSAGES_CHECK))],
) -> MessageCheckResponse:
    """Check a draft: `block` (another customer's data, a secret), `redact` or `allow`.

    Another customer's identifiers are found through the tenant's blind indexes; the finding
    names the kind of data only. Tone advice never changes the verdict.
    """
    services = services_of(request)
    resource = f"channel:{body.channel}"
    try:
        result = messages_of(request).check(
            body.text,
            tenant=caller.principal.tenant,
            channel=body.channel,
            customer_id=body.customer_id,
            conversation_id=body.conversation_id,
            customer_last_message=body.customer_last_message,
        )
    except GuardError as exc:
        record_allowed(
            request,
            caller,
            action=ACTION,
            resource=resource,
            customer=body.customer_id or None,
            outcome="failure",
            details={"reason": exc.type_slug},
        )
        raise
    counts = result.entity_counts()
    services.metrics.count_entities(counts)
    record_allowed(
        request,
        caller,
        action=ACTION,
        resource=resource,
        customer=body.customer_id,
        entity_counts=counts,
        details=result.audit_details(services.audit.customer_hash),
    )
    return MessageCheckResponse.model_validate(
        {
            "verdict": result.verdict,
            "text": result.text,
            "findings": [f.to_dict() for f in result.findings],
            "advice": result.advice.to_dict(),
            "request_id": caller.request_id,
        }
    )
