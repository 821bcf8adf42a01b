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


def test_serve_runs_the_api_and_the_embedded_jobs(workdir):
    import socket
    import time

    import requests
    from sqlalchemy import create_engine, text

    assert abohub(workdir, "db", "upgrade").returncode == 0
    secret = abohub(workdir, "apikeys", "create", "serve").stdout.split("secret: ")[1].strip()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ABOHUB_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--port", str(port)],
        cwd=workdir,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                requests.get(f"{base}/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        created = requests.post(
            f"{base}/api/v1/customers",
            json={"name": "Jens", "email": "j@example.dk"},
            headers={"Authorization": f"Bearer {secret}"},
            timeout=5,
        )
        assert created.status_code == 201
        engine = create_engine(f"sqlite:///{workdir / 'var' / 'abohub.db'}")
        deadline = time.monotonic() + 20
        waiting = None
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                waiting = connection.execute(
                    text("SELECT COUNT(*) FROM outbox WHERE relayed_at IS NULL")
                ).scalar()
            if waiting == 0:
                break
            time.sleep(0.5)
        engine.dispose()
        assert waiting == 0, "the embedded scheduler and worker relayed the outbox"
    finally:
        server.terminate()
        server.wait(timeout=30)
