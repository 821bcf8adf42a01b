"""The subscription state machine.

One table names every legal move. Anything not in it raises
:class:`IllegalTransition`, which the API turns into 409 Conflict.

    trialing ──activate──▶ active ◀──recover── past_due
       │                    │  ▲ ──fail_payment─▶ │
       │                  pause│resume            │
       │                    ▼  │                  │
       │                   paused                 │
       └──────────cancel (from any but canceled)──┴──▶ canceled
"""

from __future__ import annotations

from enum import StrEnum

from hub.domain.errors import IllegalTransition


class Status(StrEnum):
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    PAUSED = "paused"
    CANCELED = "canceled"


class Action(StrEnum):
    ACTIVATE = "activate"  # a trial ends and the first paid period starts
    RENEW = "renew"  # a new billing period starts
    FAIL_PAYMENT = "fail_payment"
    RECOVER = "recover"  # an overdue invoice got paid
    PAUSE = "pause"
    SCHEDULE_PAUSE = "schedule_pause"
    RESUME = "resume"
    CANCEL = "cancel"
    SCHEDULE_CANCEL = "schedule_cancel"
    REACTIVATE = "reactivate"  # undo a scheduled cancellation or pause
    CHANGE_PLAN = "change_plan"
    APPLY_COUPON = "apply_coupon"


T, A, D, P, C = Status.TRIALING, Status.ACTIVE, Status.PAST_DUE, Status.PAUSED, Status.CANCELED

TRANSITIONS: dict[Action, dict[Status, Status]] = {
    Action.ACTIVATE: {T: A},
    Action.RENEW: {A: A, D: D},
    Action.FAIL_PAYMENT: {A: D, D: D},
    Action.RECOVER: {D: A},
    Action.PAUSE: {A: P},
    Action.SCHEDULE_PAUSE: {A: A},
    Action.RESUME: {P: A},
    Action.CANCEL: {T: C, A: C, D: C, P: C},
    Action.SCHEDULE_CANCEL: {T: T, A: A, D: D},
    Action.REACTIVATE: {T: T, A: A, D: D},
    Action.CHANGE_PLAN: {T: T, A: A},
    Action.APPLY_COUPON: {T: T, A: A, D: D, P: P},
}

# Statuses whose subscriptions count toward MRR: trials and pauses do not.
MRR_STATUSES = frozenset({A, D})


def transition(status: str, action: Action) -> Status:
    """The status after ``action``, or :class:`IllegalTransition`."""
    current = Status(status)
    target = TRANSITIONS[action].get(current)
    if target is None:
        raise IllegalTransition(action.value, current.value)
    return target


def allowed_actions(status: str) -> list[Action]:
    current = Status(status)
    return [action for action, moves in TRANSITIONS.items() if current in moves]
