"""``abohub``: everything an operator does, from the command line."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from functools import cache
from typing import Any

import click

from config import Settings, SettingsError, load_settings
from hub.bootstrap import Hub, build
from hub.domain.errors import AbohubError


@cache
def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@cache
def _hub() -> Hub:
    return build(_settings())


def _timestamp(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("use ISO 8601 with an offset, e.g. 2026-12-01T00:00:00+00:00") from None
    if moment.tzinfo is None:
        raise click.BadParameter("add an offset, e.g. +00:00 or Z")
    return moment.astimezone(UTC)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


class AbohubGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AbohubError as exc:
            raise click.ClickException(exc.message) from None


@click.group(cls=AbohubGroup)
def main() -> None:
    """Abohub: subscriptions in one trusted store, in sync with your CRM, accounting and payments."""


# --- database -------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (creates the SQLite file under ./var/ when needed)."""
    from hub.store.migrate import current, upgrade

    upgrade(_hub().engine, revision)
    click.echo(f"database at revision {current(_hub().engine)}")


@db.command("current")
def db_current() -> None:
    """Show the applied migration."""
    from hub.store.migrate import current

    click.echo(current(_hub().engine) or "empty (run `abohub db upgrade`)")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Roll migrations back to REVISION."""
    from hub.store.migrate import current, downgrade

    downgrade(_hub().engine, revision)
    click.echo(f"database at revision {current(_hub().engine)}")


# --- serving ----------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
@click.option("--threads", default=4, show_default=True, type=int)
@click.option(
    "--jobs/--no-jobs",
    "run_jobs",
    default=True,
    show_default=True,
    help="Without ABOHUB_REDIS_URL: run the job worker and scheduler inside each server process.",
)
def serve(host: str, port: int, workers: int, threads: int, run_jobs: bool) -> None:
    """Serve the API and webhooks with gunicorn (and, embedded, the jobs)."""
    from gunicorn.app.base import BaseApplication

    from hub.app import create_app
    from jobs.embedded import start_embedded

    settings = _settings()

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("accesslog", "-")

        def load(self) -> Any:
            app = create_app(settings)
            if run_jobs and not settings.redis_url:
                # After the fork, in each worker process: the queue is the database, so
                # several workers (and their schedulers) share it safely.
                start_embedded(app.extensions["abohub"])
            return app

    click.echo(
        f"Abohub is serving on http://{host}:{port}/ (API under /api/v1/, OpenAPI at /api/openapi.json)"
    )
    Server().run()


# --- jobs ---------------------------------------------------------------------------

_NO_REDIS = (
    "ABOHUB_REDIS_URL is not set, so there is no queue for an rq worker: in the embedded setup jobs "
    "run inside `abohub serve`. To scale out, set ABOHUB_REDIS_URL (e.g. redis://127.0.0.1:6379/0) "
    "for every process, then run any number of `abohub worker` and exactly one `abohub scheduler`."
)


@main.command()
@click.option(
    "--queues",
    "-q",
    multiple=True,
    help="Queues to take jobs from, in order (repeat or separate with commas); default: all.",
)
@click.option("--burst", is_flag=True, help="Stop once the queues are empty.")
def worker(queues: tuple[str, ...], burst: bool) -> None:
    """Run an rq worker (needs ABOHUB_REDIS_URL); SIGTERM finishes the job in hand, then stops."""
    settings = _settings()
    if not settings.redis_url:
        raise click.ClickException(_NO_REDIS)
    from hub import logs
    from jobs.rq_backend import QUEUES
    from jobs.rq_worker import run_worker

    names = [name.strip() for value in queues for name in value.split(",") if name.strip()] or list(QUEUES)
    unknown = sorted(set(names) - set(QUEUES))
    if unknown:
        raise click.BadParameter(f"unknown queue(s) {', '.join(unknown)}; queues are {', '.join(QUEUES)}")
    logs.configure(settings)
    click.echo(f"rq worker on queue(s) {', '.join(names)}{' (burst)' if burst else ''}", err=True)
    run_worker(settings, names, burst=burst)


@main.command()
@click.option("--tick", default=1.0, show_default=True, type=float, help="Seconds between two looks.")
@click.option("--once", is_flag=True, help="Queue what is due now, then exit.")
def scheduler(tick: float, once: bool) -> None:
    """Queue the periodic jobs on time (relay, repair, polling, billing, reconcile); run one."""
    import signal

    from hub import logs
    from jobs.runtime import make_scheduler

    settings = _settings()
    loop = make_scheduler(_hub(), tick_seconds=tick)
    if once:
        for job_id in loop.tick():
            click.echo(f"queued {job_id}")
        return
    logs.configure(settings)
    if settings.redis_url:
        click.echo("scheduler for rq on Redis (it also requeues the jobs of dead workers)", err=True)
    else:
        click.echo(
            "scheduler on the database; note that `abohub serve` already runs one in the embedded "
            "setup (a second one is harmless: each slot is queued once)",
            err=True,
        )
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: loop.request_stop())
    loop.run()


# --- API keys ---------------------------------------------------------------------


@main.group()
def apikeys() -> None:
    """API keys for the REST API."""


@apikeys.command("create")
@click.argument("name")
def apikeys_create(name: str) -> None:
    """Create a key; the secret is shown once."""
    from hub.services.apikeys import create_api_key

    created = create_api_key(name, _hub().uow("cli"))
    click.echo(f"id:     {created.id}\nname:   {created.name}\nsecret: {created.secret}")
    click.echo("Keep the secret now: it is stored only as a hash.", err=True)


@apikeys.command("list")
def apikeys_list() -> None:
    """List keys (never their secrets)."""
    from sqlalchemy import select

    from hub.store.models import ApiKey

    with _hub().session_factory() as session:
        for key in session.scalars(select(ApiKey).order_by(ApiKey.created_at)):
            state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
            click.echo(f"{key.id}  {key.prefix}…  {key.name}  ({state})")


@apikeys.command("revoke")
@click.argument("key_id")
def apikeys_revoke(key_id: str) -> None:
    """Revoke a key at once."""
    from hub.services.apikeys import revoke_api_key

    revoke_api_key(key_id, _hub().uow("cli"))
    click.echo(f"revoked {key_id}")


# --- encryption keys ----------------------------------------------------------------


@main.group()
def keys() -> None:
    """Encryption keys for secrets at rest (ABOHUB_ENCRYPTION_KEYS)."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new key; put it first in ABOHUB_ENCRYPTION_KEYS, keep the old ones after it."""
    from hub.services.crypto import generate_key

    click.echo(generate_key())


@keys.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored secret with the newest key (then the old keys can go)."""
    from hub.services.connections import rotate_keys

    count = rotate_keys(_hub().uow("cli:keys"))
    click.echo(f"re-encrypted {count} connection(s) with the newest key")


# --- billing ----------------------------------------------------------------------


@main.group()
def billing() -> None:
    """The billing run."""


@billing.command("run")
@click.option("--at", "at", help="Bill as of this time (ISO 8601 with offset); default now.")
@click.option("--collect/--no-collect", default=True, show_default=True, help="Collect due invoices after.")
def billing_run(at: str | None, collect: bool) -> None:
    """Renew due subscriptions, end trials, apply scheduled changes, collect payments."""
    from hub.services.billing import RunBilling, run_billing

    report = run_billing(RunBilling(at=_timestamp(at), collect=collect), _hub().uow("cli:billing"))
    _echo_json(asdict(report))


# --- metrics ------------------------------------------------------------------------


@main.command()
@click.option("--start", help="Period start (ISO 8601 with offset); default 12 months before --end.")
@click.option("--end", "end", help="Period end, exclusive; default the start of next month.")
@click.option("--interval", type=click.Choice(["day", "week", "month"]), default="month", show_default=True)
@click.option("--currency", help="ISO 4217; default ABOHUB_DEFAULT_CURRENCY.")
@click.option("--json", "as_json", is_flag=True, help="Print the full series as JSON.")
def metrics(start: str | None, end: str | None, interval: str, currency: str | None, as_json: bool) -> None:
    """MRR, churn, NRR, LTV and the other metrics per interval (definitions: docs/metrics.md)."""
    from dateutil.relativedelta import relativedelta

    from hub.metrics import compute_series

    hub = _hub()
    now = datetime.now(UTC)
    until = _timestamp(end) or now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + relativedelta(
        months=1
    )
    since = _timestamp(start) or until - relativedelta(months=12)
    with hub.session_factory() as session:
        series = compute_series(
            session,
            start=since,
            end=until,
            interval=interval,
            currency=currency or hub.settings.default_currency,
        )
    if as_json:
        _echo_json(series.to_dict())
        return
    header = f"{'bucket':<12}{'MRR end':>12}{'new':>10}{'expansion':>11}{'contraction':>12}{'churned':>10}"
    click.echo(f"{series.currency}, minor units\n{header}{'cust. churn':>12}{'NRR':>8}")
    for bucket in [*series.buckets, series.totals]:
        label = "total" if bucket is series.totals else bucket.start.date().isoformat()
        moved = bucket.movements
        click.echo(
            f"{label:<12}{bucket.mrr_end:>12}{moved.new:>10}{moved.expansion:>11}{moved.contraction:>12}"
            f"{moved.churned:>10}{bucket.customer_churn_rate or '-':>12}"
            f"{bucket.net_revenue_retention or '-':>8}"
        )


# --- demo ---------------------------------------------------------------------------


@main.group()
def demo() -> None:
    """Demo data."""


@demo.command("load")
@click.option("--days", default=400, show_default=True, type=int, help="Days of history to write.")
@click.option("--seed", default=7, show_default=True, type=int)
@click.option(
    "--base-url", default="http://127.0.0.1:8000", show_default=True, help="Where it will be served."
)
def demo_load(days: int, seed: int, base_url: str) -> None:
    """Load a Danish demo business with a year of history (once), and an API key to explore it."""
    from hub import demo as demo_data
    from hub.services.apikeys import create_api_key

    hub = _hub()
    if demo_data.already_loaded(hub):
        click.echo("Demo data is already loaded.")
    else:
        click.echo(f"Loading {days} days of demo history (this takes a little while)…")
        report = demo_data.load(hub, days=days, seed=seed)
        click.echo(
            f"{report.customers} customers, {report.subscriptions} subscriptions "
            f"({', '.join(f'{n} {s}' for s, n in sorted(report.by_status.items()))}), "
            f"{report.invoices} invoices."
        )
    key = create_api_key("demo", hub.uow("cli:demo"))
    base = base_url.rstrip("/")
    click.echo("\nAPI key for this session (stored hashed; make another with `abohub apikeys create`):")
    click.echo(f"  {key.secret}\n")
    click.echo("Try:")
    click.echo(f"  curl -H 'Authorization: Bearer {key.secret}' {base}/api/v1/subscriptions")
    click.echo(f"  curl -H 'Authorization: Bearer {key.secret}' '{base}/api/v1/metrics?interval=month'")
    click.echo(f"  OpenAPI: {base}/api/openapi.json")


@main.command("settings")
def show_settings() -> None:
    """Print the effective settings (secrets hidden)."""
    hidden = {"secret_key", "encryption_keys", "database_url", "redis_url"}
    values = {
        name: ("<set>" if value else "<unset>") if name in hidden else value
        for name, value in asdict(_settings()).items()
    }
    values["database"] = "sqlite" if _settings().is_sqlite else "postgresql"
    _echo_json(values)


if __name__ == "__main__":
    sys.exit(main())
