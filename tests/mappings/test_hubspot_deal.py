"""The default HubSpot mappings for deals and for money in the record's own currency, and their transforms."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.sim.schema import DEAL_STAGES as HUBSPOT_DEFAULT_PIPELINE_STAGES
from hub.domain.lifecycle import Status
from mappings.engine import plan_record, to_remote
from mappings.errors import MappingInvalid, TransformError
from mappings.schema import Mapping
from mappings.transforms import step


def mapping_for(object_type: str) -> Mapping:
    [found] = [m for m in HubSpotConnector.default_mappings() if m["object_type"] == object_type]
    return Mapping.load(found)


def subscription(**changes: Any) -> dict[str, Any]:
    values = {
        "id": "sub_1",
        "status": "active",
        "plan_name": "Pro",
        "customer_label": "Karen Jensen",
        "monthly_value": 14_900,
        "mrr": 14_900,
        "currency": "DKK",
    }
    return {**values, **changes}


# --- transforms -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([12_345, "DKK"], "123.45"),
        ((4_950, "EUR"), "49.50"),
        ([500, "JPY"], "500"),  # no minor unit
        ([-1_000, "DKK"], "-10.00"),
        (["12345", "DKK"], "123.45"),
        ([None, "DKK"], None),
        (["", None], None),  # no amount is no value, whatever the currency
    ],
)
def test_money_to_decimal_uses_the_records_own_currency(value: Any, expected: str | None) -> None:
    assert step("money_to_decimal").apply(value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (12_345, "expected [amount in minor units, currency]"),
        ([12_345], "expected [amount in minor units, currency]"),
        ([12_345, None], "None is not an ISO 4217 currency code"),
        ([12_345, "KRONER"], "'KRONER' is not an ISO 4217 currency code"),
        ([123.45, "DKK"], "expected a whole number"),
    ],
)
def test_money_to_decimal_refuses_what_it_cannot_place(value: Any, fragment: str) -> None:
    with pytest.raises(TransformError, match="money_to_decimal") as caught:
        step("money_to_decimal").apply(value)
    assert fragment in caught.value.reason


def test_join_text() -> None:
    dash = step("join_text", separator=" — ")
    assert dash.apply(["Pro", "Karen Jensen"]) == "Pro — Karen Jensen"
    assert dash.apply([" Pro ", None, "", "karen@example.dk"]) == "Pro — karen@example.dk"
    assert dash.apply([None, ""]) == ""
    assert step("join_text").apply(["Pro", "yearly"]) == "Pro yearly"
    with pytest.raises(TransformError, match="expected a list of text parts"):
        dash.apply("Pro")
    with pytest.raises(TransformError, match="expected text, got int"):
        dash.apply(["Pro", 7])
    with pytest.raises(MappingInvalid, match="separator"):
        step("join_text", separator="")


# --- subscription ↔ deal ---------------------------------------------------------------------------------


def test_every_subscription_status_has_a_stage_of_hubspots_default_pipeline() -> None:
    mapping = mapping_for("subscription")
    stages = {status: to_remote(mapping, subscription(status=status.value))["dealstage"] for status in Status}
    assert set(stages.values()) <= set(HUBSPOT_DEFAULT_PIPELINE_STAGES)
    assert stages[Status.TRIALING] not in ("closedwon", "closedlost")  # a trial is still an open deal
    assert {stages[s] for s in (Status.ACTIVE, Status.PAST_DUE, Status.PAUSED)} == {"closedwon"}
    assert stages[Status.CANCELED] == "closedlost"


def test_a_new_subscription_in_hubspot_form() -> None:
    assert to_remote(
        mapping_for("subscription"), subscription(currency="EUR", monthly_value=4_950, mrr=0)
    ) == {
        "dealname": "Pro — Karen Jensen",
        "pipeline": "default",
        "dealstage": "closedwon",
        "amount": "49.50",
        "deal_currency_code": "EUR",
        "abohub_status": "Active",
        "abohub_mrr": "0.00",
    }


def test_a_pause_pushes_only_what_it_changed() -> None:
    mapping = mapping_for("subscription")
    first = plan_record(mapping, subscription(), None, None)
    assert set(first.push) == {
        "dealname",
        "pipeline",
        "dealstage",
        "amount",
        "deal_currency_code",
        "abohub_status",
        "abohub_mrr",
    }
    paused = plan_record(mapping, subscription(status="paused", mrr=0), {}, first.fingerprints)
    # Still won and still worth 149.00 a month; what changed is its status and the MRR that counts.
    assert paused.push == {"abohub_status": "Paused", "abohub_mrr": "0.00"}
    again = plan_record(mapping, subscription(status="paused", mrr=0), {}, paused.fingerprints)
    assert again.push == {}


def test_the_deal_mapping_only_pushes() -> None:
    assert all(field.direction.value == "push" for field in mapping_for("subscription").fields)


# --- customer ↔ contact: money in the customer's currency -------------------------------------------------


def test_the_contacts_mrr_and_lifetime_value_are_in_the_customers_currency() -> None:
    customer = {
        "id": "cus_1",
        "name": "Hans Müller",
        "email": "hans@example.de",
        "country": "DE",
        "vat_number": None,
        "revenue_state": "active",
        "plan_names": "Start",
        "mrr": 4_950,
        "lifetime_value": 19_800,
        "currency": "EUR",
    }
    pushed = to_remote(mapping_for("customer"), customer)
    assert (pushed["abohub_mrr"], pushed["abohub_ltv"], pushed["abohub_currency"]) == (
        "49.50",
        "198.00",
        "EUR",
    )
    yen = to_remote(
        mapping_for("customer"), {**customer, "mrr": 980, "lifetime_value": 2_940, "currency": "JPY"}
    )
    assert (yen["abohub_mrr"], yen["abohub_ltv"]) == ("980", "2940")
