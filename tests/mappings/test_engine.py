"""Change detection for one record: the matrix of who changed what, under every policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mappings.engine import EMPTY, Outcome, Plan, Side, fingerprint, plan_record, to_local, to_remote
from mappings.errors import MappingError, TransformError
from mappings.schema import Mapping

T0 = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
EARLIER, LATER = T0, T0 + timedelta(minutes=5)
POLICIES = ["hub_wins", "remote_wins", "newest_wins", "manual"]
MONEY_OUT = [{"name": "minor_to_decimal", "currency": "DKK"}]
MONEY_IN = [{"name": "decimal_to_minor", "currency": "DKK"}]


def mapping(*entries: dict[str, Any]) -> Mapping:
    return Mapping.load(
        {
            "object_type": "customer",
            "remote_object": "contacts",
            "key": {"local": "id", "remote": "abohub_id"},
            "fields": list(entries),
        }
    )


def money(policy: str = "hub_wins", direction: str = "both") -> Mapping:
    """One field: MRR in øre on the hub ↔ a decimal string on the remote."""
    entry: dict[str, Any] = {"local": "mrr", "remote": "amount", "direction": direction}
    if direction != "pull":
        entry["to_remote"] = MONEY_OUT
    if direction != "push":
        entry["to_local"] = MONEY_IN
    if direction == "both":
        entry["policy"] = policy
    return mapping(entry)


SYNCED = {"amount": fingerprint("123.45")}  # last time both sides agreed on 123.45 kr.


def sync(m: Mapping, hub: Any, remote: Any, prints: dict[str, str] | None = SYNCED, **kwargs: Any) -> Plan:
    local_values = {} if hub is ... else {"mrr": hub}
    remote_values = None if remote is ... else {"amount": remote}
    return plan_record(m, local_values, remote_values, prints, **kwargs)


def only(plan: Plan) -> Outcome:
    (field,) = plan.fields
    return field.outcome


# --- one side changed ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
def test_nothing_changed(policy: str) -> None:
    plan = sync(money(policy), 12345, "123.45")
    assert only(plan) is Outcome.UNCHANGED
    assert plan.nothing_to_do
    assert plan.fingerprints == SYNCED
    assert not plan.fingerprints_changed


@pytest.mark.parametrize("policy", POLICIES)
def test_only_the_hub_changed_pushes(policy: str) -> None:
    plan = sync(money(policy), 15000, "123.45", hub_changed_at=LATER, remote_changed_at=EARLIER)
    assert only(plan) is Outcome.PUSH
    assert plan.push == {"amount": "150.00"}
    assert plan.apply == {}
    assert plan.conflicts == ()
    assert plan.fingerprints == {"amount": fingerprint("150.00")}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("remote", ["150.00", "150", "150.0"])
def test_only_the_remote_changed_pulls(policy: str, remote: str) -> None:
    plan = sync(money(policy), 12345, remote)
    assert only(plan) is Outcome.PULL
    assert plan.apply == {"mrr": 15000}
    assert plan.push == {}
    # stored in the canonical remote form, which is what the hub now says too
    assert plan.fingerprints == {"amount": fingerprint("150.00")}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("remote", ["150.00", "150"])
def test_both_changed_to_the_same_value_converges(policy: str, remote: str) -> None:
    plan = sync(money(policy), 15000, remote)
    assert only(plan) is Outcome.CONVERGED
    assert plan.nothing_to_do
    assert plan.fingerprints == {"amount": fingerprint("150.00")}
    assert plan.fingerprints_changed


# --- both changed differently -------------------------------------------------------------------------------

HUB_WINS = (Outcome.CONFLICT_RESOLVED, Side.HUB, {"amount": "150.00"}, {})
REMOTE_WINS = (Outcome.CONFLICT_RESOLVED, Side.REMOTE, {}, {"mrr": 20000})
HELD = (Outcome.CONFLICT_MANUAL, None, {}, {})

CONFLICTS = [
    ("hub_wins", LATER, EARLIER, HUB_WINS, "hub_wins"),
    ("hub_wins", EARLIER, LATER, HUB_WINS, "hub_wins"),
    ("remote_wins", LATER, EARLIER, REMOTE_WINS, "remote_wins"),
    ("newest_wins", LATER, EARLIER, HUB_WINS, "newest_wins: the hub changed later"),
    ("newest_wins", EARLIER, LATER, REMOTE_WINS, "newest_wins: the remote changed later"),
    ("newest_wins", T0, T0, HUB_WINS, "changed at the same instant, ties go to the hub"),
    ("newest_wins", None, LATER, HUB_WINS, "without both change times: the hub wins"),
    ("newest_wins", None, None, HUB_WINS, "without both change times: the hub wins"),
    ("manual", LATER, EARLIER, HELD, "manual: held for a person"),
]


@pytest.mark.parametrize("first_sync", [False, True], ids=["after-a-sync", "first-sync"])
@pytest.mark.parametrize(("policy", "hub_at", "remote_at", "expected", "reason"), CONFLICTS)
def test_both_changed_differently(
    policy: str,
    hub_at: datetime | None,
    remote_at: datetime | None,
    expected: tuple[Outcome, Side | None, dict[str, Any], dict[str, Any]],
    reason: str,
    first_sync: bool,
) -> None:
    prints = {} if first_sync else SYNCED
    plan = sync(money(policy), 15000, "200.00", prints, hub_changed_at=hub_at, remote_changed_at=remote_at)
    outcome, winner, push, apply = expected
    (field,) = plan.fields
    assert field.outcome is outcome
    assert field.winner is winner
    assert reason in field.reason
    assert ("first sync" in field.reason) is first_sync
    assert plan.push == push
    assert plan.apply == apply
    if winner is Side.HUB:
        assert plan.fingerprints == {"amount": fingerprint("150.00")}
    elif winner is Side.REMOTE:
        assert plan.fingerprints == {"amount": fingerprint("200.00")}
    else:
        assert plan.fingerprints == prints  # held: the last agreement stays until a person decides


def test_a_manual_conflict_holds_both_values() -> None:
    plan = sync(money("manual"), 15000, "200.0", hub_changed_at=LATER, remote_changed_at=EARLIER)
    (conflict,) = plan.conflicts
    assert conflict.field == "amount"
    assert conflict.local_fields == ("mrr",)
    assert conflict.remote_fields == ("amount",)
    assert conflict.hub_value == {"mrr": 15000}
    assert conflict.remote_value == {"mrr": 20000}
    assert conflict.hub_remote_form == {"amount": "150.00"}
    assert conflict.remote_remote_form == {"amount": "200.00"}
    assert conflict.fingerprints == SYNCED
    assert (conflict.hub_changed_at, conflict.remote_changed_at) == (LATER, EARLIER)
    assert not plan.nothing_to_do
    assert plan.push == {} and plan.apply == {}


@pytest.mark.parametrize(
    ("side", "push", "apply", "stored"),
    [
        ("hub", {"amount": "150.00"}, {}, "150.00"),
        ("remote", {}, {"mrr": 20000}, "200.00"),
        (Side.REMOTE, {}, {"mrr": 20000}, "200.00"),
    ],
)
def test_a_resolution_syncs_the_chosen_value_both_ways(
    side: Any, push: dict[str, Any], apply: dict[str, Any], stored: str
) -> None:
    plan = sync(money("manual"), 15000, "200.00", resolutions={"amount": side})
    (field,) = plan.fields
    assert field.outcome is Outcome.CONFLICT_RESOLVED
    assert "resolved by a person" in field.reason
    assert plan.conflicts == ()
    assert (plan.push, plan.apply) == (push, apply)
    assert plan.fingerprints == {"amount": fingerprint(stored)}
    # once done, the same values on both sides are unchanged
    hub = 20000 if side in ("remote", Side.REMOTE) else 15000
    after = sync(money("manual"), hub, stored, plan.fingerprints)
    assert only(after) is Outcome.UNCHANGED and after.nothing_to_do


def test_a_resolution_overrides_any_policy_but_only_when_the_sides_differ() -> None:
    assert sync(money("hub_wins"), 15000, "200.00", resolutions={"amount": "remote"}).apply == {"mrr": 20000}
    plan = sync(money("manual"), 15000, "123.45", resolutions={"amount": "remote"})
    assert only(plan) is Outcome.PUSH  # only the hub changed: nothing to resolve


def test_resolutions_must_name_a_field_and_a_side() -> None:
    with pytest.raises(MappingError, match="has no field 'mrr'"):
        sync(money("manual"), 1, "2", resolutions={"mrr": "hub"})
    with pytest.raises(ValueError, match="'both' is not a valid Side"):
        sync(money("manual"), 1, "2", resolutions={"amount": "both"})


def test_change_times_must_be_aware() -> None:
    with pytest.raises(ValueError, match="hub_changed_at must be timezone-aware"):
        sync(money("newest_wins"), 1, "2", hub_changed_at=datetime(2026, 1, 15))


# --- first sync ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
def test_first_sync_with_equal_values_records_the_agreement(policy: str) -> None:
    plan = sync(money(policy), 12345, "123.45", {})
    assert only(plan) is Outcome.UNCHANGED
    assert plan.nothing_to_do
    assert plan.fingerprints == SYNCED
    assert plan.fingerprints_changed


@pytest.mark.parametrize("policy", POLICIES)
def test_first_sync_fills_an_empty_side_whatever_the_policy(policy: str) -> None:
    filled_remote = sync(money(policy), 12345, "", {})
    assert only(filled_remote) is Outcome.PUSH
    assert filled_remote.push == {"amount": "123.45"}
    filled_hub = sync(money(policy), None, "123.45", {})
    assert only(filled_hub) is Outcome.PULL
    assert filled_hub.apply == {"mrr": 12345}
    both_empty = sync(money(policy), None, None, {})
    assert only(both_empty) is Outcome.UNCHANGED
    assert both_empty.fingerprints == {"amount": EMPTY}


@pytest.mark.parametrize("policy", POLICIES)
def test_first_push_of_a_new_record_sends_everything(policy: str) -> None:
    plan = sync(money(policy), 12345, ..., {})  # no remote record yet: nothing fetched
    assert only(plan) is Outcome.PUSH
    assert plan.push == {"amount": "123.45"}
    assert plan.fingerprints == SYNCED
    empty = sync(money(policy), None, ..., {})
    assert only(empty) is Outcome.UNCHANGED and empty.fingerprints == {}


def test_fingerprints_of_remote_fields_no_longer_mapped_are_dropped() -> None:
    plan = sync(money("manual"), 12345, "123.45", {**SYNCED, "old_property": fingerprint("x")})
    assert plan.fingerprints == SYNCED
    assert plan.fingerprints_changed


# --- sides not given ----------------------------------------------------------------------------------------


def test_without_remote_values_only_the_hub_side_is_compared() -> None:
    assert only(sync(money("manual"), 12345, ...)) is Outcome.UNCHANGED
    plan = sync(money("manual"), 15000, ...)
    assert only(plan) is Outcome.PUSH and plan.push == {"amount": "150.00"}


def test_a_field_missing_from_the_remote_values_is_not_compared() -> None:
    plan = plan_record(money("manual"), {"mrr": 12345}, {"other": "x"}, SYNCED)
    assert only(plan) is Outcome.UNCHANGED
    assert plan.fingerprints == SYNCED


def test_a_field_missing_from_the_hub_values_is_not_compared() -> None:
    assert only(sync(money("manual"), ..., "123.45")) is Outcome.UNCHANGED
    plan = sync(money("manual"), ..., "150.00")
    assert only(plan) is Outcome.PULL and plan.apply == {"mrr": 15000}
    assert only(sync(money("manual"), ..., ..., {})) is Outcome.UNCHANGED
    first = sync(money("manual"), ..., "150.00", {})
    assert only(first) is Outcome.PULL and first.apply == {"mrr": 15000}


# --- echo suppression ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("echo", ["150.00", "150"])  # HubSpot may drop trailing zeros of a number property
def test_a_pushed_value_coming_back_is_not_applied_or_pushed_again(policy: str, echo: str) -> None:
    pushed = sync(money(policy), 15000, "123.45")
    assert pushed.push == {"amount": "150.00"}
    webhook = sync(money(policy), 15000, echo, pushed.fingerprints)
    assert only(webhook) is Outcome.UNCHANGED
    assert webhook.nothing_to_do
    assert not webhook.fingerprints_changed


@pytest.mark.parametrize("policy", POLICIES)
def test_a_pulled_value_is_not_pushed_back(policy: str) -> None:
    pulled = sync(money(policy), 12345, "150")
    assert pulled.apply == {"mrr": 15000}
    # the store applied it and wrote an outbox row: the push job maps the new state
    push_job = sync(money(policy), 15000, ..., pulled.fingerprints)
    assert only(push_job) is Outcome.UNCHANGED and push_job.nothing_to_do
    poll = sync(money(policy), 15000, "150", pulled.fingerprints)
    assert only(poll) is Outcome.UNCHANGED and poll.nothing_to_do


# --- one-way fields -----------------------------------------------------------------------------------------


def test_a_push_field_watches_only_the_hub() -> None:
    m = money(direction="push")
    assert sync(m, 15000, "123.45").push == {"amount": "150.00"}
    drift = sync(m, 12345, "999.00")  # someone edited it in the CRM: not ours to pull, and no ping-pong
    assert only(drift) is Outcome.UNCHANGED and drift.fingerprints == SYNCED
    echo = sync(m, 15000, "150", {"amount": fingerprint("150.00")})
    assert only(echo) is Outcome.UNCHANGED


def test_a_push_field_on_a_first_sync() -> None:
    m = money(direction="push")
    assert only(sync(m, 12345, "123.45", {})) is Outcome.UNCHANGED
    differ = sync(m, 12345, "999.00", {})
    assert only(differ) is Outcome.PUSH and differ.push == {"amount": "123.45"}
    empty_hub = sync(m, None, "999.00", {})
    assert only(empty_hub) is Outcome.UNCHANGED  # an empty value never overwrites on a first sync
    assert empty_hub.fingerprints == {}
    assert sync(m, 12345, ..., {}).push == {"amount": "123.45"}


def test_a_pull_field_watches_only_the_remote() -> None:
    m = money(direction="pull")
    pulled = sync(m, 12345, "150")
    assert only(pulled) is Outcome.PULL and pulled.apply == {"mrr": 15000}
    assert pulled.fingerprints == {"amount": fingerprint("150")}  # as fetched: no to_remote to canonicalise
    hub_edit = sync(m, 99999, "123.45")
    assert only(hub_edit) is Outcome.UNCHANGED and hub_edit.nothing_to_do
    assert only(sync(m, 15000, "150", pulled.fingerprints)) is Outcome.UNCHANGED
    assert only(sync(m, 15000, "150")) is Outcome.CONVERGED  # the hub already had it
    assert only(sync(m, 12345, ...)) is Outcome.UNCHANGED


def test_a_pull_field_on_a_first_sync() -> None:
    m = money(direction="pull")
    agree = sync(m, 12345, "123.45", {})
    assert only(agree) is Outcome.UNCHANGED and agree.fingerprints == SYNCED
    differ = sync(m, 12345, "150", {})
    assert only(differ) is Outcome.PULL and differ.apply == {"mrr": 15000}
    empty_remote = sync(m, 12345, "", {})
    assert only(empty_remote) is Outcome.UNCHANGED and empty_remote.fingerprints == {}
    assert sync(m, ..., "150", {}).apply == {"mrr": 15000}


# --- a value spread over several remote fields --------------------------------------------------------------

NAME = {
    "local": "name",
    "remote": ["firstname", "lastname"],
    "direction": "both",
    "to_remote": [{"name": "split_name"}],
    "to_local": [{"name": "join_name"}],
    "policy": "manual",
}
NAME_SYNCED = {"firstname": fingerprint("Ada"), "lastname": fingerprint("Lovelace")}


def test_only_the_changed_part_of_a_name_is_pushed() -> None:
    plan = plan_record(
        mapping(NAME), {"name": "Ada Byron"}, {"firstname": "Ada", "lastname": "Lovelace"}, NAME_SYNCED
    )
    assert only(plan) is Outcome.PUSH
    assert plan.push == {"lastname": "Byron"}
    assert plan.fingerprints == {"firstname": fingerprint("Ada"), "lastname": fingerprint("Byron")}


def test_a_remote_change_to_one_part_pulls_the_whole_name() -> None:
    remote = {"firstname": "Augusta", "lastname": "Lovelace"}
    plan = plan_record(mapping(NAME), {"name": "Ada Lovelace"}, remote, NAME_SYNCED)
    assert only(plan) is Outcome.PULL
    assert plan.apply == {"name": "Augusta Lovelace"}


def test_a_name_changed_on_both_sides_is_one_conflict() -> None:
    remote = {"firstname": "Augusta", "lastname": "Lovelace"}
    plan = plan_record(mapping(NAME), {"name": "Ada Byron"}, remote, NAME_SYNCED)
    (conflict,) = plan.conflicts
    assert conflict.field == "firstname+lastname"
    assert conflict.hub_value == {"name": "Ada Byron"}
    assert conflict.remote_value == {"name": "Augusta Lovelace"}
    assert conflict.hub_remote_form == {"firstname": "Ada", "lastname": "Byron"}
    resolved = plan_record(
        mapping(NAME), {"name": "Ada Byron"}, remote, NAME_SYNCED, resolutions={conflict.field: "hub"}
    )
    assert resolved.push == {"firstname": "Ada", "lastname": "Byron"}


def test_a_pipeline_that_makes_the_wrong_number_of_parts_fails_on_that_field() -> None:
    bad = mapping(
        {
            "local": "name",
            "remote": ["firstname", "lastname"],
            "direction": "push",
            "to_remote": [{"name": "split_name", "part": "first"}],
        }
    )
    with pytest.raises(TransformError, match="made one value for the 2 fields firstname, lastname") as caught:
        to_remote(bad, {"name": "Ada Lovelace"})
    assert caught.value.field == "name → firstname+lastname"
    assert caught.value.transform == "split_name"
    plan = plan_record(bad, {"name": "Ada Lovelace"}, None, {})
    assert only(plan) is Outcome.FAILED
    assert plan.errors == (plan.fields[0].error,)


def test_to_remote_and_to_local_apply_only_the_allowed_directions_and_given_fields() -> None:
    m = mapping(
        NAME,
        {"local": "mrr", "remote": "amount", "direction": "push", "to_remote": MONEY_OUT},
        {
            "local": "owner",
            "remote": "owner_id",
            "direction": "pull",
            "to_local": [{"name": "string_to_int"}],
        },
    )
    assert to_remote(m, {"name": "Ada Lovelace", "mrr": 100, "owner": 7}) == {
        "firstname": "Ada",
        "lastname": "Lovelace",
        "amount": "1.00",
    }
    assert to_remote(m, {"mrr": 100}) == {"amount": "1.00"}
    assert to_local(m, {"firstname": "Ada", "lastname": "Lovelace", "amount": "1.00", "owner_id": "7"}) == {
        "name": "Ada Lovelace",
        "owner": 7,
    }
    assert to_local(m, {"firstname": "Ada"}) == {}  # half a name is not a name


@pytest.mark.parametrize("policy", POLICIES)
def test_a_two_way_field_whose_outbound_form_was_edited_pushes_the_new_form(policy: str) -> None:
    # Last synced as "DK" (sent upper-case); the mapping now sends lower-case and reads back upper-case,
    # so the remote's untouched "DK" reads as the hub's "DK": only the hub's form has moved.
    m = mapping(
        {
            "local": "country",
            "remote": "country",
            "direction": "both",
            "policy": policy,
            "to_remote": [{"name": "lower"}],
            "to_local": [{"name": "upper"}],
        }
    )
    plan = plan_record(m, {"country": "DK"}, {"country": "DK"}, {"country": fingerprint("DK")})
    assert plan.push == {"country": "dk"}
    assert (only(plan), plan.apply, plan.conflicts) == (Outcome.PUSH, {}, ())
    assert plan.fingerprints == {"country": fingerprint("dk")}
