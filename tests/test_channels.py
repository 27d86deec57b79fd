"""Sending numbers: the admin pages, the token encrypted at rest, one provider per channel, webhooks
validated with each channel's own token, voice calls, automatic replies and test texts."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.applications import Starlette
from tortoise import Tortoise

from inbox.crypto import SecretBox, SecretUnreadable
from inbox.models import (
    AutoReplyMode,
    Case,
    Channel,
    ClientPhone,
    Conversation,
    Direction,
    Media,
    MediaStatus,
    Message,
    MessagePurpose,
    MessageStatus,
    Office,
    Staff,
    WebhookPayload,
)
from inbox.services import channels
from inbox.services.channels import ChannelForm, save_channel, within_office_hours
from inbox.services.errors import ValidationFailed
from inbox.services.providers import ChannelNotReady
from inbox.settings import Settings
from tests.support.apps import running, simulator_settings
from tests.support.channels import SECOND_NUMBER, SECOND_SID, SECOND_TOKEN, VALID_FORM
from tests.support.config import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER
from tests.support.fake_twilio import FakeTwilio
from tests.support.outbox import handed_over
from tests.support.records import MARIA
from tests.support.webhooks import inbound_params_for, numbered_sid, signed_post_args, text_in

SERVICE_SID = "MG" + "3" * 32
POOL_NUMBER = "+14045550177"  # a number in the Messaging Service's pool, on no channel
STAFF_PHONE = "+12025550143"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


async def add_channel(settings: Settings, admin: Staff, **changes: object) -> Channel:
    """A second office's sending number, set up through the same service the admin page uses."""
    form = replace(VALID_FORM, **changes)  # type: ignore[arg-type]
    return await save_channel(admin, SecretBox(settings.secret_key), form, env_account_sid=settings.twilio_account_sid)


def as_form(form: ChannelForm, **extra: str) -> dict[str, str]:
    data = {
        "label": form.label,
        "office_id": form.office_id,
        "account_sid": form.account_sid,
        "auth_token": form.auth_token,
        "from_number": form.from_number,
        "messaging_service_sid": form.messaging_service_sid,
        "throughput": form.throughput,
        "help_text": form.help_text,
        "auto_reply_mode": form.auto_reply_mode,
        "auto_reply_text": form.auto_reply_text,
        "time_zone": form.time_zone,
        "call_response": form.call_response,
        "twilio_handles_opt_out": "on",
    }
    data.update(extra)
    return data


# ---------------------------------------------------------------- encryption at rest


def test_a_secret_box_round_trips_and_another_key_cannot_read_it() -> None:
    box = SecretBox("one-secret-key-" + "a" * 32)
    stored = box.encrypt(SECOND_TOKEN)
    assert SECOND_TOKEN not in stored and box.decrypt(stored) == SECOND_TOKEN
    assert box.encrypt(SECOND_TOKEN) != stored  # a fresh IV every time
    with pytest.raises(SecretUnreadable):
        SecretBox("another-secret-key-" + "b" * 32).decrypt(stored)
    with pytest.raises(SecretUnreadable):
        box.decrypt(stored[:-4] + "AAAA")
    assert "a" * 32 not in repr(box)


async def test_the_token_is_encrypted_at_rest_and_never_shown_again_in_full(
    app: Starlette, settings: Settings, database_url: str, make_staff, signed_in
) -> None:
    admin = await signed_in(await make_staff("admin"))
    await admin.get("/admin/channels/new")
    created = await admin.post("/admin/channels", as_form(VALID_FORM))
    assert created.status_code == 303, created.text
    channel = await Channel.get(account_sid=SECOND_SID)
    assert created.headers["location"] == f"/admin/channels/{channel.id}?saved=1"

    # The row holds ciphertext that only INBOX_SECRET_KEY opens, and no column holds the token.
    assert channel.auth_token_encrypted and SECOND_TOKEN not in channel.auth_token_encrypted
    assert SecretBox(settings.secret_key).decrypt(channel.auth_token_encrypted) == SECOND_TOKEN
    rows = await Tortoise.get_connection("default").execute_query_dict('SELECT * FROM "channel"')
    assert rows and SECOND_TOKEN not in repr(rows)
    if database_url.startswith("sqlite://"):
        # The database file (and its journal) on disk does not contain the token either.
        path = Path(database_url.removeprefix("sqlite://"))
        on_disk = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert SECOND_SID.encode() in on_disk  # the file is the one the app writes to
        assert SECOND_TOKEN.encode() not in on_disk

    page = await admin.get(created.headers["location"])
    assert page.status_code == 200 and "Saved." in page.text
    assert SECOND_TOKEN not in page.text and "••••" + SECOND_TOKEN[-4:] in page.text
    listing = await admin.get("/admin/channels")
    assert SECOND_TOKEN not in listing.text and "••••" + SECOND_TOKEN[-4:] in listing.text

    # Saving again with the token left empty keeps it.
    kept = await admin.post(
        f"/admin/channels/{channel.id}", as_form(replace(VALID_FORM, auth_token="", label="Housing"))
    )
    assert kept.status_code == 303
    await channel.refresh_from_db()
    assert channel.label == "Housing"
    assert SecretBox(settings.secret_key).decrypt(channel.auth_token_encrypted or "") == SECOND_TOKEN


async def test_pages_show_the_webhook_addresses_to_paste_into_twilio(app: Starlette, make_staff, signed_in) -> None:
    admin = await signed_in(await make_staff("admin"))
    settings_page = await admin.get("/admin/settings")
    assert 'href="/admin/channels"' in settings_page.text
    for url in ("/admin/channels", "/admin/channels/new", f"/admin/channels/{app.state.channel.id}"):
        page = await admin.get(url)
        assert page.status_code == 200, url
        for path in ("messages", "status", "voice"):
            assert f"https://inbox.example.org/webhooks/twilio/{path}" in page.text, (url, path)


# ---------------------------------------------------------------- the admin form


async def test_only_administrators_reach_the_channel_pages(
    app: Starlette, settings: Settings, make_staff, signed_in
) -> None:
    admin = await make_staff("admin")
    channel = await add_channel(settings, admin)
    for role in ("advocate", "supervisor"):
        person = await signed_in(await make_staff(role))
        for url in ("/admin/channels", "/admin/channels/new", f"/admin/channels/{channel.id}"):
            assert (await person.get(url)).status_code == 403, (role, url)
        await person.get("/")
        assert (
            await person.post(
                "/admin/channels", as_form(replace(VALID_FORM, from_number="+14045550177", account_sid="AC" + "4" * 32))
            )
        ).status_code == 403
        assert (
            await person.post(f"/admin/channels/{channel.id}", as_form(replace(VALID_FORM, label="Mine")))
        ).status_code == 403
        assert (
            await person.post(f"/admin/channels/{channel.id}/test", {"to": STAFF_PHONE, "body": "hi"})
        ).status_code == 403
    assert await Channel.all().count() == 2
    assert (await Channel.get(id=channel.id)).label == "Housing unit"
    assert await Message.all().count() == 0


async def test_signed_out_visitors_are_sent_to_sign_in(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/admin/channels")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


async def test_every_channel_form_needs_its_csrf_token(
    app: Starlette, settings: Settings, make_staff, signed_in
) -> None:
    staff = await make_staff("admin")
    channel = await add_channel(settings, staff)
    admin = await signed_in(staff)
    for url, data in (
        ("/admin/channels", as_form(replace(VALID_FORM, account_sid="AC" + "5" * 32, from_number="+14045550177"))),
        (f"/admin/channels/{channel.id}", as_form(replace(VALID_FORM, label="Changed"))),
        (f"/admin/channels/{channel.id}/test", {"to": STAFF_PHONE, "body": "Test"}),
    ):
        assert (await admin.post(url, data, csrf=False)).status_code == 403, url
        assert (await admin.post(url, {**data, "csrf_token": "forged"}, csrf=False)).status_code == 403, url
    assert await Channel.all().count() == 2
    assert (await Channel.get(id=channel.id)).label == "Housing unit"
    assert await Message.all().count() == 0


async def test_a_refused_form_comes_back_as_typed_with_each_problem_named(
    app: Starlette, make_staff, signed_in
) -> None:
    admin = await signed_in(await make_staff("admin"))
    await admin.get("/admin/channels/new")
    typed = as_form(
        replace(
            VALID_FORM,
            label="Probation",
            account_sid="AC123",
            auth_token="short",
            from_number="12",
            messaging_service_sid="MGnope",
            throughput="0",
            auto_reply_mode="outside_hours",
            auto_reply_text="",
            time_zone="Mars/Olympus_Mons",
        ),
        mon_opens="17:00",
        mon_closes="09:00",
        tue_opens="9am",
        tue_closes="",
    )
    response = await admin.post("/admin/channels", typed)
    assert response.status_code == 422
    page = response.text
    assert "Please correct the fields marked below." in page
    for problem in (
        "An account SID is “AC” followed by 32 hexadecimal characters",
        "That does not look like an auth token",
        "“12” is not a",
        "A Messaging Service SID is “MG” followed by 32 hexadecimal characters.",
        "Segments per second, from 1 to 1000",
        "Write the automatic reply, or turn automatic replies off.",
        "Monday: closing time must be after opening time.",
        "Tuesday: give both times as HH:MM",
        "Choose a time zone from the list",
    ):
        assert problem in page, problem
    for kept in (
        'value="Probation"',
        'value="AC123"',
        'value="12"',
        'value="MGnope"',
        'value="0"',
        'value="Mars/Olympus_Mons"',
        'value="17:00"',
        'value="9am"',
    ):
        assert kept in page, kept
    assert 'value="outside_hours" checked' in page
    assert 'name="auth_token" type="password" value=""' in page and "type it again" in page
    assert await Channel.filter(label="Probation").count() == 0

    # No token for an account that is not the environment's; neither a number nor a service.
    bare = await admin.post(
        "/admin/channels", as_form(replace(VALID_FORM, auth_token="", from_number="", messaging_service_sid=""))
    )
    assert bare.status_code == 422
    assert (
        "auth token (Twilio console, Account info)" in bare.text
        and "Enter the sending number, or a Messaging Service SID" in bare.text
    )

    # Outside-hours replies need office hours; HELP needs an answer.
    no_hours = await admin.post(
        "/admin/channels",
        as_form(replace(VALID_FORM, auto_reply_mode="outside_hours", auto_reply_text="Closed now.", help_text=" ")),
    )
    assert no_hours.status_code == 422
    assert "Set the office hours, or choose to answer every text." in no_hours.text
    assert "Write the answer to HELP" in no_hours.text


async def test_numbers_and_services_are_not_shared_and_an_unknown_office_is_refused(
    app: Starlette, settings: Settings, make_staff
) -> None:
    admin = await make_staff("admin")
    await add_channel(settings, admin, messaging_service_sid=SERVICE_SID)
    with pytest.raises(ValidationFailed) as refused:
        await add_channel(settings, admin, label="Copy", messaging_service_sid=SERVICE_SID)
    assert set(refused.value.fields) == {"from_number", "messaging_service_sid"}
    with pytest.raises(ValidationFailed) as no_office:
        await add_channel(settings, admin, from_number="+14045550177", office_id="999")
    assert set(no_office.value.fields) == {"office_id"}


async def test_a_full_channel_is_saved_with_office_hours_and_replies(
    app: Starlette, settings: Settings, make_staff, signed_in
) -> None:
    office = await Office.create(name="Westside")
    admin = await signed_in(await make_staff("admin"))
    await admin.get("/admin/channels/new")
    data = as_form(
        replace(
            VALID_FORM,
            office_id=str(office.id),
            messaging_service_sid=SERVICE_SID,
            throughput="3",
            help_text="Westside Legal Aid. Reply STOP to stop.",
            auto_reply_mode="outside_hours",
            auto_reply_text="We are closed. We answer texts 9 to 5, Monday to Friday.",
            time_zone="America/Chicago",
            call_response="This number takes texts only. Call (404) 555-0100.",
        ),
        mon_opens="09:00",
        mon_closes="17:00",
        fri_opens="09:00",
        fri_closes="12:30",
    )
    data.pop("twilio_handles_opt_out")
    response = await admin.post("/admin/channels", data)
    assert response.status_code == 303, response.text
    channel = await Channel.get(account_sid=SECOND_SID)
    assert channel.office_id == office.id  # type: ignore[attr-defined]
    assert channel.from_number == SECOND_NUMBER and channel.messaging_service_sid == SERVICE_SID
    assert channel.throughput == 3 and not channel.twilio_handles_opt_out
    assert channel.auto_reply_mode == AutoReplyMode.OUTSIDE_HOURS
    assert channel.office_hours == {"mon": ["09:00", "17:00"], "fri": ["09:00", "12:30"]}
    assert channel.time_zone == "America/Chicago"
    page = await admin.get(f"/admin/channels/{channel.id}")
    assert (
        'name="mon_opens" type="time" value="09:00"' in page.text
        and 'name="fri_closes" type="time" value="12:30"' in page.text
    )
    assert 'name="tue_opens" type="time" value=""' in page.text
    assert f'<option value="{office.id}" selected>Westside</option>' in page.text


async def test_the_environments_channel_keeps_its_credentials_in_the_environment(
    app: Starlette, settings: Settings, make_staff, signed_in
) -> None:
    env_channel: Channel = app.state.channel
    assert env_channel.account_sid == ACCOUNT_SID and env_channel.auth_token_encrypted is None
    admin = await signed_in(await make_staff("admin"))
    page = await admin.get(f"/admin/channels/{env_channel.id}")
    assert "From the environment (TWILIO_AUTH_TOKEN): ••••" + AUTH_TOKEN[-4:] in page.text
    assert AUTH_TOKEN not in page.text and 'name="account_sid"' not in page.text
    # Posted credentials are ignored: they come from TWILIO_*.
    data = as_form(replace(VALID_FORM, label="Main office", auto_reply_mode="always", auto_reply_text="Thanks!"))
    assert (await admin.post(f"/admin/channels/{env_channel.id}", data)).status_code == 303
    await env_channel.refresh_from_db()
    assert env_channel.label == "Main office" and env_channel.auto_reply_mode == AutoReplyMode.ALWAYS
    assert env_channel.account_sid == ACCOUNT_SID and env_channel.from_number == FROM_NUMBER
    assert env_channel.auth_token_encrypted is None
    # Another number of the environment's account may leave its token empty: it uses the environment's.
    sibling = await add_channel(
        settings, await make_staff("admin"), account_sid=ACCOUNT_SID, auth_token="", from_number="+14045550177"
    )
    assert sibling.auth_token_encrypted is None
    assert app.state.providers.auth_token_of(sibling) == AUTH_TOKEN


# ---------------------------------------------------------------- one provider per channel


async def test_each_channel_has_its_own_provider_until_its_credentials_change(
    app: Starlette, settings: Settings, make_staff
) -> None:
    admin = await make_staff("admin")
    second = await add_channel(settings, admin)
    registry = app.state.providers
    env_provider = registry.for_channel(app.state.channel)
    provider = registry.for_channel(second)
    assert provider is registry.for_channel(await Channel.get(id=second.id))  # cached
    assert provider is not env_provider and provider.info.account_sid == SECOND_SID
    assert SECOND_TOKEN not in repr(provider) and SECOND_TOKEN not in repr(registry)
    changed = await save_channel(
        admin, SecretBox(settings.secret_key), replace(VALID_FORM, auth_token="a-new-token-after-rotation-1234"), second
    )
    assert registry.for_channel(changed) is not provider
    # A channel whose token cannot be read, or that has none, cannot send.
    await Channel.filter(id=second.id).update(
        auth_token_encrypted=SecretBox("some-other-key-" + "z" * 32).encrypt("x" * 32)
    )
    with pytest.raises(ChannelNotReady, match="cannot be decrypted"):
        registry.for_channel(await Channel.get(id=second.id))
    await Channel.filter(id=second.id).update(auth_token_encrypted=None)
    with pytest.raises(ChannelNotReady, match="has no auth token"):
        registry.for_channel(await Channel.get(id=second.id))


async def client_on(number: str = MARIA, okay_to_text: bool = True) -> None:
    from inbox.services.directory import PhoneInput, create_client

    await create_client(name="Maria Lopez", phones=[PhoneInput(number, "mobile", okay_to_text)])


async def test_replies_go_out_through_the_conversations_channel_with_its_own_credentials(
    app: Starlette,
    anonymous: httpx.AsyncClient,
    settings: Settings,
    fake_twilio: FakeTwilio,
    make_staff,
    make_case,
    signed_in,
) -> None:
    fake_twilio.add_account(SECOND_SID, SECOND_TOKEN)
    admin = await make_staff("admin")
    second = await add_channel(settings, admin)
    await make_case(phone=MARIA)
    # Maria texts the second office's number; the thread belongs to that channel.
    inbound = await anonymous.post(
        **signed_post_args(
            "/webhooks/twilio/messages",
            inbound_params_for(SECOND_SID, SECOND_NUMBER, numbered_sid(1)),
            token=SECOND_TOKEN,
        )
    )
    assert inbound.status_code == 200
    conversation = await Conversation.get(phone=MARIA)
    assert conversation.channel_id == second.id  # type: ignore[attr-defined]

    supervisor = await signed_in(await make_staff("supervisor"))
    await supervisor.get(f"/conversations/{conversation.id}")
    sent = await supervisor.post(f"/conversations/{conversation.id}/messages", {"body": "Courtroom 4B."})
    assert sent.status_code in (200, 303), sent.text
    await fake_twilio.callbacks_done()
    [create] = fake_twilio.creates
    assert create.path_account_sid == SECOND_SID and create.auth_user == SECOND_SID
    assert create.params["From"] == SECOND_NUMBER and create.params["To"] == MARIA
    # Twilio's status callbacks for it are signed with the second account's token, and accepted.
    reply = await Message.get(direction=Direction.OUTBOUND)
    assert reply.status == MessageStatus.DELIVERED
    assert [c.status_code for c in fake_twilio.callbacks] == [200, 200]


async def test_a_messaging_service_channel_sends_through_its_service(
    app: Starlette, settings: Settings, fake_twilio: FakeTwilio, make_staff, api_client
) -> None:
    fake_twilio.add_account(SECOND_SID, SECOND_TOKEN)
    fake_twilio.callbacks_enabled = False
    admin = await make_staff("admin")
    second = await add_channel(settings, admin, from_number="", messaging_service_sid=SERVICE_SID)
    await client_on(MARIA)
    conversation = await Conversation.create(channel=second, phone=MARIA)
    from inbox.services.messaging import SendRequest, send_text

    message = await send_text(
        app.state.outbox, admin, SendRequest(body="From the service", conversation_id=conversation.id)
    )
    message = await handed_over(app, message)
    create = fake_twilio.creates[-1]
    assert create.path_account_sid == SECOND_SID and create.auth_user == SECOND_SID
    assert create.params["MessagingServiceSid"] == SERVICE_SID and "From" not in create.params
    assert message.status == MessageStatus.ACCEPTED
    # A text that names only the number joins the conversation the client already has.
    client = await api_client(await make_staff("supervisor"))
    response = await client.post("/api/v1/messages", json={"to": MARIA, "body": "Hello"})
    assert response.status_code == 201
    assert fake_twilio.creates[-1].path_account_sid == SECOND_SID
    assert await Conversation.filter(phone=MARIA).count() == 1


async def test_a_text_from_a_case_goes_out_from_the_number_the_client_last_talked_to_or_the_cases_office(
    app: Starlette,
    anonymous: httpx.AsyncClient,
    settings: Settings,
    fake_twilio: FakeTwilio,
    make_staff,
    make_case,
    api_client,
) -> None:
    fake_twilio.add_account(SECOND_SID, SECOND_TOKEN)
    fake_twilio.callbacks_enabled = False
    admin = await make_staff("admin")
    office = await Office.create(name="Westside")
    second = await add_channel(settings, admin, office_id=str(office.id))
    client = await api_client(await make_staff("supervisor"))
    # Maria has only ever texted the second office's number: the case's text joins that thread.
    maria = await make_case(phone=MARIA)
    inbound = inbound_params_for(SECOND_SID, SECOND_NUMBER, numbered_sid(1))
    assert (
        await anonymous.post(**signed_post_args("/webhooks/twilio/messages", inbound, token=SECOND_TOKEN))
    ).status_code == 200
    assert (await client.post("/api/v1/messages", json={"case_id": maria.case_id, "body": "Hello"})).status_code == 201
    assert fake_twilio.creates[-1].path_account_sid == SECOND_SID
    assert await Conversation.filter(phone=MARIA).count() == 1
    # A new number on a Westside case goes out from Westside's number; elsewhere, from the first number.
    westside = await make_case(phone="+14045550199", name="Pat Reyes")
    await Case.filter(id=westside.case_id).update(office_id=office.id)
    assert (await client.post("/api/v1/messages", json={"case_id": westside.case_id, "body": "Hi"})).status_code == 201
    assert fake_twilio.creates[-1].path_account_sid == SECOND_SID
    elsewhere = await make_case(phone="+14045550188", name="Sam Lee")
    assert (await client.post("/api/v1/messages", json={"case_id": elsewhere.case_id, "body": "Hi"})).status_code == 201
    assert fake_twilio.creates[-1].path_account_sid == ACCOUNT_SID
    assert (await Conversation.get(phone="+14045550199")).channel_id == second.id  # type: ignore[attr-defined]


async def test_a_channel_without_a_usable_token_fails_the_send_with_the_reason(
    app: Starlette, settings: Settings, fake_twilio: FakeTwilio, make_staff
) -> None:
    admin = await make_staff("admin")
    second = await add_channel(settings, admin)
    await Channel.filter(id=second.id).update(auth_token_encrypted=None)
    await client_on(MARIA)
    conversation = await Conversation.create(channel=second, phone=MARIA)
    from inbox.services.messaging import SendRequest, send_text

    message = await send_text(app.state.outbox, admin, SendRequest(body="Hello", conversation_id=conversation.id))
    message = await handed_over(app, message)
    assert message.status == MessageStatus.FAILED and "has no auth token" in (message.error_message or "")
    assert fake_twilio.creates == []


# ---------------------------------------------------------------- webhooks per channel


async def test_webhooks_for_two_channels_are_each_validated_with_their_own_token(
    app: Starlette, anonymous: httpx.AsyncClient, settings: Settings, make_staff
) -> None:
    second = await add_channel(settings, await make_staff("admin"))
    first_ok = await anonymous.post(
        **signed_post_args(
            "/webhooks/twilio/messages", inbound_params_for(ACCOUNT_SID, FROM_NUMBER, numbered_sid(1)), token=AUTH_TOKEN
        )
    )
    second_ok = await anonymous.post(
        **signed_post_args(
            "/webhooks/twilio/messages",
            inbound_params_for(SECOND_SID, SECOND_NUMBER, numbered_sid(2)),
            token=SECOND_TOKEN,
        )
    )
    assert first_ok.status_code == second_ok.status_code == 200
    assert (
        await Message.get(provider_sid=numbered_sid(1)).prefetch_related("conversation")
    ).conversation.channel_id == app.state.channel.id  # type: ignore[attr-defined]
    assert (
        await Message.get(provider_sid=numbered_sid(2)).prefetch_related("conversation")
    ).conversation.channel_id == second.id  # type: ignore[attr-defined]

    # Each account's webhook signed with the other's token is refused, and nothing is stored.
    before = await WebhookPayload.all().count()
    crossed = [
        signed_post_args(
            "/webhooks/twilio/messages",
            inbound_params_for(SECOND_SID, SECOND_NUMBER, numbered_sid(3)),
            token=AUTH_TOKEN,
        ),
        signed_post_args(
            "/webhooks/twilio/messages",
            inbound_params_for(ACCOUNT_SID, FROM_NUMBER, numbered_sid(4)),
            token=SECOND_TOKEN,
        ),
        # The right token, but the message claims the other account's number: still the account's token that counts.
        signed_post_args(
            "/webhooks/twilio/messages",
            inbound_params_for(ACCOUNT_SID, SECOND_NUMBER, numbered_sid(5)),
            token=SECOND_TOKEN,
        ),
    ]
    for args in crossed:
        assert (await anonymous.post(**args)).status_code == 403
    assert await WebhookPayload.all().count() == before
    assert not await Message.filter(provider_sid__in=[numbered_sid(3), numbered_sid(4), numbered_sid(5)]).exists()


async def test_an_unknown_account_is_refused_and_nothing_is_stored(
    app: Starlette, anonymous: httpx.AsyncClient
) -> None:
    stranger = "AC" + "9" * 32
    for path, params in (
        ("/webhooks/twilio/messages", inbound_params_for(stranger, FROM_NUMBER, numbered_sid(1))),
        (
            "/webhooks/twilio/status",
            {"MessageSid": numbered_sid(1), "MessageStatus": "delivered", "AccountSid": stranger},
        ),
        (
            "/webhooks/twilio/voice",
            {"CallSid": "CA" + "1" * 32, "AccountSid": stranger, "To": FROM_NUMBER, "From": MARIA},
        ),
        (
            "/webhooks/twilio/messages",
            {k: v for k, v in inbound_params_for("", FROM_NUMBER, numbered_sid(2)).items() if k != "AccountSid"},
        ),
    ):
        # Signed with a token we know, so only the account makes the difference.
        assert (await anonymous.post(**signed_post_args(path, params, token=AUTH_TOKEN))).status_code == 403, path
    assert await WebhookPayload.all().count() == 0
    assert await Message.all().count() == 0
    assert await Conversation.all().count() == 0


async def test_a_messaging_service_never_causes_a_false_403(
    app: Starlette, anonymous: httpx.AsyncClient, settings: Settings, make_staff
) -> None:
    admin = await make_staff("admin")
    with_number = await add_channel(settings, admin, messaging_service_sid=SERVICE_SID)
    # To is a pool number that is no channel's from-number.
    response = await anonymous.post(
        **signed_post_args(
            "/webhooks/twilio/messages",
            inbound_params_for(SECOND_SID, POOL_NUMBER, numbered_sid(1), MessagingServiceSid=SERVICE_SID),
            token=SECOND_TOKEN,
        )
    )
    assert response.status_code == 200
    message = await Message.get(provider_sid=numbered_sid(1)).prefetch_related("conversation")
    assert message.conversation.channel_id == with_number.id and message.to_number == POOL_NUMBER  # type: ignore[attr-defined]

    # A service-only channel (no from-number), and a service SID Twilio names that we did not record.
    other_sid, other_token = "AC" + "6" * 32, "third-office-token-55aa77bb99cc"
    service_only = await add_channel(
        settings,
        admin,
        label="Jury",
        account_sid=other_sid,
        auth_token=other_token,
        from_number="",
        messaging_service_sid="MG" + "7" * 32,
    )
    for n, service in ((2, "MG" + "7" * 32), (3, "MG" + "8" * 32)):
        args = signed_post_args(
            "/webhooks/twilio/messages",
            inbound_params_for(other_sid, POOL_NUMBER, numbered_sid(n), MessagingServiceSid=service),
            token=other_token,
        )
        assert (await anonymous.post(**args)).status_code == 200
        stored = await Message.get(provider_sid=numbered_sid(n)).prefetch_related("conversation")
        assert stored.conversation.channel_id == service_only.id  # type: ignore[attr-defined]

    # Status callbacks for a service's texts carry the pool number as From: validated all the same.
    status = {
        "MessageSid": numbered_sid(9),
        "MessageStatus": "sent",
        "AccountSid": other_sid,
        "From": POOL_NUMBER,
        "To": MARIA,
        "MessagingServiceSid": "MG" + "7" * 32,
    }
    assert (
        await anonymous.post(**signed_post_args("/webhooks/twilio/status", status, token=other_token))
    ).status_code == 200


async def test_a_stale_token_on_one_channel_does_not_refuse_the_accounts_webhooks(
    app: Starlette, anonymous: httpx.AsyncClient, settings: Settings, make_staff
) -> None:
    admin = await make_staff("admin")
    stale = await add_channel(settings, admin, auth_token="the-token-before-rotation-0000")
    await add_channel(settings, admin, label="Second number", from_number="+14045550177")
    # Twilio signs with the account's current token; the number texted still has the old one stored.
    response = await anonymous.post(
        **signed_post_args(
            "/webhooks/twilio/messages",
            inbound_params_for(SECOND_SID, SECOND_NUMBER, numbered_sid(1)),
            token=SECOND_TOKEN,
        )
    )
    assert response.status_code == 200
    # Genuine for the account, and filed under the number it was sent to.
    message = await Message.get(provider_sid=numbered_sid(1)).prefetch_related("conversation")
    assert message.conversation.channel_id == stale.id  # type: ignore[attr-defined]
    forged = signed_post_args(
        "/webhooks/twilio/messages",
        inbound_params_for(SECOND_SID, SECOND_NUMBER, numbered_sid(2)),
        token="neither-of-them-0000000",
    )
    assert (await anonymous.post(**forged)).status_code == 403


async def test_attachments_are_fetched_with_the_channels_own_credentials(
    app: Starlette, anonymous: httpx.AsyncClient, settings: Settings, fake_twilio: FakeTwilio, make_staff
) -> None:
    fake_twilio.add_account(SECOND_SID, SECOND_TOKEN)
    await add_channel(settings, await make_staff("admin"))
    url = fake_twilio.add_media(PNG, "image/png", account_sid=SECOND_SID)
    params = inbound_params_for(
        SECOND_SID, SECOND_NUMBER, "MM" + "1" * 32, body="", NumMedia="1", MediaUrl0=url, MediaContentType0="image/png"
    )
    response = await anonymous.post(**signed_post_args("/webhooks/twilio/messages", params, token=SECOND_TOKEN))
    assert response.status_code == 200
    [item] = await Media.all()
    assert item.status == MediaStatus.STORED, item.error

    # The worker's retries (one provider for every channel) use the account the URL names, too.
    from inbox.services.media import fetch_due_media

    retry_url = fake_twilio.add_media(PNG + b"2", "image/png", account_sid=SECOND_SID)
    fake_twilio.accounts[SECOND_SID] = "rotated"
    params = inbound_params_for(
        SECOND_SID,
        SECOND_NUMBER,
        "MM" + "2" * 32,
        body="",
        NumMedia="1",
        MediaUrl0=retry_url,
        MediaContentType0="image/png",
    )
    assert (
        await anonymous.post(**signed_post_args("/webhooks/twilio/messages", params, token=SECOND_TOKEN))
    ).status_code == 200
    pending = await Media.get(source_url=retry_url)
    assert pending.status == MediaStatus.PENDING and "HTTP 401" in (pending.error or "")
    fake_twilio.accounts[SECOND_SID] = SECOND_TOKEN
    later = datetime.now(UTC) + timedelta(hours=2)
    assert await fetch_due_media(app.state.outbox.provider, settings.media_dir, app.state.bus, at=later) == 1
    assert (await Media.get(id=pending.id)).status == MediaStatus.STORED


# ---------------------------------------------------------------- voice


async def test_a_call_is_answered_with_the_channels_words_spoken(
    app: Starlette, anonymous: httpx.AsyncClient, settings: Settings, make_staff
) -> None:
    await add_channel(
        settings, await make_staff("admin"), call_response='Texts only, please. <Call> Smith & Jones at "404".'
    )
    call = {
        "CallSid": "CA" + "1" * 32,
        "AccountSid": SECOND_SID,
        "From": MARIA,
        "To": SECOND_NUMBER,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }
    response = await anonymous.post(**signed_post_args("/webhooks/twilio/voice", call, token=SECOND_TOKEN))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert response.text == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Texts only, please. &lt;Call&gt; Smith &amp; Jones at "404".</Say></Response>'  # noqa: E501
    )
    payload = await WebhookPayload.get(kind="voice")
    assert (
        payload.provider_sid == "CA" + "1" * 32 and payload.params["CallStatus"] == "ringing" and payload.processed_at
    )

    # The environment's channel answers with its own (default) words.
    env_call = {**call, "AccountSid": ACCOUNT_SID, "To": FROM_NUMBER, "CallSid": "CA" + "2" * 32}
    env = await anonymous.post(**signed_post_args("/webhooks/twilio/voice", env_call, token=AUTH_TOKEN))
    assert env.status_code == 200 and "<Say>Thank you for calling. This number does not accept calls.</Say>" in env.text


@pytest.mark.parametrize("headers", [{}, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}], ids=["missing", "forged"])
async def test_a_forged_or_unsigned_call_is_refused(
    app: Starlette, anonymous: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    call = {"CallSid": "CA" + "1" * 32, "AccountSid": ACCOUNT_SID, "From": MARIA, "To": FROM_NUMBER}
    response = await anonymous.post("/webhooks/twilio/voice", data=call, headers=headers)
    assert response.status_code == 403 and "<Say>" not in response.text
    other_token = signed_post_args("/webhooks/twilio/voice", call, token="not-our-token")
    assert (await anonymous.post(**other_token)).status_code == 403
    assert await WebhookPayload.all().count() == 0


def test_an_empty_call_response_hangs_up() -> None:
    assert channels.say_twiml("  ") == '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>'


# ---------------------------------------------------------------- automatic replies

# Tuesday 2026-03-10, 14:00 in New York (EDT since 8 March): inside 09:00-17:00.
TUESDAY_AFTERNOON = datetime(2026, 3, 10, 18, 0, tzinfo=UTC)
TUESDAY_NIGHT = datetime(2026, 3, 11, 2, 30, tzinfo=UTC)  # 22:30 in New York, still Tuesday there
WEEKDAYS_9_TO_5 = {day: ("09:00", "17:00") for day in ("mon", "tue", "wed", "thu", "fri")}


async def set_auto_reply(
    app: Starlette, admin: Staff, mode: str, hours: dict[str, tuple[str, str]] | None = None
) -> Channel:
    channel: Channel = await Channel.get(id=app.state.channel.id)
    form = replace(
        ChannelForm.of(channel),
        auto_reply_mode=mode,
        auto_reply_text="Thanks for your text. We answer within one working day.",
        office_hours=hours or {},
    )
    return await save_channel(admin, SecretBox(app.state.settings.secret_key), form, channel, credentials_locked=True)


async def auto_replies() -> list[Message]:
    return await Message.filter(purpose=MessagePurpose.AUTO_REPLY).order_by("id")


async def test_always_answers_once_a_day_through_the_provider_and_shows_in_the_thread(
    app: Starlette, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, make_staff, make_case, signed_in
) -> None:
    admin = await make_staff("admin")
    await set_auto_reply(app, admin, "always")
    sam = await make_staff("supervisor")
    await make_case(phone=MARIA, assignee=sam)
    app.state.clock = lambda: TUESDAY_AFTERNOON

    await text_in(anonymous, sid=numbered_sid(1))
    [reply] = await auto_replies()
    assert reply.direction == Direction.OUTBOUND and reply.to_number == MARIA and reply.sent_by_id is None  # type: ignore[attr-defined]
    assert reply.body == "Thanks for your text. We answer within one working day."
    inbound = await Message.get(provider_sid=numbered_sid(1))
    assert reply.conversation_id == inbound.conversation_id  # type: ignore[attr-defined]
    [create] = fake_twilio.creates
    assert create.params["Body"] == reply.body and create.params["To"] == MARIA and create.params["From"] == FROM_NUMBER
    assert reply.provider_sid == fake_twilio.messages[0]["sid"]
    await fake_twilio.callbacks_done()
    await reply.refresh_from_db()
    assert reply.status == MessageStatus.DELIVERED
    # The inbox still shows the client's question, unanswered, and the alert stays.
    conversation = await Conversation.get(id=inbound.conversation_id)  # type: ignore[attr-defined]
    assert conversation.last_message_preview == "Which courtroom?" and conversation.last_direction == Direction.INBOUND
    assert conversation.last_auto_reply_at == TUESDAY_AFTERNOON
    thread = await (await signed_in(sam)).get(f"/conversations/{conversation.id}")
    assert "We answer within one working day." in thread.text

    # Later the same day (in the channel's time zone): no second reply.
    app.state.clock = lambda: TUESDAY_NIGHT
    await text_in(anonymous, MARIA, "Hello?", sid=numbered_sid(2))
    assert len(await auto_replies()) == 1
    # The next day: one again.
    app.state.clock = lambda: TUESDAY_NIGHT + timedelta(hours=8)
    await text_in(anonymous, MARIA, "Anyone there?", sid=numbered_sid(3))
    assert len(await auto_replies()) == 2
    assert len(fake_twilio.creates) == 2


async def test_outside_hours_answers_only_when_the_office_is_closed(
    app: Starlette, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, make_staff
) -> None:
    await set_auto_reply(app, await make_staff("admin"), "outside_hours", WEEKDAYS_9_TO_5)
    app.state.clock = lambda: TUESDAY_AFTERNOON
    await text_in(anonymous, sid=numbered_sid(1))
    assert await auto_replies() == [] and fake_twilio.creates == []
    app.state.clock = lambda: TUESDAY_NIGHT
    await text_in(anonymous, MARIA, "Are you open tomorrow?", sid=numbered_sid(2))
    [reply] = await auto_replies()
    assert reply.to_number == MARIA and len(fake_twilio.creates) == 1


async def test_off_sends_nothing(app: Starlette, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio) -> None:
    app.state.clock = lambda: TUESDAY_NIGHT
    await text_in(anonymous, sid=numbered_sid(1))
    assert await auto_replies() == [] and fake_twilio.creates == []


@pytest.mark.parametrize(
    ("body", "extra"),
    [
        ("STOP", {}),
        ("  stop  ", {}),
        ("Cancel", {}),
        ("start", {}),
        ("HELP", {}),
        (" info", {}),
        ("please stop", {"OptOutType": "STOP"}),
    ],
    ids=["STOP", "spaces", "Cancel", "start", "HELP", "info", "OptOutType"],
)
async def test_a_keyword_never_gets_an_automatic_reply(
    app: Starlette, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, make_staff, body: str, extra: dict[str, str]
) -> None:
    await set_auto_reply(app, await make_staff("admin"), "always")
    app.state.clock = lambda: TUESDAY_AFTERNOON
    await text_in(anonymous, MARIA, body, sid=numbered_sid(1), **extra)
    assert await auto_replies() == []
    assert not [
        c
        for c in fake_twilio.creates
        if c.params.get("Body") == "Thanks for your text. We answer within one working day."
    ]
    # The day is not used up: the next ordinary text is answered — unless the keyword opted the number out.
    await text_in(anonymous, MARIA, "stop by tomorrow?", sid=numbered_sid(2))
    opted_out = body.strip().upper() in {"STOP", "CANCEL"} or "OptOutType" in extra
    assert len(await auto_replies()) == (0 if opted_out else 1)


async def test_an_opted_out_number_never_gets_an_automatic_reply(
    app: Starlette, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, make_staff
) -> None:
    await set_auto_reply(app, await make_staff("admin"), "always")
    await client_on(MARIA)
    await ClientPhone.filter(number=MARIA).update(opted_out=True)
    app.state.clock = lambda: TUESDAY_AFTERNOON
    await text_in(anonymous, MARIA, "I changed my mind about the hearing", sid=numbered_sid(1))
    assert await auto_replies() == [] and fake_twilio.creates == []
    # An unknown number that texts in is answered: it just texted us.
    await text_in(anonymous, "+14045550199", "Is this legal aid?", sid=numbered_sid(2))
    [reply] = await auto_replies()
    assert reply.to_number == "+14045550199"


async def test_a_yes_answering_an_opt_in_request_gets_no_automatic_reply(
    app: Starlette, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, make_staff
) -> None:
    from inbox.services import system_texts
    from inbox.services.directory import PhoneInput, create_client

    await set_auto_reply(app, await make_staff("admin"), "always")
    client = await create_client(name="Maria Lopez", phones=[PhoneInput(MARIA, "mobile", False)])
    phone = await ClientPhone.get(number=MARIA)
    await handed_over(app, await system_texts.send_opt_in_request(await make_staff("supervisor"), client.id, phone.id))
    app.state.clock = lambda: TUESDAY_AFTERNOON
    await text_in(anonymous, MARIA, "Y", sid=numbered_sid(1))
    assert await auto_replies() == []
    assert (await ClientPhone.get(number=MARIA)).okay_to_text


async def test_the_worker_side_provider_sends_by_the_channel_its_text_names(
    app: Starlette, settings: Settings, fake_twilio: FakeTwilio, make_staff
) -> None:
    from inbox.sms.base import OutboundText

    fake_twilio.add_account(SECOND_SID, SECOND_TOKEN)
    fake_twilio.callbacks_enabled = False
    await add_channel(settings, await make_staff("admin"))
    routed = app.state.outbox.provider
    await routed.send(OutboundText(to=MARIA, body="From the second office", from_number=SECOND_NUMBER))
    await routed.send(OutboundText(to=MARIA, body="From the first", from_number=FROM_NUMBER))
    assert [(c.path_account_sid, c.auth_user) for c in fake_twilio.creates] == [
        (SECOND_SID, SECOND_SID),
        (ACCOUNT_SID, ACCOUNT_SID),
    ]


def test_office_hours_are_read_in_the_channels_time_zone() -> None:
    channel = Channel(time_zone="America/New_York", office_hours={"tue": ["09:00", "17:00"], "sat": ["10:00", "12:00"]})
    assert within_office_hours(channel, TUESDAY_AFTERNOON)
    assert not within_office_hours(channel, TUESDAY_NIGHT)
    new_york = ZoneInfo("America/New_York")
    assert within_office_hours(channel, datetime(2026, 3, 10, 9, 0, tzinfo=new_york))  # opening minute
    assert not within_office_hours(channel, datetime(2026, 3, 10, 17, 0, tzinfo=new_york))  # closing minute
    assert not within_office_hours(channel, datetime(2026, 3, 9, 12, 0, tzinfo=new_york))  # Monday: closed
    assert within_office_hours(channel, datetime(2026, 3, 14, 11, 0, tzinfo=new_york))
    channel.time_zone = "America/Los_Angeles"  # 18:00 UTC is 11:00 in Los Angeles
    assert within_office_hours(channel, TUESDAY_AFTERNOON)
    channel.office_hours = {"tue": ["9am", "5pm"]}  # unreadable: closed
    assert not within_office_hours(channel, TUESDAY_AFTERNOON)


# ---------------------------------------------------------------- test texts


async def test_an_admin_sends_a_test_text_to_their_own_phone(
    app: Starlette, settings: Settings, fake_twilio: FakeTwilio, make_staff, signed_in
) -> None:
    fake_twilio.add_account(SECOND_SID, SECOND_TOKEN)
    staff = await make_staff("admin")
    second = await add_channel(settings, staff)
    admin = await signed_in(staff)
    await admin.get(f"/admin/channels/{second.id}")
    response = await admin.post(
        f"/admin/channels/{second.id}/test", {"to": "(202) 555-0143", "body": "Testing the housing number"}
    )
    assert response.status_code == 303
    message = await Message.get(purpose=MessagePurpose.TEST).prefetch_related("conversation")
    assert response.headers["location"] == f"/admin/channels/{second.id}?tested={message.id}#test"
    assert message.to_number == STAFF_PHONE and message.sent_by_id == staff.id  # type: ignore[attr-defined]
    assert message.conversation.channel_id == second.id  # type: ignore[attr-defined]
    [create] = fake_twilio.creates
    assert create.path_account_sid == SECOND_SID and create.auth_user == SECOND_SID
    assert create.params["From"] == SECOND_NUMBER and create.params["Body"] == "Testing the housing number"
    page = await admin.get(response.headers["location"])
    assert "Test text to (202) 555-0143" in page.text and f'href="/messages/{message.id}"' in page.text


async def test_a_test_text_keeps_the_consent_rules_of_client_numbers(
    app: Starlette, fake_twilio: FakeTwilio, make_staff, signed_in
) -> None:
    admin = await signed_in(await make_staff("admin"))
    channel_id = app.state.channel.id
    await admin.get(f"/admin/channels/{channel_id}")
    await client_on(MARIA, okay_to_text=False)
    refused = await admin.post(f"/admin/channels/{channel_id}/test", {"to": MARIA, "body": "Test"})
    assert refused.status_code == 409 and "has not agreed to receive texts" in refused.text
    assert f'value="{MARIA}"' in refused.text
    await ClientPhone.filter(number=MARIA).update(okay_to_text=True, opted_out=True)
    opted_out = await admin.post(f"/admin/channels/{channel_id}/test", {"to": MARIA, "body": "Test"})
    assert opted_out.status_code == 409 and "opted out" in opted_out.text
    invalid = await admin.post(f"/admin/channels/{channel_id}/test", {"to": "12", "body": "Still typed"})
    assert invalid.status_code == 422 and "“12” is not a" in invalid.text and "Still typed" in invalid.text
    assert await Message.all().count() == 0 and fake_twilio.creates == []


async def test_the_simulator_channel_answers_calls_and_replies_automatically(settings: Settings) -> None:
    from inbox.services.staff import create_staff

    async with running(simulator_settings(settings)) as dev:
        channel: Channel = dev.state.channel
        assert channel.is_simulator
        admin, _ = await create_staff(
            email="ada@example.org", name="Ada", role="admin", password="correct horse battery"
        )
        form = replace(ChannelForm.of(channel), auto_reply_mode="always", auto_reply_text="Got it, thanks.")
        await save_channel(admin, SecretBox(settings.secret_key), form, channel)
        dev.state.clock = lambda: TUESDAY_AFTERNOON
        response = await dev.state.provider.send_inbound(MARIA, channel.from_number, "Hello from the client phone")
        assert response.status_code == 200
        [reply] = await auto_replies()
        assert reply.body == "Got it, thanks." and reply.provider_sid and reply.status == MessageStatus.QUEUED
        await dev.state.provider.wait_idle()
        await reply.refresh_from_db()
        assert reply.status == MessageStatus.DELIVERED


def test_webhook_urls_in_the_readme_match_the_routes() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for path in ("/webhooks/twilio/messages", "/webhooks/twilio/status", "/webhooks/twilio/voice"):
        assert path in readme
    assert re.search(r"/admin/channels", readme)
