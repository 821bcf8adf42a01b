"""The dashboard: the period's key metrics, two charts and the health of every connection."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from babel.dates import format_date
from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import SelectChoice

from hub.admin import charts, formatting
from hub.admin.context import hub
from hub.admin.forms import PeriodForm
from hub.admin.periods import choose
from hub.metrics import MetricsSeries, compute_series
from hub.services.connection_status import Health, health_of
from hub.store.models import Connection, MrrMovement

MOVEMENT_NAMES = {
    "new": "New",
    "expansion": "Expansion",
    "reactivation": "Reactivation",
    "contraction": "Contraction",
    "churned": "Churn",
}
CHURN_NAMES = {"customer": "Customer churn", "revenue": "Revenue churn"}


def _currencies(session: Session, default: str) -> list[str]:
    used = session.scalars(select(MrrMovement.currency).distinct()).all()
    return sorted({default, *used})


def _bucket_label(moment: datetime, interval: str, locale: str) -> str:
    return format_date(moment, "d. MMM" if interval == "week" else "MMM yy", locale=locale)


def _charts(series: MetricsSeries, locale: str) -> dict[str, charts.Chart]:
    labels = [_bucket_label(b.start, series.interval, locale) for b in series.buckets]
    moved = [b.movements for b in series.buckets]

    def amount(value: Any) -> str:
        return formatting.money(int(value), series.currency, locale)

    def rate(value: Any) -> str:
        return formatting.percent(value, locale)

    return {
        "movements": charts.stacked_movements(
            labels,
            up={
                "new": [m.new for m in moved],
                "expansion": [m.expansion for m in moved],
                "reactivation": [m.reactivation for m in moved],
            },
            down={"contraction": [m.contraction for m in moved], "churned": [m.churned for m in moved]},
            names=MOVEMENT_NAMES,
            describe=amount,
        ),
        "mrr": charts.lines(labels, {"mrr": [b.mrr_end for b in series.buckets]}, {"mrr": "MRR"}, amount),
        "churn": charts.lines(
            labels,
            {
                "customer": [b.customer_churn_rate for b in series.buckets],
                "revenue": [b.gross_revenue_churn_rate for b in series.buckets],
            },
            CHURN_NAMES,
            rate,
        ),
    }


def _connections(session: Session) -> list[tuple[Connection, Health]]:
    rows = list(session.scalars(select(Connection).order_by(Connection.name, Connection.id)))
    health = health_of(session, [row.id for row in rows])
    return [(row, health[row.id]) for row in rows]


def dashboard() -> ResponseReturnValue:
    the_hub = hub()
    locale = current_user.locale
    default_currency = the_hub.settings.default_currency
    with the_hub.session_factory() as session:
        form = PeriodForm(formdata=request.args or None, currency=default_currency)
        form.currency.choices = [SelectChoice(c, c) for c in _currencies(session, default_currency)]
        valid = not request.args or form.validate()
        kind = form.period.data if valid else "12m"
        month = form.month.data if valid else None
        currency = form.currency.data if valid else default_currency
        period = choose(kind or "12m", month or None, the_hub.clock.now())
        if valid:
            form.month.data = period.month  # show which month the period holds
        series = compute_series(
            session, start=period.start, end=period.end, interval=period.interval, currency=currency
        )
        connections = _connections(session)
    page = render_template(
        "admin/dashboard.html",
        form=form,
        period=period,
        period_label=period.label(locale),
        series=series,
        totals=series.totals,
        charts=_charts(series, locale),
        connections=connections,
    )
    return page, 200 if valid else 400


def init_app(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/", "dashboard", dashboard)
