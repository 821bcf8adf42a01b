"""Products, plans and coupons.

A plan's price, currency and interval never change once created (subscriptions
and MRR history refer to them); make a new plan and move subscriptions to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from hub.domain.errors import InvalidRequest, NotFound
from hub.domain.ids import new_id
from hub.domain.invoicing import DANISH_VAT
from hub.domain.money import is_currency
from hub.services.snapshot import diff, snapshot
from hub.services.uow import UnitOfWork
from hub.store.models import Base, Coupon, Plan, Product


@dataclass(frozen=True)
class CreateProduct:
    name: str
    description: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CreatePlan:
    product_id: str
    name: str
    amount: int
    currency: str
    interval: str
    interval_count: int = 1
    trial_days: int = 0
    vat_rate: Decimal = DANISH_VAT
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CreateCoupon:
    code: str
    name: str
    duration: str
    percent_off: Decimal | None = None
    amount_off: int | None = None
    currency: str | None = None
    duration_periods: int | None = None
    max_redemptions: int | None = None
    redeem_by: datetime | None = None


@dataclass(frozen=True)
class Update:
    """Change the editable fields of a product, plan or coupon."""

    id: str
    changes: dict[str, Any]


PRODUCT_EDITABLE = ("name", "description", "active", "meta")
PLAN_EDITABLE = ("name", "trial_days", "active", "meta")
COUPON_EDITABLE = ("name", "active", "max_redemptions", "redeem_by")


def create_product(cmd: CreateProduct, uow: UnitOfWork) -> Product:
    with uow:
        product = Product(
            id=new_id("prod"),
            name=cmd.name,
            description=cmd.description,
            active=True,
            meta=dict(cmd.meta),
            created_at=uow.now,
            updated_at=uow.now,
        )
        uow.session.add(product)
        _created(uow, "product", product)
        uow.commit()
        return product


def create_plan(cmd: CreatePlan, uow: UnitOfWork) -> Plan:
    if not is_currency(cmd.currency):
        raise InvalidRequest("unknown currency", fields={"currency": ["is not an ISO 4217 currency code"]})
    with uow:
        product = uow.session.get(Product, cmd.product_id)
        if product is None:
            raise InvalidRequest("no such product", fields={"product_id": ["no product with this id"]})
        plan = Plan(
            id=new_id("plan"),
            product_id=product.id,
            name=cmd.name,
            amount=cmd.amount,
            currency=cmd.currency,
            interval=cmd.interval,
            interval_count=cmd.interval_count,
            trial_days=cmd.trial_days,
            vat_rate=cmd.vat_rate,
            active=True,
            meta=dict(cmd.meta),
            created_at=uow.now,
            updated_at=uow.now,
        )
        uow.session.add(plan)
        _created(uow, "plan", plan)
        uow.commit()
        return plan


def create_coupon(cmd: CreateCoupon, uow: UnitOfWork) -> Coupon:
    errors: dict[str, list[str]] = {}
    if (cmd.percent_off is None) == (cmd.amount_off is None):
        errors["percent_off"] = ["give either percent_off or amount_off"]
    if cmd.amount_off is not None and (cmd.currency is None or not is_currency(cmd.currency)):
        errors["currency"] = ["an amount_off coupon needs an ISO 4217 currency"]
    if cmd.duration == "repeating" and not cmd.duration_periods:
        errors["duration_periods"] = ["a repeating coupon needs the number of periods"]
    if cmd.duration != "repeating" and cmd.duration_periods is not None:
        errors["duration_periods"] = ["only a repeating coupon has a number of periods"]
    if errors:
        raise InvalidRequest("the coupon is not valid", fields=errors)
    with uow:
        if uow.session.query(Coupon.id).filter(Coupon.code == cmd.code).first():
            raise InvalidRequest("code in use", fields={"code": ["another coupon has this code"]})
        coupon = Coupon(
            id=new_id("coup"),
            code=cmd.code,
            name=cmd.name,
            percent_off=cmd.percent_off,
            amount_off=cmd.amount_off,
            currency=cmd.currency if cmd.amount_off is not None else None,
            duration=cmd.duration,
            duration_periods=cmd.duration_periods,
            max_redemptions=cmd.max_redemptions,
            times_redeemed=0,
            redeem_by=cmd.redeem_by,
            active=True,
            created_at=uow.now,
            updated_at=uow.now,
        )
        uow.session.add(coupon)
        _created(uow, "coupon", coupon)
        uow.commit()
        return coupon


def update_product(cmd: Update, uow: UnitOfWork) -> Product:
    return _update(uow, Product, "product", PRODUCT_EDITABLE, cmd)  # type: ignore[return-value]


def update_plan(cmd: Update, uow: UnitOfWork) -> Plan:
    return _update(uow, Plan, "plan", PLAN_EDITABLE, cmd)  # type: ignore[return-value]


def update_coupon(cmd: Update, uow: UnitOfWork) -> Coupon:
    return _update(uow, Coupon, "coupon", COUPON_EDITABLE, cmd)  # type: ignore[return-value]


def _created(uow: UnitOfWork, kind: str, record: Base) -> None:
    uow.session.flush()
    uow.record(f"{kind}.created", kind, record.id, data={"before": {}, "after": snapshot(record)})  # type: ignore[attr-defined]


def _update(uow: UnitOfWork, model: type[Base], kind: str, editable: tuple[str, ...], cmd: Update) -> Base:
    unknown = sorted(set(cmd.changes) - set(editable))
    if unknown:
        raise InvalidRequest(
            "these fields cannot change", fields={name: ["cannot be changed"] for name in unknown}
        )
    with uow:
        record = uow.session.get(model, cmd.id, with_for_update=True)
        if record is None:
            raise NotFound(f"no {kind} {cmd.id}")
        before = snapshot(record)
        for name, value in cmd.changes.items():
            setattr(record, name, value)
        record.updated_at = uow.now  # type: ignore[attr-defined]
        uow.session.flush()
        old, new = diff(before, snapshot(record))
        if new:
            uow.record(f"{kind}.updated", kind, cmd.id, data={"before": old, "after": new})
        uow.commit()
        return record
