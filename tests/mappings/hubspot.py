"""A realistic customer ↔ HubSpot contact mapping, used across the mapping tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

STATUS = {"none": "Prospect", "active": "Active", "paused": "Paused", "churned": "Churned"}

CUSTOMER_CONTACT: dict[str, Any] = {
    "object_type": "customer",
    "remote_object": "contacts",
    "key": [
        {"local": "email", "remote": "email"},
        {"local": "vat_number", "remote": "abohub_vat_number"},
        {"local": "id", "remote": "abohub_id"},
    ],
    "fields": [
        {
            "local": "name",
            "remote": ["firstname", "lastname"],
            "direction": "both",
            "to_remote": [{"name": "trim"}, {"name": "split_name"}],
            "to_local": [{"name": "join_name"}],
            "policy": "manual",
        },
        {
            "local": "email",
            "remote": "email",
            "direction": "both",
            "to_remote": [{"name": "trim"}, {"name": "lower"}],
            "to_local": [{"name": "trim"}, {"name": "lower"}],
            "policy": "hub_wins",
        },
        {
            "local": "vat_number",
            "remote": "abohub_vat_number",
            "direction": "both",
            "to_remote": [{"name": "trim"}, {"name": "upper"}],
            "to_local": [{"name": "trim"}, {"name": "upper"}, {"name": "empty_to_none"}],
            "policy": "newest_wins",
        },
        {
            "local": "country",
            "remote": "country",
            "direction": "both",
            "to_remote": [],
            "to_local": [{"name": "trim"}, {"name": "upper"}],
            "policy": "remote_wins",
        },
        {
            "local": "locale",
            "remote": "hs_language",
            "direction": "push",
            "to_remote": [{"name": "enum_map", "values": {"da_DK": "da", "en_GB": "en", "en_US": "en"}}],
        },
        {
            "local": "mrr",
            "remote": "abohub_mrr",
            "direction": "push",
            "to_remote": [{"name": "minor_to_decimal", "currency": "DKK"}],
        },
        {
            "local": "revenue_state",
            "remote": "abohub_status",
            "direction": "push",
            "to_remote": [{"name": "enum_map", "values": STATUS}],
        },
        {
            "local": "first_active_at",
            "remote": "abohub_customer_since",
            "direction": "push",
            "to_remote": [{"name": "datetime_to_date"}, {"name": "date_to_epoch_ms"}],
        },
        {
            "remote": "lifecyclestage",
            "direction": "push",
            "to_remote": [{"name": "constant", "value": "customer"}],
        },
        {
            "local": "crm_owner",
            "remote": "hubspot_owner_id",
            "direction": "pull",
            "to_local": [{"name": "empty_to_none"}],
        },
    ],
}


def customer(**changes: Any) -> dict[str, Any]:
    """A hub customer's values, as the sync job reads them from the store."""
    values: dict[str, Any] = {
        "id": "cus_01",
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "vat_number": "DK12345678",
        "country": "DK",
        "locale": "da_DK",
        "mrr": 12345,
        "revenue_state": "active",
        "first_active_at": datetime(2026, 1, 15, 9, 30, tzinfo=UTC),
        "crm_owner": None,
    }
    values.update(changes)
    return values


def contact(**changes: Any) -> dict[str, Any]:
    """The matching HubSpot contact's properties, as HubSpot answers them (all text)."""
    values: dict[str, Any] = {
        "firstname": "Ada",
        "lastname": "Lovelace",
        "email": "ada@example.com",
        "abohub_vat_number": "DK12345678",
        "country": "DK",
        "hs_language": "da",
        "abohub_mrr": "123.45",
        "abohub_status": "Active",
        "abohub_customer_since": "1768435200000",
        "lifecyclestage": "customer",
        "hubspot_owner_id": "",
    }
    values.update(changes)
    return values
