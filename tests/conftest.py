"""Fixtures: a real database, the real app with its lifespan, the real twilio library talking
HTTP to a local Twilio-compatible server, and staff clients that sign in like a person does.

Only fixtures live here (pytest hands them to tests by name); the helpers they are built from, and
everything else several test files use, are in tests/support, which the tests import."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from starlette.applications import Starlette

from inbox.events import Subscription
from inbox.models import Staff
from inbox.services.directory import PhoneInput, create_assignment, create_case, create_client
from inbox.services.staff import create_api_token, create_staff
from inbox.settings import Secret, Settings
from tests.support import database
from tests.support.apps import asgi_client, running
from tests.support.browser import DESKTOP_SIZE, ConsoleWatch, DemoServer, demo_server, require_browser
from tests.support.cli import DATABASE_FILE, empty_directory, migrated_sqlite
from tests.support.config import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, PUBLIC_URL
from tests.support.fake_twilio import FakeTwilio
from tests.support.live import browser, count_renders, serving
from tests.support.records import MARIA, CaseFile, MakeCase
from tests.support.staff import PASSWORD, ApiClientFactory, MakeStaff, StaffClient, sign_in

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = database.database_url(tmp_path_factory.mktemp("db"))
    await database.prepare(url)
    return url


@pytest.fixture
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
        yield fake


@pytest.fixture
def settings(database_url: str, fake_twilio: FakeTwilio, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        public_url=PUBLIC_URL,
        secret_key=Secret("test-secret-key-" + "x" * 32),
        media_dir=tmp_path / "media",
        data_dir=tmp_path / "data",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=Secret(AUTH_TOKEN),
        twilio_from_number=FROM_NUMBER,
        twilio_api_url=fake_twilio.base_url,
        migrate_on_start=False,
        run_worker=False,
    )


@pytest.fixture
async def app(settings: Settings, fake_twilio: FakeTwilio) -> AsyncIterator[Starlette]:
    async with running(settings, fake_twilio) as application:
        yield application


@pytest.fixture
async def anonymous(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app) as client:
        yield client


@pytest.fixture
async def make_staff(app: Starlette) -> MakeStaff:
    counter = {"n": 0}

    async def make(role: str = "advocate", name: str | None = None) -> Staff:
        counter["n"] += 1
        staff, _ = await create_staff(
            email=f"{role}{counter['n']}@example.org",
            name=name or f"{role.title()} {counter['n']}",
            role=role,
            password=PASSWORD,
        )
        return staff

    return make


@pytest.fixture
async def signed_in(app: Starlette) -> AsyncIterator[Callable[[Staff], Awaitable[StaffClient]]]:
    clients: list[StaffClient] = []

    async def open_for(staff: Staff) -> StaffClient:
        client = await sign_in(app, staff)
        clients.append(client)
        return client

    yield open_for
    for client in clients:
        await client.http.aclose()


@pytest.fixture
async def make_case(app: Starlette) -> MakeCase:
    counter = {"n": 0}

    async def make(
        phone: str = MARIA,
        okay_to_text: bool = True,
        assignee: Staff | None = None,
        name: str = "Maria Lopez",
        primary: bool = True,
    ) -> CaseFile:
        counter["n"] += 1
        client = await create_client(name=name, phones=[PhoneInput(phone, "mobile", okay_to_text)])
        number = f"16E-2001{counter['n']:04d}"
        case = await create_case(
            number=number, title=f"Case {counter['n']}", client_id=client.id, legal_problem="Housing"
        )
        if assignee is not None:
            await create_assignment(case_id=case.id, staff_email=assignee.email, primary=primary)
        return CaseFile(client.id, case.id, number)

    return make


@pytest.fixture
async def api_client(app: Starlette) -> AsyncIterator[ApiClientFactory]:
    clients: list[httpx.AsyncClient] = []

    async def open_for(staff: Staff) -> httpx.AsyncClient:
        token = await create_api_token(staff.email)
        client = asgi_client(app)
        client.headers["Authorization"] = f"Bearer {token}"
        clients.append(client)
        return client

    yield open_for
    for client in clients:
        await client.aclose()


@pytest.fixture
async def supervisor_staff(make_staff: MakeStaff) -> Staff:
    return await make_staff("supervisor", name="Sam Supervisor")


@pytest.fixture
async def supervisor(supervisor_staff: Staff, api_client: ApiClientFactory) -> httpx.AsyncClient:
    """The API as a supervisor (who sees every client) uses it, with a bearer token."""
    return await api_client(supervisor_staff)


@pytest.fixture
async def bus_events(app: Starlette) -> AsyncIterator[Subscription]:
    """Everything the app publishes from here on."""
    async with app.state.bus.subscribe() as subscription:
        yield subscription


@pytest.fixture
async def server(app: Starlette) -> AsyncIterator[str]:
    """The app served by uvicorn (for event streams, which hang through ASGITransport); its base URL."""
    async with serving(app) as url:
        yield url


@pytest.fixture
async def twilio(server: str) -> AsyncIterator[httpx.AsyncClient]:
    """Twilio as it reaches the served app: through the TLS-terminating proxy, to PUBLIC_URL."""
    async with browser(server) as client:
        yield client


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    return count_renders(monkeypatch)


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database at the newest schema, made once a run by `inbox migrate` in a process of its own:
    migrating from empty costs ~4 s of CPU (Tortoise rebuilds its models at every step), and most commands a test
    runs only need the schema to be there."""
    return migrated_sqlite(tmp_path_factory.mktemp("migrated"))


@pytest.fixture
def workdir(tmp_path: Path, migrated_database: Path) -> Path:
    """A directory of its own for a command run for real (tests/support/cli.py), its database already migrated."""
    path = empty_directory(tmp_path / "cli")
    shutil.copyfile(migrated_database, path / DATABASE_FILE)
    return path


@pytest.fixture
def empty_workdir(tmp_path: Path) -> Path:
    """As `workdir`, with no database yet: for the tests of what a command does to an empty one."""
    return empty_directory(tmp_path / "cli")


# ---------------------------------------------------------------- browser tests (tests/support/browser.py)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """The demo served for real, one per test module (its tests share its data: each uses its own clients)."""
    require_browser()
    with demo_server(tmp_path_factory.mktemp("demo")) as server:
        yield server


@pytest.fixture(scope="module")
async def chromium() -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    path = require_browser()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=path, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield browser
        await browser.close()


@pytest.fixture
def console() -> Iterator[ConsoleWatch]:
    """Console errors of every page the test opens: none are allowed in normal use."""
    watch = ConsoleWatch()
    yield watch
    assert watch.errors == [], "console errors:\n" + "\n".join(watch.errors)


@pytest.fixture
async def new_context(chromium: Browser) -> AsyncIterator[Callable[..., Awaitable[BrowserContext]]]:
    """Opens browser contexts (one per person: cookies of their own), closed after the test."""
    contexts: list[BrowserContext] = []

    async def open_context(**options: Any) -> BrowserContext:
        context = await chromium.new_context(**{"viewport": DESKTOP_SIZE, **options})
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        await context.close()
