"""The subscription state machine: every (status, action) pair, legal or not.

The expected table is written out here by hand, not derived from
``TRANSITIONS``: a change to the state machine must change this table too.
"""

from __future__ import annotations

import pytest

from hub.domain.errors import IllegalTransition
from hub.domain.lifecycle import MRR_STATUSES, Action, Status, allowed_actions, transition

# Rows are actions, columns the status before; a cell is the status after, "-" is illegal.
EXPECTED_TABLE = """
action           trialing  active    past_due  paused    canceled
activate         active    -         -         -         -
renew            -         active    past_due  -         -
fail_payment     -         past_due  past_due  -         -
recover          -         -         active    -         -
pause            -         paused    -         -         -
schedule_pause   -         active    -         -         -
resume           -         -         -         active    -
cancel           canceled  canceled  canceled  canceled  -
schedule_cancel  trialing  active    past_due  -         -
reactivate       trialing  active    past_due  -         -
change_plan      trialing  active    -         -         -
apply_coupon     trialing  active    past_due  paused    -
"""


def _expected() -> dict[tuple[str, str], str | None]:
    header, *rows = [line.split() for line in EXPECTED_TABLE.strip().splitlines()]
    statuses = header[1:]
    table: dict[tuple[str, str], str | None] = {}
    for action, *cells in rows:
        assert len(cells) == len(statuses), action
        for status, cell in zip(statuses, cells, strict=True):
            table[(status, action)] = None if cell == "-" else cell
    return table


EXPECTED = _expected()
PAIRS = sorted(EXPECTED)


def test_the_table_covers_every_status_and_every_action():
    assert {status for status, _ in EXPECTED} == {s.value for s in Status}
    assert {action for _, action in EXPECTED} == {a.value for a in Action}
    assert len(EXPECTED) == 5 * 12  # 5 statuses × 12 actions


@pytest.mark.parametrize(("status", "action"), PAIRS, ids=[f"{s}-{a}" for s, a in PAIRS])
def test_transition(status, action):
    expected = EXPECTED[(status, action)]
    if expected is None:
        with pytest.raises(IllegalTransition) as caught:
            transition(status, Action(action))
        assert caught.value.action == action
        assert caught.value.status == status
        assert caught.value.code == "illegal_transition"
        assert caught.value.message == f"cannot {action.replace('_', ' ')} a subscription that is {status}"
    else:
        assert transition(status, Action(action)) == Status(expected)


@pytest.mark.parametrize("status", [s.value for s in Status])
def test_allowed_actions_lists_exactly_the_legal_moves(status):
    legal = {action for (s, action), target in EXPECTED.items() if s == status and target is not None}
    assert {a.value for a in allowed_actions(status)} == legal


def test_a_canceled_subscription_allows_nothing():
    assert allowed_actions("canceled") == []


def test_an_unknown_status_is_refused():
    with pytest.raises(ValueError):
        transition("expired", Action.CANCEL)


def test_only_active_and_past_due_count_toward_mrr():
    assert {s.value for s in MRR_STATUSES} == {"active", "past_due"}
