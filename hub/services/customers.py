"""Customer handlers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from hub.domain.errors import InvalidRequest, NotFound, StateConflict
from hub.domain.ids import new_id
from hub.domain.money import is_currency
from hub.services.snapshot import diff, snapshot
from hub.services.uow import UnitOfWork
from hub.store.models import Customer, Subscription

EDITABLE = (
    "name",
    "email",
    "country",
    "vat_number",
    "currency",
    "locale",
    "address_line1",
    "address_line2",
    "postal_code",
    "city",
    "meta",
)


@dataclass(frozen=True)
class CreateCustomer:
    name: str
    email: str
    country: str = "DK"
    currency: str = "DKK"
    locale: str = "da_DK"
    vat_number: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UpdateCustomer:
    customer_id: str
    changes: dict[str, Any]


def _check_currency(currency: str) -> None:
    if not is_currency(currency):
        raise InvalidRequest("unknown currency", fields={"currency": ["is not an ISO 4217 currency code"]})


def create_customer(cmd: CreateCustomer, uow: UnitOfWork) -> Customer:
    _check_currency(cmd.currency)
    with uow:
        customer = Customer(
            id=new_id("cus"),
            name=cmd.name,
            email=cmd.email,
            country=cmd.country,
            vat_number=cmd.vat_number,
            currency=cmd.currency,
            locale=cmd.locale,
            address_line1=cmd.address_line1,
            address_line2=cmd.address_line2,
            postal_code=cmd.postal_code,
            city=cmd.city,
            meta=dict(cmd.meta),
            mrr=0,
            revenue_state="none",
            created_at=uow.now,
            updated_at=uow.now,
        )
        uow.session.add(customer)
        uow.session.flush()
        uow.record(
            "customer.created",
            "customer",
            customer.id,
            customer_id=customer.id,
            data={"before": {}, "after": snapshot(customer)},
        )
        uow.commit()
        return customer


def update_customer(cmd: UpdateCustomer, uow: UnitOfWork) -> Customer:
    unknown = sorted(set(cmd.changes) - set(EDITABLE))
    if unknown:
        raise InvalidRequest("unknown fields", fields={name: ["cannot be changed"] for name in unknown})
    with uow:
        customer = uow.session.get(Customer, cmd.customer_id, with_for_update=True)
        if customer is None:
            raise NotFound(f"no customer {cmd.customer_id}")
        before = snapshot(customer)
        currency = cmd.changes.get("currency")
        if currency is not None and currency != customer.currency:
            _check_currency(currency)
            has_subscriptions = uow.session.scalar(
                select(Subscription.id).where(Subscription.customer_id == customer.id).limit(1)
            )
            if has_subscriptions:
                raise StateConflict("the currency of a customer with subscriptions cannot change")
        for name, value in cmd.changes.items():
            setattr(customer, name, value)
        customer.updated_at = uow.now
        uow.session.flush()
        old, new = diff(before, snapshot(customer))
        if new:
            uow.record(
                "customer.updated",
                "customer",
                customer.id,
                customer_id=customer.id,
                data={"before": old, "after": new},
            )
        uow.commit()
        return customer
