"""Staff pages: sign-in, CSRF, the inbox, who sees what, threads, case pages, sending, bad input,
unknown senders, and the client phone of development mode.

Everything goes through the real app over HTTP: the real session cookie, the real webhooks (signed
like Twilio signs them) and the real twilio library talking to the fake Twilio server.
"""

from __future__ import annotations

import json
import re
from base64 import b64encode
from datetime import date, timedelta
from html import unescape

import httpx
import itsdangerous
import pytest
from starlette.applications import Starlette

from inbox.models import (
    Channel,
    ClientPhone,
    Conversation,
    ConversationRead,
    Direction,
    Message,
    MessageLink,
    MessageStatus,
    StaffSession,
    WebhookPayload,
)
from inbox.services.directory import PhoneInput, create_assignment, create_case, create_client
from inbox.services.staff import create_staff
from inbox.settings import Settings
from tests.support.apps import asgi_client, running, simulator_settings
from tests.support.config import PUBLIC_URL
from tests.support.fake_twilio import FakeTwilio
from tests.support.pages import deferred_list_url, row_ids, textarea, words
from tests.support.records import MARIA
from tests.support.staff import PASSWORD, StaffClient, csrf_of, sign_in
from tests.support.webhooks import text_in

JOHN = "+14045387320"
ANA = "+14045387321"
STRANGER = "+14045387399"
NEVER_TEXTED = "+14045387398"

# ---------------------------------------------------------------- helpers


async def send_from_case(staff: StaffClient, case_id: int, body: str, to: str | None = None) -> httpx.Response:
    data = {"body": body}
    if to is not None:
        data["to"] = to
    return await staff.post(f"/cases/{case_id}/text", data)


async def conversation_of(phone: str) -> Conversation:
    return await Conversation.get(phone=phone)


def row_html(html: str, conversation_id: int) -> str:
    match = re.search(rf'<li id="conversation-{conversation_id}".*?</li>', html, re.DOTALL)
    assert match, f"conversation {conversation_id} is not in the list"
    return match.group(0)


def bubble(html: str, message_id: int) -> tuple[str, str]:
    """(direction class, inner HTML) of one chat bubble."""
    match = re.search(rf'<li id="message-{message_id}" class="bubble (\w+)">(.*?)</li>', html, re.DOTALL)
    assert match, f"message {message_id} has no bubble on this page"
    return match.group(1), match.group(2)


def selected_option(html: str, name: str) -> str:
    select = re.search(rf'<select name="{name}">(.*?)</select>', html, re.DOTALL)
    assert select, f"no <select name={name}>"
    chosen = re.findall(r'<option value="([^"]*)"\s+selected', select.group(1))
    assert len(chosen) == 1, select.group(1)
    return chosen[0]


def assert_stays_on_site(location: str) -> None:
    target = httpx.URL(PUBLIC_URL).join(location)
    assert target.host == "inbox.example.org", location
    assert location.startswith("/") and location[1:2] not in ("/", "\\"), location


def signed_session_cookie(secret: str, session: dict[str, object]) -> str:
    """A cookie as the old signed-cookie sessions (Starlette's SessionMiddleware) made it with `secret`."""
    data = b64encode(json.dumps(session).encode())
    return itsdangerous.TimestampSigner(secret).sign(data).decode()


# ---------------------------------------------------------------- sign in and out


async def test_login_page_has_email_and_password_fields(anonymous: httpx.AsyncClient) -> None:
    page = await anonymous.get("/login")
    assert page.status_code == 200
    assert re.search(r'<input type="email" name="email"', page.text)
    assert re.search(r'<input type="password" name="password"', page.text)
    assert csrf_of(page.text)
    assert "Sign out" not in page.text


async def test_wrong_password_answers_400_keeps_the_email_and_signs_nobody_in(
    anonymous: httpx.AsyncClient, make_staff
) -> None:
    staff = await make_staff("advocate")
    page = await anonymous.get("/login")
    response = await anonymous.post(
        "/login", data={"email": staff.email, "password": "not the password", "csrf_token": csrf_of(page.text)}
    )
    assert response.status_code == 400
    assert f'name="email" value="{staff.email}"' in response.text
    assert 'role="alert"' in response.text and "do not match" in response.text
    assert 'name="password" value' not in response.text  # the password is never echoed
    home = await anonymous.get("/")
    assert home.status_code == 303 and home.headers["location"].startswith("/login")


async def test_correct_password_redirects_to_next_with_an_httponly_signed_cookie(
    anonymous: httpx.AsyncClient, make_staff
) -> None:
    staff = await make_staff("advocate")
    page = await anonymous.get("/login?next=/cases")
    assert 'name="next" value="/cases"' in page.text
    response = await anonymous.post(
        "/login", data={"email": staff.email, "password": PASSWORD, "next": "/cases", "csrf_token": csrf_of(page.text)}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/cases"
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("inbox_session="))
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags
    assert "secure" in flags  # the public URL is https
    assert "samesite=lax" in flags
    assert staff.email not in cookie and str(staff.id) != cookie.split("=", 1)[1].split(";")[0]
    cases = await anonymous.get("/cases")
    assert cases.status_code == 200 and staff.name in cases.text


@pytest.mark.parametrize(
    "target", ["//evil.com", "https://evil.com", "http://evil.com/x", "/\\evil.com", "//evil.com/%2F..", "evil.com"]
)
async def test_next_never_leads_off_site(anonymous: httpx.AsyncClient, make_staff, target: str) -> None:
    staff = await make_staff("advocate")
    page = await anonymous.get("/login", params={"next": target})
    response = await anonymous.post(
        "/login", data={"email": staff.email, "password": PASSWORD, "next": target, "csrf_token": csrf_of(page.text)}
    )
    assert response.status_code == 303
    assert_stays_on_site(response.headers["location"])
    # Already signed in, GET /login?next=… redirects at once: the same rule applies.
    again = await anonymous.get("/login", params={"next": target})
    assert again.status_code == 303
    assert_stays_on_site(again.headers["location"])


async def test_only_a_live_session_key_is_accepted(app: Starlette, make_staff, settings: Settings) -> None:
    staff = await make_staff("supervisor")
    signed = await sign_in(app, staff)
    try:
        genuine = signed.http.cookies["inbox_session"]
        # The cookie is a random key, nothing else: not the staff id, not their email, not signed data.
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", genuine), genuine  # 32 random bytes, no signed payload
        session = await StaffSession.get(staff_id=staff.id)
        assert session.key_hash != genuine and len(session.key_hash) == 64  # only its digest is stored
        tampered = genuine[:10] + ("A" if genuine[10] != "A" else "B") + genuine[11:]
        # What the old signed-cookie sessions accepted, even signed with the real secret key.
        old_style = signed_session_cookie(str(settings.secret_key), {"staff_id": staff.id})
        for value, accepted in ((tampered, False), (old_style, False), (session.key_hash, False), (genuine, True)):
            async with asgi_client(app) as other:
                other.cookies.set("inbox_session", value, domain="inbox.example.org")
                response = await other.get("/")
                if accepted:
                    assert response.status_code == 200 and staff.name in response.text
                else:
                    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    finally:
        await signed.http.aclose()


@pytest.mark.parametrize("path", ["/", "/cases", "/clients", "/conversations/1", "/cases/1/text", "/?filter=unread"])
async def test_signed_out_visitors_are_sent_to_login(anonymous: httpx.AsyncClient, path: str) -> None:
    response = await anonymous.get(path)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/login?next=/")
    assert_stays_on_site(location)


async def test_signed_out_htmx_requests_get_401_and_hx_redirect(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/conversations", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login"


async def test_a_signed_out_htmx_request_comes_back_to_its_page_after_sign_in(anonymous: httpx.AsyncClient) -> None:
    def asked_from(page: str) -> dict[str, str]:
        return {"HX-Request": "true", "HX-Current-URL": page}

    sent = await anonymous.post("/conversations/7/messages", headers=asked_from(f"{PUBLIC_URL}/conversations/7?x=1"))
    assert sent.status_code == 401 and sent.headers["HX-Redirect"] == "/login?next=%2Fconversations%2F7"
    for elsewhere in ("https://elsewhere.example/conversations/7", "//elsewhere.example/x", f"{PUBLIC_URL}/"):
        response = await anonymous.get("/conversations", headers=asked_from(elsewhere))
        assert response.headers["HX-Redirect"] == "/login", elsewhere


async def test_error_pages_keep_the_header_for_signed_in_staff(signed_in, make_staff, anonymous) -> None:
    staff = await signed_in(await make_staff("advocate"))
    # No route matches these, so no handler looked up who is signed in before the error page.
    for path in ("/cases/99999999999", "/no-such-page"):
        page = await staff.get(path)
        assert page.status_code == 404 and "There is no such page." in page.text
        assert 'href="/account"' in page.text and 'action="/logout"' in page.text, path
    visitor = await anonymous.get("/no-such-page")
    assert visitor.status_code == 404 and 'action="/logout"' not in visitor.text


ADMIN_PAGES = {
    "/admin/settings": "Texting settings",
    "/admin/channels": "Sending numbers",
    "/admin/quick-entries": "Quick entries",
    "/admin/quiet-hours": "Quiet hours",
    "/admin/staff": "Staff",
    "/admin/audit": "Audit trail",
}


async def test_every_admin_page_leads_to_every_other(signed_in, make_staff) -> None:
    admin = await signed_in(await make_staff("admin"))
    assert 'href="/admin/settings">Admin</a>' in (await admin.get("/")).text  # the header's way in
    channel = await Channel.all().order_by("id").first()
    assert channel is not None
    pages = [*ADMIN_PAGES, "/admin/channels/new", f"/admin/channels/{channel.id}", "/admin/quick-entries/new"]
    for page in pages:
        response = await admin.get(page)
        assert response.status_code == 200, page
        for target, label in ADMIN_PAGES.items():
            if target != page:
                assert f'<a href="{target}">' in response.text, (page, label)


async def test_logout_requires_post_with_the_csrf_token(signed_in, make_staff) -> None:
    staff = await signed_in(await make_staff("advocate"))
    assert (await staff.http.get("/logout")).status_code == 405
    refused = await staff.post("/logout", csrf=False)
    assert refused.status_code == 403
    assert (await staff.get("/")).status_code == 200  # still signed in
    response = await staff.post("/logout")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    after = await staff.http.get("/")
    assert after.status_code == 303 and after.headers["location"].startswith("/login")


# ---------------------------------------------------------------- CSRF on every staff form


@pytest.mark.parametrize("token", [None, "", "forged-token"], ids=["missing", "empty", "wrong"])
async def test_login_without_the_csrf_token_is_refused(
    anonymous: httpx.AsyncClient, make_staff, token: str | None
) -> None:
    staff = await make_staff("advocate")
    await anonymous.get("/login")
    data = {"email": staff.email, "password": PASSWORD}
    if token is not None:
        data["csrf_token"] = token
    response = await anonymous.post("/login", data=data)
    assert response.status_code == 403
    assert (await anonymous.get("/")).status_code == 303  # nobody was signed in


def _without_token(token: str | None) -> dict[str, str]:
    return {} if token is None else {"csrf_token": token}


@pytest.mark.parametrize("token", [None, "forged-token"], ids=["missing", "wrong"])
async def test_staff_form_posts_without_the_csrf_token_change_nothing(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, token: str | None
) -> None:
    supervisor = await make_staff("supervisor")
    case = await make_case(phone=MARIA)
    await text_in(anonymous, MARIA, "Which courtroom?")
    conversation = await conversation_of(MARIA)
    staff = await signed_in(supervisor)
    messages_before = await Message.all().count()
    form = _without_token(token)

    send = await staff.post(f"/conversations/{conversation.id}/messages", {"body": "Room 4B.", **form}, csrf=False)
    read = await staff.post(f"/conversations/{conversation.id}/read", form, csrf=False)
    case_text = await staff.post(f"/cases/{case.case_id}/text", {"body": "Room 4B.", "to": MARIA, **form}, csrf=False)
    htmx_send = await staff.post(
        f"/conversations/{conversation.id}/messages",
        {"body": "Room 4B.", **form},
        csrf=False,
        headers={"HX-Request": "true"},
    )
    logout = await staff.post("/logout", form, csrf=False)

    for response in (send, read, case_text, htmx_send, logout):
        assert response.status_code == 403, (response.request.url, response.status_code)
    assert await Message.all().count() == messages_before
    assert fake_twilio.requests == []
    assert not await ConversationRead.exists(staff_id=supervisor.id, conversation_id=conversation.id)
    # Still signed in, and the conversation still unread for this reader.
    home = await staff.get("/")
    assert home.status_code == 200
    assert 'aria-label="1 unread"' in row_html(home.text, conversation.id)


async def test_the_htmx_header_token_is_accepted_in_place_of_the_form_field(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    await make_case(phone=MARIA)
    await text_in(anonymous, MARIA, "Which courtroom?")
    conversation = await conversation_of(MARIA)
    staff = await signed_in(await make_staff("supervisor"))
    response = await staff.post(
        f"/conversations/{conversation.id}/messages",
        {"body": "Room 4B."},
        csrf=False,
        headers={"HX-Request": "true", "X-CSRF-Token": staff.csrf},
    )
    assert response.status_code == 200
    assert [r["Body"] for r in fake_twilio.requests] == ["Room 4B."]


async def test_the_client_phone_is_absent_when_twilio_is_configured(signed_in, make_staff) -> None:
    staff = await signed_in(await make_staff("admin"))
    assert "/dev/phone" not in (await staff.get("/")).text
    for response in (
        await staff.get("/dev/phone"),
        await staff.post("/dev/phone", {"number": MARIA}),
        await staff.get(f"/dev/phone/{MARIA}"),
        await staff.post(f"/dev/phone/{MARIA}", {"body": "hi"}),
    ):
        assert response.status_code == 404
    assert await Message.all().count() == 0


# ---------------------------------------------------------------- the inbox


async def test_conversations_are_listed_newest_first_with_preview(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    await make_case(phone=MARIA, name="Maria Lopez")
    await make_case(phone=JOHN, name="John Smith")
    await text_in(anonymous, MARIA, "First from Maria")
    await text_in(anonymous, JOHN, "Hello from John")
    await text_in(anonymous, STRANGER, "Is this legal aid?")
    maria, john, stranger = [await conversation_of(p) for p in (MARIA, JOHN, STRANGER)]
    staff = await signed_in(await make_staff("supervisor"))

    home = await staff.get("/")
    assert row_ids(home.text) == [stranger.id, john.id, maria.id]
    assert "Maria Lopez" in row_html(home.text, maria.id) and "First from Maria" in row_html(home.text, maria.id)
    assert "(404) 538-7399" in row_html(home.text, stranger.id)

    # A reply moves Maria's conversation to the top, previewed as ours.
    reply = await staff.post(f"/conversations/{maria.id}/messages", {"body": "Courtroom 4B, 9am."})
    assert reply.status_code == 200
    home = await staff.get("/")
    assert row_ids(home.text) == [maria.id, stranger.id, john.id]
    assert "You: Courtroom 4B, 9am." in words(row_html(home.text, maria.id))


def mark_read_form(html: str, conversation_id: int) -> str:
    match = re.search(rf'<form id="mark-read-{conversation_id}".*?</form>', html, flags=re.S)
    return match.group(0) if match else ""


async def test_unread_counts_are_per_reader_and_opening_the_thread_reads_it(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    await make_case(phone=MARIA)
    await text_in(anonymous, MARIA, "Which courtroom?")
    await text_in(anonymous, MARIA, "And what time?")
    conversation = await conversation_of(MARIA)
    alice = await signed_in(await make_staff("supervisor", name="Alice"))
    bob = await signed_in(await make_staff("supervisor", name="Bob"))
    htmx = {"HX-Request": "true"}

    assert 'aria-label="2 unread"' in row_html((await alice.get("/")).text, conversation.id)
    # Opening the thread writes nothing: static/app.js posts …/read once the event stream is open,
    # or the page offers a button (without JavaScript).
    for url in (f"/conversations/{conversation.id}/thread", f"/conversations/{conversation.id}"):
        opened = await alice.get(url)
        assert opened.status_code == 200
        form = mark_read_form(opened.text, conversation.id)
        assert f'hx-post="/conversations/{conversation.id}/read" hx-trigger="read-thread"' in form
        assert f'action="/conversations/{conversation.id}/read"' in form and "<noscript>" in form
    beside = (await alice.get(deferred_list_url(opened.text))).text  # the list beside it, fetched after
    assert 'aria-label="2 unread"' in row_html(beside, conversation.id)
    assert not await ConversationRead.exists(staff_id=alice.staff.id, conversation_id=conversation.id)
    assert (await alice.post(f"/conversations/{conversation.id}/read", headers=htmx)).status_code == 204
    assert "badge" not in row_html((await alice.get("/")).text, conversation.id)
    assert mark_read_form((await alice.get(f"/conversations/{conversation.id}")).text, conversation.id) == ""
    assert 'aria-label="2 unread"' in row_html((await bob.get("/")).text, conversation.id)

    await text_in(anonymous, MARIA, "Hello?")
    assert 'aria-label="1 unread"' in row_html((await alice.get("/")).text, conversation.id)
    assert 'aria-label="3 unread"' in row_html((await bob.get("/")).text, conversation.id)

    # The plain form post (no JavaScript) reads it for Bob only, and goes back to the thread.
    read = await bob.post(f"/conversations/{conversation.id}/read")
    assert read.status_code == 303 and read.headers["location"] == f"/conversations/{conversation.id}"
    assert "badge" not in row_html((await bob.get("/")).text, conversation.id)
    assert 'aria-label="1 unread"' in row_html((await alice.get("/")).text, conversation.id)


async def test_outbound_texts_are_never_unread(signed_in, make_staff, make_case) -> None:
    case = await make_case(phone=MARIA)
    alice = await signed_in(await make_staff("supervisor"))
    bob = await signed_in(await make_staff("supervisor"))
    assert (await send_from_case(alice, case.case_id, "Your hearing is Monday.")).status_code == 303
    conversation = await conversation_of(MARIA)
    for reader in (alice, bob):
        assert "badge" not in row_html((await reader.get("/")).text, conversation.id)


async def test_filters_mine_unread_unmatched_and_all(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    supervisor = await make_staff("supervisor")
    await make_case(phone=MARIA, name="Maria Lopez", assignee=supervisor)
    await make_case(phone=JOHN, name="John Smith")
    await text_in(anonymous, MARIA, "Mine")
    await text_in(anonymous, JOHN, "Not mine")
    await text_in(anonymous, STRANGER, "Who is this?")
    maria, john, stranger = [await conversation_of(p) for p in (MARIA, JOHN, STRANGER)]
    staff = await signed_in(supervisor)
    await staff.post(f"/conversations/{john.id}/read")  # John's is read now

    async def listed(filter_name: str) -> set[int]:
        page = await staff.get(f"/?filter={filter_name}")
        assert page.status_code == 200
        fragment = await staff.get(f"/conversations?filter={filter_name}")  # the htmx refresh of the list
        assert set(row_ids(fragment.text)) == set(row_ids(page.text))
        return set(row_ids(page.text))

    assert await listed("all") == {maria.id, john.id, stranger.id}
    assert await listed("mine") == {maria.id}
    assert await listed("unread") == {maria.id, stranger.id}
    assert await listed("unmatched") == {stranger.id}
    assert await listed("no-such-filter") == {maria.id, john.id, stranger.id}
    unmatched_row = row_html((await staff.get("/?filter=unmatched")).text, stranger.id)
    assert "unmatched" in words(unmatched_row)
    empty = await staff.get("/?filter=mine&q=zzz-nothing")
    assert "No conversations in “mine” match “zzz-nothing”." in empty.text


async def test_search_by_client_name_number_and_text(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    await make_case(phone=MARIA, name="Maria Lopez")
    await make_case(phone=JOHN, name="John Smith")
    await text_in(anonymous, MARIA, "Which courtroom?")
    await text_in(anonymous, JOHN, "I lost my eviction notice")
    await text_in(anonymous, STRANGER, "Do you help with benefits?")
    maria, john, stranger = [await conversation_of(p) for p in (MARIA, JOHN, STRANGER)]
    staff = await signed_in(await make_staff("supervisor"))

    async def found(q: str, filter_name: str = "all") -> list[int]:
        page = await staff.get("/", params={"q": q, "filter": filter_name})
        assert page.status_code == 200
        return row_ids(page.text)

    assert await found("lopez") == [maria.id]
    assert await found("John Smith") == [john.id]
    assert await found("EVICTION") == [john.id]
    assert await found("benefits") == [stranger.id]
    assert await found("5387399") == [stranger.id]
    assert await found("(404) 538-7320") == [john.id]  # the number as the page shows it
    assert await found("404-538-7319") == [maria.id]
    assert await found("nothing like this") == []
    # The search box keeps what was typed, and the chosen filter.
    page = await staff.get("/", params={"q": "lopez", "filter": "unread"})
    assert 'name="q" value="lopez"' in page.text and 'name="filter" value="unread"' in page.text


async def test_search_keeps_to_the_filter_and_to_newest_first(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    supervisor = await make_staff("supervisor")
    await make_case(phone=MARIA, name="Maria Lopez", assignee=supervisor)
    await make_case(phone=ANA, name="Ana Lopez")
    await text_in(anonymous, MARIA, "Older text")
    await text_in(anonymous, ANA, "Newer text")
    maria, ana = await conversation_of(MARIA), await conversation_of(ANA)
    staff = await signed_in(supervisor)

    async def found(q: str, filter_name: str = "all") -> list[int]:
        return row_ids((await staff.get("/", params={"q": q, "filter": filter_name})).text)

    assert await found("Lopez") == [ana.id, maria.id]
    assert await found("Lopez", "mine") == [maria.id]
    assert await found("Lopez", "unmatched") == []
    await staff.post(f"/conversations/{ana.id}/read")
    assert await found("Lopez", "unread") == [maria.id]


# ---------------------------------------------------------------- who sees what


async def _office_with_four_numbers(make_staff, make_case, anonymous: httpx.AsyncClient):
    """An advocate on Maria's case; John's case is someone else's; Ana's assignment ended; a stranger."""
    advocate = await make_staff("advocate", name="Alice Advocate")
    other = await make_staff("advocate", name="Other Advocate")
    maria = await make_case(phone=MARIA, name="Maria Lopez", assignee=advocate)
    john = await make_case(phone=JOHN, name="John Smith", assignee=other)
    ana = await make_case(phone=ANA, name="Ana Ortiz")
    today = date.today()
    await create_assignment(
        case_id=ana.case_id, staff_email=advocate.email, start=today - timedelta(days=60), end=today - timedelta(days=1)
    )
    for number, body in ((MARIA, "Maria here"), (JOHN, "John here"), (ANA, "Ana here"), (STRANGER, "Stranger here")):
        await text_in(anonymous, number, body)
    return advocate, {"maria": maria, "john": john, "ana": ana}


async def test_an_advocate_sees_only_conversations_of_clients_on_current_cases(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    advocate, _ = await _office_with_four_numbers(make_staff, make_case, anonymous)
    maria, john, ana, stranger = [await conversation_of(p) for p in (MARIA, JOHN, ANA, STRANGER)]
    staff = await signed_in(advocate)

    for filter_name in ("all", "mine", "unread", "unmatched"):
        listed = row_ids((await staff.get(f"/?filter={filter_name}")).text)
        assert set(listed) <= {maria.id}, filter_name
    assert row_ids((await staff.get("/")).text) == [maria.id]
    for q in ("John", "Ana", "Stranger", "538-7399", "here"):
        assert set(row_ids((await staff.get("/", params={"q": q})).text)) <= {maria.id}, q
    page = await staff.get(f"/conversations/{maria.id}")
    assert page.status_code == 200 and "Maria here" in page.text

    for hidden in (john, ana, stranger):
        for url in (
            f"/conversations/{hidden.id}",
            f"/conversations/{hidden.id}/thread",
            f"/conversations/{hidden.id}/older?before=999999",
        ):
            response = await staff.get(url)
            assert response.status_code == 404, url
            assert "here" not in response.text
        assert (await staff.post(f"/conversations/{hidden.id}/messages", {"body": "Hello"})).status_code == 404
        assert (await staff.post(f"/conversations/{hidden.id}/read")).status_code == 404
        assert not await ConversationRead.exists(staff_id=advocate.id, conversation_id=hidden.id)
    assert fake_twilio.requests == []
    assert await Message.filter(direction=Direction.OUTBOUND).count() == 0


async def test_an_assignment_ending_in_the_future_still_counts(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    advocate = await make_staff("advocate")
    case = await make_case(phone=MARIA)
    await create_assignment(case_id=case.case_id, staff_email=advocate.email, end=date.today() + timedelta(days=7))
    await text_in(anonymous, MARIA, "Still yours")
    staff = await signed_in(advocate)
    conversation = await conversation_of(MARIA)
    assert row_ids((await staff.get("/")).text) == [conversation.id]
    assert (await staff.get(f"/clients/{case.client_id}")).status_code == 200


async def test_an_advocate_sees_only_their_clients_and_cases(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    advocate, cases = await _office_with_four_numbers(make_staff, make_case, anonymous)
    staff = await signed_in(advocate)

    clients = await staff.get("/clients")
    assert "Maria Lopez" in clients.text and "John Smith" not in clients.text and "Ana Ortiz" not in clients.text
    case_list = await staff.get("/cases")
    assert cases["maria"].number in case_list.text
    assert cases["john"].number not in case_list.text and cases["ana"].number not in case_list.text
    assert (await staff.get(f"/clients/{cases['maria'].client_id}")).status_code == 200
    assert (await staff.get(f"/cases/{cases['maria'].case_id}")).status_code == 200

    for hidden in (cases["john"], cases["ana"]):
        for url in (f"/clients/{hidden.client_id}", f"/cases/{hidden.case_id}", f"/cases/{hidden.case_id}/text"):
            response = await staff.get(url)
            assert response.status_code == 404, url
            assert "John Smith" not in response.text and "Ana Ortiz" not in response.text
        refused = await send_from_case(staff, hidden.case_id, "Hello")
        assert refused.status_code == 404
    assert (await staff.get("/cases/999999")).status_code == 404
    assert (await staff.get("/clients/999999")).status_code == 404
    assert fake_twilio.requests == []


async def test_an_advocate_cannot_text_another_clients_number_from_their_own_case(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    advocate, cases = await _office_with_four_numbers(make_staff, make_case, anonymous)
    staff = await signed_in(advocate)
    before = await Message.all().count()
    for number in (JOHN, ANA):
        response = await send_from_case(staff, cases["maria"].case_id, "Private note meant for Maria", to=number)
        assert response.status_code in (403, 404, 409), response.status_code
        assert textarea(response.text) == "Private note meant for Maria"
    assert await Message.all().count() == before
    assert fake_twilio.requests == []


async def test_supervisors_and_admins_see_everything_unmatched_included(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    _, cases = await _office_with_four_numbers(make_staff, make_case, anonymous)
    conversations = {await conversation_of(p) for p in (MARIA, JOHN, ANA, STRANGER)}
    for role in ("supervisor", "admin"):
        staff = await signed_in(await make_staff(role))
        assert set(row_ids((await staff.get("/")).text)) == {c.id for c in conversations}
        for conversation in conversations:
            assert (await staff.get(f"/conversations/{conversation.id}")).status_code == 200
        for case in cases.values():
            assert (await staff.get(f"/cases/{case.case_id}")).status_code == 200
            assert (await staff.get(f"/clients/{case.client_id}")).status_code == 200
        clients = await staff.get("/clients")
        assert all(name in clients.text for name in ("Maria Lopez", "John Smith", "Ana Ortiz"))


# ---------------------------------------------------------------- the thread


async def test_thread_shows_bubbles_with_sender_case_and_delivery_words(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    supervisor = await make_staff("supervisor", name="Alice Jones")
    case = await make_case(phone=MARIA)
    staff = await signed_in(supervisor)
    await text_in(anonymous, MARIA, "Which courtroom?")
    assert (await send_from_case(staff, case.case_id, "Courtroom 4B.")).status_code == 303
    await fake_twilio.callbacks_done()
    inbound = await Message.get(direction=Direction.INBOUND)
    outbound = await Message.get(direction=Direction.OUTBOUND)
    page = await staff.get(f"/conversations/{inbound.conversation_id}")

    direction, inside = bubble(page.text, inbound.id)
    assert direction == "inbound" and "Which courtroom?" in inside and "sent by" not in inside
    direction, inside = bubble(page.text, outbound.id)
    assert direction == "outbound"
    text = words(inside)
    assert "Courtroom 4B." in text and "delivered" in text
    assert "sent by Alice Jones" in text and f"case {case.number}" in text
    assert f'href="/cases/{case.case_id}"' in inside
    # The bubbles are in the order they happened.
    assert page.text.index(f'id="message-{inbound.id}"') < page.text.index(f'id="message-{outbound.id}"')


@pytest.mark.parametrize(
    ("story", "shown", "reason"),
    [
        (None, "queued", None),
        ([("sent", None)], "sent", None),
        ([("sent", None), ("delivered", None)], "delivered", None),
        ([("sent", None), ("undelivered", 30003)], "not delivered", ("Phone unreachable", "30003")),
        ([("failed", 30006)], "failed", ("landline", "30006")),
        ([("failed", 30007)], "failed", ("spam", "30007")),
        ([("failed", 30034)], "failed", ("10DLC", "30034")),
    ],
    ids=["queued", "sent", "delivered", "undelivered-30003", "failed-30006", "failed-30007", "failed-30034"],
)
async def test_delivery_status_is_shown_in_words(
    signed_in, make_staff, make_case, fake_twilio: FakeTwilio, story, shown: str, reason
) -> None:
    if story is None:
        fake_twilio.callbacks_enabled = False
    else:
        fake_twilio.outcomes[MARIA] = story
    case = await make_case(phone=MARIA)
    staff = await signed_in(await make_staff("supervisor"))
    assert (await send_from_case(staff, case.case_id, "Your hearing is Monday.")).status_code == 303
    await fake_twilio.callbacks_done()
    message = await Message.get(direction=Direction.OUTBOUND)
    page = await staff.get(f"/conversations/{message.conversation_id}")
    _, inside = bubble(page.text, message.id)
    status = inside[inside.index(f'<span id="message-{message.id}-status"') :].split("· sent by")[0]
    text = words(re.sub(r'<span aria-hidden="true">.*?</span>', "", status))  # what a screen reader says
    assert text.startswith(shown)
    if reason is None:
        assert "—" not in text
    else:
        summary, code = reason
        assert summary in text and f"({code})" in text
    # The case page's SMS log says the same.
    log = words((await staff.get(f"/cases/{case.case_id}")).text)
    assert shown in log and (reason is None or reason[1] in log)


async def test_a_text_twilio_refuses_shows_failed_with_the_reason(
    signed_in, make_staff, make_case, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.reject[MARIA] = 21610
    case = await make_case(phone=MARIA)
    staff = await signed_in(await make_staff("supervisor"))
    response = await send_from_case(staff, case.case_id, "Your hearing is Monday.")
    assert response.status_code == 303  # stored, and shown failed in its thread
    message = await Message.get(direction=Direction.OUTBOUND)
    assert message.status == MessageStatus.FAILED
    page = await staff.get(response.headers["location"])
    _, inside = bubble(page.text, message.id)
    text = words(inside)
    assert "failed" in text and "opted out" in text and "(21610)" in text and "START" in text


async def test_long_threads_show_the_newest_30_and_load_older_on_demand(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    await make_case(phone=MARIA)
    for n in range(65):
        await text_in(anonymous, MARIA, f"message number {n:02d}")
    conversation = await conversation_of(MARIA)
    staff = await signed_in(await make_staff("supervisor"))

    def numbers_on(html: str) -> list[int]:
        return [int(n) for n in re.findall(r"message number (\d\d)", html)]

    def older_link(html: str) -> str | None:
        match = re.search(r'<a href="([^"]+)"[^>]*>Load older messages</a>', html)
        return unescape(match.group(1)) if match else None

    page = await staff.get(f"/conversations/{conversation.id}")
    thread = page.text.split('aria-label="Conversation"', 1)[1]
    assert numbers_on(thread) == list(range(35, 65))
    link = older_link(page.text)
    assert link and link.startswith(f"/conversations/{conversation.id}/older?before=")

    older = await staff.get(link)
    assert older.status_code == 200
    assert numbers_on(older.text) == list(range(5, 35))
    link = older_link(older.text)
    assert link

    oldest = await staff.get(link)
    assert numbers_on(oldest.text) == list(range(5))
    assert older_link(oldest.text) is None


async def test_a_thread_of_exactly_30_has_no_load_older_link(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    await make_case(phone=MARIA)
    for n in range(30):
        await text_in(anonymous, MARIA, f"message number {n:02d}")
    staff = await signed_in(await make_staff("supervisor"))
    page = await staff.get(f"/conversations/{(await conversation_of(MARIA)).id}")
    assert len(re.findall(r'class="bubble inbound"', page.text)) == 30
    assert "Load older messages" not in page.text


@pytest.mark.parametrize("before", ["abc", "-1", "1.5", ""])
async def test_a_bad_before_parameter_is_not_a_server_error(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient, before: str
) -> None:
    await make_case(phone=MARIA)
    await text_in(anonymous, MARIA, "Hello")
    staff = await signed_in(await make_staff("supervisor"))
    conversation = await conversation_of(MARIA)
    response = await staff.get(f"/conversations/{conversation.id}/older", params={"before": before})
    assert response.status_code in (200, 422), response.status_code


# ---------------------------------------------------------------- the composer in the thread


async def test_htmx_composer_post_sends_and_answers_a_fresh_composer(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    case = await make_case(phone=MARIA)
    await text_in(anonymous, MARIA, "Which courtroom?")
    conversation = await conversation_of(MARIA)
    staff = await signed_in(await make_staff("supervisor", name="Alice Jones"))
    page = await staff.get(f"/conversations/{conversation.id}")
    assert f'hx-post="/conversations/{conversation.id}/messages"' in page.text

    response = await staff.post(
        f"/conversations/{conversation.id}/messages",
        {"body": "Courtroom 4B.", "case_id": str(case.case_id)},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<form id="composer"')
    assert "<html" not in response.text and "Courtroom 4B." not in response.text
    assert 'class="bubble' not in response.text  # the bubble comes by the event stream
    assert textarea(response.text) == ""
    assert csrf_of(response.text) == staff.csrf

    assert [(r["To"], r["Body"]) for r in fake_twilio.requests] == [(MARIA, "Courtroom 4B.")]
    message = await Message.get(direction=Direction.OUTBOUND).prefetch_related("sent_by", "case")
    assert message.conversation_id == conversation.id and message.body == "Courtroom 4B."
    assert message.sent_by.name == "Alice Jones" and message.case.id == case.case_id
    assert await MessageLink.exists(message_id=message.id, case_id=case.case_id)


async def test_plain_composer_post_answers_the_thread_page(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    await make_case(phone=MARIA)
    await text_in(anonymous, MARIA, "Which courtroom?")
    conversation = await conversation_of(MARIA)
    staff = await signed_in(await make_staff("supervisor"))
    response = await staff.post(f"/conversations/{conversation.id}/messages", {"body": "Courtroom 4B."})
    assert response.status_code == 200
    assert "<html" in response.text
    message = await Message.get(direction=Direction.OUTBOUND)
    direction, inside = bubble(response.text, message.id)
    assert direction == "outbound" and "Courtroom 4B." in inside
    assert textarea(response.text) == ""


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
async def test_composer_refusals_keep_the_text_and_say_why(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, htmx: bool
) -> None:
    await make_case(phone=MARIA, okay_to_text=False)
    await text_in(anonymous, MARIA, "Which courtroom?")
    conversation = await conversation_of(MARIA)
    staff = await signed_in(await make_staff("supervisor"))
    headers = {"HX-Request": "true"} if htmx else {}
    url = f"/conversations/{conversation.id}/messages"

    refused = await staff.post(url, {"body": "Courtroom 4B & 5C <today>"}, headers=headers)
    assert refused.status_code == 409
    assert textarea(refused.text) == "Courtroom 4B & 5C <today>"
    assert "not agreed to receive texts" in unescape(refused.text)
    assert ('role="alert"' in refused.text) and (("<html" in refused.text) != htmx)

    empty = await staff.post(url, {"body": "   "}, headers=headers)
    assert empty.status_code == 422 and "Write a message" in empty.text

    long_body = "x" * 161
    too_long = await staff.post(url, {"body": long_body}, headers=headers)
    assert too_long.status_code == 422
    assert textarea(too_long.text) == long_body and "limited to 160 characters" in too_long.text

    assert fake_twilio.requests == []
    assert await Message.filter(direction=Direction.OUTBOUND).count() == 0


# ---------------------------------------------------------------- the case page and "Send text"


async def test_case_page_has_the_sms_log_and_a_send_text_action(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    supervisor = await make_staff("supervisor", name="Alice Jones")
    case = await make_case(phone=MARIA, name="Maria Lopez", assignee=supervisor)
    staff = await signed_in(supervisor)
    assert (await send_from_case(staff, case.case_id, "Your hearing is Monday.")).status_code == 303
    await fake_twilio.callbacks_done()
    reply = await text_in(anonymous, MARIA, "Which courtroom?")
    # Inbound texts are filed on cases by the linking rules; file this one by hand.
    await MessageLink.create(message=reply, case_id=case.case_id, reason="manual")

    page = await staff.get(f"/cases/{case.case_id}")
    assert page.status_code == 200
    assert f'href="/cases/{case.case_id}/text"' in page.text and "Send text" in page.text
    assert case.number in page.text and "Maria Lopez" in page.text
    log = re.search(r'<table class="sms-log">.*?</table>', page.text, re.DOTALL)
    assert log
    rows = [words(r) for r in re.findall(r"<tr>(.*?)</tr>", log.group(0), re.DOTALL)[1:]]
    assert len(rows) == 2
    assert "received" in rows[0] and "Which courtroom?" in rows[0] and "(404) 538-7319" in rows[0]
    assert "sent by Alice Jones" in rows[1] and "Your hearing is Monday." in rows[1] and "delivered" in rows[1]


async def test_a_case_with_no_texts_says_so(signed_in, make_staff, make_case) -> None:
    case = await make_case(phone=MARIA)
    staff = await signed_in(await make_staff("supervisor"))
    assert "No texts yet." in (await staff.get(f"/cases/{case.case_id}")).text


async def test_send_text_defaults_to_the_mobile_and_shows_the_case_number(signed_in, make_staff) -> None:
    client = await create_client(
        name="Maria Lopez",
        phones=[
            PhoneInput("+14045387310", "home", True),
            PhoneInput(MARIA, "mobile", True),
            PhoneInput(JOHN, "work", True),
        ],
    )
    case = await create_case(number="16E-20010101", title="Eviction", client_id=client.id)
    staff = await signed_in(await make_staff("supervisor"))
    form = await staff.get(f"/cases/{case.id}/text")
    assert form.status_code == 200
    assert selected_option(form.text, "to") == MARIA
    assert "16E-20010101" in form.text and "Maria Lopez" in form.text
    assert len(re.findall(r"<option ", form.text)) == 3


async def test_send_text_without_a_mobile_defaults_to_the_first_number(signed_in, make_staff) -> None:
    client = await create_client(
        name="Maria Lopez", phones=[PhoneInput("+14045387310", "home", True), PhoneInput(JOHN, "work", True)]
    )
    case = await create_case(number="16E-20010102", title="Benefits", client_id=client.id)
    staff = await signed_in(await make_staff("supervisor"))
    assert selected_option((await staff.get(f"/cases/{case.id}/text")).text, "to") == "+14045387310"


async def test_send_text_from_a_case_reaches_twilio_and_redirects_to_the_conversation(
    signed_in, make_staff, fake_twilio: FakeTwilio
) -> None:
    client = await create_client(
        name="Maria Lopez", phones=[PhoneInput("+14045387310", "home", True), PhoneInput(MARIA, "mobile", True)]
    )
    case = await create_case(number="16E-20010103", title="Eviction", client_id=client.id)
    staff = await signed_in(await make_staff("supervisor", name="Alice Jones"))
    await staff.get(f"/cases/{case.id}/text")

    response = await send_from_case(staff, case.id, "Your hearing is Monday at 9.")
    assert response.status_code == 303
    conversation = await conversation_of(MARIA)
    assert response.headers["location"] == f"/conversations/{conversation.id}"
    assert len(fake_twilio.requests) == 1
    sent = fake_twilio.requests[0]
    assert sent["To"] == MARIA and sent["Body"] == "Your hearing is Monday at 9."
    message = await Message.get(direction=Direction.OUTBOUND)
    assert message.case_id == case.id and message.provider_sid == fake_twilio.messages[0]["sid"]

    # The chosen number wins over the default.
    response = await send_from_case(staff, case.id, "Or call the office.", to="+14045387310")
    assert response.status_code == 303
    assert fake_twilio.requests[1]["To"] == "+14045387310"

    thread = await staff.get(f"/conversations/{conversation.id}")
    assert "Your hearing is Monday at 9." in thread.text and "16E-20010103" in thread.text


@pytest.mark.parametrize("why", ["not-okay-to-text", "opted-out"])
async def test_refused_sends_from_a_case_keep_the_text_and_say_why(
    signed_in, make_staff, make_case, fake_twilio: FakeTwilio, why: str
) -> None:
    staff = await signed_in(await make_staff("supervisor"))
    if why == "not-okay-to-text":
        case = await make_case(phone=MARIA, okay_to_text=False)
        reason = "not agreed to receive texts"
    else:
        case = await make_case(phone=MARIA)
        await ClientPhone.filter(number=MARIA).update(opted_out=True)
        reason = "opted out"
    form = await staff.get(f"/cases/{case.case_id}/text")
    assert ("opted out" if why == "opted-out" else "not okay to text") in form.text

    response = await send_from_case(staff, case.case_id, "Your hearing is <Monday> & Tuesday.")
    assert response.status_code == 409
    assert reason in unescape(response.text) and 'role="alert"' in response.text
    assert textarea(response.text) == "Your hearing is <Monday> & Tuesday."
    assert case.number in response.text
    assert await Message.all().count() == 0
    assert fake_twilio.requests == []


async def test_a_number_twilio_reports_opted_out_is_refused_next_time(
    signed_in, make_staff, make_case, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.reject[MARIA] = 21610
    case = await make_case(phone=MARIA)
    staff = await signed_in(await make_staff("supervisor"))
    assert (await send_from_case(staff, case.case_id, "First try.")).status_code == 303
    response = await send_from_case(staff, case.case_id, "Second try.")
    assert response.status_code == 409 and "opted out" in response.text
    assert textarea(response.text) == "Second try."
    assert len(fake_twilio.requests) == 1
    assert await Message.all().count() == 1


@pytest.mark.parametrize(
    ("body", "why"), [("", "Write a message"), ("  \n ", "Write a message"), ("é" * 161, "limited to 160 characters")]
)
async def test_empty_and_over_long_case_texts_answer_422_and_keep_the_text(
    signed_in, make_staff, make_case, fake_twilio: FakeTwilio, body: str, why: str
) -> None:
    case = await make_case(phone=MARIA)
    staff = await signed_in(await make_staff("supervisor"))
    response = await send_from_case(staff, case.case_id, body)
    assert response.status_code == 422
    assert why in response.text
    assert textarea(response.text) == body
    assert selected_option(response.text, "to") == MARIA
    assert await Message.all().count() == 0
    assert fake_twilio.requests == []


async def test_a_text_of_exactly_the_limit_is_sent(signed_in, make_staff, make_case, fake_twilio: FakeTwilio) -> None:
    case = await make_case(phone=MARIA)
    staff = await signed_in(await make_staff("supervisor"))
    assert (await send_from_case(staff, case.case_id, "a" * 160)).status_code == 303
    assert fake_twilio.requests[0]["Body"] == "a" * 160


# ---------------------------------------------------------------- bad input is shown, never run


SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
IMG = '<img src=x onerror="alert(2)">'


def assert_escaped(html: str, where: str) -> None:
    assert "<script>alert" not in html, where
    assert "<img src=x" not in html, where
    assert ESCAPED in html, where


async def test_html_in_names_and_bodies_is_escaped_everywhere(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    supervisor = await make_staff("supervisor", name=f"Eve {IMG}")
    case = await make_case(phone=MARIA, name=f"Mallory {SCRIPT}", assignee=supervisor)
    staff = await signed_in(supervisor)
    reply = await text_in(anonymous, MARIA, f"hi {SCRIPT} {IMG}")
    await MessageLink.create(message=reply, case_id=case.case_id, reason="manual")
    conversation = await conversation_of(MARIA)

    pages = {
        "inbox list": await staff.get("/"),
        "list fragment": await staff.get("/conversations"),
        "search": await staff.get("/", params={"q": "Mallory"}),
        "thread": await staff.get(f"/conversations/{conversation.id}"),
        "thread pane": await staff.get(f"/conversations/{conversation.id}/thread"),
        "client page": await staff.get(f"/clients/{case.client_id}"),
        "client list": await staff.get("/clients"),
        "case page": await staff.get(f"/cases/{case.case_id}"),
        "case list": await staff.get("/cases"),
        "send text": await staff.get(f"/cases/{case.case_id}/text"),
    }
    for where, page in pages.items():
        assert page.status_code == 200, where
        assert_escaped(page.text, where)
    assert "&lt;img src=x" in pages["thread"].text

    # Our own text with markup in it: escaped in the bubble and the SMS logs, sent to Twilio verbatim.
    sent = await send_from_case(staff, case.case_id, f"Bring {SCRIPT}")
    assert sent.status_code == 303
    assert fake_twilio.requests[0]["Body"] == f"Bring {SCRIPT}"
    await fake_twilio.callbacks_done()
    for url in (sent.headers["location"], f"/cases/{case.case_id}", f"/clients/{case.client_id}", "/"):
        page = await staff.get(url)
        assert_escaped(page.text, url)
        assert "Bring &lt;script&gt;" in page.text, url

    # A refused send shows the typed markup escaped in the textarea.
    refused = await send_from_case(staff, case.case_id, f"{SCRIPT}</textarea><b>x</b>" + "y" * 200)
    assert refused.status_code == 422
    assert "</textarea><b>" not in refused.text
    assert_escaped(refused.text, "refused send")


async def test_the_login_form_escapes_what_it_echoes(anonymous: httpx.AsyncClient) -> None:
    page = await anonymous.get("/login", params={"next": f'/"><{SCRIPT}'})
    assert "<script>alert" not in page.text
    wrong = await anonymous.post(
        "/login", data={"email": f'"><{SCRIPT}', "password": "x" * 10, "csrf_token": csrf_of(page.text)}
    )
    assert wrong.status_code == 400
    assert "<script>alert" not in wrong.text and ESCAPED in wrong.text


# ---------------------------------------------------------------- unknown senders


async def test_an_unknown_sender_is_unmatched_for_supervisors_who_may_reply(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    advocate = await make_staff("advocate")
    await make_case(phone=MARIA, assignee=advocate)
    await text_in(anonymous, STRANGER, "Is this legal aid?")
    conversation = await conversation_of(STRANGER)
    supervisor = await signed_in(await make_staff("supervisor"))

    unmatched = await supervisor.get("/?filter=unmatched")
    assert row_ids(unmatched.text) == [conversation.id]
    row = row_html(unmatched.text, conversation.id)
    assert "(404) 538-7399" in row and "Is this legal aid?" in row and "unmatched" in words(row)
    thread = await supervisor.get(f"/conversations/{conversation.id}")
    assert "Unmatched: this number is on no client record." in thread.text
    assert 'name="case_id"' not in thread.text  # nothing to file it on yet

    reply = await supervisor.post(
        f"/conversations/{conversation.id}/messages", {"body": "Yes, how can we help?"}, headers={"HX-Request": "true"}
    )
    assert reply.status_code == 200
    assert [(r["To"], r["Body"]) for r in fake_twilio.requests] == [(STRANGER, "Yes, how can we help?")]
    message = await Message.get(direction=Direction.OUTBOUND)
    assert message.conversation_id == conversation.id and message.case_id is None

    advocate_client = await signed_in(advocate)
    assert conversation.id not in row_ids((await advocate_client.get("/?filter=unmatched")).text)
    assert (await advocate_client.get(f"/conversations/{conversation.id}")).status_code == 404


async def test_a_supervisor_cannot_start_a_text_to_an_unknown_number(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    case = await make_case(phone=MARIA)
    await text_in(anonymous, STRANGER, "Is this legal aid?")
    staff = await signed_in(await make_staff("supervisor"))
    before = await Message.all().count()

    response = await send_from_case(staff, case.case_id, "Hello stranger", to=NEVER_TEXTED)
    assert response.status_code == 409
    assert "not on any client record" in response.text
    assert textarea(response.text) == "Hello stranger"
    assert await Message.all().count() == before
    assert not await Conversation.exists(phone=NEVER_TEXTED)
    assert fake_twilio.requests == []


# ---------------------------------------------------------------- the client phone (development mode)


async def test_the_client_phone_plays_the_client_through_the_real_webhook(settings: Settings) -> None:
    async with running(simulator_settings(settings)) as dev:
        staff_member: StaffClient | None = None
        try:
            supervisor, _ = await create_staff(
                email="dev@example.org", name="Dev Supervisor", role="supervisor", password=PASSWORD
            )
            client = await create_client(name="Maria Lopez", phones=[PhoneInput(MARIA, "mobile", True)])
            case = await create_case(number="16E-20019999", title="Eviction", client_id=client.id)
            staff_member = await sign_in(dev, supervisor)

            home = await staff_member.get("/")
            assert 'href="/dev/phone"' in home.text
            index = await staff_member.get("/dev/phone")
            assert index.status_code == 200 and f'href="/dev/phone/{MARIA}"' in index.text

            # CSRF on both forms.
            assert (await staff_member.post("/dev/phone", {"number": MARIA}, csrf=False)).status_code == 403
            assert (await staff_member.post(f"/dev/phone/{MARIA}", {"body": "sneaky"}, csrf=False)).status_code == 403
            assert (
                await staff_member.post(f"/dev/phone/{MARIA}", {"body": "sneaky", "csrf_token": "forged"}, csrf=False)
            ).status_code == 403
            assert await Message.all().count() == 0

            opened = await staff_member.post("/dev/phone", {"number": "(404) 538-7319"})
            assert opened.status_code == 303 and opened.headers["location"] == f"/dev/phone/{MARIA}"
            bad = await staff_member.post("/dev/phone", {"number": "12"})
            assert bad.status_code == 422 and 'value="12"' in bad.text

            # Staff text the client; the phone shows it.
            sent = await send_from_case(staff_member, case.id, "Your hearing is Monday.")
            assert sent.status_code == 303
            await dev.state.provider.wait_idle()  # the simulator's delivery story, through the status webhook
            assert (await Message.get(direction=Direction.OUTBOUND)).status == MessageStatus.DELIVERED
            screen = await staff_member.get(f"/dev/phone/{MARIA}")
            assert screen.status_code == 200 and "Your hearing is Monday." in screen.text

            # The client replies from the phone: a signed webhook, stored as an inbound message.
            empty = await staff_member.post(f"/dev/phone/{MARIA}", {"body": "  "})
            assert empty.status_code == 422 and "Type a reply or choose a photo first." in empty.text
            reply = await staff_member.post(f"/dev/phone/{MARIA}", {"body": "Which courtroom?"})
            assert reply.status_code == 303 and reply.headers["location"] == f"/dev/phone/{MARIA}"
            inbound = await Message.get(direction=Direction.INBOUND).prefetch_related("conversation")
            assert inbound.body == "Which courtroom?" and inbound.from_number == MARIA
            assert inbound.status == MessageStatus.RECEIVED and inbound.provider_sid
            assert inbound.conversation.phone == MARIA
            payload = await WebhookPayload.get(kind="message", provider_sid=inbound.provider_sid)
            assert payload.processed_at is not None and payload.params["Body"] == "Which courtroom?"

            # It lands in the inbox, unread, in the same conversation as the text we sent.
            outbound = await Message.get(direction=Direction.OUTBOUND)
            assert outbound.conversation_id == inbound.conversation_id
            home = await staff_member.get("/")
            assert 'aria-label="1 unread"' in row_html(home.text, inbound.conversation_id)
            assert "Which courtroom?" in row_html(home.text, inbound.conversation_id)

            # A photo from the phone: fetched by the simulator after the webhook answered, stored, and
            # listed on the case's documents.
            png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
            photo = await staff_member.http.post(
                f"/dev/phone/{MARIA}",
                data={"body": "Here is the letter", "csrf_token": staff_member.csrf},
                files={"photo": ("letter.png", png, "image/png")},
            )
            assert photo.status_code == 303
            with_photo = await Message.get(body="Here is the letter").prefetch_related("media")
            (stored,) = with_photo.media
            assert stored.status == "stored" and stored.content_type == "image/png" and stored.size == len(png)
            case_page = await staff_member.get(f"/cases/{case.id}")
            assert f'href="/media/{stored.id}"' in case_page.text
            assert (await staff_member.get(f"/media/{stored.id}")).content == png

            # An unknown number can text in from the phone too, and is unmatched.
            assert (await staff_member.post(f"/dev/phone/{STRANGER}", {"body": "Who is this?"})).status_code == 303
            stranger = await Conversation.get(phone=STRANGER)
            assert row_ids((await staff_member.get("/?filter=unmatched")).text) == [stranger.id]

        finally:
            if staff_member is not None:
                await staff_member.http.aclose()


async def test_a_shared_number_shows_an_advocate_only_the_clients_they_may_see(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    advocate = await make_staff("advocate")
    mine = await make_case(phone="+14045387319", assignee=advocate, name="Maria Lopez")
    theirs = await make_case(phone="+14045387319", name="Hidden Housemate")
    message = await text_in(anonymous, "+14045387319", "It's our shared phone")
    staff = await signed_in(advocate)
    page = (await staff.get(f"/conversations/{message.conversation_id}")).text
    assert "Maria Lopez" in page and mine.number in page
    assert "Hidden Housemate" not in page and theirs.number not in page
    supervisor = await signed_in(await make_staff("supervisor"))
    everything = (await supervisor.get(f"/conversations/{message.conversation_id}")).text
    assert "Maria Lopez" in everything and "Hidden Housemate" in everything


async def test_a_reconnecting_tab_can_refetch_each_pane_whole(signed_in, make_staff, make_case, anonymous) -> None:
    """static/app.js re-fetches every [data-refresh-url] after the stream (re)opens and swaps it whole."""
    advocate = await make_staff("advocate")
    await make_case(assignee=advocate)
    message = await text_in(anonymous, "+14045387319", "Anyone there?")
    staff = await signed_in(advocate)
    page = (await staff.get(f"/conversations/{message.conversation_id}?filter=unread")).text
    refresh_urls = dict(re.findall(r'id="([^"]+)"[^>]*?data-refresh-url="([^"]+)"', page, flags=re.S))
    list_url = refresh_urls["conversation-list"].replace("&amp;", "&")
    thread_url = refresh_urls[f"thread-{message.conversation_id}"]
    pane = (await staff.get(list_url)).text
    assert pane.lstrip().startswith('<ul id="conversation-list"') and "filter-unread" in pane
    thread = (await staff.get(thread_url)).text
    assert thread.lstrip().startswith(f'<ol id="thread-{message.conversation_id}"')
    assert f'id="message-{message.id}"' in thread and "Anyone there?" in thread
