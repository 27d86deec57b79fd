"""Surveys (issue 9, point 6): replies to a survey campaign within its window are counted against it — per
option, matched after trimming in any casing, else as free text — once per recipient (the first reply counts);
keywords are never answers; replies reach the thread; answers raise alerts only when the campaign asks for that,
free text always (it may be a question).
The results page (supervisors and admins), its SVG chart, the CSV export and the API agree with the replies.

The sent survey is built from rows (tests/support/surveys.py); every reply comes through the signed webhook."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from collections import Counter
from datetime import timedelta

import httpx
import pytest
from markupsafe import escape
from starlette.applications import Starlette

from inbox import clock
from inbox.events import SurveyAnswered
from inbox.live import CAMPAIGN_INTERVAL, Tab
from inbox.models import Alert, Campaign, CampaignRecipient, Message, MessageStatus, OutboxState, Staff
from inbox.services import surveys
from tests.support.api import assert_error
from tests.support.events import WAIT_SECONDS
from tests.support.live import event_stream, signed_in_browser
from tests.support.pages import words
from tests.support.records import CaseFile, MakeCase
from tests.support.staff import ApiClientFactory, MakeStaff
from tests.support.surveys import sent_survey
from tests.support.webhooks import post_text, text_in

NUMBERS = [f"+1404555{n:04d}" for n in range(2001, 2011)]


async def clients(make_case: MakeCase, count: int, assignee: Staff | None = None) -> list[tuple[CaseFile, str]]:
    return [
        (await make_case(phone=NUMBERS[i], name=f"Client {i + 1}", assignee=assignee), NUMBERS[i]) for i in range(count)
    ]


async def answers(campaign: Campaign) -> dict[str, str | None]:
    """Each recipient's number → the answer counted ("" for free text), for those who replied."""
    rows = await CampaignRecipient.filter(campaign_id=campaign.id, reply_id__isnull=False)
    return {r.number or "": r.answer or "" for r in rows}


# ---------------------------------------------------------------- counting


async def test_survey_tallies_match_the_replies(
    app: Starlette, anonymous: httpx.AsyncClient, make_case: MakeCase, supervisor: httpx.AsyncClient
) -> None:
    people = await clients(make_case, 9)
    campaign = await sent_survey(app.state.channel, people)
    n = NUMBERS

    await text_in(anonymous, n[0], "1")
    await text_in(anonymous, n[1], " 1 ")
    first = await text_in(anonymous, n[2], "1.")
    await text_in(anonymous, n[3], " yes ")
    await text_in(anonymous, n[4], "Yes.")
    free = await text_in(anonymous, n[5], "The lawyer was great but the wait was long")
    stop = await text_in(anonymous, n[6], "STOP")
    help_ = await text_in(anonymous, n[7], "help")
    # A duplicate webhook (Twilio retrying the same MessageSid) counts once.
    again = await post_text(anonymous, n[2], "1.", sid=first.provider_sid or "")
    assert again.status_code == 200
    # The first reply counts: a second one from the same client is an ordinary text.
    second = await text_in(anonymous, n[0], "2")
    # After the window (7 days from sending) a reply is not counted.
    later = clock.now() + timedelta(days=7)
    app.state.clock = lambda: later
    late = await text_in(anonymous, n[8], "2")

    results = (await supervisor.get(f"/api/v1/campaigns/{campaign.id}/results")).json()
    assert results["options"] == {"1": 3, "2": 0, "YES": 2}
    assert results["other"] == 1
    assert await answers(campaign) == {n[0]: "1", n[1]: "1", n[2]: "1", n[3]: "YES", n[4]: "YES", n[5]: ""}
    counted = {r["message_id"] for r in results["replies"]}
    assert free.id in counted and not counted & {stop.id, help_.id, second.id, late.id}
    assert await Message.filter(provider_sid=first.provider_sid).count() == 1


async def test_start_and_a_survey_without_yes_do_not_count_keywords(
    app: Starlette, anonymous: httpx.AsyncClient, make_case: MakeCase
) -> None:
    people = await clients(make_case, 3)
    options = [{"answer": "1", "label": "Good"}, {"answer": "2", "label": "Bad"}]
    campaign = await sent_survey(app.state.channel, people, options=options)

    await text_in(anonymous, NUMBERS[0], "START")
    await text_in(anonymous, NUMBERS[1], "yes")  # an opt-in keyword, and this survey offers no YES
    await text_in(anonymous, NUMBERS[2], "2")

    assert await answers(campaign) == {NUMBERS[2]: "2"}


async def test_a_reply_before_the_survey_left_or_to_a_failed_or_held_text_is_not_counted(
    app: Starlette, anonymous: httpx.AsyncClient, make_case: MakeCase
) -> None:
    people = await clients(make_case, 3)
    future = await sent_survey(app.state.channel, people[:1], sent_at=clock.now() + timedelta(hours=1))
    failed = await sent_survey(app.state.channel, people[1:2], status=MessageStatus.FAILED)
    # "queued" in our own outbox, held by a paused campaign: it never reached the client.
    held = await sent_survey(app.state.channel, people[2:], status=MessageStatus.QUEUED, outbox_state=OutboxState.HELD)

    await text_in(anonymous, NUMBERS[0], "1")
    await text_in(anonymous, NUMBERS[1], "1")
    await text_in(anonymous, NUMBERS[2], "1")

    assert await answers(future) == {} and await answers(failed) == {} and await answers(held) == {}
    assert [(await surveys.results_of(c)).sent for c in (failed, held)] == [0, 0]


async def test_the_newest_survey_takes_the_reply(
    app: Starlette, anonymous: httpx.AsyncClient, make_case: MakeCase
) -> None:
    people = await clients(make_case, 1)
    older = await sent_survey(app.state.channel, people, sent_at=clock.now() - timedelta(days=2), name="Older")
    newer = await sent_survey(app.state.channel, people, name="Newer")

    await text_in(anonymous, NUMBERS[0], "2")
    await text_in(anonymous, NUMBERS[0], "1")  # the newest is answered: not picked up by the older one

    assert await answers(newer) == {NUMBERS[0]: "2"}
    assert await answers(older) == {}


# ---------------------------------------------------------------- alerts and the thread


async def test_answers_raise_no_alert_unless_the_campaign_asks_free_text_always_does_and_all_reach_the_thread(
    app: Starlette,
    anonymous: httpx.AsyncClient,
    make_case: MakeCase,
    make_staff: MakeStaff,
    signed_in,
) -> None:
    advocate = await make_staff("advocate")
    quiet_people = await clients(make_case, 2, assignee=advocate)
    loud_case = await make_case(phone=NUMBERS[5], name="Loud Client", assignee=advocate)
    await sent_survey(app.state.channel, quiet_people)
    await sent_survey(app.state.channel, [(loud_case, NUMBERS[5])], replies_raise_alerts=True, name="Loud")

    quiet = await text_in(anonymous, NUMBERS[0], "2")
    words = await text_in(anonymous, NUMBERS[1], "The wait was too long <b>really</b>")  # may be a question
    loud = await text_in(anonymous, NUMBERS[5], "1")
    ordinary = await text_in(anonymous, NUMBERS[0], "Also, when is my hearing?")  # after the answer: ordinary

    assert not await Alert.exists(message_id=quiet.id)
    assert await Alert.exists(message_id=words.id)
    assert await Alert.exists(message_id=loud.id, case_id=loud_case.case_id)
    assert await Alert.exists(message_id=ordinary.id)
    page = await (await signed_in(advocate)).get(f"/conversations/{quiet.conversation_id}")
    assert page.status_code == 200
    assert f'id="message-{quiet.id}"' in page.text
    page = await (await signed_in(advocate)).get(f"/conversations/{words.conversation_id}")
    assert str(escape("The wait was too long <b>really</b>")) in page.text


# ---------------------------------------------------------------- the results page, the CSV, the API


async def answered_survey(app: Starlette, anonymous: httpx.AsyncClient, make_case: MakeCase) -> Campaign:
    """Four recipients: two answered 1, one YES, one wrote free text that tries its luck with markup."""
    people = await clients(make_case, 5)
    options = [
        {"answer": "1", "label": "Very <b>helpful</b>"},
        {"answer": "2", "label": "Not helpful"},
        {"answer": "YES", "label": "Recommend"},
    ]
    campaign = await sent_survey(app.state.channel, people, options=options, name="How did we do? <script>")
    await text_in(anonymous, NUMBERS[0], "1")
    await text_in(anonymous, NUMBERS[1], "1")
    await text_in(anonymous, NUMBERS[2], "yes!")
    await text_in(anonymous, NUMBERS[3], '=HYPERLINK("http://evil") <img src=x onerror=alert(1)>')
    return campaign


async def test_the_results_page_shows_tallies_an_accessible_chart_and_the_free_text(
    app: Starlette, anonymous: httpx.AsyncClient, make_case: MakeCase, make_staff: MakeStaff, signed_in
) -> None:
    campaign = await answered_survey(app, anonymous, make_case)
    browser = await signed_in(await make_staff("supervisor"))

    page = await browser.get(f"/campaigns/{campaign.id}/results")

    assert page.status_code == 200
    text = words(page.text)
    assert "4 of 5 sent answered (80%)" in text
    assert "1 Very <b>helpful</b>: 2 (50%)" in text
    assert "2 Not helpful: 0" in text and "YES Recommend: 1 (25%)" in text
    assert "Other (free text): 1 (25%)" in text
    # Escaped everywhere: the labels in the SVG, the campaign's name, the client's words.
    assert "<b>helpful</b>" not in page.text and "Very &lt;b&gt;helpful&lt;/b&gt;" in page.text
    assert "<script>" not in page.text
    assert "<img src=x" not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text
    svg = page.text[page.text.index("<svg") : page.text.index("</svg>")]
    assert 'role="img"' in svg and "<title" in svg and "<desc" in svg
    assert "1 (Very &lt;b&gt;helpful&lt;/b&gt;): 2." in svg  # the numbers as text, for screen readers
    assert svg.count('class="bar"') == 2 and 'width="50.00%"' in svg and 'width="25.00%"' in svg
    reply = await CampaignRecipient.get(campaign_id=campaign.id, answer=None, reply_id__isnull=False)
    message = await Message.get(id=reply.reply_id)
    assert f'href="/conversations/{message.conversation_id}"' in page.text
    assert f'href="/clients/{reply.client_id}"' in page.text and "Client 4" in text


async def test_the_csv_has_every_recipient_and_cannot_run_formulas(
    app: Starlette, anonymous: httpx.AsyncClient, make_case: MakeCase, make_staff: MakeStaff, signed_in
) -> None:
    campaign = await answered_survey(app, anonymous, make_case)
    browser = await signed_in(await make_staff("admin"))

    response = await browser.get(f"/campaigns/{campaign.id}/results.csv")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="survey-{campaign.id}-results.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["client", "number", "case", "answer", "reply text", "replied at"]
    by_client = {row[0]: row for row in rows[1:]}
    assert set(by_client) == {f"Client {i}" for i in range(1, 6)}
    assert by_client["Client 1"][1:4] == ["'" + NUMBERS[0], "16E-20010001", "1"]
    assert by_client["Client 3"][3:5] == ["YES", "yes!"]
    assert by_client["Client 4"][3] == ""
    assert by_client["Client 4"][4] == '\'=HYPERLINK("http://evil") <img src=x onerror=alert(1)>'
    assert by_client["Client 5"][3:] == ["", "", ""]  # sent, not answered
    assert by_client["Client 1"][5].endswith("Z")
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


async def test_the_api_answers_the_contract_shape(
    app: Starlette, anonymous: httpx.AsyncClient, make_case: MakeCase, supervisor: httpx.AsyncClient
) -> None:
    campaign = await answered_survey(app, anonymous, make_case)

    response = await supervisor.get(f"/api/v1/campaigns/{campaign.id}/results")

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"options", "other", "replies"}
    assert list(body["options"].items()) == [("1", 2), ("2", 0), ("YES", 1)]
    assert body["other"] == 1
    assert [set(r) for r in body["replies"]] == [{"client_id", "message_id", "body", "option"}] * 4
    assert [r["option"] for r in body["replies"]] == ["1", "1", "YES", None]
    assert body["replies"][2]["body"] == "yes!"
    recipient = await CampaignRecipient.get(campaign_id=campaign.id, number=NUMBERS[2])
    assert (body["replies"][2]["client_id"], body["replies"][2]["message_id"]) == (
        recipient.client_id,
        recipient.reply_id,
    )
    assert_error(await supervisor.get("/api/v1/campaigns/999999/results"), 404)


async def test_advocates_may_not_see_results(
    app: Starlette,
    anonymous: httpx.AsyncClient,
    make_case: MakeCase,
    make_staff: MakeStaff,
    signed_in,
    api_client: ApiClientFactory,
) -> None:
    campaign = await answered_survey(app, anonymous, make_case)
    advocate = await make_staff("advocate")
    browser = await signed_in(advocate)

    page = await browser.get(f"/campaigns/{campaign.id}/results")
    assert page.status_code == 403
    assert "Survey results are for supervisors and administrators" in words(page.text)
    assert "Client 4" not in page.text
    assert (await browser.get(f"/campaigns/{campaign.id}/results.csv")).status_code == 403
    api = await api_client(advocate)
    error = assert_error(await api.get(f"/api/v1/campaigns/{campaign.id}/results"), 403)
    assert "supervisors and administrators" in error["error"]
    assert (await anonymous.get(f"/campaigns/{campaign.id}/results")).status_code == 303  # to the sign-in


# ---------------------------------------------------------------- live


async def test_a_reply_updates_open_results_pages_live(
    app: Starlette, server: str, twilio: httpx.AsyncClient, make_case: MakeCase, make_staff: MakeStaff
) -> None:
    people = await clients(make_case, 2)
    campaign = await sent_survey(app.state.channel, people)
    supervisor = await make_staff("supervisor")

    async with signed_in_browser(server, supervisor) as http, event_stream(http, "/events") as stream:
        await text_in(twilio, NUMBERS[0], "Yes")
        (update,) = [
            e
            for e in await stream.read_until(lambda e: f'id="survey-results-{campaign.id}"' in e.data)
            if "survey-results" in e.data
        ]
        assert 'hx-swap-oob="true"' in update.data
        assert "1 of 2 sent answered (50%)" in words(update.data)
        assert "YES I would recommend you: 1 (100%)" in words(update.data)


async def test_a_burst_of_replies_is_rendered_at_most_twice_a_second_and_only_for_managers(
    app: Starlette, make_case: MakeCase, make_staff: MakeStaff, renders: Counter[str]
) -> None:
    people = await clients(make_case, 1)
    campaign = await sent_survey(app.state.channel, people)
    hub, bus = app.state.hub, app.state.bus
    manager = Tab(staff_id=(await make_staff("admin")).id, sees_everything=True)
    advocate = Tab(staff_id=(await make_staff("advocate")).id, sees_everything=False)
    hub.attach(manager)
    hub.attach(advocate)
    renders.clear()
    try:
        for _ in range(5):
            await bus.publish(SurveyAnswered(campaign_id=campaign.id, recipient_id=1, message_id=1))
        async with asyncio.timeout(WAIT_SECONDS):
            first = await manager.queue.get()
        started = asyncio.get_running_loop().time()
        for _ in range(5):  # a burst right after a render: the next waits for its turn, and shows all five
            await bus.publish(SurveyAnswered(campaign_id=campaign.id, recipient_id=1, message_id=1))
        async with asyncio.timeout(WAIT_SECONDS):
            second = await manager.queue.get()
        elapsed = asyncio.get_running_loop().time() - started
        await asyncio.sleep(CAMPAIGN_INTERVAL * 2)  # nothing more comes: the burst was two renders
    finally:
        hub.detach(manager)
        hub.detach(advocate)
    assert first is not None and second is not None
    # One delivery per render: the campaign's progress and its results together.
    for delivery in (first, second):
        assert f'id="survey-results-{campaign.id}"' in delivery.data
        assert f'id="campaign-progress-{campaign.id}"' in delivery.data
    assert elapsed >= CAMPAIGN_INTERVAL * 0.8
    assert renders["campaigns/results_body.html"] == 2
    assert manager.queue.empty() and advocate.queue.empty()


async def test_results_take_the_same_few_queries_however_many_replies(
    app: Starlette, anonymous: httpx.AsyncClient, make_case: MakeCase, caplog: pytest.LogCaptureFixture
) -> None:
    people = await clients(make_case, 8)
    campaign = await sent_survey(app.state.channel, people)

    async def queries_for_results() -> int:
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
            await surveys.results_of(campaign)
        return sum(1 for record in caplog.records if record.name == "tortoise.db_client")

    await text_in(anonymous, NUMBERS[0], "1")
    few = await queries_for_results()
    for number, body in zip(NUMBERS[1:], ["1", "2", "yes", "no idea", "2", "1"], strict=False):
        await text_in(anonymous, number, body)
    assert (await surveys.results_of(campaign)).answered == 7
    assert await queries_for_results() == few <= 6  # one GROUP BY for the tallies, one count, the replies


async def test_a_campaign_that_asks_nothing_counts_nothing_and_says_so(
    app: Starlette,
    anonymous: httpx.AsyncClient,
    make_case: MakeCase,
    make_staff: MakeStaff,
    signed_in,
    supervisor: httpx.AsyncClient,
) -> None:
    people = await clients(make_case, 1)
    bulk = await sent_survey(app.state.channel, people, options=[], name="Office closed Friday")

    reply = await text_in(anonymous, NUMBERS[0], "1")

    assert await answers(bulk) == {}
    assert await Alert.exists(message_id=reply.id)  # an ordinary text
    assert (await supervisor.get(f"/api/v1/campaigns/{bulk.id}/results")).json() == {
        "options": {},
        "other": 0,
        "replies": [],
    }
    page = await (await signed_in(await make_staff("supervisor"))).get(f"/campaigns/{bulk.id}/results")
    assert page.status_code == 200 and "This campaign asked no question, so it has no results." in words(page.text)
    assert "<svg" not in page.text and "Download CSV" not in page.text
