"""Demo data: a Danish subscription business with a year of history.

Everything is made through the service layer with the clock moved forward day
by day, so the invoices, payments, events and MRR movements are exactly what
the real thing would have written. The same seed always gives the same story.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from hub.bootstrap import Hub
from hub.domain.errors import AbohubError
from hub.services import catalog, customers, subscriptions
from hub.services.billing import RunBilling, run_billing
from hub.services.clock import FixedClock
from hub.services.payments import collect_due
from hub.services.uow import UnitOfWork
from hub.store.models import Customer, Invoice, Plan, Product, Subscription

FIRST_NAMES = [
    "Anne",
    "Mette",
    "Kirsten",
    "Hanne",
    "Lene",
    "Sofie",
    "Ida",
    "Emma",
    "Peter",
    "Jens",
    "Lars",
    "Henrik",
    "Søren",
    "Mikkel",
    "Rasmus",
    "Frederik",
    "Astrid",
    "Freja",
    "Magnus",
    "Oliver",
]
LAST_NAMES = [
    "Jensen",
    "Nielsen",
    "Hansen",
    "Pedersen",
    "Andersen",
    "Christensen",
    "Larsen",
    "Sørensen",
    "Rasmussen",
    "Jørgensen",
    "Petersen",
    "Madsen",
    "Kristensen",
    "Olsen",
    "Thomsen",
    "Poulsen",
]
CITIES = [
    ("1050", "København K"),
    ("8000", "Aarhus C"),
    ("5000", "Odense C"),
    ("9000", "Aalborg"),
    ("6700", "Esbjerg"),
    ("7100", "Vejle"),
    ("4000", "Roskilde"),
    ("3000", "Helsingør"),
]
COMPANIES = [
    "Bageriet Ved Åen ApS",
    "Nordlys Design A/S",
    "Fjordens Cykler ApS",
    "Hygge Kontor ApS",
    "Kaffebrænderiet I/S",
    "Grøn Energi Rådgivning ApS",
]
log = logging.getLogger(__name__)
NewUow = Callable[[], UnitOfWork]
STREETS = ["Strandvejen", "Vestergade", "Algade", "Torvet"]
CANCEL_REASONS = ["too_expensive", "unused", "switched_service", "missing_features", "other"]
FEEDBACK = [
    "Vi bruger det ikke nok.",
    "For dyrt i forhold til konkurrenterne.",
    "Skifter til et andet system.",
    "Mangler integration til vores lager.",
    "",
]


@dataclass
class DemoReport:
    customers: int = 0
    subscriptions: int = 0
    invoices: int = 0
    days: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


def already_loaded(hub: Hub) -> bool:
    with hub.session_factory() as session:
        return bool(session.scalar(select(func.count()).select_from(Customer)))


def load(hub: Hub, *, days: int = 400, seed: int = 7, until: datetime | None = None) -> DemoReport:
    """Write ``days`` days of history ending at ``until`` (default: now)."""
    end = (until or datetime.now(UTC)).astimezone(UTC)
    clock = FixedClock(end - timedelta(days=days))
    timed = Hub(hub.settings, hub.engine, hub.session_factory, clock, hub.gateway)
    rng = random.Random(seed)
    actor = "system:demo"

    def uow() -> UnitOfWork:
        return timed.uow(actor)

    plans = _catalog(uow)
    live: list[str] = []
    report = DemoReport()
    day = clock.now().replace(hour=9, minute=0, second=0, microsecond=0)
    while day < end:
        clock.set(day)
        for _ in range(rng.choice([0, 0, 1, 1, 1, 2])):
            sub_id = _new_customer(uow, rng, plans, report)
            if sub_id:
                live.append(sub_id)
        clock.set(min(day + timedelta(hours=3), end))
        if live and rng.random() < 0.35:
            _something_happens(uow, rng, plans, live)
        clock.set(min(day + timedelta(hours=23), end))
        run_billing(RunBilling(), uow())
        day += timedelta(days=1)
        report.days += 1
    clock.set(end)
    run_billing(RunBilling(), uow())
    collect_due(uow())
    with hub.session_factory() as session:
        report.by_status = dict(
            session.execute(select(Subscription.status, func.count()).group_by(Subscription.status)).all()
        )
        report.subscriptions = sum(report.by_status.values())
        report.invoices = session.scalar(select(func.count()).select_from(Invoice)) or 0
    return report


def _catalog(uow: NewUow) -> dict[str, list[Plan]]:
    coffee = catalog.create_product(
        catalog.CreateProduct(name="Kaffeklubben", description="Friskristet kaffe leveret til døren"), uow()
    )
    news = catalog.create_product(
        catalog.CreateProduct(name="Avisen Digital", description="Digitalt abonnement på nyheder"), uow()
    )
    office = catalog.create_product(
        catalog.CreateProduct(name="Kontorpakken", description="Software til små virksomheder"), uow()
    )

    def plan(product: Product, name: str, amount: int, interval: str, trial: int = 0, count: int = 1) -> Plan:
        return catalog.create_plan(
            catalog.CreatePlan(
                product_id=product.id,
                name=name,
                amount=amount,
                currency="DKK",
                interval=interval,
                interval_count=count,
                trial_days=trial,
                vat_rate=Decimal("25.00"),
            ),
            uow(),
        )

    plans = {
        "coffee": [
            plan(coffee, "Kaffeklubben Måned", 14_900, "month"),
            plan(coffee, "Kaffeklubben Kvartal", 39_900, "quarter"),
            plan(coffee, "Kaffeklubben År", 149_900, "year"),
        ],
        "news": [
            plan(news, "Avisen Digital Måned", 9_900, "month", trial=14),
            plan(news, "Avisen Digital Halvår", 54_900, "month", count=6),
        ],
        "office": [
            plan(office, "Kontorpakken Basis", 29_900, "month"),
            plan(office, "Kontorpakken Pro", 59_900, "month"),
            plan(office, "Kontorpakken Pro År", 599_000, "year"),
        ],
    }
    catalog.create_coupon(
        catalog.CreateCoupon(
            code="TROFAST10", name="Loyalitetsrabat 10 %", duration="forever", percent_off=Decimal("10")
        ),
        uow(),
    )
    catalog.create_coupon(
        catalog.CreateCoupon(
            code="VELKOMMEN", name="Første måned halv pris", duration="once", percent_off=Decimal("50")
        ),
        uow(),
    )
    catalog.create_coupon(
        catalog.CreateCoupon(
            code="BLIV3",
            name="50 kr. rabat i 3 perioder",
            duration="repeating",
            duration_periods=3,
            amount_off=5_000,
            currency="DKK",
        ),
        uow(),
    )
    return plans


def _new_customer(uow: NewUow, rng: random.Random, plans: dict[str, list[Plan]], report: DemoReport) -> str:
    business = rng.random() < 0.25
    postal_code, city = rng.choice(CITIES)
    if business:
        name = rng.choice(COMPANIES)
        vat = f"DK{rng.randint(10_000_000, 99_999_999)}"
    else:
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        vat = None
    email = f"{name.split()[0].lower()}.{rng.randint(100, 9999)}@example.dk"
    method = "ok" if rng.random() > 0.08 else rng.choice(["declined", "recover_after_1", "recover_after_2"])
    customer = customers.create_customer(
        customers.CreateCustomer(
            name=name,
            email=email,
            country="DK",
            currency="DKK",
            locale="da_DK",
            vat_number=vat,
            address_line1=f"{rng.choice(STREETS)} {rng.randint(1, 120)}",
            postal_code=postal_code,
            city=city,
            meta={"payment_method": method},
        ),
        uow(),
    )
    report.customers += 1
    family = "office" if business else rng.choice(["coffee", "coffee", "news"])
    plan = rng.choice(plans[family])
    coupon = "VELKOMMEN" if rng.random() < 0.15 else None
    outcome = subscriptions.create_subscription(
        subscriptions.CreateSubscription(customer_id=customer.id, plan_id=plan.id, coupon_code=coupon), uow()
    )
    collect_due(uow(), outcome.invoice_ids)
    return outcome.subscription_id


def _something_happens(
    uow: NewUow, rng: random.Random, plans: dict[str, list[Plan]], live: list[str]
) -> None:
    sub_id = rng.choice(live)
    with uow() as work:
        sub = work.session.get(Subscription, sub_id)
        assert sub is not None
        status, plan_id, period_end = sub.status, sub.plan_id, sub.current_period_end
        paused, cancel_scheduled = status == "paused", sub.cancel_at_period_end
    roll = rng.random()
    try:
        if status == "canceled":
            live.remove(sub_id)
        elif paused:
            if roll < 0.6:
                outcome = subscriptions.resume_subscription(subscriptions.ResumeSubscription(sub_id), uow())
                collect_due(uow(), outcome.invoice_ids)
        elif cancel_scheduled:
            if roll < 0.3:
                subscriptions.reactivate_subscription(subscriptions.ReactivateSubscription(sub_id), uow())
        elif roll < 0.30:
            subscriptions.cancel_subscription(
                subscriptions.CancelSubscription(
                    sub_id,
                    reason=rng.choice(CANCEL_REASONS),
                    feedback=rng.choice(FEEDBACK) or None,
                    at_period_end=rng.random() < 0.7,
                ),
                uow(),
            )
        elif roll < 0.45 and status == "active":
            at_period_end = rng.random() < 0.5
            start = period_end if at_period_end and period_end else uow().clock.now()
            resume_at = start + timedelta(days=rng.choice([30, 60])) if rng.random() < 0.5 else None
            subscriptions.pause_subscription(
                subscriptions.PauseSubscription(sub_id, at_period_end=at_period_end, resume_at=resume_at),
                uow(),
            )
        elif roll < 0.75 and status in ("active", "trialing"):
            family = next(name for name, group in plans.items() if any(p.id == plan_id for p in group))
            choices = [p for p in plans[family] if p.id != plan_id]
            if choices:
                outcome = subscriptions.change_plan(
                    subscriptions.ChangePlan(
                        sub_id, plan_id=rng.choice(choices).id, invoice_now=rng.random() < 0.3
                    ),
                    uow(),
                )
                collect_due(uow(), outcome.invoice_ids)
        elif status in ("active", "past_due"):
            subscriptions.apply_coupon(subscriptions.ApplyCoupon(sub_id, "TROFAST10"), uow())
    except AbohubError as refused:
        # The demo tries what real customers try; the store refusing some of it is part of the story.
        log.debug("demo action refused: %s", refused)
