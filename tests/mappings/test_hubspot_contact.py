"""A customer ↔ HubSpot contact, through the life of a link: every kind of field at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mappings.engine import (
    Outcome,
    fingerprint,
    local_match_keys,
    plan_record,
    remote_match_keys,
    to_local,
    to_remote,
)
from mappings.schema import Mapping
from tests.mappings.hubspot import CUSTOMER_CONTACT, contact, customer

T0 = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def mapping() -> Mapping:
    return Mapping.load(CUSTOMER_CONTACT)


@pytest.fixture(scope="module")
def linked(mapping: Mapping) -> dict[str, str]:
    """The fingerprints after the first sync of an existing customer and contact that agree."""
    return plan_record(mapping, customer(), contact(), {}).fingerprints


def test_the_customer_in_hubspot_form(mapping: Mapping) -> None:
    assert to_remote(mapping, customer(name="  Ada King Lovelace ", email=" Ada@Example.COM")) == {
        "firstname": "Ada",
        "lastname": "King Lovelace",
        "email": "ada@example.com",
        "abohub_vat_number": "DK12345678",
        "country": "DK",
        "hs_language": "da",
        "abohub_mrr": "123.45",
        "abohub_status": "Active",
        "abohub_customer_since": 1768435200000,
        "lifecyclestage": "customer",
    }
    assert to_local(
        mapping, contact(email="ADA@example.com ", abohub_vat_number="", hubspot_owner_id="42")
    ) == {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "vat_number": None,
        "country": "DK",
        "crm_owner": "42",
    }


def test_creating_the_contact_pushes_every_pushing_field(mapping: Mapping) -> None:
    plan = plan_record(mapping, customer(), None, {})
    assert plan.push == to_remote(mapping, customer())
    assert plan.apply == {} and plan.conflicts == ()
    # a pull field has nothing to say before the contact exists
    assert "hubspot_owner_id" not in plan.fingerprints
    # HubSpot answers the created contact; as a webhook or a poll it is nothing new
    created = contact(abohub_customer_since="1768435200000", abohub_mrr="123.45")
    echo = plan_record(mapping, customer(), created, plan.fingerprints)
    assert echo.nothing_to_do


def test_linking_an_existing_pair_that_agrees(mapping: Mapping, linked: dict[str, str]) -> None:
    plan = plan_record(mapping, customer(), contact(), {})
    assert plan.nothing_to_do
    assert set(plan.outcomes().values()) == {Outcome.UNCHANGED}
    assert set(linked) == set(mapping.remote_fields)
    assert linked["hubspot_owner_id"] == fingerprint(None)  # None on the hub and "" in HubSpot agree
    assert linked["abohub_mrr"] == fingerprint("123.45")


def test_hub_edits_push_only_what_changed_and_do_not_come_back(
    mapping: Mapping, linked: dict[str, str]
) -> None:
    hub = customer(name="Ada Byron", mrr=15000, revenue_state="paused")
    plan = plan_record(mapping, hub, contact(), linked)
    assert plan.push == {"lastname": "Byron", "abohub_mrr": "150.00", "abohub_status": "Paused"}
    assert plan.apply == {}
    # HubSpot stores the number without trailing zeros and sends a webhook for each property
    stored = contact(lastname="Byron", abohub_mrr="150", abohub_status="Paused")
    echo = plan_record(mapping, hub, stored, plan.fingerprints)
    assert echo.nothing_to_do
    assert not echo.fingerprints_changed


def test_remote_edits_are_applied_and_not_pushed_back(mapping: Mapping, linked: dict[str, str]) -> None:
    remote = contact(email="ADA@NEW.EXAMPLE", country="se", hubspot_owner_id="42")
    plan = plan_record(mapping, customer(), remote, linked)
    assert plan.apply == {"email": "ada@new.example", "country": "SE", "crm_owner": "42"}
    assert plan.push == {}
    applied = customer(email="ada@new.example", country="SE", crm_owner="42")
    push_job = plan_record(mapping, applied, None, plan.fingerprints)
    assert push_job.nothing_to_do
    poll = plan_record(mapping, applied, remote, plan.fingerprints)
    assert poll.nothing_to_do


def test_a_manual_conflict_on_the_name_while_the_other_fields_still_sync(
    mapping: Mapping, linked: dict[str, str]
) -> None:
    hub = customer(name="Ada Byron", mrr=20000)
    remote = contact(firstname="Augusta", country="NO", email="ada@example.com")
    plan = plan_record(
        mapping, hub, remote, linked, hub_changed_at=T0, remote_changed_at=T0 + timedelta(hours=1)
    )

    assert plan.field("firstname+lastname").outcome is Outcome.CONFLICT_MANUAL
    (conflict,) = plan.conflicts
    assert conflict.hub_value == {"name": "Ada Byron"}
    assert conflict.remote_value == {"name": "Augusta Lovelace"}
    assert plan.push == {"abohub_mrr": "200.00"}
    assert plan.apply == {"country": "NO"}
    assert plan.fingerprints["firstname"] == linked["firstname"]  # held: the last agreement stays
    assert plan.fingerprints["lastname"] == linked["lastname"]
    assert plan.fingerprints["abohub_mrr"] == fingerprint("200.00")

    # the job did the rest; the next event for this contact still holds the same single conflict
    after = customer(name="Ada Byron", mrr=20000, country="NO")
    synced = contact(firstname="Augusta", country="NO", abohub_mrr="200")
    again = plan_record(mapping, after, synced, plan.fingerprints)
    assert again.push == {} and again.apply == {}
    assert [c.field for c in again.conflicts] == ["firstname+lastname"]

    # a person picks HubSpot's name: it is applied, and it does not bounce back
    resolved = plan_record(
        mapping, after, synced, plan.fingerprints, resolutions={"firstname+lastname": "remote"}
    )
    assert resolved.apply == {"name": "Augusta Lovelace"}
    assert resolved.push == {} and resolved.conflicts == ()
    final = customer(name="Augusta Lovelace", mrr=20000, country="NO")
    assert plan_record(mapping, final, synced, resolved.fingerprints).nothing_to_do


@pytest.mark.parametrize(
    ("hub_at", "remote_at", "push", "apply"),
    [
        (T0 + timedelta(minutes=1), T0, {"abohub_vat_number": "DK11111111"}, {}),
        (T0, T0 + timedelta(minutes=1), {}, {"vat_number": "DK22222222"}),
        (T0, T0, {"abohub_vat_number": "DK11111111"}, {}),
    ],
    ids=["hub-newer", "remote-newer", "tie"],
)
def test_vat_number_newest_wins(
    mapping: Mapping, linked: dict[str, str], hub_at: datetime, remote_at: datetime, push: dict, apply: dict
) -> None:
    plan = plan_record(
        mapping,
        customer(vat_number="DK11111111"),
        contact(abohub_vat_number="dk22222222 "),
        linked,
        hub_changed_at=hub_at,
        remote_changed_at=remote_at,
    )
    assert plan.field("abohub_vat_number").outcome is Outcome.CONFLICT_RESOLVED
    assert (plan.push, plan.apply) == (push, apply)


def test_email_conflict_goes_to_the_hub_and_country_conflict_to_hubspot(
    mapping: Mapping, linked: dict[str, str]
) -> None:
    plan = plan_record(
        mapping,
        customer(email="ada@hub.example", country="DE"),
        contact(email="ada@crm.example", country="SE"),
        linked,
    )
    assert plan.push == {"email": "ada@hub.example"}
    assert plan.apply == {"country": "SE"}


def test_hubspot_edits_to_fields_it_does_not_own_are_left_alone(
    mapping: Mapping, linked: dict[str, str]
) -> None:
    remote = contact(abohub_mrr="1.00", abohub_status="Churned", lifecyclestage="lead", hs_language="en")
    plan = plan_record(mapping, customer(), remote, linked)
    assert plan.nothing_to_do  # push fields watch the hub: no pull, and no ping-pong; reconcile repairs drift


def test_a_value_hubspot_sends_that_cannot_be_mapped_fails_that_field_only(
    mapping: Mapping, linked: dict[str, str]
) -> None:
    plan = plan_record(mapping, customer(mrr=15000), contact(email=42, country="SE"), linked)
    (error,) = plan.errors
    assert error.field == "email ↔ email"
    assert error.direction == "to_local"
    assert error.transform == "trim"
    assert error.value == 42
    message = "field email ↔ email (to_local): transform 'trim' failed on 42: expected text, got int"
    assert message in str(error)
    assert plan.field("email").outcome is Outcome.FAILED
    assert plan.fingerprints["email"] == linked["email"]
    assert plan.push == {"abohub_mrr": "150.00"}
    assert plan.apply == {"country": "SE"}


def test_match_keys_link_records_that_mean_the_same(mapping: Mapping) -> None:
    hub = local_match_keys(mapping, customer(email=" Ada@Example.com", vat_number=None))
    remote = remote_match_keys(
        mapping, contact(email="ADA@example.COM", abohub_vat_number="", abohub_id="cus_01")
    )
    assert hub == {"email": fingerprint("ada@example.com"), "abohub_id": fingerprint("cus_01")}
    assert remote == hub  # empty keys never match anything and are left out
    assert remote_match_keys(mapping, {"email": 42}) == {}  # a key that cannot be mapped is not a key


_words = st.lists(st.text(st.characters(categories=["L"]), min_size=1, max_size=8), min_size=1, max_size=4)


@given(name=_words, mrr=st.integers(min_value=0, max_value=10**12), email=st.emails())
def test_any_hub_change_pushed_then_echoed_is_nothing_to_do(name: list[str], mrr: int, email: str) -> None:
    mapping = Mapping.load(CUSTOMER_CONTACT)
    linked = plan_record(mapping, customer(), contact(), {}).fingerprints
    hub = customer(name=" ".join(name), mrr=mrr, email=email)
    pushed = plan_record(mapping, hub, contact(), linked)
    echoed = contact(**pushed.push)
    echo = plan_record(mapping, hub, echoed, pushed.fingerprints)
    assert echo.nothing_to_do, echo.outcomes()


@given(first=_words, last=_words, country=st.sampled_from(["dk", "SE", " no "]))
def test_any_remote_change_pulled_is_not_pushed_back(first: list[str], last: list[str], country: str) -> None:
    mapping = Mapping.load(CUSTOMER_CONTACT)
    linked = plan_record(mapping, customer(), contact(), {}).fingerprints
    remote = contact(firstname=" ".join(first), lastname=" ".join(last), country=country)
    pulled = plan_record(mapping, customer(), remote, linked)
    applied = customer(**pulled.apply)
    assert plan_record(mapping, applied, None, pulled.fingerprints).nothing_to_do
    assert plan_record(mapping, applied, remote, pulled.fingerprints).nothing_to_do
