"""The operator's commands, run as a person would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest


def abohub(tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ABOHUB_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        cwd=tmp,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def test_upgrade_creates_the_sqlite_file_under_var(workdir):
    result = abohub(workdir, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert (workdir / "var" / "abohub.db").exists()
    from alembic.script import ScriptDirectory

    from hub.store.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config(None)).get_current_head()  # type: ignore[arg-type]
    assert f"revision {head}" in result.stdout


def test_demo_billing_and_keys(workdir):
    assert abohub(workdir, "db", "upgrade").returncode == 0
    loaded = abohub(workdir, "demo", "load", "--days", "60")
    assert loaded.returncode == 0, loaded.stderr
    assert "customers" in loaded.stdout and "abo_" in loaded.stdout
    again = abohub(workdir, "demo", "load", "--days", "60")
    assert "already loaded" in again.stdout

    month_ahead = (datetime.now(UTC) + timedelta(days=40)).isoformat()
    billed = abohub(workdir, "billing", "run", "--at", month_ahead, "--no-collect")
    assert billed.returncode == 0, billed.stderr
    report = json.loads(billed.stdout)
    assert report["renewed"] > 0 and report["invoices"] >= report["renewed"]
    twice = json.loads(abohub(workdir, "billing", "run", "--at", month_ahead).stdout)
    assert twice["renewed"] == 0 and twice["invoices"] == 0

    created = abohub(workdir, "apikeys", "create", "integration")
    assert created.returncode == 0 and "secret: abo_" in created.stdout
    listed = abohub(workdir, "apikeys", "list")
    assert "integration" in listed.stdout and created.stdout.split("secret: ")[1].strip() not in listed.stdout


def test_bad_settings_and_bad_input_are_clear_errors(workdir):
    result = abohub(workdir, "db", "current", env={"ABOHUB_DATABSE_URL": "x"})
    assert result.returncode != 0
    assert "unknown setting(s) ABOHUB_DATABSE_URL" in result.stderr
    assert "Traceback" not in result.stderr
    abohub(workdir, "db", "upgrade")
    result = abohub(workdir, "billing", "run", "--at", "2026-01-01")
    assert result.returncode != 0 and "offset" in result.stderr


def test_demo_history_never_runs_ahead_of_now(workdir):
    from sqlalchemy import create_engine, text

    assert abohub(workdir, "db", "upgrade").returncode == 0
    loaded = abohub(workdir, "demo", "load", "--days", "20", "--base-url", "http://127.0.0.1:8123")
    assert loaded.returncode == 0
    assert "http://127.0.0.1:8123/api/v1/subscriptions" in loaded.stdout
    engine = create_engine(f"sqlite:///{workdir / 'var' / 'abohub.db'}")
    with engine.connect() as connection:
        latest = connection.execute(text("SELECT MAX(issued_at) FROM invoices")).scalar_one()
        latest_event = connection.execute(text("SELECT MAX(occurred_at) FROM events")).scalar_one()
    engine.dispose()
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    assert latest <= now and latest_event <= now
