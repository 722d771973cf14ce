"""Events written during a request carry guard's own request id and mark the request audited."""

from __future__ import annotations

import contextvars
import threading
from typing import TYPE_CHECKING, Any

from guard.audit.context import RequestAudit, current_request_audit, request_audit_scope

if TYPE_CHECKING:
    from guard.audit.service import AuditTrail

EVENT: dict[str, Any] = {
    "action": "text.redact",
    "resource": "/v1/redact",
    "decision": "allow",
    "outcome": "success",
}


def test_when_a_client_chose_the_request_id_then_the_event_keeps_it_as_correlation_only(
    trail: AuditTrail,
) -> None:
    state = RequestAudit(
        request_id="client-chosen-1", audit_request_id="a" * 32, correlation_id="client-chosen-1"
    )
    assert not state.audited
    with request_audit_scope(state):
        trail.record(**EVENT, request_id="client-chosen-1", details={"n": 1})
    (event,) = trail.search_events()
    assert event["request_id"] == "a" * 32
    assert event["details"] == {"n": 1, "correlation_id": "client-chosen-1"}
    assert state.audited
    assert current_request_audit() is None


def test_when_an_event_names_no_request_then_it_is_bound_to_the_current_one(
    trail: AuditTrail,
) -> None:
    state = RequestAudit(request_id="b" * 32, audit_request_id="b" * 32)
    with request_audit_scope(state):
        # services (key creation, policy reload) record without a request id
        trail.record(**EVENT)
    (event,) = trail.search_events()
    assert event["request_id"] == "b" * 32
    assert "correlation_id" not in event["details"]
    assert state.audited


def test_when_an_event_names_another_id_then_it_is_left_alone_and_marks_nothing(
    trail: AuditTrail,
) -> None:
    state = RequestAudit(request_id="c" * 32, audit_request_id="c" * 32)
    with request_audit_scope(state):
        trail.record(**EVENT, request_id="agg-" + "d" * 32)
    (event,) = trail.search_events()
    assert event["request_id"] == "agg-" + "d" * 32
    assert not state.audited


def test_when_a_worker_thread_records_then_the_request_sees_it_audited(trail: AuditTrail) -> None:
    state = RequestAudit(request_id="e" * 32, audit_request_id="e" * 32)
    with request_audit_scope(state):
        context = contextvars.copy_context()  # as a thread pool does
    worker = threading.Thread(target=context.run, args=(lambda: trail.record(**EVENT),))
    worker.start()
    worker.join()
    assert state.audited
    assert trail.search_events()[0]["request_id"] == "e" * 32


def test_when_searching_by_request_id_then_only_that_requests_events_return(
    trail: AuditTrail,
) -> None:
    for request_id in ("f" * 32, "0" * 32, "f" * 32):
        trail.record(**EVENT, request_id=request_id)
    assert len(trail.search_events(request_id="f" * 32)) == 2
    assert trail.search_events(request_id="1" * 32) == []
