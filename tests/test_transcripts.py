"""Transcripts for the case file (issue 12, point 3): the page, the CSV and the API of a case and a conversation
hold every text with its status timeline and attachments, the consent changes of the numbers involved (a STOP and
a START by webhook) and the link changes, oldest first, and only for readers who may see the case."""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass
from datetime import date, timedelta

import httpx
import pytest
from starlette.applications import Starlette

from inbox.events import MediaChanged, Subscription
from inbox.models import Case, ClientPhone, Message, Staff
from inbox.routes.transcripts import CSV_COLUMNS, filename_for
from inbox.services import consent, transcripts
from inbox.services.directory import create_case
from tests.support.events import next_event
from tests.support.fake_twilio import FakeTwilio
from tests.support.records import MARIA, MakeCase, assign
from tests.support.staff import ApiClientFactory, MakeStaff, StaffClient
from tests.support.webhooks import mms_in, status_callback, text_in

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SCRIPT = '<script>alert("x")</script> is this my hearing?'
FORMULA = '=HYPERLINK("http://evil.example/","click")'


@dataclass
class History:
    """A case with a whole life: a text sent and delivered, a photo, a STOP and a START, a text filed by hand on
    the client's second case and taken off again."""

    case_id: int
    number: str
    second_case_id: int
    sent: Message
    photo: Message
    advocate: Staff
    staff: StaffClient


async def case_history(
    anonymous: httpx.AsyncClient,
    signed_in,
    make_staff: MakeStaff,
    make_case: MakeCase,
    api_client: ApiClientFactory,
    fake_twilio: FakeTwilio,
    bus_events: Subscription,
) -> History:
    advocate = await make_staff("advocate", name="Alice Advocate")
    case = await make_case(assignee=advocate)
    second = await create_case(number=f"{case.number}-B", title="Benefits", client_id=case.client_id)

    fake_twilio.callbacks_enabled = False  # the status callbacks are posted below, as Twilio would
    api = await api_client(advocate)
    answer = await api.post("/api/v1/messages", json={"case_id": case.case_id, "body": "Your hearing is Monday."})
    assert answer.status_code == 201, answer.text
    sent = await Message.get(id=answer.json()["id"])
    for status in ("sent", "delivered"):
        assert (await anonymous.post(**status_callback(str(sent.provider_sid), status))).status_code == 200

    photo = await mms_in(anonymous, [(fake_twilio.add_media(PNG, "image/png"), "image/png")], body=SCRIPT)
    await next_event(bus_events, MediaChanged)  # stored, with its name
    await text_in(anonymous, MARIA, FORMULA)
    await text_in(anonymous, MARIA, "STOP")
    await text_in(anonymous, MARIA, "START")

    staff = await signed_in(advocate)
    await staff.get(f"/messages/{photo.id}")
    assert (await staff.post(f"/messages/{photo.id}/links", {"case_id": second.id})).status_code == 303
    assert (await staff.post(f"/messages/{photo.id}/links/{second.id}/delete")).status_code == 303
    return History(case.case_id, case.number, second.id, sent, photo, advocate, staff)


@pytest.fixture
async def history(anonymous, signed_in, make_staff, make_case, api_client, fake_twilio, bus_events) -> History:
    return await case_history(anonymous, signed_in, make_staff, make_case, api_client, fake_twilio, bus_events)


def csv_rows(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    text = response.text.removeprefix("\ufeff")
    return list(csv.reader(io.StringIO(text)))


# ---------------------------------------------------------------- the API


async def test_the_api_transcript_holds_the_timeline_the_attachment_the_consent_changes_and_the_links(
    history: History, api_client: ApiClientFactory
) -> None:
    api = await api_client(history.advocate)
    body = (await api.get(f"/api/v1/cases/{history.case_id}/transcript")).json()
    assert body["case_id"] == history.case_id
    sent = next(m for m in body["messages"] if m["id"] == history.sent.id)
    assert [step["status"] for step in sent["timeline"]] == ["queued", "sent", "delivered"]
    assert [m["id"] for m in body["messages"]] == sorted(m["id"] for m in body["messages"])  # oldest first

    changes = [(c["source"], c["opted_out"], c["okay_to_text"]) for c in body["consent_events"]]
    assert ("keyword", True, True) in changes and ("keyword", False, True) in changes
    stop = next(c for c in body["consent_events"] if c["opted_out"])
    start = next(c for c in body["consent_events"] if c["source"] == "keyword" and not c["opted_out"])
    assert stop["at"] < start["at"] and stop["number"] == MARIA and "STOP" in stop["what"]

    filed = [c for c in body["link_changes"] if c["message_id"] == history.photo.id]
    assert filed and all(c["change"] == "filed" and c["by"] == "automatic" for c in filed)

    kinds = [entry["kind"] for entry in body["entries"]]
    assert {"message", "consent", "link"} <= set(kinds)
    photo = next(e for e in body["entries"] if e["kind"] == "message" and e["message_id"] == history.photo.id)
    assert photo["attachments"] == [f"photo-{history.photo.id}-1.png"] and photo["sender"] == "Maria Lopez (client)"
    sent_entry = next(e for e in body["entries"] if e["kind"] == "message" and e["message_id"] == history.sent.id)
    assert sent_entry["sender"] == "Alice Advocate" and sent_entry["status"] == "delivered"
    assert "delivered" in sent_entry["detail"]
    times = [entry["at"] for entry in body["entries"]]
    assert times == sorted(times) and body["time_zone"] == "America/New_York"
    assert times[0].endswith(("-05:00", "-04:00"))  # the organisation's zone, with its offset


async def test_a_text_taken_off_a_case_stays_in_its_transcript_as_filed_and_removed_by_whom(
    history: History, api_client: ApiClientFactory
) -> None:
    api = await api_client(history.advocate)
    body = (await api.get(f"/api/v1/cases/{history.second_case_id}/transcript")).json()
    assert history.photo.id not in [m["id"] for m in body["messages"]]  # no longer filed there
    changes = [(c["change"], c["reason"], c["by"]) for c in body["link_changes"] if c["message_id"] == history.photo.id]
    # The rule had filed it there as it came; Alice filed it by hand too; taking it off removed both links.
    assert changes == [
        ("filed", "client_phone", "automatic"),
        ("filed", "manual", "Alice Advocate"),
        ("removed", "client_phone", "Alice Advocate"),
        ("removed", "manual", "Alice Advocate"),
    ]
    removed = [e for e in body["entries"] if e["kind"] == "link" and "taken off" in e["body"]]
    assert {(e["message_id"], e["sender"]) for e in removed} == {(history.photo.id, "Alice Advocate")}


async def test_the_transcript_is_in_the_openapi_document_with_its_new_lists(anonymous: httpx.AsyncClient) -> None:
    document = (await anonymous.get("/api/v1/openapi.json")).json()
    schema = document["components"]["schemas"]["Transcript"]
    assert {"case_id", "messages", "consent_events", "link_changes", "entries"} <= set(schema["required"])


# ---------------------------------------------------------------- who may see it


async def test_an_advocate_who_may_not_see_the_case_gets_404_for_page_csv_and_api(
    history: History, make_staff: MakeStaff, signed_in, api_client: ApiClientFactory
) -> None:
    outsider = await make_staff("advocate", name="Other Advocate")
    page = await signed_in(outsider)
    for path in (f"/cases/{history.case_id}/transcript", f"/cases/{history.case_id}/transcript.csv"):
        response = await page.get(path)
        assert response.status_code == 404 and "Hearing is Monday" not in response.text
    conversation = f"/conversations/{history.sent.conversation_id}/transcript"
    for path in (conversation, conversation + ".csv"):
        assert (await page.get(path)).status_code == 404
    api = await api_client(outsider)
    answer = await api.get(f"/api/v1/cases/{history.case_id}/transcript")
    assert answer.status_code == 404 and "messages" not in answer.json()


async def test_an_advocate_whose_assignment_ended_loses_the_transcript(
    make_staff: MakeStaff, make_case: MakeCase, signed_in, anonymous: httpx.AsyncClient
) -> None:
    advocate = await make_staff("advocate")
    case = await make_case()
    await assign(case.case_id, advocate, end=date.today() - timedelta(days=1))
    await text_in(anonymous, MARIA, "Hello")
    page = await signed_in(advocate)
    assert (await page.get(f"/cases/{case.case_id}/transcript")).status_code == 404


async def test_a_shared_number_shows_only_the_consent_of_records_the_reader_may_see(
    app: Starlette, make_staff: MakeStaff, make_case: MakeCase, anonymous: httpx.AsyncClient
) -> None:
    """Staff unticking okay-to-text on another client's record with the same number is that client's business;
    a STOP is the number's, and shows once however many records it changed."""
    advocate = await make_staff("advocate")
    mine = await make_case(assignee=advocate)
    other = await make_case(name="Someone Else")  # the same number, another client, not the advocate's
    supervisor = await make_staff("supervisor")
    phone = await ClientPhone.get(client_id=other.client_id)
    await consent.set_okay_to_text(app.state.bus, supervisor, other.client_id, phone.id, False)
    await text_in(anonymous, MARIA, "STOP")

    seen = await transcripts.case_transcript(advocate, mine.case_id)
    everything = await transcripts.case_transcript(supervisor, mine.case_id)
    assert [c.source for c in seen.consent_changes if c.opted_out] == ["keyword"]  # one STOP, two records
    assert any(c.what.startswith("Not okay to text") for c in everything.consent_changes)
    assert not any(c.what.startswith("Not okay to text") for c in seen.consent_changes)
    assert "Someone Else" not in " ".join(e.sender for e in seen.entries)


# ---------------------------------------------------------------- the page


async def test_the_case_page_links_to_a_printable_transcript_with_the_text_escaped(history: History) -> None:
    case_page = await history.staff.get(f"/cases/{history.case_id}")
    assert f'href="/cases/{history.case_id}/transcript"' in case_page.text
    thread = await history.staff.get(f"/conversations/{history.sent.conversation_id}")
    assert f'href="/conversations/{history.sent.conversation_id}/transcript"' in thread.text

    page = await history.staff.get(f"/cases/{history.case_id}/transcript")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert '<script>alert("x")</script>' not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert f"Case {history.number} · Maria Lopez" in html and "Printed" in html
    assert f"photo-{history.photo.id}-1.png" in html
    assert "Opted out" in html and "Opted back in" in html
    assert re.search(r"delivered \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", html)
    assert "/static/transcript.css" in html and f'href="/cases/{history.case_id}/transcript.csv"' in html


async def test_the_conversation_transcript_shows_the_texts_and_the_links_of_visible_cases(history: History) -> None:
    page = await history.staff.get(f"/conversations/{history.sent.conversation_id}/transcript")
    assert page.status_code == 200
    assert "Your hearing is Monday." in page.text and "Maria Lopez" in page.text
    assert f"taken off case {history.number}-B" in page.text


# ---------------------------------------------------------------- the CSV


async def test_the_csv_has_one_row_per_entry_with_formulas_neutralised(history: History) -> None:
    response = await history.staff.get(f"/cases/{history.case_id}/transcript.csv")
    disposition = response.headers["content-disposition"]
    assert re.fullmatch(r'attachment; filename="transcript-case-[A-Za-z0-9._-]+\.csv"', disposition), disposition
    rows = csv_rows(response)
    assert tuple(rows[0]) == CSV_COLUMNS
    bodies = [row[5] for row in rows[1:]]
    assert "'" + FORMULA in bodies and FORMULA not in bodies
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    kinds = [row[1] for row in rows[1:]]
    assert {"message", "consent", "link"} <= set(kinds)
    photo = next(row for row in rows[1:] if row[6])
    assert photo[6] == f"photo-{history.photo.id}-1.png" and photo[2] == "inbound"
    sent = next(row for row in rows[1:] if row[5] == "Your hearing is Monday.")
    assert sent[3] == "Alice Advocate" and sent[4] == "delivered" and "queued" in sent[7]

    conversation = await history.staff.get(f"/conversations/{history.sent.conversation_id}/transcript.csv")
    assert 'filename="transcript-conversation-' in conversation.headers["content-disposition"]
    assert len(csv_rows(conversation)) > 1


async def test_a_case_number_cannot_put_a_quote_or_a_path_into_the_filename(
    app: Starlette, make_staff: MakeStaff, make_case: MakeCase
) -> None:
    supervisor = await make_staff("supervisor")
    case = await make_case()
    await Case.filter(id=case.case_id).update(number='../x"; y=\r\n1')
    transcript = await transcripts.case_transcript(supervisor, case.case_id)
    name = filename_for(transcript, f"case-{transcript.case.number if transcript.case else ''}")
    assert re.fullmatch(r"transcript-case-[A-Za-z0-9._-]+-\d{4}-\d\d-\d\d\.csv", name), name


# ---------------------------------------------------------------- bounded queries


async def test_the_transcript_takes_the_same_queries_however_many_texts(
    app: Starlette,
    anonymous: httpx.AsyncClient,
    make_staff: MakeStaff,
    make_case: MakeCase,
    api_client: ApiClientFactory,
    fake_twilio: FakeTwilio,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_twilio.callbacks_enabled = False  # nothing else talks to the database while the queries are counted
    advocate = await make_staff("advocate")
    case = await make_case(assignee=advocate)
    api = await api_client(advocate)

    async def queries() -> int:
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
            transcript = await transcripts.case_transcript(advocate, case.case_id)
        assert transcript.messages
        return sum(1 for record in caplog.records if record.name == "tortoise.db_client")

    await text_in(anonymous, MARIA, "First")
    await api.post("/api/v1/messages", json={"case_id": case.case_id, "body": "Reply one"})
    few = await queries()
    for n in range(4):
        await text_in(anonymous, MARIA, f"More {n}")
        await api.post("/api/v1/messages", json={"case_id": case.case_id, "body": f"Reply {n}"})
    await text_in(anonymous, MARIA, "STOP")
    assert len((await transcripts.case_transcript(advocate, case.case_id)).messages) == 11  # the STOP too
    assert await queries() == few <= 25  # visibility, the texts and their relations, consent, links
