"""Tool budgets: calls and distinct customers per principal and tool, in a sliding window."""

from __future__ import annotations

import threading

import pytest

from guard.errors import GuardError
from guard.proxy.budgets import BudgetExceededError, BudgetLedger
from guard.proxy.policy import Budget

HOUR = Budget(calls=5, customers=2, window_seconds=3600)


def charge(
    ledger: BudgetLedger,
    now: float,
    customer: str | None = "c1",
    *,
    principal: str = "agent-1",
    tool: str = "lookup_customer",
    tenant: str = "acme",
    budget: Budget = HOUR,
) -> None:
    ledger.charge(
        tenant=tenant,
        principal=principal,
        tool=tool,
        customer_key=customer,
        budget=budget,
        now=now,
    )


def test_when_calls_exceed_the_budget_then_the_next_is_refused_with_retry_after() -> None:
    ledger = BudgetLedger()
    for second in range(5):
        charge(ledger, 1000.0 + second)
    with pytest.raises(BudgetExceededError) as info:
        charge(ledger, 1010.0)
    error = info.value
    assert isinstance(error, GuardError)
    assert error.status_code == 429
    assert error.type_slug == "budget-exceeded"
    assert error.retry_after == 3590  # the call at 1000 leaves the window at 4600
    assert "lookup_customer" in error.message
    assert "at most 5 calls per 3600 s" in error.message


def test_when_distinct_customers_exceed_the_budget_then_a_new_customer_is_refused() -> None:
    ledger = BudgetLedger()
    charge(ledger, 0.0, "customer-a")
    charge(ledger, 100.0, "customer-b")
    with pytest.raises(BudgetExceededError) as info:
        charge(ledger, 200.0, "customer-c")
    assert "distinct-customer" in info.value.message
    assert "at most 2 different customers" in info.value.message
    assert "customer-" not in info.value.message  # never names the customer
    assert info.value.retry_after == 3400
    # a customer already seen in the window does not count again
    charge(ledger, 300.0, "customer-a")
    charge(ledger, 301.0, "customer-b")
    # calls that name no customer count only against calls
    charge(ledger, 302.0, None)


def test_when_a_customer_is_read_again_then_retry_after_follows_their_last_call() -> None:
    ledger = BudgetLedger()
    charge(ledger, 0.0, "customer-a")
    charge(ledger, 100.0, "customer-b")
    charge(ledger, 500.0, "customer-a")
    with pytest.raises(BudgetExceededError) as info:
        charge(ledger, 600.0, "customer-c")
    # customer-b (last seen at 100) frees a slot first, at 3700
    assert info.value.retry_after == 3100


def test_when_a_call_is_refused_then_it_is_not_counted() -> None:
    ledger = BudgetLedger()
    charge(ledger, 0.0, "customer-a")
    charge(ledger, 1.0, "customer-b")
    for second in range(10):
        with pytest.raises(BudgetExceededError):
            charge(ledger, 2.0 + second, "customer-c")
    # three more calls fit: the refusals did not use up the call budget
    for second in range(3):
        charge(ledger, 20.0 + second, "customer-a")


def test_when_the_window_passes_then_calls_and_customers_are_forgotten() -> None:
    ledger = BudgetLedger()
    for second in range(5):
        charge(ledger, float(second), "customer-a" if second % 2 else "customer-b")
    with pytest.raises(BudgetExceededError):
        charge(ledger, 3599.0, "customer-a")
    charge(ledger, 3600.0, "customer-a")  # the call at 0 has left the window
    with pytest.raises(BudgetExceededError, match="call budget"):
        charge(ledger, 3600.5, "customer-a")
    with pytest.raises(BudgetExceededError, match="distinct-customer"):
        charge(ledger, 3601.5, "customer-d")  # a call left, but a and b are still in
    charge(ledger, 3601.5, "customer-a")
    charge(ledger, 7300.0, "customer-d")
    charge(ledger, 7300.0, "customer-e")


def test_when_principals_tools_or_tenants_differ_then_budgets_are_separate() -> None:
    ledger = BudgetLedger()
    one = Budget(calls=1, customers=None, window_seconds=60)
    charge(ledger, 0.0, budget=one)
    for kwargs in ({"principal": "agent-2"}, {"tool": "list_orders"}, {"tenant": "globex"}):
        charge(ledger, 0.0, budget=one, **kwargs)
    with pytest.raises(BudgetExceededError):
        charge(ledger, 1.0, budget=one)


def test_when_too_many_principals_are_tracked_then_the_idlest_is_forgotten() -> None:
    ledger = BudgetLedger(max_tracked=3)
    for index in range(10):
        charge(ledger, float(index), principal=f"agent-{index}")
    assert len(ledger) == 3


def test_when_many_threads_charge_at_once_then_exactly_the_budget_is_granted() -> None:
    ledger = BudgetLedger()
    budget = Budget(calls=100, customers=None, window_seconds=3600)
    granted: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(50):
            try:
                ledger.charge(
                    tenant="acme",
                    principal="agent-1",
                    tool="lookup_customer",
                    customer_key=None,
                    budget=budget,
                )
            except BudgetExceededError:
                with lock:
                    refused.append(1)
            else:
                with lock:
                    granted.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 100
    assert len(refused) == 300
