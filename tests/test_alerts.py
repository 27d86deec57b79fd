"""Alerts: whom an inbound text alerts under each policy, the pages that show them, dismissing them
(for everyone, by hand or by answering), and their live life in every tab that may see them."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, date, datetime, timedelta

import pytest

from inbox.events import AlertRaised, MediaChanged
from inbox.live import Tab
from inbox.models import Alert, AlertPolicy, Message, Organisation, Staff
from inbox.services import alerts, linking, settings_cache
from inbox.services.directory import PhoneInput, create_assignment, create_case, create_client
from inbox.services.staff import create_api_token
from inbox.web import time_ago
from tests.support.events import WAIT_SECONDS
from tests.support.live import (
    EventStream,
    ServerEvent,
    as_event,
    bearer,
    event_stream,
    fan_out,
    shows_bubble,
    signed_in_browser,
)
from tests.support.pages import row_ids
from tests.support.records import CaseFile, assign
from tests.support.staff import csrf_of
from tests.support.webhooks import text_in

CLIENT_PHONE = "+14045387319"
OTHER_PHONE = "+17705550123"
THIRD_PHONE = "+16785550142"


async def set_alert_policy(policy: AlertPolicy, dismiss_on_reply: bool = False) -> None:
    await Organisation.all().update(alert_policy=policy, dismiss_alerts_on_reply=dismiss_on_reply)
    settings_cache.forget()  # written past the services: this process's copy is stale


async def office_case(number: str, name: str, phone: str, office: str | None, assignee: Staff | None) -> CaseFile:
    client = await create_client(name=name, phones=[PhoneInput(phone, "mobile", True)])
    case = await create_case(number=number, title="Eviction", client_id=client.id, office=office)
    if assignee is not None:
        await create_assignment(case_id=case.id, staff_email=assignee.email, primary=True)
    return CaseFile(client.id, case.id, number)


async def addressees(message: Message) -> dict[int, set[int]]:
    """Each alert the text raised (by case), with the staff it is addressed to."""
    found = await Alert.filter(message_id=message.id).prefetch_related("assignees")
    return {alert.case_id: {a.staff_id for a in alert.assignees} for alert in found}


def badge_says(html: str) -> str | None:
    match = re.search(r'<a id="alert-badge"[^>]*>([^<]*)</a>', html)
    return match.group(1) if match else None


# ---------------------------------------------------------------- whom an inbound text alerts


async def test_primary_policy_alerts_the_current_primary_assignees_only(anonymous, make_staff, make_case) -> None:
    primary, helper, former, leaving = [await make_staff("advocate") for _ in range(4)]
    case = await make_case(phone=CLIENT_PHONE)
    await assign(case.case_id, primary, primary=True)
    await assign(case.case_id, helper)  # current, not primary
    await assign(case.case_id, former, primary=True, end=date.today() - timedelta(days=1))  # ended yesterday
    await assign(case.case_id, leaving, primary=True, end=date.today() + timedelta(days=7))  # ends next week: current

    message = await text_in(anonymous, CLIENT_PHONE, "Did you get my lease?")

    assert await addressees(message) == {case.case_id: {primary.id, leaving.id}}
    assert [await alerts.open_alert_count(s) for s in (primary, helper, former, leaving)] == [1, 0, 0, 1]


async def test_all_policy_alerts_every_current_assignee(anonymous, make_staff, make_case) -> None:
    await set_alert_policy(AlertPolicy.ALL)
    primary, helper, former, leaving = [await make_staff("advocate") for _ in range(4)]
    case = await make_case(phone=CLIENT_PHONE)
    await assign(case.case_id, primary, primary=True)
    await assign(case.case_id, helper)
    await assign(case.case_id, former, end=date.today() - timedelta(days=1))
    await assign(case.case_id, leaving, end=date.today() + timedelta(days=1))

    message = await text_in(anonymous, CLIENT_PHONE, "Court moved to Tuesday?")

    assert await addressees(message) == {case.case_id: {primary.id, helper.id, leaving.id}}
    assert [await alerts.open_alert_count(s) for s in (primary, helper, former, leaving)] == [1, 1, 0, 1]


async def test_a_case_without_a_primary_assignee_raises_an_unassigned_alert_the_dashboard_shows(
    anonymous, make_staff, make_case, signed_in
) -> None:
    helper, supervisor = await make_staff("advocate"), await make_staff("supervisor")
    case = await make_case(phone=CLIENT_PHONE, assignee=helper, primary=False, name="Rosa Diaz")

    message = await text_in(anonymous, CLIENT_PHONE, "Anyone there?")

    assert await addressees(message) == {case.case_id: set()}
    assert await alerts.open_alert_count(helper) == 0
    (alert,) = await Alert.filter(message_id=message.id)
    page = (await (await signed_in(supervisor)).get("/alerts")).text
    unassigned = page.index('class="alert-group unassigned"')
    assert "Unassigned" in page[unassigned:] and page.index(f'id="alert-{alert.id}"') > unassigned
    assert f'id="alert-{alert.id}"' not in (await (await signed_in(helper)).get("/alerts")).text


async def test_a_text_filed_on_two_cases_raises_two_alerts(anonymous, make_staff, make_case) -> None:
    ana, ben = await make_staff("advocate"), await make_staff("advocate")
    first = await make_case(phone=CLIENT_PHONE, assignee=ana, name="Maria Lopez")
    second = await make_case(phone=CLIENT_PHONE, assignee=ben, name="Luis Lopez")  # a shared family phone

    message = await text_in(anonymous, CLIENT_PHONE, "It's Maria, on Luis's phone")

    assert await addressees(message) == {first.case_id: {ana.id}, second.case_id: {ben.id}}
    assert await alerts.open_alert_count(ana) == await alerts.open_alert_count(ben) == 1


# ---------------------------------------------------------------- pages and who may see them


async def test_an_advocate_sees_and_dismisses_only_alerts_addressed_to_them(
    anonymous, make_staff, make_case, signed_in
) -> None:
    mine, theirs = await make_staff("advocate"), await make_staff("advocate")
    await make_case(phone=CLIENT_PHONE, assignee=mine, name="Maria Lopez")
    await make_case(phone=OTHER_PHONE, assignee=theirs, name="Sam Okafor")
    my_text = await text_in(anonymous, CLIENT_PHONE, "Which courtroom?")
    their_text = await text_in(anonymous, OTHER_PHONE, "Running late <sorry>")
    my_alert = await Alert.get(message_id=my_text.id)
    their_alert = await Alert.get(message_id=their_text.id)

    browser = await signed_in(mine)
    page = await browser.get("/alerts")
    assert page.status_code == 200
    assert row_ids(page.text, "alert") == [my_alert.id]
    assert "Maria Lopez" in page.text and "Which courtroom?" in page.text and "Sam Okafor" not in page.text
    assert f'href="/conversations/{my_text.conversation_id}"' in page.text
    assert badge_says(page.text) == "Alerts (1)"
    for fragment in ("/alerts/block", "/alerts/list"):
        assert row_ids((await browser.get(fragment)).text, "alert") == [my_alert.id]
    assert badge_says((await browser.get("/alerts/badge")).text) == "Alerts (1)"
    assert (await browser.get("/alerts/dashboard")).status_code == 403

    refused = await browser.post(f"/alerts/{their_alert.id}/dismiss")
    assert refused.status_code == 404
    missing = await browser.post("/alerts/999999/dismiss")
    assert missing.status_code == 404
    await their_alert.refresh_from_db()
    assert their_alert.dismissed_at is None


async def test_the_badge_and_home_block_are_fetched_by_every_page(anonymous, make_staff, make_case, signed_in) -> None:
    advocate = await make_staff("advocate")
    await make_case(phone=CLIENT_PHONE, assignee=advocate)
    browser = await signed_in(advocate)

    home = (await browser.get("/")).text
    badge = re.search(r'<a id="alert-badge"[^>]*>', home)
    assert badge and 'hx-get="/alerts/badge"' in badge.group(0) and 'hx-trigger="load"' in badge.group(0)
    assert 'id="alert-block"' in home and 'hx-get="/alerts/block"' in home
    assert badge_says((await browser.get("/alerts/badge")).text) == "Alerts (0)"
    assert "No open alerts" not in (await browser.get("/alerts/block")).text  # an empty list: CSS says so

    await text_in(anonymous, CLIENT_PHONE, "Hello?")
    fetched = (await browser.get("/alerts/badge")).text
    assert badge_says(fetched) == "Alerts (1)" and "hx-get" not in fetched  # known now: it does not fetch again
    assert 'data-refresh-url="/alerts/badge"' in fetched  # and a reconnecting tab re-fetches it
    block = (await browser.get("/alerts/block")).text
    assert '<details id="alert-block"' in block and " open>" in block and len(row_ids(block, "alert")) == 1


def test_an_alerts_age_is_said_in_words_with_the_moment_in_a_time_element() -> None:
    now = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
    ages = [time_ago(now - timedelta(seconds=s), now) for s in (20, 5 * 60, 2 * 3600 + 59 * 60, 3 * 86400)]
    assert [re.sub(r"<[^>]+>", "", str(age)) for age in ages] == ["just now", "5 min ago", "2 h ago", "3 d ago"]
    assert str(ages[2]).startswith('<time datetime="2026-11-21T12:01:00Z" title="Nov 21, 12:01 UTC" data-local>')


async def test_the_dashboard_groups_by_office_then_assignee_oldest_first(anonymous, make_staff, signed_in) -> None:
    ana = await make_staff("advocate", name="Ana Ruiz")
    ben = await make_staff("advocate", name="Ben Ho")
    supervisor = await make_staff("supervisor")
    await office_case("A-1", "Client One", CLIENT_PHONE, "Atlanta", ana)
    await office_case("B-1", "Client Two", OTHER_PHONE, "Brunswick", ben)
    await office_case("A-2", "Client Three", THIRD_PHONE, "Atlanta", None)
    first = await text_in(anonymous, OTHER_PHONE, "first: Brunswick, Ben")
    second = await text_in(anonymous, CLIENT_PHONE, "second: Atlanta, Ana")
    third = await text_in(anonymous, THIRD_PHONE, "third: Atlanta, nobody")
    fourth = await text_in(anonymous, CLIENT_PHONE, "fourth: Atlanta, Ana again")
    ids = {m.id: (await Alert.get(message_id=m.id)).id for m in (first, third, fourth)}

    page = (await (await signed_in(supervisor)).get("/alerts")).text
    assert badge_says(page) == "Alerts (3)"  # the fourth is counted on the second's alert
    atlanta, brunswick, no_office = (page.index(f">{name} <") for name in ("Atlanta", "Brunswick", "No office"))
    assert atlanta < brunswick < no_office
    ana_group, unassigned = page.index(">Ana Ruiz <"), page.index(">Unassigned <")
    assert atlanta < ana_group < unassigned < brunswick < page.index(">Ben Ho <")
    # Oldest unanswered first: within Atlanta, Ana's group (whose oldest is second) before nobody's (third).
    assert row_ids(page, "alert") == [ids[fourth.id], ids[third.id], ids[first.id]]
    assert "2 new texts" in page and "fourth: Atlanta, Ana again" in page and "second: Atlanta" not in page
    assert not await Alert.exists(message_id=second.id)
    assert "No open alerts." in page[no_office:]


async def test_one_dismissal_clears_the_alert_for_everyone(anonymous, make_staff, make_case, signed_in) -> None:
    await set_alert_policy(AlertPolicy.ALL)
    ana, ben, supervisor = await make_staff("advocate"), await make_staff("advocate"), await make_staff("supervisor")
    case = await make_case(phone=CLIENT_PHONE, assignee=ana)
    await assign(case.case_id, ben)
    message = await text_in(anonymous, CLIENT_PHONE, "Can I come in tomorrow?")
    alert = await Alert.get(message_id=message.id)
    ana_browser, ben_browser, boss = await signed_in(ana), await signed_in(ben), await signed_in(supervisor)
    assert row_ids((await ben_browser.get("/alerts")).text, "alert") == [alert.id]

    await ana_browser.get("/alerts")
    unsigned = await ana_browser.post(f"/alerts/{alert.id}/dismiss", csrf=False)
    assert unsigned.status_code == 403
    dismissed = await ana_browser.post(f"/alerts/{alert.id}/dismiss")
    assert dismissed.status_code == 303 and dismissed.headers["location"] == "/alerts"

    await alert.refresh_from_db()
    assert alert.dismissed_at is not None and alert.dismissed_by_id == ana.id and alert.dismissed_because == "dismissed"
    for browser in (ana_browser, ben_browser, boss):
        page = (await browser.get("/alerts")).text
        assert row_ids(page, "alert") == [] and badge_says(page) == "Alerts (0)"
    again = await ben_browser.post(f"/alerts/{alert.id}/dismiss")  # harmless
    assert again.status_code == 303


async def test_dismissing_with_htmx_answers_an_empty_row(anonymous, make_staff, make_case, signed_in) -> None:
    supervisor = await make_staff("supervisor")
    await make_case(phone=CLIENT_PHONE)
    alert = await Alert.get(message_id=(await text_in(anonymous, CLIENT_PHONE, "Hi")).id)
    browser = await signed_in(supervisor)
    page = await browser.get("/alerts")
    response = await browser.http.post(
        f"/alerts/{alert.id}/dismiss", headers={"HX-Request": "true", "X-CSRF-Token": csrf_of(page.text)}
    )
    assert response.status_code == 200 and response.text == ""
    assert await alerts.open_alert_count(supervisor) == 0


@pytest.mark.parametrize("dismiss_on_reply", [True, False])
async def test_answering_the_client_dismisses_their_alerts_when_the_setting_is_on(
    anonymous, make_staff, make_case, signed_in, dismiss_on_reply: bool
) -> None:
    await set_alert_policy(AlertPolicy.PRIMARY, dismiss_on_reply=dismiss_on_reply)
    advocate = await make_staff("advocate")
    await make_case(phone=CLIENT_PHONE, assignee=advocate)
    message = await text_in(anonymous, CLIENT_PHONE, "What should I bring?")
    browser = await signed_in(advocate)
    await browser.get(f"/conversations/{message.conversation_id}")

    sent = await browser.post(f"/conversations/{message.conversation_id}/messages", {"body": "Your lease, please."})
    assert sent.status_code == 200, sent.text

    alert = await Alert.get(message_id=message.id)
    if dismiss_on_reply:
        assert alert.dismissed_at is not None and alert.dismissed_because == "replied"
        assert alert.dismissed_by_id == advocate.id
    else:
        assert alert.dismissed_at is None
    assert await alerts.open_alert_count(advocate) == (0 if dismiss_on_reply else 1)


# ---------------------------------------------------------------- live, over real event streams


def removes(alert_id: int) -> Callable[[ServerEvent], bool]:
    return lambda event: (
        event.event == "update" and f'hx-swap-oob="delete:#alert-list > #alert-{alert_id}"' in event.data
    )


def inserts(alert_id: int) -> Callable[[ServerEvent], bool]:
    return lambda event: (
        event.event == "update"
        and 'hx-swap-oob="beforeend:#alert-list"' in event.data
        and f'<li id="alert-{alert_id}"' in event.data
    )


async def test_a_dismissal_by_one_user_removes_the_alert_from_another_users_stream(
    server,
    twilio,
    make_staff,
    make_case,
) -> None:
    await set_alert_policy(AlertPolicy.ALL)
    ana, ben = await make_staff("advocate"), await make_staff("advocate")
    case = await make_case(phone=CLIENT_PHONE, assignee=ana)
    await assign(case.case_id, ben)
    await make_case(phone=OTHER_PHONE, assignee=ben)
    earlier = await text_in(twilio, OTHER_PHONE, "an older alert, Ben's alone")
    message = await text_in(twilio, CLIENT_PHONE, "Is my hearing still on?")
    alert = await Alert.get(message_id=message.id)

    async with (
        signed_in_browser(server, ana) as ana_http,
        signed_in_browser(server, ben) as ben_http,
        event_stream(ben_http, "/events") as ben_tab,
    ):
        page = await ana_http.get("/alerts")
        assert f'id="alert-{alert.id}"' in page.text
        response = await ana_http.post(f"/alerts/{alert.id}/dismiss", data={"csrf_token": csrf_of(page.text)})
        assert response.status_code == 303

        update = await ben_tab.next_event()
        assert removes(alert.id)(update)
        assert f'<li id="alert-{alert.id}"' not in update.data  # gone, not put back
        assert badge_says(update.data) == "Alerts (1)"  # Ben's own count: the earlier alert is still open
        assert 'hx-swap-oob="true"' in update.data and "alert-office" not in update.data  # no dashboard for advocates
    assert await alerts.open_alert_count(ben) == 1 and (await Alert.get(message_id=earlier.id)).dismissed_at is None


async def test_a_raised_alert_appears_live_for_its_addressees_and_supervisors_only(
    server,
    twilio,
    make_staff,
    make_case,
) -> None:
    primary, helper, stranger = [await make_staff("advocate") for _ in range(3)]
    supervisor = await make_staff("supervisor")
    case = await make_case(phone=CLIENT_PHONE, assignee=primary, name="Maria Lopez")
    await assign(case.case_id, helper)  # sees the conversation, is not alerted (primary policy)
    await make_case(phone=OTHER_PHONE, assignee=stranger, name="Sam Okafor")

    async with AsyncExitStack() as stack:
        tabs: dict[str, EventStream] = {}
        for name, staff in (("primary", primary), ("helper", helper), ("stranger", stranger), ("boss", supervisor)):
            http = await stack.enter_async_context(signed_in_browser(server, staff))
            tabs[name] = await stack.enter_async_context(event_stream(http, "/events"))
        api = await stack.enter_async_context(signed_in_browser(server, primary))
        json_tab = await stack.enter_async_context(
            event_stream(api, "/api/v1/events", bearer(await create_api_token(primary.email)))
        )

        message = await text_in(twilio, CLIENT_PHONE, "Which courtroom?")
        alert = await Alert.get(message_id=message.id)

        seen = await tabs["primary"].read_until(shows_bubble(message), inserts(alert.id))
        row = next(e.data for e in seen if inserts(alert.id)(e))
        assert badge_says(row) == "Alerts (1)" and "Maria Lopez" in row and "Which courtroom?" in row
        assert "alert-office" not in row

        seen = await tabs["boss"].read_until(shows_bubble(message), inserts(alert.id))
        row = next(e.data for e in seen if inserts(alert.id)(e))
        assert badge_says(row) == "Alerts (1)"
        assert 'id="alert-office-none" class="alert-office"' in row and 'hx-swap-oob="true"' in row
        # The same update replaces the dashboard section (with the row in it) and removes the row from
        # the reader's own list: the removal must not reach the dashboard's copy, whatever the order
        # htmx applies them in.
        assert f'hx-swap-oob="delete:#alert-list > #alert-{alert.id}"' in row

        events = [await json_tab.next_event(), await json_tab.next_event()]
        assert [e.event for e in events] == ["message.received", "alert.raised"]
        assert json.loads(events[1].data) == {
            "type": "alert.raised",
            "alert_id": alert.id,
            "case_id": case.case_id,
            "message_id": message.id,
            "count": 1,
        }

        # The helper sees the text but gets no alert; the stranger gets nothing. The next thing each
        # hears is a marker: a text to the stranger's own client (the helper: its dismissal by the boss).
        assert shows_bubble(message)(await tabs["helper"].next_event())
        marker = await text_in(twilio, OTHER_PHONE, "marker")
        marker_alert = await Alert.get(message_id=marker.id)
        seen = await tabs["stranger"].read_until(shows_bubble(marker), inserts(marker_alert.id))
        assert all(f"alert-{alert.id}" not in e.data and "Which courtroom" not in e.data for e in seen)
        assert badge_says(seen[-1].data) == "Alerts (1)"

        follow_up = await text_in(twilio, CLIENT_PHONE, "follow-up, on the same case")
        update = await tabs["helper"].next_event()
        assert shows_bubble(follow_up)(update)
        assert 'id="alert-' not in update.data and "alert-badge" not in update.data


# ---------------------------------------------------------------- the hub's fan-out


async def test_alert_updates_render_each_view_once_and_count_badges_without_a_query_per_tab(
    app,
    anonymous,
    make_staff,
    make_case,
    renders,
    caplog,
) -> None:
    await set_alert_policy(AlertPolicy.ALL)
    ana, ben, bystander = [await make_staff("advocate") for _ in range(3)]
    supervisors = [await make_staff("supervisor") for _ in range(2)]
    case = await make_case(phone=CLIENT_PHONE, assignee=ana)
    await assign(case.case_id, ben)
    await make_case(phone=OTHER_PHONE, assignee=ben)
    await text_in(anonymous, OTHER_PHONE, "Ben has one already")
    message = await text_in(anonymous, CLIENT_PHONE, "New one for both")
    alert = await Alert.get(message_id=message.id)
    event = AlertRaised(alert_id=alert.id, case_id=case.case_id, message_id=message.id)
    people = [ana, ben, bystander, *supervisors]

    async def publish_to(tab_count: int) -> tuple[Counter[str], int]:
        # The bystander's tabs get nothing; a reader's tabs agree.
        fanned = await fan_out(app, event, people, tab_count, bystander, renders, caplog)
        by_staff = fanned.views
        assert badge_says(by_staff[ana.id]) == "Alerts (1)" and badge_says(by_staff[ben.id]) == "Alerts (2)"
        assert badge_says(by_staff[supervisors[0].id]) == "Alerts (2)"
        assert "alert-office" in by_staff[supervisors[0].id] and "alert-office" not in by_staff[ana.id]
        return fanned.renders, fanned.queries

    few, many = await publish_to(5), await publish_to(50)
    # One row, one dashboard section, one badge per distinct count (1 and 2).
    expected = Counter({"oob/alert_row.html": 1, "oob/alert_office.html": 1, "oob/alert_badge.html": 2})
    assert few[0] == many[0] == expected
    assert few[1] == many[1] > 0


async def test_new_links_and_stored_attachments_redraw_the_bubble_for_each_view(
    app, anonymous, make_staff, make_case
) -> None:
    hub, bus = app.state.hub, app.state.bus
    advocate, supervisor = await make_staff("advocate"), await make_staff("supervisor")
    mine = await make_case(phone=CLIENT_PHONE, assignee=advocate, name="Maria Lopez")
    other = await make_case(phone=OTHER_PHONE, name="Sam Okafor")
    message = await text_in(anonymous, CLIENT_PHONE, "Which case is this about?")
    advocate_tab = Tab(staff_id=advocate.id, sees_everything=False)
    supervisor_tab = Tab(staff_id=supervisor.id, sees_everything=True)
    stranger_tab = Tab(staff_id=(await make_staff("advocate")).id, sees_everything=False)
    for tab in (advocate_tab, supervisor_tab, stranger_tab):
        hub.attach(tab)
    try:
        await linking.add_link(bus, supervisor, message.id, other.case_id)  # filed on another client's case too
        async with asyncio.timeout(WAIT_SECONDS):
            advocate_view = as_event(await advocate_tab.queue.get()).data
            supervisor_view = as_event(await supervisor_tab.queue.get()).data
        for view in (advocate_view, supervisor_view):
            assert f'<li id="message-{message.id}" class="bubble inbound" hx-swap-oob="true">' in view
            assert mine.number in view
        assert other.number in supervisor_view and other.number not in advocate_view

        await bus.publish(
            MediaChanged(message_id=message.id, conversation_id=message.conversation_id, media_id=0, status="stored")
        )
        async with asyncio.timeout(WAIT_SECONDS):
            assert f'<li id="message-{message.id}"' in as_event(await advocate_tab.queue.get()).data
            assert f'<li id="message-{message.id}"' in as_event(await supervisor_tab.queue.get()).data
        assert stranger_tab.queue.empty()
    finally:
        for tab in (advocate_tab, supervisor_tab, stranger_tab):
            hub.detach(tab)
