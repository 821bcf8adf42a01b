"""Billing-run benchmark: 100,000 due subscriptions renewed and invoiced on PostgreSQL.

Run it with ``python -m bench.billing_run`` (``--help`` for options). It

1. creates a fresh database ``abohub_bench_billing`` on the local PostgreSQL
   server, migrates it, and loads (with ``COPY``, not through the service
   layer: that is setup, not what is measured) customers, a product, four
   monthly plans, three coupons and N active monthly subscriptions whose
   current period ended within the month before the run time, with every
   column the service layer would have set (anchor, current period,
   ``next_action_at``, MRR, coupon periods left, ...);
2. measures the **baseline**: the same rows the billing run writes per
   subscription (the subscription update, one invoice, one invoice line, two
   events and two outbox rows), prepared in Python beforehand (event ids
   included, so no ``RETURNING`` is needed) and written with plain SQLAlchemy
   Core ``executemany`` into the same tables, one transaction per batch of the
   same size as the billing run's default batch;
3. measures the **billing run** itself, ``run_billing(RunBilling(at=...,
   collect=False), hub.uow(...))``, at the default batch size and at two
   others, restoring the data between runs and checking after each run that
   nothing was lost or doubled (exactly N invoices numbered 1..N, every
   subscription advanced exactly one period, every event and outbox row);
4. times collection (``collect_due`` with the built-in test gateway) of the
   open invoices of the default-batch run, separately (the target is on
   renew + invoice only): the first 5,000 by default, ``--collect all`` for
   every one (three transactions and a gateway call per invoice: minutes);
5. drops its database, whatever happened.

Every measurement starts from the same state (the data restored, the loaded
tables vacuumed and analysed, a checkpoint taken) and runs with the
benchmark's own objects frozen out of the garbage collector (see
:func:`stopwatch`). The machine is shared: compare figures from one run.

Exit status: 0 when every check passed and the billing run reached at least
1/4 of the bulk-insert rate, 1 when a check failed (rows lost, doubled or
wrong), 3 when the checks passed but the target was missed.
"""

from __future__ import annotations

import argparse
import calendar
import gc
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import bindparam, func, insert, select, update

from bench._common import DEFAULT_ADMIN_URL, fresh_database
from config import Settings, load_settings
from hub.bootstrap import Hub, build
from hub.domain.calendar import add_months, period_end_after
from hub.domain.ids import new_id
from hub.domain.invoicing import DANISH_VAT, Discount, format_number
from hub.domain.money import percent_of
from hub.domain.mrr import subscription_mrr
from hub.services.billing import RunBilling, run_billing
from hub.services.clock import FixedClock
from hub.services.payments import collect_due
from hub.services.snapshot import jsonable
from hub.store.migrate import upgrade
from hub.store.models import Event, Invoice, InvoiceLine, OutboxMessage, Subscription

DB_NAME = "abohub_bench_billing"
# The run time: every subscription's current period ended in the month before,
# so each is renewed exactly once (its next period ends after AT). Early March
# means February's short month clamps anchors on the 29th-31st.
AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CATALOG_TIME = datetime(2023, 1, 1, tzinfo=UTC)
ACTOR = "system:bench"
TARGET = 0.25
SECRET = "bench-billing-run-not-a-secret"  # a throwaway database

# (id, name, monthly amount in øre)
PLANS = [
    ("plan_bench_basis", "Basis", 4_900),
    ("plan_bench_standard", "Standard", 9_900),
    ("plan_bench_plus", "Plus", 14_900),
    ("plan_bench_pro", "Pro", 29_900),
]
# (id, code, percent off in basis points, amount off, duration, duration periods)
COUPONS = [
    ("coup_bench_loyal20", "LOYAL20", 2_000, None, "forever", None),
    ("coup_bench_welcome50", "WELCOME50", 5_000, None, "once", None),
    ("coup_bench_save50kr", "SAVE50KR", None, 5_000, "repeating", 6),
]


@dataclass
class Due:
    """One loaded subscription and what the billing run must make of it."""

    id: str
    customer_id: str
    plan_id: str
    plan_name: str
    unit_amount: int
    quantity: int
    coupon_id: str | None
    coupon_left: int | None
    period_start: datetime  # the current period (before the run)
    period_end: datetime
    new_end: datetime  # the end of the period the run starts
    discount: int
    coupon_left_after: int | None

    @property
    def net(self) -> int:
        return self.unit_amount * self.quantity - self.discount

    @property
    def total(self) -> int:
        return self.net + percent_of(self.net, DANISH_VAT)

    @property
    def status(self) -> str:
        return "open" if self.total else "paid"  # nothing to pay: the run issues it paid


@dataclass
class Result:
    label: str
    seconds: float
    count: int
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


# --- database lifecycle ----------------------------------------------------------


def settings_for(url: str, batch_size: int | None = None) -> Settings:
    overrides: dict[str, Any] = {"database_url": url, "secret_key": SECRET}
    if batch_size is not None:
        overrides["billing_batch_size"] = batch_size
    return load_settings({}, **overrides)


def make_hub(url: str, batch_size: int | None = None) -> Hub:
    hub = build(settings_for(url, batch_size), clock=FixedClock(AT))
    with hub.engine.connect():
        pass  # open the pool's first connection outside any timing
    return hub


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """Time the block, with the benchmark's own objects (expectations, prepared rows) frozen.

    ``gc.freeze()`` keeps the garbage collector from walking the benchmark's
    hundreds of thousands of live objects on every full collection, which a
    real billing process does not have; what is timed pays only for its own
    garbage.
    """
    gc.collect()
    gc.freeze()
    elapsed = [0.0]
    started = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed[0] = time.perf_counter() - started
        gc.unfreeze()


# --- data ------------------------------------------------------------------------


_periods: dict[tuple[int, int, int], tuple[datetime, datetime, datetime]] = {}


def periods_of(anchor: datetime) -> tuple[datetime, datetime, datetime]:
    """(current period start, current period end <= AT, the next end > AT) for a monthly anchor.

    Near AT these depend only on the anchor's day and time of day, so they are
    computed once per (day, hour, minute).
    """
    key = (anchor.day, anchor.hour, anchor.minute)
    found = _periods.get(key)
    if found is None:
        n = (AT.year - anchor.year) * 12 + AT.month - anchor.month
        while add_months(anchor, n) > AT:
            n -= 1
        while add_months(anchor, n + 1) <= AT:
            n += 1
        start, end = add_months(anchor, n - 1), add_months(anchor, n)
        new_end = period_end_after(anchor, 1, end)  # what the billing run computes
        assert start < end <= AT < new_end
        found = _periods[key] = (start, end, new_end)
    return found


Row = tuple[Any, ...]


def generate(count: int, seed: int = 20260302) -> tuple[list[Row], list[Row], list[Due]]:
    """Customer rows, subscription rows (both in COPY column order) and the expectations."""
    rng = random.Random(seed)
    plans = [(pid, name, amount) for pid, name, amount in PLANS]
    customer_count = max(1, count * 4 // 5)
    customer_ids = [new_id("cus") for _ in range(customer_count)]
    customer_mrr = [0] * customer_count
    customer_first: list[datetime | None] = [None] * customer_count
    sub_rows: list[tuple[Any, ...]] = []
    dues: list[Due] = []
    for i in range(count):
        owner = i if i < customer_count else rng.randrange(customer_count)
        plan_id, plan_name, amount = rng.choice(plans)
        quantity = 1 if rng.random() < 0.85 else rng.randint(2, 5)
        year, month = rng.choice((2024, 2025)), rng.randint(1, 12)
        day = rng.randint(1, calendar.monthrange(year, month)[1])
        anchor = datetime(year, month, day, rng.randrange(24), rng.choice((0, 15, 30, 45)), tzinfo=UTC)
        start, end, new_end = periods_of(anchor)
        pick = rng.random()
        coupon_id: str | None = None
        left: int | None = None
        forever: Discount | None = None
        discount = 0
        left_after = None
        gross = amount * quantity
        if pick < 0.10:
            coupon_id = COUPONS[0][0]
            forever = Discount(percent_off=_percent(COUPONS[0][2]))
            discount = forever.on(gross)
        elif pick < 0.15:
            coupon_id, left = COUPONS[1][0], 0  # "once": used on the first invoice
            left_after = 0
        elif pick < 0.20:
            coupon_id, left = COUPONS[2][0], rng.randint(0, 3)
            if left > 0:
                discount = Discount(amount_off=COUPONS[2][3]).on(gross)
            left_after = max(0, left - 1)
        mrr = subscription_mrr("active", amount, quantity, 1, forever)
        customer_mrr[owner] += mrr
        first = customer_first[owner]
        customer_first[owner] = anchor if first is None else min(first, anchor)
        sub_id = new_id("sub")
        sub_rows.append(
            (
                sub_id,
                customer_ids[owner],
                plan_id,
                "active",
                quantity,
                "DKK",
                anchor,  # started_at
                None,  # trial_end
                anchor,  # billing_anchor
                start,
                end,
                end,  # next_action_at
                False,
                False,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                coupon_id,
                left,
                mrr,
                "{}",
                anchor,  # created_at
                start,  # updated_at: the last renewal
            )
        )
        dues.append(
            Due(
                sub_id,
                customer_ids[owner],
                plan_id,
                plan_name,
                amount,
                quantity,
                coupon_id,
                left,
                start,
                end,
                new_end,
                discount,
                left_after,
            )
        )
    customer_rows = []
    for n, cid in enumerate(customer_ids):
        since = customer_first[n]
        customer_rows.append(
            (
                cid,
                f"Bench Customer {n}",
                f"customer{n}@bench.example.dk",
                "DK",
                f"DK{10_000_000 + n}" if n % 3 == 0 else None,
                "DKK",
                "da_DK",
                f"Benchvej {n % 200 + 1}",
                None,
                f"{1000 + n % 8000}",
                "København",
                "{}",
                customer_mrr[n],
                "active",
                since,
                since,
                since,
            )
        )
    return customer_rows, sub_rows, dues


def _percent(basis_points: int) -> Decimal:
    return (Decimal(basis_points) / 100).quantize(Decimal("0.01"))


CUSTOMER_COLUMNS = (
    "id, name, email, country, vat_number, currency, locale, address_line1, address_line2, postal_code, "
    "city, metadata, mrr, revenue_state, first_active_at, created_at, updated_at"
)
SUBSCRIPTION_COLUMNS = (
    "id, customer_id, plan_id, status, quantity, currency, started_at, trial_end, billing_anchor, "
    "current_period_start, current_period_end, next_action_at, cancel_at_period_end, pause_at_period_end, "
    "pause_resume_at, paused_at, resume_at, cancel_requested_at, canceled_at, cancel_reason, "
    "cancel_feedback, coupon_id, coupon_periods_left, mrr, metadata, created_at, updated_at"
)


def load(url: str, customer_rows: list[tuple[Any, ...]], sub_rows: list[tuple[Any, ...]]) -> None:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO products (id, name, description, active, metadata, created_at, updated_at) "
            "VALUES ('prod_bench', 'Bench membership', NULL, true, '{}', %s, %s)",
            (CATALOG_TIME, CATALOG_TIME),
        )
        for pid, name, amount in PLANS:
            cur.execute(
                "INSERT INTO plans (id, product_id, name, amount, currency, interval, interval_count, "
                "trial_days, vat_rate, active, metadata, created_at, updated_at) "
                "VALUES (%s, 'prod_bench', %s, %s, 'DKK', 'month', 1, 0, 2500, true, '{}', %s, %s)",
                (pid, name, amount, CATALOG_TIME, CATALOG_TIME),
            )
        for cid, code, percent, amount_off, duration, periods in COUPONS:
            cur.execute(
                "INSERT INTO coupons (id, code, name, percent_off, amount_off, currency, duration, "
                "duration_periods, max_redemptions, times_redeemed, redeem_by, active, created_at, "
                "updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, NULL, 0, NULL, true, %s, %s)",
                (
                    cid,
                    code,
                    code,
                    percent,
                    amount_off,
                    "DKK" if amount_off else None,
                    duration,
                    periods,
                    CATALOG_TIME,
                    CATALOG_TIME,
                ),
            )
        with cur.copy(f"COPY customers ({CUSTOMER_COLUMNS}) FROM STDIN") as copy:
            for row in customer_rows:
                copy.write_row(row)
        with cur.copy(f"COPY subscriptions ({SUBSCRIPTION_COLUMNS}) FROM STDIN") as copy:
            for row in sub_rows:
                copy.write_row(row)
        # Redemption counts, as the service layer would have kept them.
        cur.execute(
            "UPDATE coupons SET times_redeemed = (SELECT count(*) FROM subscriptions s "
            "WHERE s.coupon_id = coupons.id)"
        )
        cur.execute("CREATE SCHEMA bench")
        cur.execute("CREATE TABLE bench.initial_subscriptions AS SELECT * FROM subscriptions")
        conn.commit()
    settle(url)


def settle(url: str) -> None:
    """Statistics fresh, dead rows gone, dirty pages written: every measurement starts alike.

    Only the loaded tables are vacuumed and analyzed. The tables the run fills
    stay as in a fresh installation (never analyzed; ``TRUNCATE`` puts them
    back there): had they been analyzed while empty, PostgreSQL would plan the
    foreign-key checks against them (e.g. invoice_lines -> invoices) as
    sequential scans and keep those plans for the connection's life, which
    makes a long run quadratic where autovacuum is off, as on this server.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE {', '.join(LOADED_TABLES)}")
        conn.execute("CHECKPOINT")


LOADED_TABLES = ("products", "plans", "coupons", "customers", "subscriptions", "number_sequences")


def reset(url: str) -> None:
    """Back to the loaded state: no invoices, events or outbox rows; subscriptions as loaded."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "TRUNCATE subscriptions, invoices, invoice_lines, events, outbox, mrr_movements, "
            "payment_attempts, payments, credit_notes, credit_note_lines, pending_items RESTART IDENTITY"
        )
        conn.execute("INSERT INTO subscriptions SELECT * FROM bench.initial_subscriptions")
        conn.execute("UPDATE number_sequences SET last_value = 0")
        conn.commit()
    settle(url)


# --- the baseline ----------------------------------------------------------------


def baseline_rows(dues: list[Due], prefix: str) -> list[dict[str, Any]]:
    """Per subscription, in the billing run's order, the rows it writes (but the outbox rows)."""
    recorded_at = datetime.now(UTC)
    prepared = []
    for sequence, due in enumerate(dues, start=1):
        invoice_id = new_id("in")
        number = format_number(prefix, sequence)
        net = due.net
        vat = percent_of(net, DANISH_VAT)
        dates = f"{due.period_end.date().isoformat()} – {due.new_end.date().isoformat()}"
        description = f"{due.plan_name} ({dates})"
        prepared.append(
            {
                "subscription": {
                    "b_id": due.id,
                    "b_start": due.period_end,
                    "b_end": due.new_end,
                    "b_next": due.new_end,
                    "b_updated": AT,
                    "b_left": due.coupon_left_after,
                },
                "invoice": {
                    "id": invoice_id,
                    "number": number,
                    "sequence": sequence,
                    "customer_id": due.customer_id,
                    "subscription_id": due.id,
                    "status": due.status,
                    "billing_reason": "subscription_cycle",
                    "currency": "DKK",
                    "subtotal": due.unit_amount * due.quantity,
                    "discount": due.discount,
                    "vat": vat,
                    "total": net + vat,
                    "amount_paid": 0,
                    "amount_credited": 0,
                    "period_start": due.period_end,
                    "period_end": due.new_end,
                    "issued_at": AT,
                    "due_at": AT,
                    "paid_at": None if due.total else AT,
                    "voided_at": None,
                    "attempt_count": 0,
                    "first_failed_at": None,
                    "next_payment_attempt_at": AT if due.total else None,
                    "created_at": AT,
                    "updated_at": AT,
                },
                "line": {
                    "id": new_id("il"),
                    "invoice_id": invoice_id,
                    "position": 1,
                    "description": description,
                    "kind": "subscription",
                    "quantity": due.quantity,
                    "unit_amount": due.unit_amount,
                    "amount": due.unit_amount * due.quantity,
                    "discount_amount": due.discount,
                    "net_amount": net,
                    "vat_rate": DANISH_VAT,
                    "vat_amount": vat,
                    "total": net + vat,
                    "plan_id": due.plan_id,
                    "period_start": due.period_end,
                    "period_end": due.new_end,
                },
                "renewed": {
                    "type": "subscription.renewed",
                    "aggregate_type": "subscription",
                    "aggregate_id": due.id,
                    "customer_id": due.customer_id,
                    "actor": ACTOR,
                    "occurred_at": due.period_end,
                    "recorded_at": recorded_at,
                    "data": jsonable(
                        {
                            "before": {
                                "current_period_start": due.period_start,
                                "current_period_end": due.period_end,
                            },
                            "after": {
                                "current_period_start": due.period_end,
                                "current_period_end": due.new_end,
                            },
                        }
                    ),
                },
                "issued": {
                    "type": "invoice.issued",
                    "aggregate_type": "invoice",
                    "aggregate_id": invoice_id,
                    "customer_id": due.customer_id,
                    "actor": ACTOR,
                    "occurred_at": AT,
                    "recorded_at": recorded_at,
                    "data": {
                        "number": number,
                        "status": due.status,
                        "subscription_id": due.id,
                        "billing_reason": "subscription_cycle",
                        "currency": "DKK",
                        "total": net + vat,
                        "vat": vat,
                    },
                },
            }
        )
    return prepared


def baseline_batches(dues: list[Due], prefix: str, batch_size: int) -> list[dict[str, list[dict[str, Any]]]]:
    """The rows of :func:`baseline_rows` grouped per transaction, events and outbox rows with their ids.

    Event ids are given here (1, 2, ...; the tables start empty) so that the
    outbox rows are ready too and the timed part is nothing but the writes.
    """
    prepared = baseline_rows(dues, prefix)
    batches = []
    next_event_id = 1
    for offset in range(0, len(prepared), batch_size):
        chunk = prepared[offset : offset + batch_size]
        events = [p["renewed"] for p in chunk] + [p["issued"] for p in chunk]
        outbox = []
        for event in events:
            event["id"] = next_event_id
            next_event_id += 1
            outbox.append(
                {
                    "event_id": event["id"],
                    "topic": event["type"],
                    "aggregate_type": event["aggregate_type"],
                    "aggregate_id": event["aggregate_id"],
                    "payload": {
                        "event_id": event["id"],
                        "type": event["type"],
                        "occurred_at": event["occurred_at"].isoformat(),
                        "data": event["data"],
                    },
                    "created_at": event["recorded_at"],
                    "relayed_at": None,
                }
            )
        batches.append(
            {
                "subscriptions": [p["subscription"] for p in chunk],
                "invoices": [p["invoice"] for p in chunk],
                "lines": [p["line"] for p in chunk],
                "events": events,
                "outbox": outbox,
            }
        )
    return batches


def run_baseline(url: str, dues: list[Due], batch_size: int) -> Result:
    hub = make_hub(url)
    try:
        batches = baseline_batches(dues, hub.settings.invoice_prefix, batch_size)
        subs = Subscription.__table__
        update_subs = (
            update(subs)
            .where(subs.c.id == bindparam("b_id"))
            .values(
                current_period_start=bindparam("b_start"),
                current_period_end=bindparam("b_end"),
                next_action_at=bindparam("b_next"),
                updated_at=bindparam("b_updated"),
                coupon_periods_left=bindparam("b_left"),
            )
        )
        with stopwatch() as elapsed:
            for batch in batches:
                with hub.engine.begin() as conn:
                    conn.execute(update_subs, batch["subscriptions"])
                    conn.execute(insert(Invoice.__table__), batch["invoices"])
                    conn.execute(insert(InvoiceLine.__table__), batch["lines"])
                    conn.execute(insert(Event.__table__), batch["events"])
                    conn.execute(insert(OutboxMessage.__table__), batch["outbox"])
        result = Result(f"bulk insert, {batch_size} per transaction", elapsed[0], len(dues))
        result.problems = verify(hub, dues, expect_renewed=None)
        return result
    finally:
        hub.close()


# --- the billing run ----------------------------------------------------------------


def run_billing_once(url: str, dues: list[Due], batch_size: int) -> tuple[Result, Hub]:
    hub = make_hub(url, batch_size)
    with stopwatch() as elapsed:
        report = run_billing(RunBilling(at=AT, collect=False), hub.uow(ACTOR))
    result = Result(f"billing run, batch size {batch_size}", elapsed[0], report.renewed)
    result.problems = verify(hub, dues, expect_renewed=report.renewed, report_invoices=report.invoices)
    return result, hub


def run_collection(hub: Hub, limit: int | None) -> Result:
    """Collect the open invoices (the first ``limit`` by id, or all) through the test gateway."""
    inv = Invoice.__table__
    with hub.engine.connect() as conn:
        query = select(inv.c.id).where(inv.c.status == "open").order_by(inv.c.id)
        chosen = list(conn.scalars(query if limit is None else query.limit(limit)))
    with stopwatch() as elapsed:
        report = collect_due(hub.uow(ACTOR), None if limit is None else chosen)
    count = len(chosen)
    result = Result(f"collection of {count:,} open invoices", elapsed[0], report.attempted)
    if report.attempted != count or report.succeeded != count or report.failed:
        result.problems.append(
            f"collection attempted {report.attempted}, succeeded {report.succeeded}, "
            f"failed {report.failed}; expected {count} successes"
        )
    with hub.engine.connect() as conn:
        paid = conn.scalar(select(func.count()).where(inv.c.status == "paid", inv.c.total > 0))
    if paid != count:
        result.problems.append(f"after collection {paid} invoices are paid, expected {count}")
    return result


# --- checks ------------------------------------------------------------------------


def verify(
    hub: Hub, dues: list[Due], expect_renewed: int | None, report_invoices: int | None = None
) -> list[str]:
    """Everything the run should have written, exactly once; a list of what is wrong."""
    problems: list[str] = []
    n = len(dues)
    prefix = hub.settings.invoice_prefix
    if expect_renewed is not None and expect_renewed != n:
        problems.append(f"the run reports {expect_renewed} renewals, expected {n}")
    if report_invoices is not None and report_invoices != n:
        problems.append(f"the run reports {report_invoices} invoices, expected {n}")
    by_id = {due.id: due for due in dues}
    with hub.engine.connect() as conn:
        subs = Subscription.__table__
        rows = conn.execute(
            select(
                subs.c.id,
                subs.c.current_period_start,
                subs.c.current_period_end,
                subs.c.next_action_at,
                subs.c.coupon_periods_left,
                subs.c.updated_at,
            )
        ).all()
        wrong_subs = 0
        for sid, start, end, next_at, left, updated in rows:
            due = by_id.get(sid)
            if due is None or (start, end, next_at, left, updated) != (
                due.period_end,
                due.new_end,
                due.new_end,
                due.coupon_left_after,
                AT,
            ):
                wrong_subs += 1
        if len(rows) != n or wrong_subs:
            problems.append(f"{wrong_subs} of {len(rows)} subscriptions did not advance exactly one period")
        inv = Invoice.__table__
        invoices = conn.execute(
            select(
                inv.c.subscription_id,
                inv.c.sequence,
                inv.c.number,
                inv.c.status,
                inv.c.total,
                inv.c.period_start,
                inv.c.period_end,
            )
        ).all()
        if len(invoices) != n:
            problems.append(f"{len(invoices)} invoices, expected {n}")
        sequences = sorted(row.sequence or 0 for row in invoices)
        if sequences != list(range(1, n + 1)):
            problems.append("invoice numbers are not exactly 1..N (gaps or duplicates)")
        per_sub = Counter(row.subscription_id for row in invoices)
        if len(per_sub) != n or set(per_sub.values()) != {1}:
            problems.append("not exactly one invoice per subscription")
        wrong_invoices = 0
        for row in invoices:
            due = by_id.get(row.subscription_id)
            if (
                due is None
                or row.number != format_number(prefix, row.sequence or 0)
                or row.status != due.status
                or row.total != due.total
                or (row.period_start, row.period_end) != (due.period_end, due.new_end)
            ):
                wrong_invoices += 1
        if wrong_invoices:
            problems.append(f"{wrong_invoices} invoices have a wrong number, status, total or period")
        lines = conn.exec_driver_sql(
            "SELECT count(*), count(DISTINCT invoice_id), sum(total) FROM invoice_lines"
        ).one()
        if (lines[0], lines[1]) != (n, n) or lines[2] != sum(row.total for row in invoices):
            problems.append(f"invoice lines: {lines[0]} rows on {lines[1]} invoices, expected 1 per invoice")
        types = dict(conn.exec_driver_sql("SELECT type, count(*) FROM events GROUP BY type").all())
        if types != {"subscription.renewed": n, "invoice.issued": n}:
            problems.append(f"events: {types}, expected {n} subscription.renewed and {n} invoice.issued")
        outbox = conn.exec_driver_sql(
            "SELECT count(*), count(DISTINCT o.event_id), count(e.id) FROM outbox o "
            "LEFT JOIN events e ON e.id = o.event_id AND e.type = o.topic"
        ).one()
        if tuple(outbox) != (2 * n, 2 * n, 2 * n):
            problems.append(f"outbox: {tuple(outbox)} (rows, events, matching), expected one per event")
        movements = conn.exec_driver_sql("SELECT count(*) FROM mrr_movements").scalar()
        if movements:
            problems.append(f"{movements} MRR movements; plain renewals move no MRR")
        last = conn.exec_driver_sql("SELECT last_value FROM number_sequences WHERE name = 'invoice'").scalar()
        if expect_renewed is not None and last != n:
            problems.append(f"the invoice number series stands at {last}, expected {n}")
    return problems


# --- main ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    default_batch = next(f.default for f in fields(Settings) if f.name == "billing_batch_size")
    parser = argparse.ArgumentParser(prog="python -m bench.billing_run", description=__doc__.split("\n")[0])
    parser.add_argument("--subscriptions", type=int, default=100_000, help="due subscriptions (100000)")
    parser.add_argument(
        "--batch-sizes",
        default=f"{default_batch},100,2000",
        help="billing-run batch sizes to measure; the first is the one held to the target "
        f"(default {default_batch},100,2000)",
    )
    parser.add_argument(
        "--collect",
        default="5000",
        help="how many open invoices to collect after the first run: a number, 'all' or 0 (default 5000; "
        "collection makes three transactions and a gateway call per invoice, all 100,000 take minutes)",
    )
    parser.add_argument(
        "--admin-url", default=DEFAULT_ADMIN_URL, help="a PostgreSQL URL to create databases from"
    )
    args = parser.parse_args(argv)
    batch_sizes = [int(part) for part in args.batch_sizes.split(",") if part.strip()]
    collect = None if args.collect == "all" else int(args.collect)
    n = args.subscriptions

    print(f"Billing-run benchmark: {n:,} due monthly subscriptions on PostgreSQL ({DB_NAME}), run time {AT}")
    setup_started = time.perf_counter()
    try:
        with fresh_database(args.admin_url, DB_NAME) as url:
            return _bench(url, n, batch_sizes, collect, setup_started)
    finally:
        print(f"dropped database {DB_NAME}")


def _bench(url: str, n: int, batch_sizes: list[int], collect: int | None, setup_started: float) -> int:
    migrate_hub = build(settings_for(url))
    upgrade(migrate_hub.engine)
    migrate_hub.close()
    customer_rows, sub_rows, dues = generate(n)
    load(url, customer_rows, sub_rows)
    customers = len(customer_rows)
    del customer_rows, sub_rows
    # The billing run takes subscriptions by (next_action_at, id); the baseline writes them in that order.
    dues.sort(key=lambda due: (due.period_end, due.id))
    with_coupon = sum(1 for due in dues if due.coupon_id)
    discounted = sum(1 for due in dues if due.discount)
    print(
        f"setup: {customers:,} customers, {n:,} subscriptions on {len(PLANS)} plans "
        f"({with_coupon:,} with a coupon, {discounted:,} discounted this period), loaded with COPY "
        f"in {time.perf_counter() - setup_started:.1f} s"
    )
    print()
    print(
        "baseline: per subscription the rows the billing run writes - 1 UPDATE of subscriptions (period,\n"
        "  next_action_at, updated_at, coupon periods left), 1 invoice, 1 invoice line, 2 events\n"
        "  (subscription.renewed, invoice.issued) and 2 outbox rows - fully prepared in Python beforehand\n"
        "  (not timed, event ids included), then written with SQLAlchemy Core executemany, no RETURNING,\n"
        "  into the same tables (same indexes, constraints and foreign keys), committing\n"
        f"  every {batch_sizes[0]} subscriptions; the run's per-batch SELECT ... FOR UPDATE SKIP LOCKED and\n"
        "  number allocation are not in it."
    )
    failed = False
    results: list[Result] = []
    baseline = run_baseline(url, dues, batch_sizes[0])
    results.append(baseline)
    report_line(baseline, None)
    failed |= bool(baseline.problems)
    collection: Result | None = None
    for index, size in enumerate(batch_sizes):
        reset(url)
        result, hub = run_billing_once(url, dues, size)
        try:
            results.append(result)
            report_line(result, baseline)
            failed |= bool(result.problems)
            if index == 0 and collect != 0 and not result.problems:
                collection = run_collection(hub, collect)
                report_line(collection, None)
                failed |= bool(collection.problems)
        finally:
            hub.close()
    main_run = results[1]
    ratio = main_run.rate / baseline.rate if baseline.rate else 0.0
    print()
    print(f"bulk-insert baseline:  {baseline.rate:10,.0f} subscriptions/s ({baseline.seconds:.2f} s)")
    for result in results[1:]:
        print(
            f"{result.label + ':':<33}{result.rate:8,.0f} subscriptions/s ({result.seconds:.2f} s), "
            f"{result.rate / baseline.rate:.2f} x baseline"
        )
    if collection is not None:
        print(
            f"collection:            {collection.rate:10,.0f} invoices/s "
            f"({collection.count:,} invoices in {collection.seconds:.2f} s)"
        )
    met = ratio >= TARGET
    print(
        f"target: billing run (batch size {batch_sizes[0]}) >= 1/4 of the bulk-insert rate: "
        f"{ratio:.2f} -> {'MET' if met else 'NOT MET'}"
    )
    if failed:
        print("FAILED: the checks above found lost, doubled or wrong rows; the figures do not count")
        return 1
    print(f"checks: each run wrote exactly {n:,} invoices numbered 1..{n:,}, renewing each subscription once")
    return 0 if met else 3


def report_line(result: Result, baseline: Result | None) -> None:
    ratio = f", {result.rate / baseline.rate:.2f} x baseline" if baseline and baseline.rate else ""
    print(f"  {result.label}: {result.count:,} in {result.seconds:.2f} s = {result.rate:,.0f}/s{ratio}")
    for problem in result.problems:
        print(f"    PROBLEM: {problem}")


if __name__ == "__main__":
    sys.exit(main())
