"""The OpenAPI contract tells the truth: schemathesis fuzzes every operation against it.

guard's own ``/openapi.json`` is loaded from the app; every operation gets a bounded number of
generated requests, valid and invalid, each sent with the key of one role (or none), on SQLite
and PostgreSQL.
A response fails the test when it is a 5xx, or its status code, content type or body is not
what the document says for that operation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

if TYPE_CHECKING:
    from schemathesis import APIOperation, Case

    from tests.fixtures.api import Api

#: Generated requests per operation (and database): the whole test stays around a minute.
EXAMPLES_PER_OPERATION = 12
#: Every role of the policy, and no credentials at all.
CALLERS = ("agent", "supervisor", "compliance_officer", "analyst", "admin", "anonymous")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _fuzz(api: Api, operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), caller=st.sampled_from(CALLERS))
    def run(case: Case[Any], caller: str) -> None:
        headers = api.headers(caller) if caller != "anonymous" else {}
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def test_every_operation_keeps_the_documented_contract(api: Api) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"an operation of the document is invalid: {result.err()}")
            continue
        operation = result.ok()
        operations += 1
        # valid requests, then invalid ones (wrong types, missing fields, out-of-range values)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(api, operation, mode)
            except Unsatisfiable:  # no parameters and no body: nothing can be made invalid
                assert mode is GenerationMode.NEGATIVE
            except Exception as exc:  # noqa: BLE001 - collect every failure, then fail once
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert operations > 20
    assert not failures, "\n\n".join(failures)
