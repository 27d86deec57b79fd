"""Failed sign-ins and API tokens are throttled per account and per client address: past the limit
every attempt — the right password included — answers 429 with Retry-After and a plain message.
Memory storage in the app; the Redis storage shares the counts between processes."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from inbox.models import StaffSession
from inbox.services.throttle import Limits, Throttle, Throttled
from inbox.settings import Settings
from tests.support.config import PUBLIC_URL
from tests.support.staff import PASSWORD, csrf_of, post_sign_in

REDIS_URL = os.environ.get("INBOX_TEST_REDIS_URL", "redis://127.0.0.1:6379")
WINDOW_SECONDS = 15 * 60


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Lower limits per address than the defaults, so the tests stay quick; per account the default.
    return settings.with_changes(
        failed_sign_ins_per_address="15 per 15 minutes", failed_tokens_per_address="5 per 15 minutes"
    )


def client_at(app: Starlette, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 50123))
    return httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL)


@pytest.fixture
async def browsers(app: Starlette) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """Browsers at two client addresses."""
    clients = {address: client_at(app, address) for address in ("203.0.113.7", "198.51.100.9")}
    yield clients
    for client in clients.values():
        await client.aclose()


def assert_throttled(response: httpx.Response, what: str = "sign-ins") -> int:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= WINDOW_SECONDS
    minutes = -(-retry_after // 60)
    assert f"Too many failed {what}. Try again in {minutes} minutes." in response.text
    return retry_after


async def test_ten_failures_lock_the_account_and_the_right_password_is_refused_too(
    app: Starlette, browsers, make_staff
) -> None:
    staff = await make_staff("advocate")
    http = browsers["203.0.113.7"]
    for _ in range(10):
        assert (await post_sign_in(http, staff.email, "wrong password")).status_code == 400
    refused = await post_sign_in(http, staff.email, PASSWORD)
    assert_throttled(refused)
    assert 'role="alert"' in refused.text and f'value="{staff.email}"' in refused.text  # the form, as typed
    assert not await StaffSession.exists(staff_id=staff.id)
    # From another address too: it is the account that is locked (however the email is typed) …
    elsewhere = browsers["198.51.100.9"]
    assert_throttled(await post_sign_in(elsewhere, staff.email.upper(), PASSWORD))
    # … and only that account.
    other = await make_staff("advocate")
    assert (await post_sign_in(http, other.email, PASSWORD)).status_code == 303


async def test_a_success_clears_the_accounts_failures(app: Starlette, browsers, make_staff) -> None:
    staff = await make_staff("advocate")
    http = browsers["203.0.113.7"]
    # 7 + 7 failures: under the address's 15, over the account's 10 unless the success cleared it.
    for _ in range(7):
        assert (await post_sign_in(http, staff.email, "typo")).status_code == 400
    assert (await post_sign_in(http, staff.email, PASSWORD)).status_code == 303
    await http.post("/logout", data={"csrf_token": csrf_of((await http.get("/")).text)})
    for _ in range(7):
        assert (await post_sign_in(http, staff.email, "typo")).status_code == 400


async def test_a_burst_of_parallel_guesses_gets_no_more_than_ten_checked(app: Starlette, browsers, make_staff) -> None:
    staff = await make_staff("advocate")
    http = browsers["203.0.113.7"]
    page = await http.get("/login")
    form = {"email": staff.email, "password": "guess", "csrf_token": csrf_of(page.text)}
    answers = await asyncio.gather(*(http.post("/login", data=form) for _ in range(25)))
    statuses = sorted(response.status_code for response in answers)
    assert statuses == [400] * 10 + [429] * 15


async def test_failures_from_one_address_lock_that_address_for_every_account(
    app: Starlette, browsers, make_staff
) -> None:
    people = [await make_staff("advocate") for _ in range(4)]
    attacker = browsers["203.0.113.7"]
    for person in people[:3]:
        for _ in range(5):
            assert (await post_sign_in(attacker, person.email, "wrong password")).status_code == 400
    # 15 failures from this address (5 per account, so no account is locked): the address is.
    assert_throttled(await post_sign_in(attacker, people[3].email, PASSWORD))
    assert_throttled(await post_sign_in(attacker, "nobody@example.org", "x"))
    # Everyone else signs in as usual, the attacked accounts included.
    assert (await post_sign_in(browsers["198.51.100.9"], people[0].email, PASSWORD)).status_code == 303


async def test_bad_api_tokens_are_throttled_per_address(app: Starlette, api_client, make_staff) -> None:
    staff = await make_staff("supervisor")
    good = await api_client(staff)  # at the default test address
    token = good.headers["Authorization"]
    attacker = client_at(app, "203.0.113.7")
    try:
        for n in range(5):
            response = await attacker.get("/api/v1/cases", headers={"Authorization": f"Bearer ci_guess{n}"})
            assert response.status_code == 401
        refused = await attacker.get("/api/v1/cases", headers={"Authorization": token})  # a valid token, too late
        assert refused.status_code == 429
        retry_after = int(refused.headers["Retry-After"])
        assert 0 < retry_after <= WINDOW_SECONDS
        assert refused.json()["error"].startswith("Too many failed API tokens. Try again in ")
        # No token at all is not a guess: it is told what to send, and counts for nothing.
        assert (await attacker.get("/api/v1/cases")).status_code == 401
    finally:
        await attacker.aclose()
    assert (await good.get("/api/v1/cases")).status_code == 200  # another address is not affected


async def test_a_wrong_current_password_on_the_account_page_counts_as_a_failed_sign_in(
    app: Starlette, signed_in, make_staff
) -> None:
    staff = await signed_in(await make_staff("advocate"))
    await staff.get("/account")
    form = {"current_password": "guess", "new_password": "long enough", "confirm_password": "long enough"}
    for _ in range(10):
        assert (await staff.post("/account/password", form)).status_code == 422
    refused = await staff.post("/account/password", {**form, "current_password": PASSWORD})
    assert_throttled(refused)


# ---------------------------------------------------------------- the storages themselves


def test_an_unusable_limit_setting_is_refused_by_name() -> None:
    from inbox.settings import SettingError, load_settings

    with pytest.raises(SettingError, match="INBOX_FAILED_SIGN_INS_PER_ACCOUNT"):
        load_settings({"INBOX_SECRET_KEY": "k" * 40, "INBOX_FAILED_SIGN_INS_PER_ACCOUNT": "ten please"})
    with pytest.raises(SettingError, match="INBOX_SESSION_IDLE_HOURS"):
        load_settings({"INBOX_SECRET_KEY": "k" * 40, "INBOX_SESSION_IDLE_HOURS": "-1"})
    loaded = load_settings(
        {
            "INBOX_SECRET_KEY": "k" * 40,
            "INBOX_SECRET_KEY_OLD": " old-one , old-two ,",
            "INBOX_RATE_LIMIT_URL": "redis://127.0.0.1:6379",
            "INBOX_FAILED_SIGN_INS_PER_ACCOUNT": "5/hour",
            "INBOX_SESSION_IDLE_HOURS": "1.5",
            "INBOX_SESSION_MAX_DAYS": "2",
        }
    )
    assert loaded.secret_key_old == ("old-one", "old-two")
    assert (loaded.rate_limit_url, loaded.failed_sign_ins_per_account) == ("redis://127.0.0.1:6379", "5/hour")
    assert (loaded.session_idle_hours, loaded.session_max_days) == (1.5, 2)


async def test_the_redis_storage_shares_failures_between_processes() -> None:
    limits = Limits(sign_ins_per_account="3 per 15 minutes", sign_ins_per_address="100 per 15 minutes")
    # Two app processes: two Throttle objects, each with its own connection to the same Redis.
    first, second = Throttle(REDIS_URL, limits), Throttle(REDIS_URL, limits)
    try:
        await shared_failures(first, second)
    finally:
        await first.close()
        await second.close()


async def shared_failures(first: Throttle, second: Throttle) -> None:
    assert await first.storage_answers(), f"Redis is not reachable at {REDIS_URL}"
    email = f"redis-{secrets.token_hex(8)}@example.org"
    address = f"test-{secrets.token_hex(8)}"
    for throttle in (first, second, first):
        await throttle.begin_sign_in(email, address)
        await throttle.sign_in_failed(address)
    with pytest.raises(Throttled) as refused:
        await second.begin_sign_in(email, address)
    assert 0 < refused.value.retry_after <= WINDOW_SECONDS
    assert refused.value.message.startswith("Too many failed sign-ins. Try again in ")
    await first.sign_in_succeeded(email)  # a success in one process frees the account in both
    await second.begin_sign_in(email, address)


def test_every_setting_read_from_the_environment_is_in_the_readme_table() -> None:
    root = Path(__file__).resolve().parent.parent
    read = set(re.findall(r'"((?:INBOX|TWILIO)_[A-Z_]+)"', (root / "inbox" / "settings.py").read_text()))
    readme = (root / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## Pointing a real Twilio number")]
    documented = set(re.findall(r"`((?:INBOX|TWILIO)_[A-Z_]+)`", table))
    assert {"INBOX_SECRET_KEY_OLD", "INBOX_RATE_LIMIT_URL", "INBOX_SESSION_IDLE_HOURS"} <= read
    assert read - documented == set()
