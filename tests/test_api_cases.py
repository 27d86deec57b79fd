"""The JSON API's case and alert calls: a case's notes and documents, attachments, open alerts and
dismissing them. Texts arrive through the signed webhook (MMS included: the attachments are fetched
from the fake Twilio and stored, as in production); who sees what is checked for every call."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette

from inbox.events import AlertDismissed, MediaChanged, SessionEnded, Subscription
from inbox.models import Alert, Assignment, ClientPhone, Media, Message, Organisation, Staff
from inbox.routes.api import OPENAPI
from inbox.services import linking, settings_cache
from tests.support.api import assert_error, assert_iso_with_offset
from tests.support.attachments import PDF, PNG
from tests.support.events import WAIT_SECONDS, next_event
from tests.support.fake_twilio import FakeTwilio
from tests.support.records import MARIA
from tests.support.staff import ApiClientFactory
from tests.support.webhooks import mms_in, text_in

JOHN = "+14045550142"


@dataclass
class Office:
    """Two clients, each with a case and an advocate; a supervisor over both."""

    supervisor: httpx.AsyncClient
    alice: httpx.AsyncClient  # Maria's advocate
    bob: httpx.AsyncClient  # John's advocate
    alice_staff: Staff
    bob_staff: Staff
    maria_case: int
    john_case: int


@pytest.fixture
async def office(make_staff, make_case, api_client: ApiClientFactory) -> Office:
    alice_staff = await make_staff("advocate", name="Alice")
    bob_staff = await make_staff("advocate", name="Bob")
    supervisor = await make_staff("supervisor", name="Sam")
    maria = await make_case(phone=MARIA, assignee=alice_staff)
    john = await make_case(phone=JOHN, assignee=bob_staff, name="John Smith")
    return Office(
        supervisor=await api_client(supervisor),
        alice=await api_client(alice_staff),
        bob=await api_client(bob_staff),
        alice_staff=alice_staff,
        bob_staff=bob_staff,
        maria_case=maria.case_id,
        john_case=john.case_id,
    )


async def mms_stored(
    http: httpx.AsyncClient,
    fake_twilio: FakeTwilio,
    events: Subscription,
    files: Sequence[tuple[bytes, str]],
    from_number: str = MARIA,
) -> Message:
    """An MMS through the webhook, its attachments fetched from Twilio and stored."""
    media = [(fake_twilio.add_media(content, kind), kind) for content, kind in files]
    message = await mms_in(http, media, from_number, "Here is the notice")
    for _ in files:
        await next_event(events, MediaChanged)
    return message


# ---------------------------------------------------------------- tokens and unknown ids


NEW_CALLS = [
    ("GET", "/api/v1/cases/1/notes"),
    ("GET", "/api/v1/cases/1/documents"),
    ("GET", "/api/v1/alerts"),
    ("POST", "/api/v1/alerts/1/dismiss"),
    ("GET", "/api/v1/media/1"),
    ("POST", "/api/v1/messages/1/links"),
    ("DELETE", "/api/v1/messages/1/links/1"),
]


@pytest.mark.parametrize(("method", "path"), NEW_CALLS, ids=[f"{m} {p}" for m, p in NEW_CALLS])
async def test_every_new_call_needs_a_token(anonymous: httpx.AsyncClient, method: str, path: str) -> None:
    response = await anonymous.request(method, path)
    assert_error(response, 401)
    assert response.headers["www-authenticate"].lower().startswith("bearer")
    bad = await anonymous.request(method, path, headers={"Authorization": "Bearer not-a-token"})
    assert_error(bad, 401)


async def test_unknown_ids_are_404(office: Office) -> None:
    for method, path in [
        ("GET", "/api/v1/cases/999999/notes"),
        ("GET", "/api/v1/cases/999999/documents"),
        ("POST", "/api/v1/alerts/999999/dismiss"),
        ("GET", "/api/v1/media/999999"),
        ("POST", "/api/v1/messages/999999/links"),
        ("DELETE", "/api/v1/messages/999999/links/1"),
    ]:
        kwargs = {"json": {"case_id": office.maria_case}} if method == "POST" else {}
        assert_error(await office.supervisor.request(method, path, **kwargs), 404)


async def test_the_served_document_lists_the_new_calls(anonymous: httpx.AsyncClient) -> None:
    document = (await anonymous.get("/api/v1/openapi.json")).json()
    assert document == OPENAPI
    for path in (
        "/cases/{case_id}/notes",
        "/cases/{case_id}/documents",
        "/alerts",
        "/alerts/{alert_id}/dismiss",
        "/media/{media_id}",
    ):
        assert path in document["paths"], path


# ---------------------------------------------------------------- case notes


async def test_case_notes_are_newest_first_and_paged(office: Office, anonymous: httpx.AsyncClient) -> None:
    texts = [await text_in(anonymous, body=f"message {n}") for n in range(3)]

    response = await office.alice.get(f"/api/v1/cases/{office.maria_case}/notes")

    assert response.status_code == 200
    notes = response.json()
    assert [n["message_id"] for n in notes] == [t.id for t in reversed(texts)]
    note = notes[0]
    assert set(note) == {"id", "case_id", "message_id", "author", "body", "at"}
    assert (note["case_id"], note["body"], note["author"]) == (
        office.maria_case,
        "message 2",
        "Maria Lopez (text from (404) 538-7319)",
    )
    assert_iso_with_offset(note["at"])
    first_page = (await office.alice.get(f"/api/v1/cases/{office.maria_case}/notes", params={"limit": 2})).json()
    assert [n["message_id"] for n in first_page] == [texts[2].id, texts[1].id]
    rest = (
        await office.alice.get(
            f"/api/v1/cases/{office.maria_case}/notes", params={"limit": 2, "before": first_page[-1]["id"]}
        )
    ).json()
    assert [n["message_id"] for n in rest] == [texts[0].id]
    assert_error(await office.alice.get(f"/api/v1/cases/{office.maria_case}/notes", params={"before": "x"}), 422)


async def test_an_advocate_cannot_read_the_notes_of_a_case_not_theirs(
    office: Office, anonymous: httpx.AsyncClient
) -> None:
    await text_in(anonymous, JOHN, "private to John's case")

    refused = await office.alice.get(f"/api/v1/cases/{office.john_case}/notes")

    assert_error(refused, 404)
    assert "private" not in refused.text
    assert len((await office.bob.get(f"/api/v1/cases/{office.john_case}/notes")).json()) == 1
    assert len((await office.supervisor.get(f"/api/v1/cases/{office.john_case}/notes")).json()) == 1


# ---------------------------------------------------------------- documents and attachments


async def test_documents_of_a_case_are_the_stored_attachments_of_its_texts(
    office: Office, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, bus_events: Subscription
) -> None:
    first = await mms_stored(anonymous, fake_twilio, bus_events, [(PDF, "application/pdf")])
    second = await mms_stored(anonymous, fake_twilio, bus_events, [(PNG, "image/png")])
    await mms_stored(anonymous, fake_twilio, bus_events, [(PNG, "image/png")], from_number=JOHN)

    response = await office.alice.get(f"/api/v1/cases/{office.maria_case}/documents")

    assert response.status_code == 200
    documents = response.json()
    assert [d["message_id"] for d in documents] == [second.id, first.id]
    photo = documents[0]
    assert set(photo) == {"id", "message_id", "content_type", "size", "filename", "url", "created_at"}
    assert (photo["content_type"], photo["size"], photo["filename"]) == (
        "image/png",
        len(PNG),
        f"photo-{second.id}-1.png",
    )
    assert photo["url"] == f"/api/v1/media/{photo['id']}"
    assert_iso_with_offset(photo["created_at"])
    paged = (
        await office.alice.get(
            f"/api/v1/cases/{office.maria_case}/documents", params={"limit": 1, "before": photo["id"]}
        )
    ).json()
    assert [d["message_id"] for d in paged] == [first.id]
    assert_error(await office.alice.get(f"/api/v1/cases/{office.john_case}/documents"), 404)
    assert [
        d["message_id"] for d in (await office.supervisor.get(f"/api/v1/cases/{office.maria_case}/documents")).json()
    ] == [second.id, first.id]


async def test_a_message_lists_its_attachments_and_their_urls_serve_the_files(
    office: Office, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, bus_events: Subscription
) -> None:
    message = await mms_stored(anonymous, fake_twilio, bus_events, [(PNG, "image/png"), (PDF, "application/pdf")])

    body = (await office.alice.get(f"/api/v1/messages/{message.id}")).json()

    rows = await Media.filter(message_id=message.id).order_by("position")
    assert body["media"] == [
        {
            "id": rows[0].id,
            "content_type": "image/png",
            "size": len(PNG),
            "url": f"/api/v1/media/{rows[0].id}",
            "status": "stored",
        },
        {
            "id": rows[1].id,
            "content_type": "application/pdf",
            "size": len(PDF),
            "url": f"/api/v1/media/{rows[1].id}",
            "status": "stored",
        },
    ]
    photo = await office.alice.get(body["media"][0]["url"])
    assert photo.status_code == 200 and photo.content == PNG
    assert photo.headers["content-type"] == "image/png"
    assert photo.headers["x-content-type-options"] == "nosniff"
    pdf = await office.supervisor.get(body["media"][1]["url"])
    assert pdf.status_code == 200 and pdf.content == PDF and pdf.headers["content-type"] == "application/pdf"


async def test_an_advocate_cannot_fetch_attachments_of_others(
    office: Office, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, bus_events: Subscription
) -> None:
    johns = await mms_stored(anonymous, fake_twilio, bus_events, [(PNG, "image/png")], from_number=JOHN)
    [photo] = await Media.filter(message_id=johns.id)

    refused = await office.alice.get(f"/api/v1/media/{photo.id}")

    assert_error(refused, 404)
    assert PNG not in refused.content
    assert_error(await office.alice.get(f"/api/v1/messages/{johns.id}"), 404)
    assert (await office.bob.get(f"/api/v1/media/{photo.id}")).content == PNG


async def test_attachments_not_stored_are_listed_but_not_served(
    office: Office, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, bus_events: Subscription
) -> None:
    files = [(PNG, "image/png")] * 11  # one more than a text may carry
    message = await text_in(anonymous, media=[(fake_twilio.add_media(content, kind), kind) for content, kind in files])
    for _ in range(10):
        await next_event(bus_events, MediaChanged)

    body = (await office.alice.get(f"/api/v1/messages/{message.id}")).json()

    assert [item["status"] for item in body["media"]] == ["stored"] * 10 + ["refused"]
    refused = body["media"][10]
    assert refused["content_type"] == "image/png"  # as declared: never fetched
    assert_error(await office.alice.get(refused["url"]), 404)
    assert refused["id"] not in [
        d["id"] for d in (await office.alice.get(f"/api/v1/cases/{office.maria_case}/documents")).json()
    ]


async def test_an_advocate_may_fetch_a_document_of_their_case_from_a_number_no_longer_on_record(
    office: Office, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, bus_events: Subscription
) -> None:
    """The case texted the old number, so the old number's texts are still filed on it: its documents
    are listed on the case, and every listed document opens."""
    sent = await office.alice.post(
        "/api/v1/messages", json={"case_id": office.maria_case, "body": "Send me the notice"}
    )
    assert sent.status_code == 201, sent.text
    await ClientPhone.filter(number=MARIA).update(number="+14045550999")  # Maria's number changed
    message = await mms_stored(anonymous, fake_twilio, bus_events, [(PNG, "image/png")])

    assert_error(await office.alice.get(f"/api/v1/messages/{message.id}"), 404)  # not her conversation any more
    documents = (await office.alice.get(f"/api/v1/cases/{office.maria_case}/documents")).json()
    assert [d["message_id"] for d in documents] == [message.id]
    assert (await office.alice.get(documents[0]["url"])).content == PNG
    assert_error(await office.bob.get(documents[0]["url"]), 404)


# ---------------------------------------------------------------- alerts


async def test_alerts_list_what_is_addressed_to_the_caller_newest_first(
    office: Office, anonymous: httpx.AsyncClient
) -> None:
    first = await text_in(anonymous, MARIA, "one")
    johns = await text_in(anonymous, JOHN, "two")
    second = await text_in(anonymous, MARIA, "three")

    mine = (await office.alice.get("/api/v1/alerts")).json()
    everything = (await office.supervisor.get("/api/v1/alerts")).json()

    # Maria's two texts wait on one alert: it counts them and names the latest.
    assert [(a["message_id"], a["case_id"], a["count"]) for a in mine] == [(second.id, office.maria_case, 2)]
    alert = mine[0]
    assert set(alert) == {
        "id",
        "case_id",
        "message_id",
        "count",
        "assignee_emails",
        "created_at",
        "dismissed_at",
        "dismissed_by",
    }
    assert alert["assignee_emails"] == [office.alice_staff.email]
    assert (alert["dismissed_at"], alert["dismissed_by"]) == (None, None)
    assert_iso_with_offset(alert["created_at"])
    assert [a["message_id"] for a in (await office.bob.get("/api/v1/alerts")).json()] == [johns.id]
    assert [a["message_id"] for a in everything] == [johns.id, second.id]
    page = (await office.supervisor.get("/api/v1/alerts", params={"limit": 1})).json()
    assert [a["message_id"] for a in page] == [johns.id]
    rest = (await office.supervisor.get("/api/v1/alerts", params={"limit": 1, "before": page[-1]["id"]})).json()
    assert [(a["message_id"], a["count"]) for a in rest] == [(second.id, 2)]
    assert first.id < second.id


async def test_alerts_follow_the_alert_policy(
    office: Office, anonymous: httpx.AsyncClient, make_staff, api_client: ApiClientFactory
) -> None:
    carol_staff = await make_staff("advocate", name="Carol")
    carol = await api_client(carol_staff)
    assigned = await office.supervisor.post(
        "/api/v1/assignments", json={"case_id": office.maria_case, "staff_email": carol_staff.email, "primary": False}
    )
    assert assigned.status_code == 201

    primary_only = await text_in(anonymous, MARIA, "under the primary policy")
    await Organisation.filter().update(alert_policy="all")
    settings_cache.forget()  # written past the services: this process's copy is stale
    everyone = await text_in(anonymous, MARIA, "under the all-assignees policy")

    # The second text is counted on the first one's alert, which is now addressed to Carol too.
    assert [a["message_id"] for a in (await carol.get("/api/v1/alerts")).json()] == [everyone.id]
    alices = (await office.alice.get("/api/v1/alerts")).json()
    assert [(a["message_id"], a["count"]) for a in alices] == [(everyone.id, 2)]
    assert alices[0]["assignee_emails"] == sorted([office.alice_staff.email, carol_staff.email])
    assert primary_only.id < everyone.id


async def test_dismissing_clears_the_alert_for_everyone_and_twice_is_fine(
    app: Starlette, office: Office, anonymous: httpx.AsyncClient, bus_events: Subscription
) -> None:
    await text_in(anonymous, MARIA)
    [alert] = (await office.alice.get("/api/v1/alerts")).json()

    response = await office.alice.post(f"/api/v1/alerts/{alert['id']}/dismiss")

    assert response.status_code == 200, response.text
    dismissed = response.json()
    assert dismissed["id"] == alert["id"] and dismissed["dismissed_by"] == office.alice_staff.email
    assert_iso_with_offset(dismissed["dismissed_at"])
    event = await next_event(bus_events, AlertDismissed)
    assert (event.alert_id, event.case_id) == (alert["id"], office.maria_case)
    assert (await office.alice.get("/api/v1/alerts")).json() == []
    assert (await office.supervisor.get("/api/v1/alerts")).json() == []

    again = await office.supervisor.post(f"/api/v1/alerts/{alert['id']}/dismiss")
    assert again.status_code == 200
    assert again.json() == dismissed  # the first dismissal stands
    # No second alert.dismissed: everything published before this marker has arrived, and none was one.
    await app.state.bus.publish(SessionEnded(session_id="marker"))
    between = []
    async with asyncio.timeout(WAIT_SECONDS):
        while not isinstance(event := await bus_events.get(), SessionEnded):
            between.append(event)
    assert not any(isinstance(e, AlertDismissed) for e in between)


async def test_an_advocate_cannot_see_or_dismiss_alerts_of_cases_not_theirs(
    office: Office, anonymous: httpx.AsyncClient
) -> None:
    await text_in(anonymous, JOHN)
    [johns] = (await office.bob.get("/api/v1/alerts")).json()

    assert (await office.alice.get("/api/v1/alerts")).json() == []
    assert_error(await office.alice.post(f"/api/v1/alerts/{johns['id']}/dismiss"), 404)
    assert (await Alert.get(id=johns["id"])).dismissed_at is None


async def test_an_ended_assignment_hides_the_alerts_it_was_sent(office: Office, anonymous: httpx.AsyncClient) -> None:
    await text_in(anonymous, MARIA)
    [alert] = (await office.alice.get("/api/v1/alerts")).json()

    await Assignment.filter(staff_id=office.alice_staff.id).update(
        start=date.today() - timedelta(days=30), end=date.today()
    )

    assert (await office.alice.get("/api/v1/alerts")).json() == []
    assert_error(await office.alice.post(f"/api/v1/alerts/{alert['id']}/dismiss"), 404)
    assert [a["id"] for a in (await office.supervisor.get("/api/v1/alerts")).json()] == [alert["id"]]


async def test_manual_links_do_not_raise_alerts(office: Office, anonymous: httpx.AsyncClient) -> None:
    message = await text_in(anonymous, JOHN, "also about Maria's case")
    await Alert.all().update(dismissed_at=datetime.now().astimezone())

    response = await office.supervisor.post(f"/api/v1/messages/{message.id}/links", json={"case_id": office.maria_case})

    assert response.status_code == 201
    assert (await office.alice.get("/api/v1/alerts")).json() == []
    assert await linking.case_ids_of(message.id) == [office.john_case, office.maria_case]
