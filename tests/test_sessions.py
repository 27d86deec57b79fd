"""Server-side sessions: a copied cookie dies with its session; sign out everywhere, a password change
and deactivation end sessions and their open event streams at once (on a real uvicorn server); idle
and absolute expiry (the session clock moved, no sleeping); the Account and Admin → Staff pages."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette

from inbox.live import SIGNED_OUT, Tab
from inbox.models import Office, Staff, StaffSession
from inbox.services import sessions
from inbox.services.staff import authenticate, create_api_token
from inbox.settings import Settings
from tests.support.apps import asgi_client, running
from tests.support.events import WAIT_SECONDS
from tests.support.fake_twilio import FakeTwilio
from tests.support.live import EventStream, browser, event_stream, signed_in_browser
from tests.support.staff import PASSWORD, csrf_of, post_form, post_sign_in, sign_in

NEW_PASSWORD = "a much longer passphrase"


async def says_signed_out_and_ends(stream: EventStream) -> bool:
    """A page's stream of a sign-in that has ended: one `signed-out` event (the page says so and stops
    reconnecting against the sign-in page), then the end."""
    return (await stream.next_event()).event == "signed-out" and await stream.ends()


async def is_signed_in(http: httpx.AsyncClient) -> bool:
    response = await http.get("/")
    if response.status_code == 303:
        assert response.headers["location"].startswith("/login")
        return False
    assert response.status_code == 200
    return True


def cookie_of(response: httpx.Response) -> str:
    return next(h for h in response.headers.get_list("set-cookie") if h.startswith("inbox_session="))


# ---------------------------------------------------------------- a stolen cookie


async def test_a_cookie_copied_before_sign_out_no_longer_works_after_it(app: Starlette, make_staff) -> None:
    staff = await make_staff("supervisor")
    signed = await sign_in(app, staff)
    stolen = signed.http.cookies["inbox_session"]
    async with asgi_client(app) as thief:
        thief.cookies.set("inbox_session", stolen, domain="inbox.example.org")
        assert await is_signed_in(thief)  # the control: while the session lives, the copy works

        response = await signed.post("/logout")
        assert response.status_code == 303 and response.headers["location"] == "/login"
        assert "inbox_session=" in cookie_of(response) and "Max-Age=0" in cookie_of(response)

        assert not await is_signed_in(thief)
        for path in ("/cases", "/account", "/admin/settings"):
            page = await thief.get(path)
            assert page.status_code == 303 and page.headers["location"] == f"/login?next={path}"
        events = await thief.get("/events")
        assert events.status_code == 303 and events.headers["location"] == "/login?next=/events"
        assert not events.headers.get("content-type", "").startswith("text/event-stream")
    assert not await StaffSession.exists(staff_id=staff.id)
    await signed.http.aclose()


async def test_signing_in_issues_a_new_key_and_the_old_one_is_gone(app: Starlette, anonymous, make_staff) -> None:
    staff = await make_staff("advocate")
    page = await anonymous.get("/login")
    planted = anonymous.cookies["inbox_session"]  # a session before sign-in holds only the form's CSRF token
    assert (await StaffSession.get(key_hash=sessions.key_digest(planted))).staff_id is None
    response = await anonymous.post(
        "/login", data={"email": staff.email, "password": PASSWORD, "csrf_token": csrf_of(page.text)}
    )
    assert response.status_code == 303
    issued = anonymous.cookies["inbox_session"]
    assert issued != planted
    assert not await StaffSession.exists(key_hash=sessions.key_digest(planted))
    assert (await StaffSession.get(key_hash=sessions.key_digest(issued))).staff_id == staff.id
    async with asgi_client(app) as fixer:  # whoever planted the first key gets nothing from it
        fixer.cookies.set("inbox_session", planted, domain="inbox.example.org")
        assert not await is_signed_in(fixer)


async def test_visitors_who_see_no_form_get_no_session(anonymous: httpx.AsyncClient) -> None:
    for path in ("/no-such-page", "/static/app.css", "/webhooks/twilio/status"):
        response = await anonymous.get(path)
        assert "set-cookie" not in response.headers, path
    assert not await StaffSession.exists()
    await anonymous.get("/login")  # the sign-in form needs its CSRF token: now there is one
    assert await StaffSession.filter(staff_id=None).count() == 1


# ---------------------------------------------------------------- ending sessions and their streams


async def test_sign_out_everywhere_ends_every_session_and_its_streams(app, server, make_staff) -> None:
    staff = await make_staff("supervisor")
    bystander = await make_staff("supervisor")
    async with (
        signed_in_browser(server, staff) as laptop,
        signed_in_browser(server, staff) as phone,
        signed_in_browser(server, bystander) as colleague,
        event_stream(laptop, "/events") as laptop_stream,
        event_stream(phone, "/events") as phone_stream,
        event_stream(colleague, "/events"),
    ):
        account = await laptop.get("/")
        assert 'href="/account"' in account.text  # linked from the header
        response = await post_form(laptop, "/account", "/account/sign-out-everywhere", {})
        assert response.status_code == 303 and response.headers["location"] == "/login"
        assert await says_signed_out_and_ends(laptop_stream)
        assert await says_signed_out_and_ends(phone_stream)
        assert not await is_signed_in(laptop) and not await is_signed_in(phone)
        assert await is_signed_in(colleague)
        assert [t.staff_id for t in app.state.hub.tabs] == [bystander.id]
    assert not await StaffSession.exists(staff_id=staff.id)


async def test_a_password_change_ends_the_other_sessions_and_their_streams(app, server, make_staff) -> None:
    staff = await make_staff("advocate")
    async with (
        signed_in_browser(server, staff) as here,
        signed_in_browser(server, staff) as elsewhere,
        event_stream(here, "/events") as here_stream,
        event_stream(elsewhere, "/events") as elsewhere_stream,
    ):
        response = await post_form(
            here,
            "/account",
            "/account/password",
            {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
        )
        assert response.status_code == 303 and response.headers["location"] == "/account?changed=1"
        assert await says_signed_out_and_ends(elsewhere_stream)
        assert not await is_signed_in(elsewhere)
        # This session stays, and so does its stream: it still hears what is published.
        assert await is_signed_in(here)
        assert "Your password is changed" in (await here.get("/account?changed=1")).text
        assert [t.staff_id for t in app.state.hub.tabs] == [staff.id]
        assert here_stream is not None
    assert await authenticate(staff.email, NEW_PASSWORD) is not None
    assert await authenticate(staff.email, PASSWORD) is None


async def test_deactivating_a_staff_member_ends_their_sessions_and_streams(app, server, make_staff) -> None:
    admin = await make_staff("admin")
    leaver = await make_staff("advocate")
    token = await create_api_token(leaver.email)
    async with (
        signed_in_browser(server, admin) as admin_browser,
        signed_in_browser(server, leaver) as leaver_browser,
        browser(server) as integration,
        event_stream(leaver_browser, "/events") as page_stream,
        event_stream(integration, "/api/v1/events", {"Authorization": f"Bearer {token}"}) as api_stream,
    ):
        page = await admin_browser.get("/admin/staff")
        row = re.search(rf'<tr id="staff-{leaver.id}">(.*?)</tr>', page.text, re.DOTALL)
        assert row and "active" in row.group(1) and "Deactivate" in row.group(1)
        response = await admin_browser.post(
            f"/admin/staff/{leaver.id}/active", data={"active": "0", "csrf_token": csrf_of(page.text)}
        )
        assert response.status_code == 200 and f"{leaver.name} is deactivated" in response.text
        assert await says_signed_out_and_ends(page_stream)
        assert await api_stream.ends()
        assert not await is_signed_in(leaver_browser)
        refused = await integration.get("/api/v1/cases", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401
        assert await is_signed_in(admin_browser)
    assert not (await Staff.get(id=leaver.id)).is_active
    assert not await StaffSession.exists(staff_id=leaver.id)


async def test_a_page_says_when_its_sign_in_has_ended_and_leads_back_to_it(signed_in, make_staff, anonymous) -> None:
    staff = await signed_in(await make_staff("advocate"))
    page = await staff.get("/cases?q=x")
    # The stream's `signed-out` event closes it (htmx's sse-close) and static/app.js shows this notice.
    assert 'sse-close="signed-out"' in page.text
    notice = re.search(r'<p id="signed-out" class="signed-out" role="alert" hidden>(.*?)</p>', page.text, re.DOTALL)
    assert notice and "You are signed out" in notice.group(1)
    assert 'href="/login?next=/cases"' in notice.group(1)  # back to this page after signing in
    assert 'id="signed-out"' not in (await anonymous.get("/login")).text


async def test_sign_out_on_a_page_whose_sign_in_has_ended_leads_to_sign_in(app: Starlette, make_staff) -> None:
    staff = await make_staff("advocate")
    here, elsewhere = await sign_in(app, staff), await sign_in(app, staff)  # both pages show "Sign out"
    assert (await here.post("/account/sign-out-everywhere")).status_code == 303
    # The other page's form token died with its session: no error page, just where "Sign out" leads.
    response = await elsewhere.post("/logout")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    for client in (here, elsewhere):
        await client.http.aclose()


async def test_a_reactivated_staff_member_signs_in_again(app, signed_in, make_staff) -> None:
    admin = await signed_in(await make_staff("admin"))
    leaver = await make_staff("advocate")
    await admin.get("/admin/staff")
    assert (await admin.post(f"/admin/staff/{leaver.id}/active", {"active": "0"})).status_code == 200
    async with asgi_client(app) as http:
        guess = await post_sign_in(http, leaver.email, "not it")
        assert guess.status_code == 400 and "deactivated" not in guess.text  # a guesser learns nothing
        refused = await post_sign_in(http, leaver.email)
        # The right password: they are told why, instead of "do not match" until the throttle stops them.
        assert refused.status_code == 403 and "Your account is deactivated." in refused.text
        assert not await is_signed_in(http)
    back = await admin.post(f"/admin/staff/{leaver.id}/active", {"active": "1"})
    assert back.status_code == 200 and f"{leaver.name} is reactivated" in back.text
    again = await sign_in(app, leaver)
    assert await is_signed_in(again.http)
    await again.http.aclose()


async def test_an_admin_cannot_deactivate_themselves(signed_in, make_staff) -> None:
    admin = await signed_in(await make_staff("admin"))
    page = await admin.get("/admin/staff")
    assert f'action="/admin/staff/{admin.staff.id}/active"' not in page.text  # no button for oneself
    response = await admin.post(f"/admin/staff/{admin.staff.id}/active", {"active": "0"})
    assert response.status_code == 422 and "cannot deactivate your own account" in response.text
    assert (await Staff.get(id=admin.staff.id)).is_active
    assert (await admin.get("/")).status_code == 200


async def test_expired_sessions_are_removed_and_their_streams_closed(app: Starlette, make_staff) -> None:
    staff = await make_staff("advocate")
    signed = await sign_in(app, staff)
    record = await StaffSession.get(staff_id=staff.id)
    tab = Tab(staff_id=staff.id, sees_everything=False, session_id=record.key_hash)
    other_tab = Tab(staff_id=staff.id, sees_everything=False, session_id="another-session")
    app.state.hub.attach(tab)
    app.state.hub.attach(other_tab)
    fresh = await StaffSession.filter(staff_id=None).count()  # the sign-in page's own session went at sign-in

    assert await sessions.remove_expired(app.state.bus, datetime.now(UTC)) == 0
    removed = await sessions.remove_expired(app.state.bus, datetime.now(UTC) + timedelta(hours=12, minutes=1))
    assert removed == 1 + fresh
    async with asyncio.timeout(WAIT_SECONDS):
        assert await tab.queue.get() == SIGNED_OUT  # the page is told why
        assert await tab.queue.get() is None  # closed
    assert other_tab in app.state.hub.tabs
    app.state.hub.detach(other_tab)
    assert not await StaffSession.exists(id=record.id)
    assert not await is_signed_in(signed.http)
    await signed.http.aclose()


# ---------------------------------------------------------------- idle timeout and absolute lifetime


@pytest.fixture
def clock(app: Starlette) -> AsyncIterator[list[datetime]]:
    """The session clock, moved by the test: clock[0] is "now"."""
    moments = [datetime.now(UTC)]
    app.state.clock = lambda: moments[0]
    return moments  # type: ignore[return-value]


async def test_a_session_ends_after_twelve_idle_hours(app: Starlette, make_staff, clock) -> None:
    staff = await make_staff("advocate")
    signed = await sign_in(app, staff)
    start = clock[0]
    record = await StaffSession.get(staff_id=staff.id)
    assert record.idle_expires_at == start + timedelta(hours=12)
    assert record.expires_at == start + timedelta(days=7)

    clock[0] = start + timedelta(hours=11, minutes=59)
    assert await is_signed_in(signed.http)  # used in time: seen again, so the idle clock restarts
    clock[0] = start + timedelta(hours=23, minutes=57)
    assert await is_signed_in(signed.http)
    clock[0] = start + timedelta(hours=35, minutes=58)
    assert not await is_signed_in(signed.http)
    await signed.http.aclose()


async def test_a_session_ends_at_its_absolute_lifetime_however_busy(app: Starlette, make_staff, clock) -> None:
    staff = await make_staff("advocate")
    signed = await sign_in(app, staff)
    start = clock[0]
    for hours in range(11, 7 * 24, 11):
        clock[0] = start + timedelta(hours=hours)
        assert await is_signed_in(signed.http), hours
    clock[0] = start + timedelta(days=7)
    assert not await is_signed_in(signed.http)
    await signed.http.aclose()


async def test_last_seen_is_written_at_most_once_a_minute(app: Starlette, make_staff, clock) -> None:
    staff = await make_staff("advocate")
    signed = await sign_in(app, staff)
    start = clock[0]
    seen = (await StaffSession.get(staff_id=staff.id)).last_seen_at
    for seconds in (1, 20, 59):
        clock[0] = start + timedelta(seconds=seconds)
        assert await is_signed_in(signed.http)
        assert (await StaffSession.get(staff_id=staff.id)).last_seen_at == seen  # no write for "last seen"
    clock[0] = start + timedelta(seconds=61)
    assert await is_signed_in(signed.http)
    record = await StaffSession.get(staff_id=staff.id)
    assert record.last_seen_at == clock[0] and record.idle_expires_at == clock[0] + timedelta(hours=12)
    await signed.http.aclose()


async def test_idle_and_lifetime_are_settings(settings: Settings, fake_twilio: FakeTwilio) -> None:
    changed = settings.with_changes(session_idle_hours=0.5, session_max_days=1)
    async with running(changed, fake_twilio) as application:
        from inbox.services.staff import create_staff

        staff, _ = await create_staff(email="ana@example.org", name="Ana", role="advocate", password=PASSWORD)
        async with asgi_client(application) as http:
            response = await post_sign_in(http, staff.email)
        assert response.status_code == 303
        assert f"Max-Age={24 * 3600}" in cookie_of(response)  # the cookie lasts no longer than the session
        record = await StaffSession.get(staff_id=staff.id)
        assert record.idle_expires_at - record.last_seen_at == timedelta(minutes=30)
        assert record.expires_at - record.created_at == timedelta(days=1)


# ---------------------------------------------------------------- the cookie


@pytest.mark.parametrize(
    ("environment", "public_url", "secure"),
    [
        ("production", "http://10.0.0.5:8000", True),  # behind a TLS proxy the app may be told an http URL
        ("production", "https://texts.example.org", True),
        ("development", "https://texts.example.org", True),
        ("development", "http://127.0.0.1:8000", False),  # a laptop without TLS could not sign in otherwise
    ],
)
async def test_the_session_cookie_is_secure_in_production_whatever_the_url(
    settings: Settings, fake_twilio: FakeTwilio, environment: str, public_url: str, secure: bool
) -> None:
    changed = settings.with_changes(environment=environment, public_url=public_url)
    async with running(changed, fake_twilio) as application:
        async with asgi_client(application) as http:
            response = await http.get("/login")
    flags = [part.strip().lower() for part in cookie_of(response).split(";")]
    assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
    assert ("secure" in flags) is secure


# ---------------------------------------------------------------- the Account page


async def test_a_password_change_needs_the_current_password_and_eight_characters(signed_in, make_staff) -> None:
    staff = await signed_in(await make_staff("advocate"))
    page = await staff.get("/account")
    assert page.status_code == 200 and staff.staff.email in page.text
    attempts = [
        (
            {"current_password": "not it", "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
            "not your current password",
        ),
        ({"current_password": PASSWORD, "new_password": "short", "confirm_password": "short"}, "at least 8 characters"),
        (
            {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm_password": "something else"},
            "not the same",
        ),
    ]
    for form, words in attempts:
        response = await staff.post("/account/password", form)
        assert response.status_code == 422 and words in response.text, response.text
        assert 'value="' + NEW_PASSWORD not in response.text  # passwords are never echoed
    assert await authenticate(staff.staff.email, PASSWORD) is not None
    refused = await staff.post("/account/password", dict(attempts[0][0]), csrf=False)
    assert refused.status_code == 403


async def test_signed_out_visitors_are_sent_to_sign_in_from_the_account_pages(anonymous: httpx.AsyncClient) -> None:
    for path in ("/account", "/admin/staff"):
        response = await anonymous.get(path)
        assert response.status_code == 303 and response.headers["location"] == f"/login?next={path}"


# ---------------------------------------------------------------- Admin → Staff


async def test_an_admin_adds_staff_and_sees_the_generated_password_once(app: Starlette, signed_in, make_staff) -> None:
    office = await Office.create(name="Westside")
    admin = await signed_in(await make_staff("admin"))
    settings_page = await admin.get("/admin/settings")
    assert 'href="/admin/staff"' in settings_page.text
    page = await admin.get("/admin/staff")
    assert page.status_code == 200 and admin.staff.email in page.text

    response = await admin.post(
        "/admin/staff",
        {
            "name": "Rosa Diaz",
            "email": "Rosa@Example.org",
            "role": "supervisor",
            "office_id": str(office.id),
            "mobile": "",
        },
    )
    assert response.status_code == 201, response.text
    password = re.search(r'id="created-password".*?<code>([^<]+)</code>', response.text, re.DOTALL)
    assert password, response.text
    rosa = await Staff.get(email="rosa@example.org")
    assert (rosa.role, rosa.office_id, rosa.is_active) == ("supervisor", office.id, True)
    row = re.search(rf'<tr id="staff-{rosa.id}">(.*?)</tr>', response.text, re.DOTALL)
    assert row and "supervisor" in row.group(1) and "Westside" in row.group(1) and "active" in row.group(1)
    assert await authenticate("rosa@example.org", password.group(1)) is not None
    # Never again: the list shows no password, and none is stored in the clear.
    again = await admin.get("/admin/staff")
    assert password.group(1) not in again.text and rosa.password_hash and password.group(1) not in rosa.password_hash


async def test_a_refused_staff_form_comes_back_as_typed(signed_in, make_staff) -> None:
    existing = await make_staff("advocate")
    admin = await signed_in(await make_staff("admin"))
    await admin.get("/admin/staff")
    count = await Staff.all().count()
    response = await admin.post(
        "/admin/staff",
        {"name": "Someone New", "email": existing.email, "role": "advocate", "office_id": "", "mobile": "12"},
    )
    assert response.status_code == 422
    assert f"There is already an account for {existing.email}" in response.text
    assert 'value="Someone New"' in response.text and 'value="12"' in response.text
    unknown_office = await admin.post(
        "/admin/staff", {"name": "Someone", "email": "new@example.org", "role": "advocate", "office_id": "999"}
    )
    assert unknown_office.status_code == 422 and "Choose an office" in unknown_office.text
    assert await Staff.all().count() == count


async def test_only_admins_reach_the_staff_page(signed_in, make_staff) -> None:
    for role in ("advocate", "supervisor"):
        person = await signed_in(await make_staff(role))
        target = await make_staff("advocate")
        assert (await person.get("/admin/staff")).status_code == 403
        await person.get("/")
        response = await person.post(f"/admin/staff/{target.id}/active", {"active": "0"})
        assert response.status_code == 403
        added = await person.post("/admin/staff", {"name": "X", "email": "x@example.org", "role": "admin"})
        assert added.status_code == 403
        assert (await Staff.get(id=target.id)).is_active
        assert not await Staff.exists(email="x@example.org")
