"""One open alert per conversation and case (issue 10, item 5): it counts the texts waiting and moves to the
latest; answering the client answers it (on by default); keywords raise none; two texts at once make one
alert of two, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import httpx
from starlette.applications import Starlette

from inbox.models import Alert, AlertPolicy, Message, Organisation, Staff
from inbox.services import alerts, settings_cache
from inbox.services.directory import PhoneInput, create_assignment, create_case, create_client
from inbox.services.staff import create_staff
from inbox.settings import Settings
from tests.support.apps import asgi_client, running
from tests.support.fake_twilio import FakeTwilio
from tests.support.live import EventStream, ServerEvent, event_stream, shows_bubble, signed_in_browser
from tests.support.pages import row_ids
from tests.support.postgres import scratch_database
from tests.support.staff import PASSWORD, csrf_of
from tests.support.webhooks import post_text, text_in

CLIENT_PHONE = "+14045387319"


def badge_says(html: str) -> str | None:
    marker = '<a id="alert-badge"'
    if marker not in html:
        return None
    start = html.index(">", html.index(marker)) + 1
    return html[start : html.index("</a>", start)]


async def texts(http: httpx.AsyncClient, *bodies: str) -> list[Message]:
    return [await text_in(http, CLIENT_PHONE, body) for body in bodies]


async def test_a_fresh_organisation_dismisses_alerts_on_reply(app: Starlette) -> None:
    organisation = await Organisation.first()
    assert organisation is not None and organisation.dismiss_alerts_on_reply is True


async def test_three_texts_make_one_alert_counting_three_at_the_latest_text(
    anonymous, make_staff, make_case, signed_in, api_client
) -> None:
    advocate, supervisor = await make_staff("advocate"), await make_staff("supervisor")
    case = await make_case(phone=CLIENT_PHONE, assignee=advocate, name="Maria Lopez")
    first, second, third = await texts(anonymous, "Hello?", "Are you there?", "I have court on Monday")

    (alert,) = await Alert.filter(case_id=case.case_id)
    assert (alert.text_count, alert.message_id) == (3, third.id)
    assert not await Alert.filter(message_id__in=[first.id, second.id]).exists()
    for reader in (advocate, supervisor):
        page = (await (await signed_in(reader)).get("/alerts")).text
        assert row_ids(page, "alert") == [alert.id] and badge_says(page) == "Alerts (1)"
        assert "3 new texts" in page and "I have court on Monday" in page and "Are you there?" not in page

    listed = (await (await api_client(advocate)).get("/api/v1/alerts")).json()
    assert [(a["id"], a["count"], a["message_id"]) for a in listed] == [(alert.id, 3, third.id)]


async def test_a_text_after_a_dismissal_raises_a_new_alert(anonymous, make_staff, make_case, signed_in) -> None:
    advocate = await make_staff("advocate")
    await make_case(phone=CLIENT_PHONE, assignee=advocate)
    (first,) = await texts(anonymous, "one")
    old = await Alert.get(message_id=first.id)
    browser = await signed_in(advocate)
    await browser.get("/alerts")
    assert (await browser.post(f"/alerts/{old.id}/dismiss")).status_code == 303
    (later,) = await texts(anonymous, "two")
    new = await Alert.get(message_id=later.id)
    assert new.id != old.id and new.text_count == 1 and await alerts.open_alert_count(advocate) == 1


async def test_keywords_and_confirmations_raise_no_alert(anonymous, make_staff, make_case) -> None:
    advocate = await make_staff("advocate")
    await make_case(phone=CLIENT_PHONE, assignee=advocate)
    for word in ("STOP", "START", "HELP", " Unsubscribe ", "UNSTOP"):
        await texts(anonymous, word)
    assert not await Alert.exists()
    # Twilio's OptOutType names a keyword whatever the body says.
    await text_in(anonymous, CLIENT_PHONE, "stop texting me please", OptOutType="STOP")
    assert not await Alert.exists()
    (question,) = await texts(anonymous, "Is my hearing still on?")  # an ordinary text still does
    assert (await Alert.get(message_id=question.id)).text_count == 1
    # A bare "yes" that answers no opt-in request of ours is also Twilio's opt-in word, but it is how a client
    # answers a person's question: it counts on the alert.
    (yes,) = await texts(anonymous, "yes")
    assert (await Alert.get(message_id=yes.id)).text_count == 2


async def test_an_answer_dismisses_the_counted_alert_by_default(anonymous, make_staff, make_case, signed_in) -> None:
    await Organisation.all().update(alert_policy=AlertPolicy.PRIMARY)  # the default dismiss-on-reply, untouched
    settings_cache.forget()  # written past the services: this process's copy is stale
    advocate = await make_staff("advocate")
    await make_case(phone=CLIENT_PHONE, assignee=advocate)
    *_, last = await texts(anonymous, "one", "two")
    browser = await signed_in(advocate)
    await browser.get(f"/conversations/{last.conversation_id}")
    sent = await browser.post(f"/conversations/{last.conversation_id}/messages", {"body": "Call me at 2."})
    assert sent.status_code == 200, sent.text
    alert = await Alert.get(message_id=last.id)
    assert (alert.dismissed_because, alert.dismissed_by_id, alert.text_count) == ("replied", advocate.id, 2)
    assert await alerts.open_alert_count(advocate) == 0


# ---------------------------------------------------------------- live


def counted(alert_id: int, count: int) -> object:
    """The row's content renewed in place with the count (not a second row at the end)."""
    return lambda event: (
        event.event == "update"
        and f'hx-swap-oob="innerHTML:#alert-list > #alert-{alert_id}"' in event.data
        and f"{count} new texts" in event.data
        and f'<li id="alert-{alert_id}"' not in event.data.split("alert-office")[0]
    )


def removed(alert_id: int) -> object:
    return lambda event: (
        event.event == "update"
        and f'hx-swap-oob="delete:#alert-list > #alert-{alert_id}"' in event.data
        and f'id="alert-{alert_id}"' not in event.data
    )


async def test_live_rows_count_the_texts_and_a_reply_clears_them_for_everyone(
    server, twilio, make_staff, make_case
) -> None:
    advocate, supervisor = await make_staff("advocate"), await make_staff("supervisor")
    await make_case(phone=CLIENT_PHONE, assignee=advocate, name="Maria Lopez")
    (first,) = await texts(twilio, "Hello?")
    alert = await Alert.get(message_id=first.id)

    async with AsyncExitStack() as stack:
        advocate_http = await stack.enter_async_context(signed_in_browser(server, advocate))
        boss_http = await stack.enter_async_context(signed_in_browser(server, supervisor))
        tabs: dict[str, EventStream] = {
            "advocate": await stack.enter_async_context(event_stream(advocate_http, "/events")),
            "boss": await stack.enter_async_context(event_stream(boss_http, "/events")),
        }
        for count, body in ((2, "Are you there?"), (3, "Court is Monday")):
            (message,) = await texts(twilio, body)
            for name, tab in tabs.items():
                seen: list[ServerEvent] = await tab.read_until(shows_bubble(message), counted(alert.id, count))
                update = next(e.data for e in seen if f"{count} new texts" in e.data)
                assert badge_says(update) == "Alerts (1)", name
                assert body in update
                # The supervisor's office section is replaced whole, with the counted row in it.
                assert ('class="alert-office"' in update) == (name == "boss")
        assert (await Alert.get(id=alert.id)).text_count == 3

        page = await advocate_http.get(f"/conversations/{first.conversation_id}")
        answer = await advocate_http.post(
            f"/conversations/{first.conversation_id}/messages",
            data={"body": "Yes, see you Monday.", "csrf_token": csrf_of(page.text)},
            headers={"HX-Request": "true"},
        )
        assert answer.status_code == 200, answer.text
        for tab in tabs.values():
            seen = await tab.read_until(removed(alert.id))
            assert badge_says(seen[-1].data) == "Alerts (0)"


# ---------------------------------------------------------------- two texts at once


async def concurrent_texts_make_one_alert(app: Starlette, http: httpx.AsyncClient, advocate: Staff) -> None:
    client = await create_client(name="Maria Lopez", phones=[PhoneInput(CLIENT_PHONE, "mobile", True)])
    case = await create_case(number="16E-1", title="Eviction", client_id=client.id)
    await create_assignment(case_id=case.id, staff_email=advocate.email, primary=True)
    # The conversation exists and its earlier alert is answered: the next two texts race to raise one.
    (first,) = await texts(http, "first")
    await Alert.filter(message_id=first.id).update(dismissed_because="dismissed", dismissed_at=first.created_at)
    for round_ in range(3):
        answers = await asyncio.gather(*(post_text(http, CLIENT_PHONE, f"at once {round_}.{i}") for i in range(2)))
        assert all(a.status_code == 200 for a in answers)
        await app.state.ingest.drained()  # the second is answered once stored and processed right after
        (alert,) = await Alert.filter(dismissed_at=None)
        latest = await Message.filter(conversation_id=first.conversation_id).order_by("-id").first()
        assert latest is not None and (alert.text_count, alert.message_id) == (2, latest.id)
        await Alert.filter(id=alert.id).update(dismissed_because="dismissed", dismissed_at=latest.created_at)


async def test_two_texts_at_once_make_one_alert_of_two_on_the_suites_database(anonymous, app, make_staff) -> None:
    await concurrent_texts_make_one_alert(app, anonymous, await make_staff("advocate"))


async def test_two_texts_at_once_make_one_alert_of_two_on_postgresql(
    settings: Settings, fake_twilio: FakeTwilio
) -> None:
    async with scratch_database("alerts") as url:
        async with running(settings.with_changes(database_url=url), fake_twilio) as app, asgi_client(app) as http:
            advocate, _ = await create_staff(
                email="ana@example.org", name="Ana Ruiz", role="advocate", password=PASSWORD
            )
            await concurrent_texts_make_one_alert(app, http, advocate)
