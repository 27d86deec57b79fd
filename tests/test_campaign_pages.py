"""Bulk texts through the API and the pages (supervisors and admins only), and their live progress: coalesced to
at most two updates a second per campaign, for managers' tabs only."""

from __future__ import annotations

import asyncio
import itertools
import re
import statistics
from contextlib import AsyncExitStack

import pytest
from starlette.applications import Starlette

from inbox.models import Campaign, CampaignState, Channel, Message, MessagePurpose, OutboxState, Staff
from inbox.worker import send_due
from tests.support.api import assert_error
from tests.support.campaigns import bulk_clients, fast_channels
from tests.support.fake_twilio import FakeTwilio
from tests.support.live import event_stream, signed_in_browser
from tests.support.outbox import no_quiet_hours
from tests.support.pages import words
from tests.support.records import MakeCase
from tests.support.staff import csrf_of


async def test_the_api_creates_previews_starts_and_reports(
    app: Starlette, supervisor, make_case: MakeCase, fake_twilio: FakeTwilio
) -> None:
    await no_quiet_hours()
    await fast_channels()
    maria = await make_case()
    no_consent = await make_case(phone="+14045550144", okay_to_text=False, name="Ana Ruiz")
    created = await supervisor.post(
        "/api/v1/campaigns",
        json={
            "name": "Survey",
            "body": "Was our help useful? Reply 1 or 2.",
            "filter": {"legal_problem": "housing", "case_state": "open"},
            "options": ["1", "2"],
            "reply_window_days": 3,
            "alerts_on_replies": True,
        },
    )
    assert created.status_code == 201, created.text
    answer = created.json()
    assert (answer["status"], answer["recipients"]) == ("draft", 1)
    assert answer["excluded"] == [{"client_id": no_consent.client_id, "number": "+14045550144", "reason": "no_consent"}]
    campaign = await Campaign.get(id=answer["id"])
    assert campaign.answer_options == [{"answer": "1", "label": ""}, {"answer": "2", "label": ""}]
    assert (campaign.reply_window_days, campaign.replies_raise_alerts) == (3, True)

    started = await supervisor.post(f"/api/v1/campaigns/{campaign.id}/start")
    assert started.status_code == 200, started.text
    assert (started.json()["status"], started.json()["waiting"]) == ("sending", 1)
    assert_error(await supervisor.post(f"/api/v1/campaigns/{campaign.id}/start"), 409)
    await send_due(app.state.outbox)
    got = (await supervisor.get(f"/api/v1/campaigns/{campaign.id}")).json()
    assert got["status"] == "finished" and got["waiting"] == 0 and got["sent"] + got["delivered"] == 1
    assert set(got) == {"id", "status", "recipients", "waiting", "sent", "delivered", "failed", "excluded", "replies"}
    assert fake_twilio.bodies_to("+14045387319") == ["Was our help useful? Reply 1 or 2."]
    assert maria.case_id == (await Message.get(campaign_id=campaign.id)).case_id

    bad = assert_error(
        await supervisor.post(
            "/api/v1/campaigns",
            json={
                "name": "x",
                "body": "Hi",
                "filter": {"office": "Nowhere", "closed_after": "2026-02-01", "closed_before": "2026-01-01"},
            },
        ),
        422,
    )
    assert set(bad["fields"]) == {"office", "closed_before"}


async def test_advocates_may_not_use_campaigns(app: Starlette, make_staff, api_client, signed_in) -> None:
    advocate = await make_staff("advocate")
    api = await api_client(advocate)
    refused = assert_error(await api.post("/api/v1/campaigns", json={"name": "x", "body": "Hi"}), 403)
    assert "supervisors and admins" in refused["error"]
    page = await (await signed_in(advocate)).get("/campaigns/new")
    assert page.status_code == 403 and "supervisors and admins" in words(page.text)
    assert 'href="/campaigns"' not in (await (await signed_in(advocate)).get("/")).text


async def test_the_pages_compose_preview_test_and_start(
    app: Starlette, signed_in, make_staff, make_case: MakeCase, fake_twilio: FakeTwilio
) -> None:
    await no_quiet_hours()
    supervisor = await make_staff("supervisor")
    await Staff.filter(id=supervisor.id).update(mobile="+14045550100")
    await make_case()
    await make_case(phone="+14045550155", name="Opted Out")
    from inbox.models import ClientPhone

    await ClientPhone.filter(number="+14045550155").update(opted_out=True)
    http = await signed_in(supervisor)
    form = await http.get("/campaigns/new")
    assert 'href="/campaigns"' in form.text
    token = csrf_of(form.text)
    bad = await http.post(
        "/campaigns/new", data={"csrf_token": token, "name": "Kept", "body": "", "case_state": "open"}
    )
    assert bad.status_code == 422 and 'value="Kept"' in bad.text and "Write the message." in bad.text
    made = await http.post(
        "/campaigns/new",
        data={"csrf_token": token, "name": "Closure", "body": "Hi {client_first_name} <b>", "case_state": "any"},
    )
    assert made.status_code == 303
    page = await http.get(made.headers["location"])
    text = words(page.text)
    assert "1 client gets this text; 1 left out." in text and "opted out" in text
    assert "Hi {client_first_name} &lt;b&gt;" in page.text  # escaped
    campaign_id = int(re.search(r"/campaigns/(\d+)", made.headers["location"]).group(1))

    tested = await http.post(f"/campaigns/{campaign_id}/test", data={"csrf_token": csrf_of(page.text)})
    assert tested.status_code == 303
    test = await Message.get(to_number="+14045550100")
    assert (test.purpose, test.body) == (MessagePurpose.TEST, "Hi Maria <b>")

    started = await http.post(f"/campaigns/{campaign_id}/start", data={"csrf_token": csrf_of(page.text)})
    assert started.status_code == 303
    assert (await Campaign.get(id=campaign_id)).state == CampaignState.SENDING
    paused = await http.post(f"/campaigns/{campaign_id}/pause", data={"csrf_token": csrf_of(page.text)})
    assert paused.status_code == 303
    assert await Message.filter(campaign_id=campaign_id, outbox_state=OutboxState.HELD).count() == 1
    again = await http.post(f"/campaigns/{campaign_id}/pause", data={"csrf_token": csrf_of(page.text)})
    assert again.status_code == 409 and "Only a campaign that is sending can be paused." in words(again.text)
    # The live pane's buttons post with htmx and the tab's token in the header (the fragment carries none).
    pane = await http.get(f"/campaigns/{campaign_id}/progress")
    assert f'hx-post="/campaigns/{campaign_id}/resume"' in pane.text
    resumed = await http.post(
        f"/campaigns/{campaign_id}/resume",
        csrf=False,
        headers={"HX-Request": "true", "X-CSRF-Token": csrf_of(page.text)},
    )
    assert resumed.status_code == 204 and resumed.headers["HX-Redirect"] == f"/campaigns/{campaign_id}?done=resumed"
    assert (await Campaign.get(id=campaign_id)).state == CampaignState.SENDING
    forged = await http.post(f"/campaigns/{campaign_id}/pause", csrf=False, headers={"HX-Request": "true"})
    assert forged.status_code == 403
    listing = await http.get("/campaigns")
    assert "Closure" in listing.text and "sending" in words(listing.text)


async def test_live_progress_is_coalesced_for_managers_only(
    app: Starlette, server: str, make_staff, make_case: MakeCase
) -> None:
    """200 texts drained while a supervisor's and an advocate's tabs are open: the supervisor's tab gets the
    campaign's progress at most about twice a second, the last with the final counts; the advocate's none."""
    await no_quiet_hours()
    await fast_channels()
    supervisor = await make_staff("supervisor")
    advocate = await make_staff("advocate")
    await make_case(phone="+17705550123", assignee=advocate, name="Not in it", okay_to_text=False)
    await bulk_clients(200)
    bus = app.state.bus
    from inbox.services import campaigns

    campaign = await campaigns.create_campaign(
        bus, supervisor, campaigns.CampaignInput("Live", "Hello", campaigns.FilterWords(legal_problem="Housing"))
    )
    marker = f'id="campaign-progress-{campaign.id}"'
    async with AsyncExitStack() as stack:
        manager_http = await stack.enter_async_context(signed_in_browser(server, supervisor))
        manager = await stack.enter_async_context(event_stream(manager_http, "/events"))
        advocate_http = await stack.enter_async_context(signed_in_browser(server, advocate))
        advocate_tab = await stack.enter_async_context(event_stream(advocate_http, "/events"))
        loop = asyncio.get_running_loop()
        began = loop.time()
        await campaigns.start(bus, supervisor, campaign.id)
        draining = asyncio.create_task(send_due(app.state.outbox))
        times: list[float] = []
        last = ""
        while "finished" not in last:
            event = await manager.next_event()
            if marker in event.data:
                times.append(loop.time())
                last = event.data
        assert await draining == 200
        elapsed = times[-1] - began
        assert len(times) <= 2 * elapsed + 2, (len(times), elapsed)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # Rendered at least 0.5 s apart. Arrivals jitter on a busy machine (one delivery held up lands just before the
        # next: 0.2 s apart at load 10), so the typical gap is checked: a burst would make it near zero.
        assert statistics.median(gaps) >= 0.4, gaps
        assert "Waiting <strong>0</strong>" in last and "200 of 200 texts handled" in words(last)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.7):
                while True:
                    assert marker not in (await advocate_tab.next_event()).data
    assert await Channel.all().count() >= 1
