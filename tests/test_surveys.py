"""Surveys (issue 9, point 6): replies to a survey campaign within its window are counted against it — per
option, matched after trimming in any casing, else as free text — once per recipient (the first reply counts);
keywords are never answers; replies reach the thread, and raise alerts only when the campaign asks for that.
The results page (supervisors and admins), its SVG chart, the CSV export and the API agree with the replies.

The sent survey is built from rows (tests/support/surveys.py); every reply comes through the signed webhook."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import httpx
from markupsafe import escape
from starlette.applications import Starlette

from inbox import clock
from inbox.models import Alert, Campaign, CampaignRecipient, Message, MessageStatus, Staff
from tests.support.api import assert_error
from tests.support.pages import words
from tests.support.records import MakeCase
from tests.support.staff import ApiClientFactory, MakeStaff
from tests.support.surveys import sent_survey
from tests.support.webhooks import post_text, text_in

NUMBERS = [f"+1404555{n:04d}" for n in range(2001, 2011)]


async def clients(make_case: MakeCase, count: int, assignee: Staff | None = None) -> list:
    return [
        (await make_case(phone=NUMBERS[i], name=f"Client {i + 1}", assignee=assignee), NUMBERS[i])
        for i in range(count)
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


async def test_a_reply_before_the_survey_left_or_to_a_failed_text_is_not_counted(
    app: Starlette, anonymous: httpx.AsyncClient, make_case: MakeCase
) -> None:
    people = await clients(make_case, 2)
    future = await sent_survey(app.state.channel, people[:1], sent_at=clock.now() + timedelta(hours=1))
    failed = await sent_survey(app.state.channel, people[1:], status=MessageStatus.FAILED)

    await text_in(anonymous, NUMBERS[0], "1")
    await text_in(anonymous, NUMBERS[1], "1")

    assert await answers(future) == {} and await answers(failed) == {}


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


async def test_replies_raise_no_alert_unless_the_campaign_asks_but_reach_the_thread(
    app: Starlette,
    anonymous: httpx.AsyncClient,
    make_case: MakeCase,
    make_staff: MakeStaff,
    signed_in,
) -> None:
    advocate = await make_staff("advocate")
    quiet_people = await clients(make_case, 1, assignee=advocate)
    loud_case = await make_case(phone=NUMBERS[5], name="Loud Client", assignee=advocate)
    await sent_survey(app.state.channel, quiet_people)
    await sent_survey(app.state.channel, [(loud_case, NUMBERS[5])], replies_raise_alerts=True, name="Loud")

    quiet = await text_in(anonymous, NUMBERS[0], "The wait was too long <b>really</b>")
    loud = await text_in(anonymous, NUMBERS[5], "1")
    ordinary = await text_in(anonymous, NUMBERS[0], "Also, when is my hearing?")  # after the answer: ordinary

    assert not await Alert.exists(message_id=quiet.id)
    assert await Alert.exists(message_id=loud.id, case_id=loud_case.case_id)
    assert await Alert.exists(message_id=ordinary.id)
    page = await (await signed_in(advocate)).get(f"/conversations/{quiet.conversation_id}")
    assert page.status_code == 200
    assert f'id="message-{quiet.id}"' in page.text
    assert str(escape("The wait was too long <b>really</b>")) in page.text
