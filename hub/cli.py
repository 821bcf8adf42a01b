"""``abohub``: everything an operator does, from the command line."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
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
@click.option(
    "--simulators",
    is_flag=True,
    help="Start a vendor simulator for every connection pointed at this machine (the demo's HubSpot).",
)
def serve(host: str, port: int, workers: int, threads: int, run_jobs: bool, simulators: bool) -> None:
    """Serve the API and webhooks with gunicorn (and, embedded, the jobs)."""
    from gunicorn.app.base import BaseApplication

    from hub.app import create_app
    from jobs.embedded import start_embedded

    settings = _settings()
    if simulators:
        from hub.simulators import start_simulators

        for running in start_simulators(_hub(), f"http://{host}:{port}"):
            click.echo(
                f"HubSpot simulator for {running.connection_id} on {running.simulator.base_url} "
                f"(token {running.token}); it sends signed webhooks here"
            )
            if running.staged:
                click.echo(
                    f"Waiting in the admin: {running.staged.conflicts} conflict(s) under Conflicts and "
                    f"{running.staged.dead_letters} dead letter(s) under Sync log → Dead letters"
                )

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


# --- sync: connectors, connections, mappings, conflicts, dead letters ---------------------------------

_DEFAULT_BASE_URL = "http://127.0.0.1:8000"


@contextmanager
def _explained() -> Iterator[None]:
    """An error of ours as a ClickException that also lists each bad field (exit status 1)."""
    try:
        yield
    except AbohubError as exc:
        lines = [exc.message] + [f"  {name}: {'; '.join(problems)}" for name, problems in exc.fields.items()]
        raise click.ClickException("\n".join(lines)) from None


def _json_option(function: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(function)


def _read_json(source: str) -> Any:
    """A JSON document from a file, or from standard input when SOURCE is -."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"cannot read {source}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"{source} is not JSON: {exc}") from None


def _config_from(source: str | None, pairs: tuple[str, ...]) -> dict[str, Any] | None:
    """--config FILE (a JSON object) and --set NAME=VALUE pairs (values parsed as JSON when they are)."""
    if source is None and not pairs:
        return None
    config = _read_json(source) if source else {}
    if not isinstance(config, dict):
        raise click.BadParameter("the config must be a JSON object", param_hint="--config")
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--set")
        try:
            config[name.strip()] = json.loads(value)
        except ValueError:
            config[name.strip()] = value
    return config


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment else "never"


@main.group()
def connectors() -> None:
    """Installed connector plug-ins."""


@connectors.command("list")
@_json_option
def connectors_list(as_json: bool) -> None:
    """Installed connectors: kind, object types and directions, config fields."""
    from hub.services.connection_status import installed_connectors

    found = installed_connectors()
    if as_json:
        _echo_json(found)
        return
    for connector in found:
        click.echo(f"{connector['name']}  {connector['title']} ({connector['kind']})")
        for one in connector["object_types"]:
            click.echo(f"  {one['name']} ↔ {one['local']}: {', '.join(one['directions'])}")
        for option in connector["config"]:
            marks = [m for m in ("required", "secret") if option[m]]
            click.echo(
                f"  config {option['name']} ({option['type']}{', ' if marks else ''}{', '.join(marks)})"
            )


@main.group()
def connections() -> None:
    """Connections: configured connectors, their health, a connection test."""


def _connection_dict(view: Any, base_url: str) -> dict[str, Any]:
    return {**asdict(view), "webhook_url": base_url.rstrip("/") + view.webhook_path}


def _show_connection(view: Any, base_url: str) -> None:
    health = view.health
    state = "enabled" if view.enabled else "disabled"
    click.echo(f"{view.id}  {view.name}  ({view.connector}, {state})")
    click.echo(f"  webhook URL:  {base_url.rstrip('/')}{view.webhook_path}")
    click.echo(f"  mappings:     {', '.join(view.object_types) or 'none'}")
    click.echo(
        f"  linked:       {health.linked} (last push {_when(health.last_pushed_at)}, "
        f"last pull {_when(health.last_pulled_at)})"
    )
    click.echo(f"  pending:      {health.pending} ({health.retrying} retrying)")
    click.echo(f"  conflicts:    {health.open_conflicts} open")
    click.echo(f"  dead letters: {health.open_dead_letters} unresolved")
    for name, value in view.config.items():
        click.echo(f"  config {name} = {value}")


def _view(connection_id: str) -> Any:
    from hub.services.connection_status import view_connection

    with _hub().session_factory() as session:
        return view_connection(session, _hub().settings, connection_id)


_base_url_option = click.option(
    "--base-url", default=_DEFAULT_BASE_URL, show_default=True, help="Where Abohub is served (webhook URLs)."
)


@connections.command("list")
@_base_url_option
@_json_option
def connections_list(base_url: str, as_json: bool) -> None:
    """Every connection with its health."""
    from sqlalchemy import select

    from hub.services.connection_status import view_connections
    from hub.store.models import Connection

    with _hub().session_factory() as session:
        rows = list(session.scalars(select(Connection).order_by(Connection.created_at)))
        views = view_connections(session, _hub().settings, rows)
    if as_json:
        _echo_json([_connection_dict(view, base_url) for view in views])
        return
    if not views:
        click.echo("no connections (create one with `abohub connections create`)")
    for view in views:
        h = view.health
        click.echo(
            f"{view.id}  {view.connector:<10} {'on ' if view.enabled else 'off'}  {view.name}  "
            f"linked {h.linked}, pending {h.pending}, conflicts {h.open_conflicts}, "
            f"dead letters {h.open_dead_letters}"
        )


@connections.command("show")
@click.argument("connection_id")
@_base_url_option
@_json_option
def connections_show(connection_id: str, base_url: str, as_json: bool) -> None:
    """One connection: config (secrets as ***), webhook URL, mappings, health."""
    with _explained():
        view = _view(connection_id)
    if as_json:
        _echo_json(_connection_dict(view, base_url))
    else:
        _show_connection(view, base_url)


_config_options = [
    click.option("--config", "config_file", help="A JSON file with the config (- reads standard input)."),
    click.option(
        "--set", "pairs", multiple=True, metavar="NAME=VALUE", help="One config field (repeatable)."
    ),
]


def _with_config_options(function: Any) -> Any:
    for option in reversed(_config_options):
        function = option(function)
    return function


@connections.command("create")
@click.option("--connector", required=True, help="An installed connector, e.g. hubspot.")
@click.option("--name", required=True, help="A name for people.")
@_with_config_options
@_base_url_option
@_json_option
def connections_create(
    connector: str, name: str, config_file: str | None, pairs: tuple[str, ...], base_url: str, as_json: bool
) -> None:
    """Configure a connection; the connector validates the config, stored encrypted."""
    from hub.services.connections import CreateConnection, create_connection

    config = _config_from(config_file, pairs) or {}
    with _explained():
        created = create_connection(CreateConnection(connector, name, config), _hub().uow("cli"))
        view = _view(created.id)
    if as_json:
        _echo_json(_connection_dict(view, base_url))
    else:
        _show_connection(view, base_url)


def _update(connection_id: str, **changes: Any) -> Any:
    from hub.services.connections import UpdateConnection, update_connection

    with _explained():
        update_connection(UpdateConnection(connection_id, merge=True, **changes), _hub().uow("cli"))
        return _view(connection_id)


@connections.command("update")
@click.argument("connection_id")
@click.option("--name", help="A new name.")
@_with_config_options
@_base_url_option
@_json_option
def connections_update(
    connection_id: str,
    name: str | None,
    config_file: str | None,
    pairs: tuple[str, ...],
    base_url: str,
    as_json: bool,
) -> None:
    """Change the name or config fields; every field left out keeps its value."""
    config = _config_from(config_file, pairs)
    if name is None and config is None:
        raise click.UsageError("give --name, --config or --set")
    view = _update(connection_id, name=name, config=config)
    if as_json:
        _echo_json(_connection_dict(view, base_url))
    else:
        _show_connection(view, base_url)


@connections.command("enable")
@click.argument("connection_id")
def connections_enable(connection_id: str) -> None:
    """Sync through this connection again."""
    _update(connection_id, enabled=True)
    click.echo(f"enabled {connection_id}")


@connections.command("disable")
@click.argument("connection_id")
def connections_disable(connection_id: str) -> None:
    """Stop marking changes for this connection (nothing is lost; enable to resume)."""
    _update(connection_id, enabled=False)
    click.echo(f"disabled {connection_id}")


@connections.command("test")
@click.argument("connection_id")
@_json_option
def connections_test(connection_id: str, as_json: bool) -> None:
    """Try the connection now; exits 1 when it does not work."""
    from hub.services.connection_status import check_connection

    with _explained():
        result = check_connection(_hub().uow("cli"), connection_id)
    if as_json:
        _echo_json(asdict(result))
    elif result.ok:
        click.echo(f"ok ({result.duration_ms} ms)")
    if not result.ok:
        retry = " (temporary: try again later)" if result.retriable else ""
        raise click.ClickException(f"{result.error_type}: {result.message}{retry}")


@connections.command("delete")
@click.argument("connection_id")
@click.option("--yes", is_flag=True, help="Do not ask.")
def connections_delete(connection_id: str, yes: bool) -> None:
    """Delete a disabled connection with its mappings, links, conflicts and dead letters."""
    from hub.services.connections import delete_connection

    if not yes:
        click.confirm(f"Delete {connection_id} and everything synced through it?", abort=True)
    with _explained():
        delete_connection(_hub().uow("cli"), connection_id)
    click.echo(f"deleted {connection_id}")


@main.group()
def mappings() -> None:
    """Field mappings of a connection: show, validate, set, preview on a record."""


@mappings.command("list")
@click.argument("connection_id")
def mappings_list(connection_id: str) -> None:
    """The connection's mappings, with their fields."""
    from hub.services.mappings import list_mappings

    with _explained(), _hub().session_factory() as session:
        found = list_mappings(session, connection_id)
    for one in found:
        click.echo(f"{one.object_type} ↔ {one.remote_object}  (version {one.version})")
        for line in one.summary:
            click.echo(f"  {line}")


@mappings.command("show")
@click.argument("connection_id")
@click.argument("object_type")
def mappings_show(connection_id: str, object_type: str) -> None:
    """The stored definition as JSON (edit it, then `abohub mappings set`)."""
    from hub.services.mappings import get_mapping

    with _explained(), _hub().session_factory() as session:
        _echo_json(get_mapping(session, connection_id, object_type).definition)


@mappings.command("validate")
@click.argument("connection_id")
@click.argument("object_type")
@click.argument("source", metavar="FILE")
def mappings_validate(connection_id: str, object_type: str, source: str) -> None:
    """Check a definition (FILE, or - for standard input) without saving; exits 1 when invalid."""
    from hub.services.mappings import SaveMapping, check_mapping

    definition = _read_json(source)
    with _explained(), _hub().session_factory() as session:
        checked = check_mapping(session, SaveMapping(connection_id, object_type, definition))
    click.echo("valid")
    for line in checked.summary:
        click.echo(f"  {line}")
    if checked.changes_pushed_fields:
        click.echo(
            f"saving changes what is pushed: {checked.would_requeue} linked record(s) would be pushed again"
        )


@mappings.command("set")
@click.argument("connection_id")
@click.argument("object_type")
@click.argument("source", metavar="FILE")
def mappings_set(connection_id: str, object_type: str, source: str) -> None:
    """Validate and save a definition (FILE, or -); linked records are pushed again if it changes them."""
    from hub.services.mappings import SaveMapping, save_mapping
    from jobs.relay import queue_push
    from jobs.runtime import make_queue

    definition = _read_json(source)
    with _explained():
        saved = save_mapping(SaveMapping(connection_id, object_type, definition), _hub().uow("cli"))
    if not saved.changed:
        click.echo(f"unchanged (version {saved.mapping.version})")
        return
    click.echo(f"saved {object_type} mapping, version {saved.mapping.version}")
    if saved.requeued:
        queue_push(make_queue(_hub()), connection_id, object_type)
        click.echo(f"{saved.requeued} linked record(s) queued to be pushed again")


@mappings.command("preview")
@click.argument("connection_id")
@click.argument("object_type")
@click.argument("local_id")
@click.option("--file", "source", help="A candidate definition to try (- reads standard input).")
@_json_option
def mappings_preview(
    connection_id: str, object_type: str, local_id: str, source: str | None, as_json: bool
) -> None:
    """The mapping applied to LOCAL_ID, against the linked remote record; writes nothing."""
    from hub.services.mappings import PreviewMapping, preview_mapping

    definition = _read_json(source) if source else None
    with _explained():
        preview = preview_mapping(
            PreviewMapping(connection_id, object_type, local_id, definition), _hub(), "cli"
        )
    if as_json:
        _echo_json(asdict(preview))
        return
    click.echo(f"{object_type} {local_id} through the {preview.mapping} mapping:")
    for name, value in preview.properties.items():
        click.echo(f"  {name} = {json.dumps(value, ensure_ascii=False)}")
    for error in preview.errors:
        click.echo(f"  {error['field']}: FAILS: {error['message']}")
    if not preview.linked:
        click.echo("not linked: a push would create the remote record")
        return
    click.echo(f"linked to {preview.remote_id}")
    if preview.remote_error:
        click.echo(f"  remote record not read: {preview.remote_error['message']}")
    for diff in preview.differences:
        click.echo(f"  differs {diff['remote_field']}: hub {diff['hub']!r}, remote {diff['remote']!r}")
    sync = preview.sync
    click.echo(f"a sync now would push {json.dumps(sync['push'], ensure_ascii=False)}")
    click.echo(f"a pull now would apply {json.dumps(sync['apply'], ensure_ascii=False)}")
    for conflict in sync["conflicts"]:
        click.echo(f"  conflict on {conflict['field']}: {conflict['reason']}")


@main.group()
def conflicts() -> None:
    """Fields both sides changed differently, held for a person."""


@conflicts.command("list")
@click.option("--status", type=click.Choice(["open", "resolved", "all"]), default="open", show_default=True)
@click.option("--connection", "connection_id", help="Only this connection.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@_json_option
def conflicts_list(status: str, connection_id: str | None, limit: int, as_json: bool) -> None:
    """The conflict queue, newest first."""
    from sqlalchemy import select

    from hub.services.snapshot import snapshot
    from hub.store.models import Conflict

    query = select(Conflict).order_by(Conflict.created_at.desc(), Conflict.id.desc()).limit(limit)
    if status != "all":
        query = query.where(Conflict.status == status)
    if connection_id:
        query = query.where(Conflict.connection_id == connection_id)
    with _hub().session_factory() as session:
        rows = list(session.scalars(query))
        if as_json:
            _echo_json([snapshot(row) for row in rows])
            return
    if not rows:
        click.echo(f"no {'' if status == 'all' else status + ' '}conflicts")
    for row in rows:
        click.echo(
            f"{row.id}  {row.status:<8} {row.object_type} {row.local_id}  {row.field}: "
            f"hub {json.dumps(row.hub_value, ensure_ascii=False)} / "
            f"remote {json.dumps(row.remote_value, ensure_ascii=False)}"
        )


@conflicts.command("resolve")
@click.argument("conflict_id")
@click.option("--use", "choice", type=click.Choice(["hub", "remote", "value"]), required=True)
@click.option("--value", "pairs", multiple=True, metavar="FIELD=VALUE", help="With --use value (repeatable).")
def conflicts_resolve(conflict_id: str, choice: str, pairs: tuple[str, ...]) -> None:
    """Keep the hub's value, take the remote's, or set another; the result syncs both ways."""
    from hub.services.conflicts import ResolveConflict, resolve_conflict

    if choice == "value" and not pairs:
        raise click.UsageError("--use value needs --value FIELD=VALUE")
    if choice != "value" and pairs:
        raise click.UsageError("--value goes with --use value")
    value = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{pair!r} is not FIELD=VALUE", param_hint="--value")
        value[name.strip()] = text
    with _explained():
        resolved = resolve_conflict(ResolveConflict(conflict_id, choice, value or None), _hub(), "cli")
    value_now = json.dumps(resolved.resolved_value, ensure_ascii=False)
    click.echo(f"resolved {resolved.id} ({resolved.field}): {value_now}")


@main.group("dead-letters")
def dead_letters() -> None:
    """Sync work that failed for good: see why, and send it again."""


@dead_letters.command("list")
@click.option("--all", "show_all", is_flag=True, help="Resolved ones too.")
@click.option("--connection", "connection_id", help="Only this connection.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@_json_option
def dead_letters_list(show_all: bool, connection_id: str | None, limit: int, as_json: bool) -> None:
    """Failed work, newest first, with the reason (requests are scrubbed of secrets)."""
    from sqlalchemy import select

    from hub.services.snapshot import snapshot
    from hub.store.models import DeadLetter

    query = select(DeadLetter).order_by(DeadLetter.created_at.desc(), DeadLetter.id.desc()).limit(limit)
    if not show_all:
        query = query.where(DeadLetter.resolved_at.is_(None))
    if connection_id:
        query = query.where(DeadLetter.connection_id == connection_id)
    with _hub().session_factory() as session:
        rows = list(session.scalars(query))
        if as_json:
            _echo_json([snapshot(row) for row in rows])
            return
    if not rows:
        click.echo("no dead letters" if show_all else "no unresolved dead letters")
    for row in rows:
        state = "resolved" if row.resolved_at else "replayed" if row.replayed_at else "open"
        click.echo(
            f"{row.id}  {state:<8} {row.operation} {row.object_type} {row.local_id or '-'}  "
            f"after {row.attempts} attempt(s): {row.reason[:200]}"
        )


@dead_letters.command("replay")
@click.argument("dead_letter_ids", nargs=-1, required=True)
def dead_letters_replay(dead_letter_ids: tuple[str, ...]) -> None:
    """Send the records again (their current state); each resolves once a push goes through."""
    from hub.services.dead_letters import replay_dead_letter
    from jobs.relay import queue_push
    from jobs.runtime import make_queue

    queue = make_queue(_hub())
    failed = 0
    for dead_letter_id in dead_letter_ids:
        try:
            letter = replay_dead_letter(dead_letter_id, _hub(), "cli")
        except AbohubError as exc:
            click.echo(f"{dead_letter_id}: {exc.message}", err=True)
            failed += 1
            continue
        queue_push(queue, letter.connection_id, letter.object_type)
        click.echo(f"replaying {letter.id} ({letter.object_type} {letter.local_id})")
    if failed:
        raise click.ClickException(f"{failed} of {len(dead_letter_ids)} could not be replayed")


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


# --- sync ---------------------------------------------------------------------------


@main.group()
def sync() -> None:
    """Two-way sync with the connections."""


@sync.command("reconcile")
@click.argument("connection")
@click.option("--dry-run", is_flag=True, help="Compare and report what would change; change nothing.")
@click.option(
    "--object-type", "object_types", multiple=True, help="Only this object type (repeatable); default: all."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def sync_reconcile(connection: str, dry_run: bool, object_types: tuple[str, ...], as_json: bool) -> None:
    """Compare every record of the hub and CONNECTION (id or name), link, repair and report.

    Exits 1 when some records failed (their reasons are listed).
    """
    from hub.services.reconcile import find_connection, reconcile

    hub = _hub()
    report = reconcile(hub, find_connection(hub, connection), dry_run=dry_run, object_types=object_types)
    if as_json:
        _echo_json(report.to_dict())
    else:
        click.echo(_reconcile_table(report))
    if report.failed:
        sys.exit(1)


def _reconcile_table(report: Any) -> str:
    objects = report.objects
    keys = sorted({key for one in objects for key in one.linked_by_key})
    rows: list[tuple[str, list[int]]] = [
        ("remote records seen", [o.remote_seen for o in objects]),
        ("local records seen", [o.local_seen for o in objects]),
        ("already linked", [o.already_linked for o in objects]),
        *[(f"linked by {key}", [o.linked_by_key.get(key, 0) for o in objects]) for key in keys],
        ("created remotely", [o.created_remotely for o in objects]),
        ("updated remotely", [o.updated_remotely for o in objects]),
        ("updated locally", [o.updated_locally for o in objects]),
        ("conflicts raised", [o.conflicts_raised for o in objects]),
        ("conflicts still open", [o.conflicts_open for o in objects]),
        ("remote only, left alone", [o.remote_only for o in objects]),
        ("remote deletions", [o.remote_deleted for o in objects]),
        ("failed", [o.failed for o in objects]),
    ]
    heads = [f"{o.object_type} ↔ {o.remote_object}" for o in objects]
    label = max(len(name) for name, _ in rows)
    widths = [max(len(head), 8) for head in heads]
    lines = [
        f"Reconcile of {report.connection_id}{' (dry run: nothing was changed)' if report.dry_run else ''}",
        " " * label + "".join(f"  {head:>{width}}" for head, width in zip(heads, widths, strict=True)),
    ]
    for name, values in rows:
        cells = "".join(f"  {value:>{width}}" for value, width in zip(values, widths, strict=True))
        lines.append(f"{name:<{label}}{cells}")
    if report.associated:
        lines.append(f"associated {report.associated} subscription(s) with their customer's record")
    verb = "would make" if report.dry_run else "made"
    lines.append(f"{verb} {report.changes} change(s), {report.failed} failure(s), in {report.seconds:.1f} s")
    for one in objects:
        for reason in one.failures:
            lines.append(f"  {one.object_type}: {reason}")
        if one.failed > len(one.failures):
            lines.append(f"  {one.object_type}: … and {one.failed - len(one.failures)} more")
    lines += [f"  association: {reason}" for reason in report.association_failures]
    return "\n".join(lines)


# --- staff users (the admin) ---------------------------------------------------------


@main.group()
def users() -> None:
    """Staff users who sign in to the admin at /admin/."""


def _new_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.UsageError("--password-stdin read an empty line")
        return password
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "viewer"]), required=True)
@click.option("--locale", default="da_DK", show_default=True, help="How amounts and dates are shown to them.")
@click.option("--password-stdin", "from_stdin", is_flag=True, help="Read the password from standard input.")
def users_create(username: str, role: str, locale: str, from_stdin: bool) -> None:
    """Create a user; the password is asked twice (or read from stdin) and stored as an argon2 hash."""
    from hub.services.users import create_user

    with _explained():
        user = create_user(username, _new_password(from_stdin), role, _hub().uow("cli:users"), locale=locale)
    click.echo(f"created {user.username} ({user.role}), id {user.id}")


@users.command("list")
def users_list() -> None:
    """List users (never their passwords)."""
    from hub.services.users import list_users

    for user in list_users(_hub().uow("cli:users")):
        state = f"disabled {user.disabled_at:%Y-%m-%d}" if user.disabled_at else "active"
        last = f"{user.last_login_at:%Y-%m-%d %H:%M} UTC" if user.last_login_at else "never"
        click.echo(f"{user.id}  {user.username}  {user.role}  ({state}, last sign-in {last})")


@users.command("disable")
@click.argument("username")
def users_disable(username: str) -> None:
    """Disable a user (by name or id) and end their sessions at once."""
    from hub.services.users import disable_user

    user = disable_user(username, _hub().uow("cli:users"))
    click.echo(f"disabled {user.username}; their sessions are ended")


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
    from hub.simulators import add_demo_connection

    connection_id = add_demo_connection(hub)
    key = create_api_key("demo", hub.uow("cli:demo"))
    base = base_url.rstrip("/")
    login = _demo_login(hub)
    if login:
        click.echo(f"\nAdmin: {base}/admin/  user {login[0]}  password {login[1]}  (change it: abohub users)")
    click.echo("\nAPI key for this session (stored hashed; make another with `abohub apikeys create`):")
    click.echo(f"  {key.secret}\n")
    click.echo("Try:")
    click.echo(f"  curl -H 'Authorization: Bearer {key.secret}' {base}/api/v1/subscriptions")
    click.echo(f"  curl -H 'Authorization: Bearer {key.secret}' '{base}/api/v1/metrics?interval=month'")
    click.echo(f"  curl -H 'Authorization: Bearer {key.secret}' {base}/api/v1/connections/{connection_id}")
    click.echo(f"  OpenAPI: {base}/api/openapi.json")
    click.echo("The demo's HubSpot is a simulator that `abohub serve --simulators` starts (make run does).")


def _demo_login(hub: Hub) -> tuple[str, str] | None:
    """An admin user for the demo when there is none yet: (username, a fresh random password)."""
    import secrets

    from hub.services.users import create_user, list_users

    if list_users(hub.uow("cli:demo")):
        return None
    password = secrets.token_urlsafe(12)
    create_user("admin", password, "admin", hub.uow("cli:demo"))
    return "admin", password


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
