"""Monthly recurring revenue of one subscription, and how a change moves it.

Definitions (the same words are in docs/metrics.md):

* A subscription's MRR is its recurring price × quantity, less a *forever*
  coupon, normalised to one month (a quarter ÷ 3, a year ÷ 12, every N months
  ÷ N) and rounded once to the minor unit. VAT, one-off charges, prorations and
  coupons that run out (once, N periods) are not in MRR.
* Only ``active`` and ``past_due`` subscriptions count; ``trialing``,
  ``paused`` and ``canceled`` ones contribute 0.
* Movements are classified per customer, from the customer's state before and
  after a change: ``none`` (never paid), ``active`` (MRR above zero from
  active or past-due subscriptions), ``paused`` (nothing paying, something
  paused) and ``churned`` (was active, nothing paying or paused now).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hub.domain.invoicing import Discount
from hub.domain.lifecycle import MRR_STATUSES, Status
from hub.domain.money import divide


class CustomerState(StrEnum):
    NONE = "none"
    ACTIVE = "active"
    PAUSED = "paused"
    CHURNED = "churned"


class Movement(StrEnum):
    NEW = "new"
    EXPANSION = "expansion"
    CONTRACTION = "contraction"
    CHURNED = "churned"
    REACTIVATION = "reactivation"
    PAUSED = "paused"
    RESUMED = "resumed"


def subscription_mrr(
    status: str,
    unit_amount: int,
    quantity: int,
    months_per_period: int,
    forever_discount: Discount | None = None,
) -> int:
    if Status(status) not in MRR_STATUSES:
        return 0
    amount = unit_amount * quantity
    if forever_discount is not None:
        amount -= forever_discount.on(amount)
    return divide(amount, months_per_period)


def customer_state(statuses: list[str], previous: CustomerState, mrr: int) -> CustomerState:
    """The customer's state given the statuses of all their subscriptions and their MRR.

    A customer is active only while they pay something: subscriptions to free
    plans, or made free by a 100 % forever coupon, do not make a paying customer
    (as in Stripe, which leaves free subscribers out of its counts).
    """
    parsed = {Status(s) for s in statuses}
    if parsed & MRR_STATUSES and mrr > 0:
        return CustomerState.ACTIVE
    if Status.PAUSED in parsed:
        return CustomerState.PAUSED
    if previous is CustomerState.NONE:
        return CustomerState.NONE
    return CustomerState.CHURNED


@dataclass(frozen=True)
class Classified:
    kind: Movement
    active_delta: int  # +1 customer became active, -1 stopped being active
    churn_delta: int  # +1 customer churned, -1 a churned customer came back


_BY_STATES: dict[tuple[CustomerState, CustomerState], Movement] = {
    (CustomerState.NONE, CustomerState.ACTIVE): Movement.NEW,
    (CustomerState.CHURNED, CustomerState.ACTIVE): Movement.REACTIVATION,
    (CustomerState.PAUSED, CustomerState.ACTIVE): Movement.RESUMED,
    (CustomerState.ACTIVE, CustomerState.PAUSED): Movement.PAUSED,
    (CustomerState.ACTIVE, CustomerState.CHURNED): Movement.CHURNED,
    (CustomerState.PAUSED, CustomerState.CHURNED): Movement.CHURNED,
}


def classify(
    before_state: CustomerState, after_state: CustomerState, before_mrr: int, after_mrr: int
) -> Classified | None:
    """The movement a change makes, or ``None`` when MRR and state are unchanged."""
    kind = _BY_STATES.get((before_state, after_state))
    if kind is None:
        if before_state is CustomerState.ACTIVE and after_state is CustomerState.ACTIVE:
            if after_mrr > before_mrr:
                kind = Movement.EXPANSION
            elif after_mrr < before_mrr:
                kind = Movement.CONTRACTION
        if kind is None:
            return None
    active = CustomerState.ACTIVE
    churned = CustomerState.CHURNED
    return Classified(
        kind=kind,
        active_delta=int(after_state is active) - int(before_state is active),
        churn_delta=int(after_state is churned) - int(before_state is churned),
    )
