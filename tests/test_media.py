"""MMS: attachments fetched from a Twilio-compatible server after the webhook is answered, stored by
hash, shown in the bubble and on cases, served safely to those who may see them; and attachments sent
out through a signed, expiring URL that serves only that file."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from inbox import clock
from inbox.events import Bus, MediaChanged, Subscription
from inbox.models import Conversation, Media, MediaStatus, Message, Organisation
from inbox.services import media as media_service
from inbox.services.media import MAX_ATTEMPTS, documents_of_case, fetch_due_media
from inbox.settings import Settings
from tests.support.attachments import PDF, PNG, png
from tests.support.config import PUBLIC_URL
from tests.support.events import next_event
from tests.support.fake_twilio import FakeTwilio
from tests.support.records import MARIA
from tests.support.servers import serve_asgi
from tests.support.webhooks import mms_in, mms_params, new_sid, signed_post_args

JOHN = "+14045550142"

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x11" * 2000
HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"


async def media_of(message: Message) -> list[Media]:
    return await Media.filter(message_id=message.id).order_by("position")


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


async def retry_round(app: Starlette, settings: Settings, rounds_ahead: int) -> int:
    """The worker's retry round, run as if `rounds_ahead` hours had passed (every backoff is due)."""
    at = clock.now() + timedelta(hours=2 * rounds_ahead)
    return await fetch_due_media(app.state.provider, settings.media_dir, app.state.bus, at=at)


# ---------------------------------------------------------------- MMS in


async def test_every_item_is_fetched_with_basic_auth_through_the_redirect_and_stored_once_by_hash(
    app: Starlette,
    anonymous: httpx.AsyncClient,
    fake_twilio: FakeTwilio,
    settings: Settings,
    bus_events: Subscription,
    make_case,
) -> None:
    await make_case(phone=MARIA)
    urls = [
        (fake_twilio.add_media(PNG, "image/png"), "image/png"),
        (fake_twilio.add_media(PDF, "application/pdf"), "application/pdf"),
        (fake_twilio.add_media(PNG, "image/png"), "image/png"),  # the same photo twice
        (fake_twilio.add_media(JPEG, "image/jpeg"), "image/jpeg"),
    ]

    message = await mms_in(anonymous, urls, body="Here is the notice")

    events = [await next_event(bus_events, MediaChanged) for _ in urls]
    rows = await media_of(message)
    assert {e.media_id for e in events} == {m.id for m in rows}
    assert all(
        e.status == "stored" and e.message_id == message.id and e.conversation_id == message.conversation_id
        for e in events
    )
    assert [m.status for m in rows] == [MediaStatus.STORED] * 4
    assert [m.content_type for m in rows] == ["image/png", "application/pdf", "image/png", "image/jpeg"]
    assert [m.size for m in rows] == [len(PNG), len(PDF), len(PNG), len(JPEG)]
    assert [m.sha256 for m in rows] == [hashlib.sha256(c).hexdigest() for c in (PNG, PDF, PNG, JPEG)]
    assert [m.filename for m in rows] == [
        f"photo-{message.id}-1.png",
        f"document-{message.id}-2.pdf",
        f"photo-{message.id}-3.png",
        f"photo-{message.id}-4.jpg",
    ]
    # Content-addressed: three distinct files for four items, each at <sha[:2]>/<sha>.
    stored = files_under(settings.media_dir)
    assert stored == sorted({settings.media_dir / m.sha256[:2] / m.sha256 for m in rows if m.sha256})
    assert len(stored) == 3
    assert (settings.media_dir / rows[1].sha256[:2] / rows[1].sha256).read_bytes() == PDF
    assert len(fake_twilio.media_fetches) == 4


async def test_downloads_start_after_the_webhook_is_answered(
    app: Starlette, fake_twilio: FakeTwilio, bus_events: Subscription, make_case
) -> None:
    """Over real HTTP: the TwiML answer arrives while Twilio's media server is still holding the download."""
    await make_case(phone=MARIA)
    fake_twilio.media_gate = asyncio.Event()
    url = fake_twilio.add_media(PNG, "image/png")
    sid = new_sid("MM")
    async with serve_asgi(app, lifespan="off") as base_url, httpx.AsyncClient(base_url=base_url) as client:
        args = signed_post_args("/webhooks/twilio/messages", mms_params(sid, MARIA, "", [(url, "image/png")]))
        answer = await client.post(**args)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/xml")
        message = await Message.get(provider_sid=sid)
        assert [m.status for m in await media_of(message)] == [MediaStatus.PENDING]

        fake_twilio.media_gate.set()
        event = await next_event(bus_events, MediaChanged)

    assert event.status == "stored"
    assert (await Media.get(id=event.media_id)).sha256 == hashlib.sha256(PNG).hexdigest()


async def test_the_bubble_shows_photos_inline_and_other_files_as_downloads(
    app: Starlette, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, signed_in, make_staff, make_case
) -> None:
    alice = await make_staff("advocate", name="Alice")
    await make_case(phone=MARIA, assignee=alice)
    message = await mms_in(
        anonymous,
        [
            (fake_twilio.add_media(PNG, "image/png"), "image/png"),
            (fake_twilio.add_media(PDF, "application/pdf"), "application/pdf"),
        ],
    )
    photo, document = await media_of(message)

    page = await (await signed_in(alice)).get(f"/conversations/{message.conversation_id}")

    assert page.status_code == 200
    assert f'<img src="/media/{photo.id}" alt="Photo from the client"' in page.text
    assert f'<a href="/media/{photo.id}"' in page.text
    assert f'href="/media/{document.id}"' in page.text and f"document-{message.id}-2.pdf" in page.text
    assert f'<img src="/media/{document.id}"' not in page.text
    assert "application/pdf" in page.text and f"{len(PDF)} Bytes" in page.text
    preview = await Conversation.get(id=message.conversation_id)
    assert preview.last_message_preview == "📎 Attachment"


async def test_wrong_credentials_are_a_visible_failed_attempt_retried_until_they_work(
    app: Starlette,
    anonymous: httpx.AsyncClient,
    fake_twilio: FakeTwilio,
    settings: Settings,
    signed_in,
    make_staff,
    make_case,
) -> None:
    sam = await make_staff("supervisor")
    await make_case(phone=MARIA)
    url = fake_twilio.add_media(PNG, "image/png")
    fake_twilio.auth_token = "rotated-in-the-console"  # our stored token no longer works

    message = await mms_in(anonymous, [(url, "image/png")])

    [item] = await media_of(message)
    assert item.status == MediaStatus.PENDING and item.attempts == 1
    assert item.error and "Twilio refused our credentials (HTTP 401)" in item.error
    assert "Attempt 1 of 5" in item.error
    page = await (await signed_in(sam)).get(f"/conversations/{message.conversation_id}")
    assert "Downloading attachment…" in page.text and "Twilio refused our credentials" in page.text
    # Not due yet: a retry round now does nothing.
    assert await fetch_due_media(app.state.provider, settings.media_dir, app.state.bus) == 0

    assert await retry_round(app, settings, 1) == 1
    assert (await Media.get(id=item.id)).attempts == 2

    fake_twilio.auth_token = settings.twilio_auth_token  # the admin fixed it
    assert await retry_round(app, settings, 2) == 1
    stored = await Media.get(id=item.id)
    assert stored.status == MediaStatus.STORED and stored.error is None and stored.attempts == 3


async def test_a_download_that_keeps_failing_ends_failed_with_the_reason_in_the_bubble(
    app: Starlette,
    anonymous: httpx.AsyncClient,
    fake_twilio: FakeTwilio,
    settings: Settings,
    bus_events: Subscription,
    signed_in,
    make_staff,
    make_case,
) -> None:
    sam = await make_staff("supervisor")
    await make_case(phone=MARIA)
    url = fake_twilio.add_media(PNG, "image/png")
    fake_twilio.auth_token = "rotated-in-the-console"

    message = await mms_in(anonymous, [(url, "image/png")])
    for n in range(1, MAX_ATTEMPTS):
        assert await retry_round(app, settings, n) == 1
    assert await retry_round(app, settings, MAX_ATTEMPTS + 1) == 0  # nothing left to try

    [item] = await media_of(message)
    assert item.status == MediaStatus.FAILED and item.attempts == MAX_ATTEMPTS and item.next_attempt_at is None
    assert item.error == (
        "Could not be downloaded after 5 attempts: Twilio refused our credentials (HTTP 401); "
        "check the account SID and auth token of this sending number."
    )
    statuses = [(await next_event(bus_events, MediaChanged)).status for _ in range(MAX_ATTEMPTS)]
    assert statuses == ["pending"] * (MAX_ATTEMPTS - 1) + ["failed"]
    page = await (await signed_in(sam)).get(f"/conversations/{message.conversation_id}")
    assert "⚠ Could not be downloaded after 5 attempts: Twilio refused our credentials" in page.text
    assert files_under(settings.media_dir) == []


async def test_an_oversized_item_is_refused_with_a_note_and_the_rest_are_kept(
    app: Starlette, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, settings: Settings, make_case
) -> None:
    await make_case(phone=MARIA)
    big = fake_twilio.add_media(b"\xff\xd8\xff" + b"\0" * (5 * 1024 * 1024), "image/jpeg")
    small = fake_twilio.add_media(PNG, "image/png")

    message = await mms_in(anonymous, [(big, "image/jpeg"), (small, "image/png")], body="two photos")

    refused, kept = await media_of(message)
    assert refused.status == MediaStatus.REFUSED and refused.error == "Not kept: larger than the 5 MB limit."
    assert refused.attempts == 1 and refused.sha256 is None
    assert kept.status == MediaStatus.STORED
    assert files_under(settings.media_dir) == [settings.media_dir / kept.sha256[:2] / kept.sha256]


async def test_more_than_ten_items_keeps_ten_and_notes_the_rest(
    app: Starlette, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, make_case
) -> None:
    await make_case(phone=MARIA)
    urls = [(fake_twilio.add_media(PNG + bytes([n]), "image/png"), "image/png") for n in range(11)]

    message = await mms_in(anonymous, urls)

    rows = await media_of(message)
    assert [m.status for m in rows] == [MediaStatus.STORED] * 10 + [MediaStatus.REFUSED]
    assert rows[10].error == "Not kept: a text carries at most 10 attachments."
    assert len(fake_twilio.media_fetches) == 10


async def test_a_content_type_that_lies_is_stored_as_what_the_bytes_are_and_never_served_as_html(
    app: Starlette, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, signed_in, make_staff, make_case
) -> None:
    sam = await make_staff("supervisor")
    await make_case(phone=MARIA)
    message = await mms_in(
        anonymous,
        [
            (fake_twilio.add_media(HTML, "image/png"), "image/png"),  # says PNG, is a web page
            (fake_twilio.add_media(PNG, "text/html"), "text/html"),  # says HTML, is a PNG
        ],
    )
    page_in_disguise, real_png = await media_of(message)
    assert (page_in_disguise.declared_type, page_in_disguise.content_type) == ("image/png", "application/octet-stream")
    assert page_in_disguise.filename == f"attachment-{message.id}-1.bin"
    assert (real_png.declared_type, real_png.content_type) == ("text/html", "image/png")
    staff = await signed_in(sam)

    download = await staff.get(f"/media/{page_in_disguise.id}")

    assert download.status_code == 200 and download.content == HTML
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"] == f'attachment; filename="attachment-{message.id}-1.bin"'
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in download.headers["content-security-policy"]
    assert "sandbox" in download.headers["content-security-policy"]
    photo = await staff.get(f"/media/{real_png.id}")
    assert photo.headers["content-type"] == "image/png" and photo.content == PNG
    assert photo.headers["content-disposition"] == f'inline; filename="photo-{message.id}-2.png"'
    assert photo.headers["x-content-type-options"] == "nosniff"
    thread = await staff.get(f"/conversations/{message.conversation_id}")
    assert f'<img src="/media/{page_in_disguise.id}"' not in thread.text
    assert f'<img src="/media/{real_png.id}"' in thread.text


async def test_a_pdf_is_served_inline_with_nosniff(
    app: Starlette, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, signed_in, make_staff, make_case
) -> None:
    sam = await make_staff("supervisor")
    await make_case(phone=MARIA)
    message = await mms_in(anonymous, [(fake_twilio.add_media(PDF, "application/pdf"), "application/pdf")])
    [document] = await media_of(message)

    response = await (await signed_in(sam)).get(f"/media/{document.id}")

    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == f'inline; filename="document-{message.id}-1.pdf"'
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "default-src 'none'"


async def test_names_with_dot_dot_from_the_url_or_the_storage_never_reach_the_file_system(
    app: Starlette,
    anonymous: httpx.AsyncClient,
    fake_twilio: FakeTwilio,
    settings: Settings,
    tmp_path: Path,
    signed_in,
    make_staff,
    make_case,
) -> None:
    sam = await make_staff("supervisor")
    await make_case(phone=MARIA)
    # The storage names the file "../../../evil.html", in the redirect's path and in Content-Disposition.
    named = fake_twilio.add_media(PNG, "image/png", filename="../../../evil.html")
    # A MediaUrl with ../ in it: normalised by the HTTP client, it leads nowhere useful.
    climbing = fake_twilio.add_media(JPEG, "image/jpeg") + "/../../../../../../etc/passwd"
    before = set(files_under(tmp_path))

    message = await mms_in(anonymous, [(named, "image/png"), (climbing, "image/jpeg")])

    photo, elsewhere = await media_of(message)
    assert photo.status == MediaStatus.STORED and photo.filename == f"photo-{message.id}-1.png"
    assert elsewhere.status == MediaStatus.PENDING and elsewhere.sha256 is None
    created = set(files_under(tmp_path)) - before
    assert created == {settings.media_dir / photo.sha256[:2] / photo.sha256}
    assert not any("evil" in p.name or p.name == "passwd" for p in files_under(tmp_path))
    response = await (await signed_in(sam)).get(f"/media/{photo.id}")
    assert ".." not in response.headers["content-disposition"] and "evil" not in response.headers["content-disposition"]


async def test_credentials_are_never_sent_to_a_media_url_that_is_not_twilio(
    app: Starlette, anonymous: httpx.AsyncClient, make_case
) -> None:
    await make_case(phone=MARIA)
    seen: list[str | None] = []

    async def elsewhere(scope, receive, send) -> None:  # a server that is not Twilio
        headers = dict(scope["headers"])
        seen.append(headers.get(b"authorization", b"").decode() or None)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"image/png")]})
        await send({"type": "http.response.body", "body": PNG})

    async with serve_asgi(elsewhere, lifespan="off") as base_url:
        message = await mms_in(anonymous, [(f"{base_url.replace('127.0.0.1', 'localhost')}/photo.png", "image/png")])

    [item] = await media_of(message)
    assert item.status == MediaStatus.FAILED
    assert item.error == "Not downloaded: the address is not a Twilio media address."
    assert seen == []


async def test_media_can_be_deleted_at_twilio_once_stored(
    app: Starlette, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, make_case
) -> None:
    await make_case(phone=MARIA)
    kept_at_twilio = await mms_in(anonymous, [(fake_twilio.add_media(PNG, "image/png"), "image/png")])
    assert fake_twilio.deleted_media == []
    assert (await media_of(kept_at_twilio))[0].deleted_at_provider is None

    await Organisation.all().update(delete_media_at_provider=True)
    url = fake_twilio.add_media(JPEG, "image/jpeg")
    message = await mms_in(anonymous, [(url, "image/jpeg")])

    [item] = await media_of(message)
    assert item.status == MediaStatus.STORED and item.deleted_at_provider is not None
    assert fake_twilio.deleted_media == [url.rsplit("/", 1)[1]]


# ---------------------------------------------------------------- who may fetch the files


async def test_an_advocate_cannot_fetch_media_of_cases_they_are_not_assigned_to(
    app: Starlette, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, signed_in, make_staff, make_case
) -> None:
    alice = await make_staff("advocate", name="Alice")
    bob = await make_staff("advocate", name="Bob")
    sam = await make_staff("supervisor")
    await make_case(phone=MARIA, assignee=alice)
    await make_case(phone=JOHN, assignee=bob, name="John Smith")
    message = await mms_in(anonymous, [(fake_twilio.add_media(PNG, "image/png"), "image/png")])
    [photo] = await media_of(message)

    assert (await (await signed_in(alice)).get(f"/media/{photo.id}")).content == PNG
    assert (await (await signed_in(sam)).get(f"/media/{photo.id}")).status_code == 200
    bobs = await signed_in(bob)
    refused = await bobs.get(f"/media/{photo.id}")
    assert refused.status_code == 404 and PNG not in refused.content
    assert (await bobs.get(f"/media/{photo.id + 1000}")).status_code == 404
    signed_out = await anonymous.get(f"/media/{photo.id}")
    assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/login")


async def test_media_that_is_not_stored_is_not_served(
    app: Starlette, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, signed_in, make_staff, make_case
) -> None:
    sam = await make_staff("supervisor")
    await make_case(phone=MARIA)
    urls = [(fake_twilio.add_media(PNG, "image/png"), "image/png") for _ in range(11)]
    message = await mms_in(anonymous, urls)
    refused = (await media_of(message))[10]

    assert (await (await signed_in(sam)).get(f"/media/{refused.id}")).status_code == 404


async def test_documents_of_a_case_are_its_texts_stored_attachments_newest_first(
    app: Starlette, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, make_case
) -> None:
    maria_case = await make_case(phone=MARIA)
    john_case = await make_case(phone=JOHN, name="John Smith")
    first = await mms_in(anonymous, [(fake_twilio.add_media(PDF, "application/pdf"), "application/pdf")])
    second = await mms_in(
        anonymous,
        [
            (fake_twilio.add_media(PNG, "image/png"), "image/png"),
            (fake_twilio.add_media(HTML, "image/png"), "image/png"),
        ],
    )
    johns = await mms_in(anonymous, [(fake_twilio.add_media(JPEG, "image/jpeg"), "image/jpeg")], from_number=JOHN)

    documents = await documents_of_case(maria_case.case_id)

    assert [(d.message_id, d.position) for d in documents] == [(second.id, 0), (second.id, 1), (first.id, 0)]
    assert [d.message.id for d in documents] == [second.id, second.id, first.id]
    assert [d.message_id for d in await documents_of_case(john_case.case_id)] == [johns.id]


# ---------------------------------------------------------------- MMS out


async def _conversation_with_maria(anonymous: httpx.AsyncClient, make_case, assignee) -> Conversation:
    await make_case(phone=MARIA, assignee=assignee)
    message = await mms_in(anonymous, [], body="Can I send you the notice?")
    return await Conversation.get(id=message.conversation_id)


async def test_the_composer_posts_multipart_with_an_attach_input(
    app: Starlette, anonymous: httpx.AsyncClient, signed_in, make_staff, make_case
) -> None:
    alice = await make_staff("advocate")
    conversation = await _conversation_with_maria(anonymous, make_case, alice)

    page = await (await signed_in(alice)).get(f"/conversations/{conversation.id}")

    assert 'enctype="multipart/form-data"' in page.text
    accepted = "image/jpeg,image/png,image/gif,image/webp,application/pdf"
    assert f'<input type="file" name="attachment" accept="{accepted}" class="sr-only"' in page.text


async def test_an_attached_photo_reaches_twilio_as_a_signed_url_that_serves_only_that_file(
    app: Starlette,
    anonymous: httpx.AsyncClient,
    fake_twilio: FakeTwilio,
    settings: Settings,
    signed_in,
    make_staff,
    make_case,
) -> None:
    alice = await make_staff("advocate")
    conversation = await _conversation_with_maria(anonymous, make_case, alice)
    staff = await signed_in(alice)
    await staff.get(f"/conversations/{conversation.id}")

    sent = await staff.post(
        f"/conversations/{conversation.id}/messages",
        {"body": ""},
        files={"attachment": ("my photo.png", PNG, "image/png")},
        headers={"HX-Request": "true"},
    )

    assert sent.status_code == 200, sent.text
    message = await Message.filter(conversation_id=conversation.id, direction="outbound").get()
    assert message.body == "" and message.provider_sid and message.provider_sid.startswith("MM")
    [item] = await media_of(message)
    assert (item.status, item.content_type, item.size) == (MediaStatus.STORED, "image/png", len(PNG))
    assert item.filename == f"photo-{message.id}-1.png"
    [media_url] = fake_twilio.requests[-1]["MediaUrl"]
    assert "Body" not in fake_twilio.requests[-1]
    parts = urlsplit(media_url)
    assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_URL and parts.path == f"/media/public/{item.id}"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert set(query) == {"expires", "signature"}
    assert int(query["expires"]) > clock.now().timestamp() + 23 * 3600

    # Twilio, with no session, fetches exactly that URL.
    fetched = await anonymous.get(f"{parts.path}?{parts.query}")
    assert fetched.status_code == 200 and fetched.content == PNG
    assert fetched.headers["content-type"] == "image/png"
    assert fetched.headers["x-content-type-options"] == "nosniff"

    # Another file, a forged or altered signature, a moved expiry: refused.
    other = await Media.create(
        message=message,
        position=1,
        content_type="image/png",
        size=len(PNG),
        sha256=item.sha256,
        status=MediaStatus.STORED,
    )
    assert (await anonymous.get(f"/media/public/{other.id}?{parts.query}")).status_code == 403
    forged = media_service.media_signature("not-our-key", item.id, int(query["expires"]))
    assert (await anonymous.get(f"{parts.path}?expires={query['expires']}&signature={forged}")).status_code == 403
    later = int(query["expires"]) + 3600
    assert (await anonymous.get(f"{parts.path}?expires={later}&signature={query['signature']}")).status_code == 403
    assert (await anonymous.get(parts.path)).status_code == 403
    expired = media_service.public_url_of(
        PUBLIC_URL, str(settings.secret_key), item.id, moment=clock.now() - timedelta(hours=25)
    )
    expired_parts = urlsplit(expired)
    assert (await anonymous.get(f"{expired_parts.path}?{expired_parts.query}")).status_code == 403

    # The bubble shows the photo to staff.
    thread = await staff.get(f"/conversations/{conversation.id}")
    assert f'<img src="/media/{item.id}" alt="Photo sent to the client"' in thread.text


async def test_inbound_media_is_never_served_by_signed_url(
    app: Starlette, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, settings: Settings, make_case
) -> None:
    await make_case(phone=MARIA)
    message = await mms_in(anonymous, [(fake_twilio.add_media(PNG, "image/png"), "image/png")])
    [photo] = await media_of(message)
    url = urlsplit(media_service.public_url_of(PUBLIC_URL, str(settings.secret_key), photo.id))

    assert (await anonymous.get(f"{url.path}?{url.query}")).status_code == 403


async def test_a_pdf_with_text_is_sent_with_both(
    app: Starlette, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, signed_in, make_staff, make_case
) -> None:
    alice = await make_staff("advocate")
    conversation = await _conversation_with_maria(anonymous, make_case, alice)
    staff = await signed_in(alice)
    await staff.get(f"/conversations/{conversation.id}")

    sent = await staff.post(
        f"/conversations/{conversation.id}/messages",
        {"body": "Your notice is attached."},
        files={"attachment": ("notice.pdf", PDF, "application/pdf")},
    )

    assert sent.status_code == 200
    assert fake_twilio.requests[-1]["Body"] == "Your notice is attached."
    assert len(fake_twilio.requests[-1]["MediaUrl"]) == 1
    message = await Message.filter(conversation_id=conversation.id, direction="outbound").get()
    assert [m.content_type for m in await media_of(message)] == ["application/pdf"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (HTML, "Only photos (JPEG, PNG, GIF, WebP) and PDF documents can be attached to a text."),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * (5 * 1024 * 1024), "Attachments are limited to 5 MB; choose a smaller file."),
    ],
    ids=["html-named-png", "over-5-mb"],
)
async def test_a_refused_attachment_answers_422_keeps_the_text_and_sends_nothing(
    app: Starlette,
    anonymous: httpx.AsyncClient,
    fake_twilio: FakeTwilio,
    signed_in,
    make_staff,
    make_case,
    content: bytes,
    reason: str,
) -> None:
    alice = await make_staff("advocate")
    conversation = await _conversation_with_maria(anonymous, make_case, alice)
    staff = await signed_in(alice)
    await staff.get(f"/conversations/{conversation.id}")

    refused = await staff.post(
        f"/conversations/{conversation.id}/messages",
        {"body": "See the photo"},
        files={"attachment": ("photo.png", content, "image/png")},
        headers={"HX-Request": "true"},
    )

    assert refused.status_code == 422
    assert reason in refused.text
    assert ">See the photo</textarea>" in refused.text
    assert not await Message.exists(conversation_id=conversation.id, direction="outbound")
    assert fake_twilio.requests == []


async def test_an_empty_file_input_sends_a_plain_text(
    app: Starlette, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, signed_in, make_staff, make_case
) -> None:
    alice = await make_staff("advocate")
    conversation = await _conversation_with_maria(anonymous, make_case, alice)
    staff = await signed_in(alice)
    await staff.get(f"/conversations/{conversation.id}")

    sent = await staff.post(
        f"/conversations/{conversation.id}/messages",
        {"body": "Yes, please."},
        files={"attachment": ("", b"", "application/octet-stream")},
    )

    assert sent.status_code == 200
    assert "MediaUrl" not in fake_twilio.requests[-1]
    empty = await staff.post(
        f"/conversations/{conversation.id}/messages",
        {"body": ""},
        files={"attachment": ("", b"", "application/octet-stream")},
    )
    assert empty.status_code == 422 and "Write a message before sending." in empty.text


# ---------------------------------------------------------------- sniffing, by itself


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (b"GIF89a" + b"\0" * 10, "image/gif"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "image/webp"),
        (PDF, "application/pdf"),
        (b"\0\0\0\x18ftypheic\0\0\0\0", "image/heic"),
        (b"\0\0\0\x18ftyp3gp4\0\0\0\0", "video/3gpp"),
        (b"\0\0\0\x18ftypisom\0\0\0\0", "video/mp4"),
        (b"#!AMR\n", "audio/amr"),
        (b"BEGIN:VCARD\r\nVERSION:3.0\r\n", "text/vcard"),
        (HTML, "application/octet-stream"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "application/octet-stream"),
        (b"", "application/octet-stream"),
    ],
)
def test_sniff_type_trusts_only_the_bytes(content: bytes, expected: str) -> None:
    assert media_service.sniff_type(content) == expected


def test_storage_paths_are_only_ever_hashes(tmp_path: Path) -> None:
    sha = hashlib.sha256(b"x").hexdigest()
    assert media_service.storage_path(tmp_path, sha) == tmp_path / sha[:2] / sha
    for bad in ("../../etc/passwd", sha[:-1] + "/", sha.upper()):
        with pytest.raises(ValueError):
            media_service.storage_path(tmp_path, bad)


async def test_bus_round_trips_the_media_event() -> None:
    bus = Bus()
    async with bus.subscribe() as subscription:
        await bus.publish(MediaChanged(message_id=1, conversation_id=2, media_id=3, status="stored"))
        assert await subscription.get() == MediaChanged(message_id=1, conversation_id=2, media_id=3, status="stored")


# A JPEG's segments up to its frame header: SOI, an APP0 (JFIF) segment, SOF0 (8 bits, 480 high, 640 wide).
JFIF_640_480 = (
    b"\xff\xd8" + b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    b"\xff\xc0\x00\x11\x08\x01\xe0\x02\x80\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
)


WEBP_EXTENDED = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0"  # then width - 1 and height - 1, 24 bits each


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (png(300, 900), (300, 900)),
        (JFIF_640_480, (640, 480)),
        (b"GIF89a\x03\x00\x02\x00" + b"\0" * 10, (3, 2)),
        (WEBP_EXTENDED + (1023).to_bytes(3, "little") + (767).to_bytes(3, "little"), (1024, 768)),
        (b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f" + (99 | (49 << 14)).to_bytes(4, "little"), (100, 50)),
        (png(0, 0), None),  # a photo has pixels
        (PNG, None),  # the signature alone: no header to read
        (b"\xff\xd8\xff\xe0\x00", None),  # cut off before the frame header
        (PDF, None),
        (b"", None),
    ],
)
def test_a_photos_size_is_read_from_its_header(content: bytes, expected: tuple[int, int] | None) -> None:
    assert media_service.image_size(content) == expected


async def test_a_stored_photo_keeps_its_size_and_the_bubble_reserves_its_box(
    app: Starlette, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, signed_in, make_staff, make_case
) -> None:
    alice = await make_staff("advocate", name="Alice")
    await make_case(phone=MARIA, assignee=alice)
    message = await mms_in(anonymous, [(fake_twilio.add_media(png(300, 900), "image/png"), "image/png")])
    (photo,) = await media_of(message)
    assert (photo.width, photo.height) == (300, 900)

    page = await (await signed_in(alice)).get(f"/conversations/{message.conversation_id}")

    assert f'<img src="/media/{photo.id}"' in page.text
    assert 'width="300" height="900"' in page.text
