"""Tool budgets: calls, and distinct customers, per principal and tool in a sliding window.

A stolen or misbehaving agent credential is most dangerous as a bulk reader ("read every
customer"). The budget in ``policies/tools.yaml`` caps both how often a principal may call a
tool and how many *different* customers it may touch per window ("an agent reads at most 30
different customers an hour"); reading the same customer again does not use up the second
limit. A refused call is not counted, so a refused caller is not locked out longer.

The ledger lives in the memory of one process: several workers or instances each keep their
own, so the effective limit is per worker until state is shared (issue 14).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from guard.errors import GuardError

if TYPE_CHECKING:
    from guard.proxy.policy import Budget

#: How many (tenant, principal, tool) ledgers one process keeps before forgetting the idlest.
DEFAULT_MAX_TRACKED = 100_000


class BudgetExceededError(GuardError):
    """A call over the tool's budget; ``retry_after`` seconds until a counted call expires."""

    status_code = 429
    type_slug = "budget-exceeded"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(slots=True)
class _Usage:
    """One principal's counted calls on one tool within the current window."""

    calls: deque[tuple[float, str | None]] = field(default_factory=deque)
    customers: Counter[str] = field(default_factory=Counter)
    last_seen: dict[str, float] = field(default_factory=dict)

    def prune(self, cutoff: float) -> None:
        """Forget calls at or before ``cutoff`` (they have left the window)."""
        while self.calls and self.calls[0][0] <= cutoff:
            _, customer = self.calls.popleft()
            if customer is not None:
                self.customers[customer] -= 1
                if self.customers[customer] <= 0:
                    del self.customers[customer]
                    del self.last_seen[customer]


def _seconds_until(moment: float, now: float) -> int:
    return max(1, math.ceil(moment - now))


class BudgetLedger:
    """Thread-safe, in-memory (per process) ledger of tool calls by principal.

    Memory is bounded: each ledger holds at most ``budget.calls`` entries, expired entries are
    pruned on every charge, and past ``max_tracked`` ledgers the least recently charged is
    forgotten (its calls are the likeliest to have expired already).
    """

    def __init__(self, *, max_tracked: int = DEFAULT_MAX_TRACKED) -> None:
        if max_tracked < 1:
            raise ValueError("max_tracked must be positive")
        self._max_tracked = max_tracked
        self._lock = threading.Lock()
        self._usage: OrderedDict[tuple[str, str, str], _Usage] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._usage)

    def charge(
        self,
        *,
        tenant: str,
        principal: str,
        tool: str,
        customer_key: str | None,
        budget: Budget,
        now: float | None = None,
    ) -> None:
        """Count one call, or raise BudgetExceededError (and count nothing).

        ``customer_key`` identifies the customer the call is about (a keyed hash is enough);
        ``None`` means the call names no customer and only counts against ``calls``.
        """
        moment = time.monotonic() if now is None else now
        key = (tenant, principal, tool)
        with self._lock:
            usage = self._usage.get(key)
            if usage is None:
                usage = _Usage()
            usage.prune(moment - budget.window_seconds)
            self._check(usage, tool=tool, customer_key=customer_key, budget=budget, now=moment)
            usage.calls.append((moment, customer_key))
            if customer_key is not None:
                usage.customers[customer_key] += 1
                usage.last_seen[customer_key] = moment
            self._usage[key] = usage
            self._usage.move_to_end(key)
            while len(self._usage) > self._max_tracked:
                self._usage.popitem(last=False)

    @staticmethod
    def _check(
        usage: _Usage, *, tool: str, customer_key: str | None, budget: Budget, now: float
    ) -> None:
        window = budget.window_seconds
        if len(usage.calls) >= budget.calls:
            raise BudgetExceededError(
                f"tool {tool!r}: call budget exhausted "
                f"(at most {budget.calls} calls per {window} s)",
                retry_after=_seconds_until(usage.calls[0][0] + window, now),
            )
        new_customer = customer_key is not None and customer_key not in usage.customers
        if (
            new_customer
            and budget.customers is not None
            and len(usage.customers) >= budget.customers
        ):
            oldest = min(usage.last_seen.values())
            raise BudgetExceededError(
                f"tool {tool!r}: distinct-customer budget exhausted "
                f"(at most {budget.customers} different customers per {window} s)",
                retry_after=_seconds_until(oldest + window, now),
            )
