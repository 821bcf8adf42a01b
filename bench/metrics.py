"""Metrics benchmark: a year of month-by-month metrics over 1,000,000 MRR movements on PostgreSQL.

Run it with ``python -m bench.metrics`` (``--help`` for options). It

1. creates a fresh database ``abohub_bench_metrics`` on the local PostgreSQL
   server and migrates it;
2. generates a ledger (setup, not measured): about 50,000 customers over 24
   months in two currencies (DKK 80 %, EUR 20 %), each one a small state
   machine (new → expansion / contraction / paused → resumed / churned →
   reactivation) whose movements carry the amounts, customer MRR and deltas
   the service layer would write; 1,000,000 ``mrr_movements`` rows and the
   1,000,000 ``events`` rows they reference, loaded with ``COPY`` in
   occurred-at order (foreign-key triggers off and secondary indexes dropped
   during the load; then the indexes are rebuilt from their own definitions,
   the references checked with one anti-join, and the tables analysed);
3. checks that the metrics agree with the generator (MRR, active and paused
   customers at the end, movement totals) and that net revenue retention and
   gross revenue churn of each month of the timed year, and of the year as a
   whole, agree with a customer-by-customer count over the generated rows, so
   the timing is of right answers;
4. times, after a warm-up, several runs each of: the **baseline** ``SELECT
   count(*), sum(amount) FROM mrr_movements`` (a full scan of the table); the
   **year series**: :func:`hub.metrics.compute_series` month by month over the
   last 12 months (every series metric, DKK); the weekly and the daily series
   over the same year; and :func:`hub.metrics.cohort_retention` over the year;
5. prints the medians, the ratio to the baseline and whether the target (the
   year series under 2 seconds) is met, then drops its database, whatever
   happened.

Exit status: 0 when the checks passed and the target is met, 1 when a check
failed, 3 when the checks passed but the target was missed.
"""

from __future__ import annotations

import argparse
import bisect
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import text

from bench._common import DEFAULT_ADMIN_URL, describe, fresh_database, median, timings
from hub.metrics import cohort_retention, compute_series
from hub.metrics.periods import Interval, boundaries
from hub.metrics.ratios import fraction, rate
from hub.store.db import make_engine
from hub.store.migrate import upgrade

DB_NAME = "abohub_bench_metrics"
HISTORY_START = datetime(2024, 4, 1, tzinfo=UTC)
HISTORY_END = datetime(2026, 4, 1, tzinfo=UTC)
YEAR_START = datetime(2025, 4, 1, tzinfo=UTC)  # the series: the last 12 months of the history
TARGET_SECONDS = 2.0
CURRENCIES = (("DKK", 0.8), ("EUR", 0.2))
# Monthly-normalised MRR of the plans a customer can be on (minor units):
# monthly 49, 99, 149, 299; quarterly 99 (÷ 3); yearly 999.96 (÷ 12).
PRICES = (4_900, 9_900, 14_900, 29_900, 3_300, 8_333)
STEPS = (1_000, 2_500, 5_000, 10_000)  # seat changes, add-ons
EVENT_TYPES = {
    "new": "subscription.created",
    "expansion": "subscription.plan_changed",
    "contraction": "subscription.plan_changed",
    "paused": "subscription.paused",
    "resumed": "subscription.resumed",
    "churned": "subscription.canceled",
    "reactivation": "subscription.created",
}
DAY = 86_400


@dataclass
class Ledger:
    """The generated rows (in occurred-at order) and what the metrics must find in them."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    customers: int = 0
    # per currency: final MRR, active customers, paused customers, MRR moved per kind
    final_mrr: dict[str, int] = field(default_factory=dict)
    final_active: dict[str, int] = field(default_factory=dict)
    final_paused: dict[str, int] = field(default_factory=dict)


def generate(rows_wanted: int, customers_wanted: int, seed: int) -> Ledger:
    """Customers with plausible MRR histories until ``rows_wanted`` movements exist."""
    rng = random.Random(seed)
    start, end = int(HISTORY_START.timestamp()), int(HISTORY_END.timestamp())
    span = end - start
    # Customers arrive growing over time (start = span × u^0.7, mean ≈ 0.59 span),
    # so each lives about 0.41 × 730 days ≈ 300 days; gap chosen to reach the row count.
    mean_gap = 0.41 * span * customers_wanted / rows_wanted
    month_starts = [
        int(datetime(y, m, 1, tzinfo=UTC).timestamp()) for y in (2024, 2025, 2026) for m in range(1, 13)
    ]
    ledger = Ledger()
    rows: list[tuple[Any, ...]] = []
    for currency, _ in CURRENCIES:
        ledger.final_mrr[currency] = ledger.final_active[currency] = ledger.final_paused[currency] = 0
    weights = [w for _, w in CURRENCIES]
    names = [c for c, _ in CURRENCIES]
    while len(rows) < rows_wanted:
        number = ledger.customers
        ledger.customers += 1
        currency = rng.choices(names, weights)[0]
        t = start + int(span * rng.random() ** 0.7)
        cohort_at = month_starts[bisect.bisect_right(month_starts, t) - 1]
        mrr = rng.choice(PRICES)
        state = "active"
        held = 0  # MRR held while paused
        rows.append((t, number, currency, "new", mrr, mrr, 1, 0, cohort_at))
        while len(rows) < rows_wanted:
            t += int(rng.expovariate(1 / (mean_gap * (3 if state == "churned" else 1)))) + 60
            if t >= end:
                break
            draw = rng.random()
            if state == "active":
                if draw < 0.52:
                    step = rng.choice(STEPS)
                    mrr += step
                    rows.append((t, number, currency, "expansion", step, mrr, 0, 0, cohort_at))
                elif draw < 0.95 and mrr > 2_000:
                    step = min(rng.choice(STEPS), mrr - 1_000)
                    mrr -= step
                    rows.append((t, number, currency, "contraction", -step, mrr, 0, 0, cohort_at))
                elif draw < 0.98:
                    held, mrr, state = mrr, 0, "paused"
                    rows.append((t, number, currency, "paused", -held, 0, -1, 0, cohort_at))
                else:
                    rows.append((t, number, currency, "churned", -mrr, 0, -1, 1, cohort_at))
                    mrr, state = 0, "churned"
            elif state == "paused":
                if draw < 0.8:
                    mrr, held, state = held, 0, "active"
                    rows.append((t, number, currency, "resumed", mrr, mrr, 1, 0, cohort_at))
                else:
                    held, state = 0, "churned"
                    rows.append((t, number, currency, "churned", 0, 0, 0, 1, cohort_at))
            else:
                mrr, state = rng.choice(PRICES), "active"
                rows.append((t, number, currency, "reactivation", mrr, mrr, 1, -1, cohort_at))
        ledger.final_mrr[currency] += mrr
        ledger.final_active[currency] += state == "active"
        ledger.final_paused[currency] += state == "paused"
    rows.sort(key=lambda row: (row[0], row[1]))
    ledger.rows = rows
    return ledger


def load(url: str, ledger: Ledger) -> dict[str, float]:
    """COPY the events and movements (ids 1..N, movement i references event i); seconds per step."""
    phases: dict[str, float] = {}
    clock = time.perf_counter()
    stamps: dict[int, str] = {}
    cohorts: dict[int, str] = {}

    def stamp(ts: int) -> str:
        found = stamps.get(ts)
        if found is None:
            found = stamps[ts] = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S+00")
        return found

    def cohort(ts: int) -> str:
        found = cohorts.get(ts)
        if found is None:
            found = cohorts[ts] = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
        return found

    chunk = 100_000
    with psycopg.connect(url) as connection:
        # Secondary indexes are dropped for the load and rebuilt from their own
        # definitions afterwards (a sort per index instead of a million random
        # inserts into each); the schema ends up exactly as migrated.
        indexes = connection.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('events', 'mrr_movements') "
            "AND indexname NOT LIKE 'pk_%'"
        ).fetchall()
        for name, _ in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        connection.execute("SET session_replication_role = replica")  # no FK triggers during the load
        with connection.cursor() as cursor:
            with cursor.copy(
                "COPY events (id, type, aggregate_type, aggregate_id, customer_id, actor, occurred_at, "
                "recorded_at, data) FROM STDIN"
            ) as copy:
                for begin in range(0, len(ledger.rows), chunk):
                    lines = []
                    for offset, (t, number, _, kind, *_rest) in enumerate(ledger.rows[begin : begin + chunk]):
                        at = stamp(t)
                        lines.append(
                            f"{begin + offset + 1}\t{EVENT_TYPES[kind]}\tsubscription\t"
                            f"sub_bench_{number:06d}\tcus_bench_{number:06d}\tsystem:bench\t{at}\t{at}\t{{}}\n"
                        )
                    copy.write("".join(lines))
            phases["COPY events"] = time.perf_counter() - clock
            clock = time.perf_counter()
            with cursor.copy(
                "COPY mrr_movements (id, event_id, occurred_at, customer_id, subscription_id, currency, "
                "kind, amount, customer_mrr_after, active_delta, churn_delta, cohort) FROM STDIN"
            ) as copy:
                for begin in range(0, len(ledger.rows), chunk):
                    lines = []
                    for offset, row in enumerate(ledger.rows[begin : begin + chunk]):
                        t, number, currency, kind, amount, after, active, churn, cohort_at = row
                        ident = begin + offset + 1
                        lines.append(
                            f"{ident}\t{ident}\t{stamp(t)}\tcus_bench_{number:06d}\tsub_bench_{number:06d}\t"
                            f"{currency}\t{kind}\t{amount}\t{after}\t{active}\t{churn}\t{cohort(cohort_at)}\n"
                        )
                    copy.write("".join(lines))
        phases["COPY mrr_movements"] = time.perf_counter() - clock
        clock = time.perf_counter()
        connection.execute("SET maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            connection.execute(definition)
        phases[f"rebuild {len(indexes)} indexes"] = time.perf_counter() - clock
        clock = time.perf_counter()
        connection.execute("SET session_replication_role = DEFAULT")
        n = len(ledger.rows)
        connection.execute("SELECT setval('events_id_seq', %s)", (n,))
        connection.execute("SELECT setval('mrr_movements_id_seq', %s)", (n,))
        orphans = connection.execute(
            "SELECT count(*) FROM mrr_movements m LEFT JOIN events e ON e.id = m.event_id WHERE e.id IS NULL"
        ).fetchone()
        if orphans is None or orphans[0] != 0:
            raise SystemExit("load check failed: movements without their event")
        connection.commit()
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE events")
        connection.execute("VACUUM ANALYZE mrr_movements")
    phases["foreign-key check, VACUUM ANALYZE"] = time.perf_counter() - clock
    return phases


def retention_by_hand(ledger: Ledger, points: list[datetime]) -> dict[str, list[tuple[Any, Any]]]:
    """Per currency, (NRR, gross revenue churn) of each bucket of ``points``, then of the whole span.

    Computed straight from the definition, customer by customer, from the
    generated rows (independently of the SQL): the starting customers of
    ``[a, b)`` have MRR > 0 at ``a`` (every generated price is positive) and
    are not paused at ``b``; NRR = Σ MRR at b ÷ Σ MRR at a over them, gross
    revenue churn = Σ max(0, MRR at a − MRR at b) ÷ Σ MRR at a.
    """
    stamps = [int(p.timestamp()) for p in points]
    mrr: dict[int, int] = {}
    paused: set[int] = set()
    currency_of: dict[int, str] = {}
    snapshots: list[tuple[dict[int, int], set[int]]] = []
    for t, number, currency, kind, amount, *_ in ledger.rows:
        while len(snapshots) < len(stamps) and t >= stamps[len(snapshots)]:
            snapshots.append((dict(mrr), set(paused)))
        currency_of[number] = currency
        mrr[number] = mrr.get(number, 0) + amount
        if kind == "paused":
            paused.add(number)
        elif kind in ("resumed", "churned"):
            paused.discard(number)
    while len(snapshots) < len(stamps):
        snapshots.append((dict(mrr), set(paused)))

    pairs = [(i, i + 1) for i in range(len(points) - 1)] + [(0, len(points) - 1)]
    result: dict[str, list[tuple[Any, Any]]] = {currency: [] for currency, _ in CURRENCIES}
    for first, last in pairs:
        (at_start, _), (at_end, paused_at_end) = snapshots[first], snapshots[last]
        sums = {currency: [0, 0, 0] for currency, _ in CURRENCIES}  # starting MRR, retained, lost
        for number, start_mrr in at_start.items():
            if start_mrr > 0 and number not in paused_at_end:
                end_mrr = at_end.get(number, 0)
                total = sums[currency_of[number]]
                total[0] += start_mrr
                total[1] += end_mrr
                total[2] += max(0, start_mrr - end_mrr)
        for currency, (base, retained, lost) in sums.items():
            result[currency].append((rate(fraction(retained, base)), rate(fraction(lost, base))))
    return result


def check(engine: Any, ledger: Ledger) -> list[str]:
    """Differences between the metrics and the generator's own bookkeeping (empty when right)."""
    problems = []
    by_kind: dict[tuple[str, str], int] = {}
    for row in ledger.rows:
        key = (row[2], row[3])
        by_kind[key] = by_kind.get(key, 0) + row[4]
    with engine.connect() as connection:
        for currency, _ in CURRENCIES:
            whole = compute_series(
                connection, start=HISTORY_START, end=HISTORY_END, interval="month", currency=currency
            )
            totals = whole.totals
            expected = (
                ledger.final_mrr[currency],
                ledger.final_active[currency],
                ledger.final_paused[currency],
            )
            found = (totals.mrr_end, totals.active_customers_end, totals.paused_customers_end)
            if found != expected:
                problems.append(f"{currency}: MRR/active/paused at end {found}, generator says {expected}")
            moved = totals.movements
            signs = {"contraction": -1, "churned": -1, "paused": -1}
            for kind in EVENT_TYPES:
                got, want = getattr(moved, kind) * signs.get(kind, 1), by_kind.get((currency, kind), 0)
                if got != want:
                    problems.append(f"{currency}: {kind} {got}, generator says {want}")
            if totals.mrr_start != 0 or totals.mrr_end != totals.mrr_start + moved.net:
                problems.append(f"{currency}: the roll-forward does not hold")
        year_points = boundaries(YEAR_START, HISTORY_END, Interval.MONTH)
        by_hand = retention_by_hand(ledger, year_points)
        for currency, _ in CURRENCIES:
            year = compute_series(
                connection, start=YEAR_START, end=HISTORY_END, interval="month", currency=currency
            )
            for bucket, expected in zip([*year.buckets, year.totals], by_hand[currency], strict=True):
                found = (bucket.net_revenue_retention, bucket.gross_revenue_churn_rate)
                if found != expected:
                    problems.append(
                        f"{currency} {bucket.start:%Y-%m}..{bucket.end:%Y-%m}: NRR, gross revenue churn "
                        f"{found}, customer by customer {expected}"
                    )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="MRR movements to generate")
    parser.add_argument("--customers", type=int, default=50_000, help="about this many customers")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per measurement (median)")
    parser.add_argument("--seed", type=int, default=20260401)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL, help="a PostgreSQL database to connect to")
    parser.add_argument("--keep", action="store_true", help=f"keep the database {DB_NAME} afterwards")
    args = parser.parse_args(argv)

    began = time.perf_counter()
    ledger = generate(args.rows, args.customers, args.seed)
    generated = time.perf_counter()
    kinds: dict[str, int] = {}
    for row in ledger.rows:
        kinds[row[3]] = kinds.get(row[3], 0) + 1
    print(
        f"generated {len(ledger.rows):,} movements for {ledger.customers:,} customers "
        f"in {generated - began:.1f} s: " + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items()))
    )
    with fresh_database(args.admin_url, DB_NAME, keep=args.keep) as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            phases = load(url, ledger)
            print(
                f"loaded and analysed in {time.perf_counter() - generated:.1f} s ("
                + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items())
                + ")"
            )
            problems = check(engine, ledger)
            for problem in problems:
                print(f"CHECK FAILED: {problem}")
            if problems:
                return 1
            print(
                "check: MRR, customers and every movement total agree with the generator; NRR and "
                "gross revenue churn of each month of the year, and of the year, agree with a "
                "customer-by-customer count"
            )
            return measure(engine, args.runs)
        finally:
            engine.dispose()


def measure(engine: Any, runs: int) -> int:
    year = {"start": YEAR_START, "end": HISTORY_END, "currency": "DKK"}
    with engine.connect() as connection:
        version = connection.execute(text("SHOW server_version")).scalar_one()
        workers = connection.execute(text("SHOW max_parallel_workers_per_gather")).scalar_one()

        def baseline() -> None:
            connection.execute(text("SELECT count(*), sum(amount) FROM mrr_movements")).one()

        def series(interval: str) -> Any:
            return lambda: compute_series(connection, interval=interval, **year)

        def cohorts() -> Any:
            return cohort_retention(connection, **year)

        results = {
            "baseline: SELECT count(*), sum(amount) FROM mrr_movements": timings(baseline, runs),
            "year series, month by month (12 buckets, all metrics)": timings(series("month"), runs),
            "year series, week by week (53 buckets)": timings(series("week"), runs),
            "year series, day by day (365 buckets)": timings(series("day"), runs),
            "cohort retention, 12 monthly cohorts": timings(cohorts, runs),
        }
        rows = connection.execute(text("SELECT count(*) FROM mrr_movements")).scalar_one()
        timed = compute_series(connection, interval="month", **year)
        last, whole = timed.buckets[-1], timed.totals
    print(f"\nPostgreSQL {version}, max_parallel_workers_per_gather={workers}, {rows:,} movements")
    base = median(next(iter(results.values())))
    for name, seconds in results.items():
        print(f"  {name:<60} {describe(seconds)}  ×{median(seconds) / base:.2f} baseline")
    print(
        f"  (last month, DKK: MRR {last.mrr_end:,}, active {last.active_customers_end:,}, "
        f"churn rate {last.customer_churn_rate}, NRR {last.net_revenue_retention}, LTV {last.ltv})"
    )
    print(
        f"  (the year, DKK: MRR {whole.mrr_start:,} → {whole.mrr_end:,}, NRR {whole.net_revenue_retention}, "
        f"gross revenue churn {whole.gross_revenue_churn_rate}, customer churn {whole.customer_churn_rate})"
    )
    figure = median(results["year series, month by month (12 buckets, all metrics)"])
    met = figure < TARGET_SECONDS
    print(
        f"\nYEAR SERIES (month by month, 1 year, {rows:,} movements): {figure:.3f} s median; "
        f"baseline full scan {base:.3f} s; ratio {figure / base:.2f}. "
        f"Target < {TARGET_SECONDS:.1f} s: {'MET' if met else 'MISSED'}."
    )
    return 0 if met else 3


if __name__ == "__main__":
    sys.exit(main())
