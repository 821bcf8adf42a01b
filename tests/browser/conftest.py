"""Browser tests: Debian's Chromium, driven by Playwright, against the hub served over HTTP.

The hub here is the one ``abohub serve`` runs: the real clock, the embedded worker and scheduler in
the serving process, and a HubSpot simulator connection; what a person does in the page reaches the
simulator through the same jobs it would in production. Playwright brings no browser: it launches
``/usr/bin/chromium``, which ``make test`` installs with apt when it is missing.

Screenshots go to ``ABOHUB_SCREENSHOTS`` when it is set (``make screenshots`` sets it to
``docs/screenshots``), else into the test's temporary folder.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from argon2 import PasswordHasher
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Response, sync_playwright
from werkzeug.serving import make_server

from config import load_settings
from connectors.hubspot.simulator import HubSpotSimulator
from hub.app import create_app
from hub.bootstrap import Hub, build
from hub.services import users
from hub.services.connections import CreateConnection, create_connection, open_connector
from hub.services.crypto import generate_key
from hub.services.users import create_user
from jobs.embedded import EmbeddedRuntime, start_embedded
from tests.conftest import wipe

CHROMIUM = Path(os.environ.get("ABOHUB_CHROMIUM", "/usr/bin/chromium"))
PASSWORD = "correct horse battery staple"
LAPTOP = {"width": 1280, "height": 860}
T = TypeVar("T")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in item.nodeid:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True)
def quick_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2id at the smallest cost (as in the admin's client tests)."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(users, "_hasher", cheap)
    monkeypatch.setattr(users, "_DUMMY_HASH", cheap.hash("not a password"))


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package", pytrace=False)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
    yield browser
    browser.close()


@pytest.fixture
def hub(database: str) -> Iterator[Hub]:
    """The served hub: a clean database, the system clock, a key for connection secrets."""
    settings = load_settings({}, database_url=database, testing=True, encryption_keys=(generate_key(),))
    instance = build(settings)
    wipe(instance)
    yield instance
    instance.close()


@pytest.fixture
def sim() -> Iterator[HubSpotSimulator]:
    with HubSpotSimulator(webhook_mode="off") as simulator:
        yield simulator


@pytest.fixture
def connection_id(hub: Hub, sim: HubSpotSimulator) -> str:
    config = {"base_url": sim.base_url, "access_token": sim.token, "client_secret": sim.client_secret}
    connection = create_connection(
        CreateConnection("hubspot", "HubSpot (simulator)", config), hub.uow("tests")
    )
    open_connector(hub.uow(), connection.id).ensure_properties()
    return connection.id


@dataclass
class Served:
    url: str
    hub: Hub
    runtime: EmbeddedRuntime


@pytest.fixture
def served(hub: Hub, connection_id: str) -> Iterator[Served]:
    """The app on a free port with the embedded worker and scheduler, as ``abohub serve`` runs it."""
    server = make_server("127.0.0.1", 0, create_app(hub=hub), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    runtime = start_embedded(hub)
    assert runtime is not None, "the browser tests run the embedded worker (ABOHUB_REDIS_URL unset)"
    yield Served(f"http://127.0.0.1:{server.server_port}", hub, runtime)
    runtime.stop(timeout=10)
    server.shutdown()


@pytest.fixture
def staff(hub: Hub) -> str:
    create_user("ada", PASSWORD, "admin", hub.uow("tests"))
    return "ada"


@pytest.fixture
def page(chromium: Browser, served: Served) -> Iterator[Page]:
    context = chromium.new_context(base_url=served.url, viewport=LAPTOP, locale="da-DK")
    context.set_default_timeout(15_000)
    browser_page = context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # A page answered 4xx on purpose (a refused login, a field error) is logged as a failed load;
        # failed subresources are caught below, by their response.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(message.text)

    def on_response(response: Response) -> None:
        if response.status >= 400 and response.request.resource_type != "document":
            problems.append(f"{response.status} for {response.url}")

    browser_page.on("console", on_console)
    browser_page.on("pageerror", lambda error: problems.append(str(error)))
    browser_page.on("response", on_response)
    yield browser_page
    context.close()
    assert not problems, f"the browser reported errors (a CSP violation is one): {problems}"


def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    page.goto("/admin/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/admin/")


@pytest.fixture
def signed_in(page: Page, staff: str) -> Page:
    sign_in(page, staff)
    return page


@pytest.fixture
def shots(tmp_path: Path, database: str) -> Callable[..., Path]:
    """Save a full-page screenshot under a name; the docs keep the SQLite run's (the README's default)."""
    wanted = os.environ.get("ABOHUB_SCREENSHOTS")
    folder = Path(wanted) if wanted and database.startswith("sqlite") else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)

    def shoot(page: Page, name: str, *, full_page: bool = True) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return shoot


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Poll until ``probe`` returns something truthy: the worker and scheduler run on their own time."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout:.0f} s still waiting for {what}")
        time.sleep(0.2)


def remote_properties(sim: HubSpotSimulator, object_type: str, remote_id: str) -> dict[str, Any]:
    return dict(sim.get(object_type, remote_id)["properties"])
