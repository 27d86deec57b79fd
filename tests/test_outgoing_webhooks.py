"""Outgoing webhooks: endpoints admins register get signed events, delivered durably through a real local
receiver (a tiny Starlette app served by uvicorn) and verified with the Standard Webhooks reference code."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inbox import clock
from inbox.crypto import SecretBox
from inbox.events import AlertDismissed
from inbox.models import (
    AuditEntry,
    DeliveryState,
    Message,
    Staff,
    Task,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from inbox.services import outgoing_webhooks, settings_cache
from inbox.services.outgoing_webhooks import BACKOFF_SECONDS, LEASE, build_sender, deliver_due
from inbox.services.secret_rotation import reencrypt_webhook_secrets
from inbox.services.unit_of_work import unit_of_work
from inbox.settings import Settings
from inbox.worker import send_due
from tests.support.fake_twilio import FakeTwilio
from tests.support.records import MARIA, MakeCase
from tests.support.servers import serve_asgi
from tests.support.staff import ApiClientFactory, MakeStaff
from tests.support.webhooks import post_text, text_in
from tests.support.workers import start_worker, until, worker_env, workers_cleaned_up


@dataclass
class Receiver:
    """A case management system's webhook route: records what it got, answers the statuses it is told to."""

    url: str = ""
    answers: list[int] = field(default_factory=list)  # the next answers' statuses; 200 once they run out
    received: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    hold_first: asyncio.Event | None = None  # the first request waits for it before being answered

    async def hook(self, request: Request) -> Response:
        status = self.answers.pop(0) if self.answers else 200
        self.received.append((dict(request.headers), await request.body(), status))
        if self.hold_first is not None and len(self.received) == 1:
            await self.hold_first.wait()
        return Response("ok" if status < 300 else "not now", status_code=status)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body, _ in self.received]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    target = Receiver()
    app = Starlette(routes=[Route("/hooks", target.hook, methods=["POST"])])
    async with serve_asgi(app, lifespan="off") as base:
        target.url = f"{base}/hooks"
        yield target


async def register(api: httpx.AsyncClient, url: str, events: list[str]) -> tuple[int, str]:
    answer = await api.post("/api/v1/webhook-endpoints", json={"url": url, "events": events})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"], answer.json()["secret"]


@pytest.fixture
async def admin_api(make_staff: MakeStaff, api_client: ApiClientFactory) -> httpx.AsyncClient:
    return await api_client(await make_staff("admin"))


def verify_plain(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The README's plain-HMAC check, byte for byte."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, part) for part in headers["webhook-signature"].split(" "))


async def test_only_admins_register_endpoints(make_staff: MakeStaff, api_client: ApiClientFactory) -> None:
    for role in ("advocate", "supervisor"):
        api = await api_client(await make_staff(role))
        refused = await api.post("/api/v1/webhook-endpoints", json={"url": "https://cms.example.org/h", "events": []})
        assert refused.status_code in (403, 422)
        refused = await api.post(
            "/api/v1/webhook-endpoints", json={"url": "https://cms.example.org/h", "events": ["message.received"]}
        )
        assert refused.status_code == 403
        assert "administrators" in refused.json()["error"]
    assert not await WebhookEndpoint.exists()

    admin = await api_client(await make_staff("admin"))
    endpoint_id, secret = await register(admin, "https://cms.example.org/hooks", ["message.received"])
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    stored = await WebhookEndpoint.get(id=endpoint_id)
    assert secret not in stored.secret_encrypted  # encrypted at rest
    listed = await admin.get("/api/v1/webhook-endpoints")
    assert listed.status_code == 200 and [e["id"] for e in listed.json()] == [endpoint_id]
    assert secret not in listed.text

    plain_http = await admin.post(
        "/api/v1/webhook-endpoints", json={"url": "http://cms.example.org/hooks", "events": ["message.received"]}
    )
    assert plain_http.status_code == 422 and "https://" in plain_http.json()["fields"]["url"]
    unknown = await admin.post(
        "/api/v1/webhook-endpoints", json={"url": "https://cms.example.org/h", "events": ["message.deleted"]}
    )
    assert unknown.status_code == 422

    assert (await admin.delete(f"/api/v1/webhook-endpoints/{endpoint_id}")).status_code == 204
    assert (await admin.delete(f"/api/v1/webhook-endpoints/{endpoint_id}")).status_code == 404
    assert (await admin.get("/api/v1/webhook-endpoints")).json() == []


async def test_a_500_then_a_200_delivers_once_under_the_same_id(
    app: Starlette, anonymous: httpx.AsyncClient, admin_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    _, secret = await register(admin_api, receiver.url, ["message.received"])
    receiver.answers = [500]
    await post_text(anonymous, MARIA, "Which courtroom?")
    sender = app.state.webhooks

    assert await deliver_due(sender) == 1
    [delivery] = await WebhookDelivery.all()
    assert delivery.state == DeliveryState.RETRYING and delivery.last_status_code == 500
    assert delivery.next_attempt_at is not None
    assert await deliver_due(sender) == 0  # not due before its backoff
    later = clock.now() + timedelta(seconds=BACKOFF_SECONDS[0] + 1)
    assert await deliver_due(sender, now=later) == 1
    assert await deliver_due(sender, now=later + timedelta(hours=1)) == 0

    assert [status for _, _, status in receiver.received] == [500, 200]
    ids = {headers["webhook-id"] for headers, _, _ in receiver.received}
    assert ids == {delivery.webhook_id}
    for headers, body, _ in receiver.received:
        payload = Webhook(secret).verify(body, headers)  # the Standard Webhooks reference code
        assert verify_plain(secret, headers, body)
        assert payload["type"] == "message.received"
        assert set(payload) == {"type", "timestamp", "data"}
        assert set(payload["data"]) == {"message_id", "conversation_id", "case_ids"}
        assert b"courtroom" not in body  # ids only, never the text's words
    with pytest.raises(Exception, match="signature"):
        Webhook(outgoing_webhooks.new_secret()).verify(receiver.received[0][1], receiver.received[0][0])

    await delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DELIVERED and delivery.attempt_count == 2
    attempts = await WebhookAttempt.filter(delivery_id=delivery.id).order_by("id")
    assert [a.status_code for a in attempts] == [500, 200]
    assert "HTTP 500" in attempts[0].error and attempts[1].error == ""
    assert all(a.response_ms is not None for a in attempts)


async def test_a_receiver_sees_a_texts_whole_life(
    app: Starlette,
    anonymous: httpx.AsyncClient,
    admin_api: httpx.AsyncClient,
    supervisor: httpx.AsyncClient,
    make_case: MakeCase,
    fake_twilio: FakeTwilio,
    receiver: Receiver,
) -> None:
    _, secret = await register(admin_api, receiver.url, ["message.received", "message.status"])
    case = await make_case()
    await post_text(anonymous, MARIA, "Is my hearing still on?")
    sent = await supervisor.post("/api/v1/messages", json={"case_id": case.case_id, "body": "Yes, 9am."})
    assert sent.status_code == 201, sent.text
    await send_due(app.state.outbox)
    await fake_twilio.callbacks_done()
    await deliver_due(app.state.webhooks)

    payloads = [Webhook(secret).verify(body, headers) for headers, body, _ in receiver.received]
    received = [p for p in payloads if p["type"] == "message.received"]
    assert len(received) == 1 and received[0]["data"]["case_ids"] == [case.case_id]
    reply_id = sent.json()["id"]
    statuses = [p["data"]["status"] for p in payloads if p["type"] == "message.status"]
    assert all(p["data"]["message_id"] == reply_id for p in payloads if p["type"] == "message.status")
    # Each step is told once it is committed; steps committed close together (Twilio's callbacks racing the
    # outbox's own record) are not promised in order, as Standard Webhooks promises no order.
    assert {"queued", "sent", "delivered"} <= set(statuses), payloads
    assert len({headers["webhook-id"] for headers, _, _ in receiver.received}) == len(receiver.received)
    assert all(b"9am" not in body and b"hearing" not in body for _, body, _ in receiver.received)


async def test_a_rolled_back_change_sends_nothing(
    app: Starlette, admin_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await register(admin_api, receiver.url, ["alert.dismissed"])
    with pytest.raises(RuntimeError):
        async with unit_of_work(app.state.bus) as uow:
            uow.publish(AlertDismissed(alert_id=1, case_id=2, message_id=3))
            raise RuntimeError("the change failed half-way")
    assert not await WebhookDelivery.exists()
    assert await deliver_due(app.state.webhooks) == 0

    async with unit_of_work(app.state.bus) as uow:  # the same change committing: one delivery
        uow.publish(AlertDismissed(alert_id=1, case_id=2, message_id=3))
    assert await deliver_due(app.state.webhooks) == 1
    assert receiver.bodies()[0]["data"] == {"alert_id": 1, "case_id": 2, "message_id": 3}


async def test_a_worker_killed_between_claim_and_send_is_redelivered_with_the_same_id(
    app: Starlette, anonymous: httpx.AsyncClient, admin_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    _, secret = await register(admin_api, receiver.url, ["message.received"])
    await post_text(anonymous, MARIA, "Hello?")
    box = app.state.webhooks.box
    doomed, survivor = build_sender(box, "worker-a"), build_sender(box, "worker-b")
    try:
        claimed = await outgoing_webhooks.claim_delivery(doomed)  # committed; then worker-a dies before its POST
        assert claimed is not None
        assert await deliver_due(survivor) == 0  # its lease still holds
        assert receiver.received == []
        after_lease = clock.now() + LEASE + timedelta(seconds=1)
        assert await deliver_due(survivor, now=after_lease) == 1
    finally:
        await doomed.close()
        await survivor.close()
    [(headers, body, _)] = receiver.received
    assert headers["webhook-id"] == claimed.delivery.webhook_id
    Webhook(secret).verify(body, headers)
    delivery = await WebhookDelivery.get(id=claimed.delivery.id)
    assert delivery.state == DeliveryState.DELIVERED and delivery.lease_owner is None


async def test_a_day_of_failures_disables_the_endpoint_and_tells_the_admins(
    app: Starlette,
    anonymous: httpx.AsyncClient,
    make_staff: MakeStaff,
    api_client: ApiClientFactory,
    receiver: Receiver,
) -> None:
    admins: list[Staff] = [await make_staff("admin"), await make_staff("admin")]
    endpoint_id, _ = await register(await api_client(admins[0]), receiver.url, ["message.received"])
    receiver.answers = [503] * 20
    await post_text(anonymous, MARIA, "First")
    start = clock.now()
    assert await deliver_due(app.state.webhooks, now=start) == 1
    endpoint = await WebhookEndpoint.get(id=endpoint_id)
    assert endpoint.enabled and endpoint.failing_since is not None

    await post_text(anonymous, MARIA, "Second")
    a_day_later = start + timedelta(days=1, minutes=1)
    assert await deliver_due(app.state.webhooks, now=a_day_later) >= 1
    await endpoint.refresh_from_db()
    assert not endpoint.enabled and "every delivery failed for a day" in endpoint.disabled_reason
    tasks = await Task.filter(title__contains="was disabled").order_by("assignee_id")
    assert [t.assignee_id for t in tasks] == sorted(a.id for a in admins)
    count = len(receiver.received)
    assert await deliver_due(app.state.webhooks, now=a_day_later + timedelta(days=1)) == 0  # nothing to a disabled one
    assert len(receiver.received) == count
    # This process's copy of the endpoints forgot it: a text now records no delivery for the disabled endpoint.
    recorded = await WebhookDelivery.all().count()
    await post_text(anonymous, MARIA, "Third")
    assert await WebhookDelivery.all().count() == recorded
    changes = await AuditEntry.filter(object_kind="webhook_endpoint", object_id=endpoint_id).order_by("id")
    assert [(row.actor_id, row.detail["change"]) for row in changes] == [
        (admins[0].id, "created"),
        (None, "disabled after a day of failures"),  # the system did it
    ]

    receiver.answers = []
    await outgoing_webhooks.set_enabled(admins[0], endpoint_id, True)
    assert await deliver_due(app.state.webhooks, now=a_day_later + timedelta(days=1)) >= 1
    await endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failing_since is None


async def test_an_opt_out_is_told_as_consent_changed(
    app: Starlette, anonymous: httpx.AsyncClient, admin_api: httpx.AsyncClient, make_case: MakeCase, receiver: Receiver
) -> None:
    _, secret = await register(admin_api, receiver.url, ["consent.changed"])
    await make_case()
    await post_text(anonymous, MARIA, "STOP")
    await deliver_due(app.state.webhooks)
    payloads = [Webhook(secret).verify(body, headers) for headers, body, _ in receiver.received]
    assert [p["type"] for p in payloads] == ["consent.changed"]
    assert payloads[0]["data"]["phone"] == MARIA and payloads[0]["data"]["opted_out"] is True


async def test_the_admin_page_adds_shows_the_secret_once_and_sends_again(
    app: Starlette,
    anonymous: httpx.AsyncClient,
    make_staff: MakeStaff,
    signed_in: Any,
    receiver: Receiver,
) -> None:
    advocate = await signed_in(await make_staff("supervisor"))
    assert (await advocate.get("/admin/webhooks")).status_code == 403
    admin = await signed_in(await make_staff("admin"))
    page = await admin.get("/admin/webhooks")
    assert page.status_code == 200 and "No endpoints yet" in page.text

    refused = await admin.post("/admin/webhooks", {"url": "ftp://cms.example.org", "events": "message.received"})
    assert refused.status_code == 422 and "https://" in refused.text
    assert not await WebhookEndpoint.exists()
    no_csrf = await admin.post("/admin/webhooks", {"url": receiver.url, "events": "message.received"}, csrf=False)
    assert no_csrf.status_code == 403 and not await WebhookEndpoint.exists()

    added = await admin.post("/admin/webhooks", {"url": receiver.url, "events": ["message.received"]})
    assert added.status_code == 201 and added.headers["cache-control"] == "no-store"
    [endpoint] = await WebhookEndpoint.all()
    secret = app.state.webhooks.box.decrypt(endpoint.secret_encrypted)
    assert secret in added.text
    again = await admin.get("/admin/webhooks")
    assert secret not in again.text and receiver.url in again.text and "none yet" in again.text

    receiver.answers = [500]
    await post_text(anonymous, MARIA, "Hi")
    await deliver_due(app.state.webhooks)
    listed = await admin.get("/admin/webhooks")
    assert "retrying (HTTP 500)" in listed.text
    log = await admin.get(f"/admin/webhooks/{endpoint.id}")
    [delivery] = await WebhookDelivery.all()
    assert delivery.webhook_id in log.text and "HTTP 500" in log.text and "Send again" in log.text

    resent = await admin.post(f"/admin/webhooks/{endpoint.id}/deliveries/{delivery.id}/resend")
    assert resent.status_code == 303
    await delivery.refresh_from_db()
    assert delivery.state == DeliveryState.WAITING and delivery.attempt_count == 0
    assert await deliver_due(app.state.webhooks) == 1
    assert [h["webhook-id"] for h, _, _ in receiver.received] == [delivery.webhook_id] * 2
    Webhook(secret).verify(receiver.received[-1][1], receiver.received[-1][0])

    assert (await admin.post(f"/admin/webhooks/{endpoint.id}/disable")).status_code == 303
    await endpoint.refresh_from_db()
    assert not endpoint.enabled
    await post_text(anonymous, MARIA, "Anyone?")  # a disabled endpoint gets no new deliveries
    assert await WebhookDelivery.all().count() == 1
    assert (await admin.post(f"/admin/webhooks/{endpoint.id}/enable")).status_code == 303
    assert (await admin.post(f"/admin/webhooks/{endpoint.id}/delete")).status_code == 303
    assert not await WebhookEndpoint.exists() and not await WebhookDelivery.exists()


async def test_rotate_secrets_re_encrypts_the_signing_secrets(app: Starlette, make_staff: MakeStaff) -> None:
    old, new = "old-key-" + "o" * 32, "new-key-" + "n" * 32
    _, secret = await outgoing_webhooks.create_endpoint(
        SecretBox(old), await make_staff("admin"), "https://cms.example.org/h", ["alert.raised"]
    )
    result = await reencrypt_webhook_secrets(SecretBox(new, [old]))
    assert (result.rotated, result.unreadable) == (1, [])
    [endpoint] = await WebhookEndpoint.all()
    assert SecretBox(new).decrypt(endpoint.secret_encrypted) == secret


async def test_an_inbox_worker_killed_mid_post_leaves_it_to_another_under_the_same_id(
    app: Starlette,
    settings: Settings,
    fake_twilio: FakeTwilio,
    anonymous: httpx.AsyncClient,
    admin_api: httpx.AsyncClient,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    """Real `inbox worker` processes: the first is killed (SIGKILL) while its POST waits for an answer; the
    second sends the delivery again once the claim has lapsed. At least once, under one webhook-id."""
    _, secret = await register(admin_api, receiver.url, ["message.received"])
    receiver.hold_first = asyncio.Event()
    await post_text(anonymous, MARIA, "Are you there?")
    [delivery] = await WebhookDelivery.all()
    # A receiver timeout long enough that the kill, not the timeout, ends the first POST (lease: 2 × 3 + 5 s).
    env = worker_env(settings, fake_twilio.base_url, INBOX_SEND_TIMEOUT_SECONDS="3")

    async def received(count: int) -> bool:
        return len(receiver.received) >= count

    async with workers_cleaned_up() as started:
        first = await start_worker(tmp_path / "first", env, "first")
        started.append(first)
        await until(lambda: received(1), 60, "the first POST to arrive", first)
        first.kill()
        assert await first.exit_code() == -9
        receiver.hold_first.set()
        second = await start_worker(tmp_path / "second", env, "second")
        started.append(second)
        await until(lambda: received(2), 90, "the delivery to be sent again", second)

        async def delivered() -> bool:
            await delivery.refresh_from_db()
            return delivery.state == DeliveryState.DELIVERED

        await until(delivered, 30, "the delivery to be recorded", second)
        second.terminate()
        assert await second.exit_code() == 0, second.describe()

    assert [headers["webhook-id"] for headers, _, _ in receiver.received] == [delivery.webhook_id] * 2
    for headers, body, _ in receiver.received:
        Webhook(secret).verify(body, headers)
    attempts = await WebhookAttempt.filter(delivery_id=delivery.id)
    assert [(a.status_code, a.worker) for a in attempts] == [(200, second.worker_id)]


async def test_endpoints_are_read_once_per_process_and_one_deleted_elsewhere_never_loses_a_change(
    anonymous: httpx.AsyncClient, admin_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """The enabled endpoints are this process's copy (settings_cache), forgotten when one changes here or on the
    bus. One deleted by another process before its news arrives fails its delivery's foreign key: the text that
    caused the event is still stored, and the endpoints that remain still get it."""
    kept, _ = await register(admin_api, receiver.url, ["message.received"])
    gone, _ = await register(admin_api, receiver.url + "?copy=2", ["message.received"])
    await post_text(anonymous, MARIA, "First")
    assert settings_cache.is_cached(settings_cache.ENDPOINTS)
    assert sorted(await WebhookDelivery.all().values_list("endpoint_id", flat=True)) == sorted([kept, gone])
    await WebhookEndpoint.filter(id=gone).delete()  # as another process would: this one's copy still has it
    assert [e.id for e in await settings_cache.webhook_subscribers()] == [kept, gone]
    second = await text_in(anonymous, MARIA, "Second")
    assert await Message.exists(id=second.id, body="Second")
    bodies = await WebhookDelivery.filter(endpoint_id=kept).values_list("body", flat=True)
    assert any(f'"message_id":{second.id}' in body for body in bodies)
    assert not await WebhookDelivery.filter(endpoint_id=gone).exists()
    assert [e.id for e in await settings_cache.webhook_subscribers()] == [kept]  # read again after the failure
