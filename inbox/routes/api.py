"""The JSON API under /api/v1 (bearer token): its handlers and the one table of operations that both the
router and the OpenAPI document are made from. Field names are a contract: see PRODUCT.md and api_models.py.

A handler's docstring is its operation's description in the document, written for integrators."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from inbox import models as orm
from inbox.models import ConsentSource, Staff
from inbox.routes import api_models as shapes
from inbox.routes.api_models import (
    AssignmentInput,
    AssignmentQuery,
    CaseInput,
    ClientInput,
    ConsentInput,
    LinkInput,
    MessageInput,
    Paging,
    QueueQuery,
)
from inbox.routes.events import LAST_EVENT_ID_REFUSED, last_event_id, open_stream
from inbox.routes.openapi import document
from inbox.routes.operations import Call, Operation, Raw, route_of
from inbox.services import (
    alerts,
    audit,
    campaigns,
    case_events,
    consent,
    directory,
    linking,
    media,
    messaging,
    outgoing_webhooks,
    surveys,
    tasks,
    transcripts,
    visibility,
)
from inbox.services import outbox as outbox_service
from inbox.services import queue as sms_queue
from inbox.services.errors import Forbidden, NotFound, require
from inbox.services.messaging import SendRequest


def require_manager(staff: Staff) -> None:
    if not staff.sees_everything:
        raise Forbidden("Only supervisors and admins may change clients, cases and assignments.")


# ---------------------------------------------------------------- clients, cases, assignments


async def create_client(call: Call) -> shapes.Client:
    """Supervisors and admins only. Phone numbers are stored and answered in E.164."""
    require_manager(call.staff)
    body = call.body_as(ClientInput)
    client = await directory.create_client(
        name=body.name,
        phones=[directory.PhoneInput(p.number, p.kind.value, p.okay_to_text) for p in body.phones],
        external_id=body.external_id,
        preferred_language=body.preferred_language,
        source=ConsentSource.API,
        staff=call.staff,
    )
    return shapes.Client.of(await directory.get_client(client.id))


async def list_clients(call: Call) -> list[shapes.Client]:
    """Clients the caller may see, newest first."""
    paging = call.query_as(Paging)
    query = orm.Client.all()
    if not call.staff.sees_everything:
        query = query.filter(id__in=await visibility.assigned_client_ids(call.staff))
    clients = await paging.page_of(query).prefetch_related("phones__consent_log", "cases")
    return [shapes.Client.of(client) for client in clients]


async def get_client(call: Call) -> shapes.Client:
    client_id = call.ids["client_id"]
    if not await visibility.can_see_client(call.staff, client_id):
        raise NotFound("No client has this id.")
    return shapes.Client.of(await directory.get_client(client_id))


async def set_phone_consent(call: Call) -> shapes.Phone:
    """Sets the phone's `okay_to_text` and adds an entry with `source` `api` to its `consent_log` (nothing is
    added when the value does not change). A `consent.changed` event tells open tabs. An opt-out is not undone:
    only the client can, by texting START (or YES to an opt-in request), so `opted_out` stays as it is. Any
    caller who may see the client may record it; phones of other clients answer 404."""
    phone = await consent.set_okay_to_text(
        call.request.app.state.bus,
        call.staff,
        call.ids["client_id"],
        call.ids["phone_id"],
        call.body_as(ConsentInput).okay_to_text,
        ConsentSource.API,
    )
    await phone.fetch_related("consent_log")
    return shapes.Phone.of(phone)


async def create_case(call: Call) -> shapes.Case:
    """Supervisors and admins only. An `office` named for the first time is created. An unknown `client_id`, or
    a `number` or `external_id` already in use, answers 422 naming the field."""
    require_manager(call.staff)
    body = call.body_as(CaseInput)
    case = await directory.create_case(
        number=body.number,
        title=body.title,
        client_id=body.client_id,
        legal_problem=body.legal_problem,
        office=body.office,
        external_id=body.external_id,
    )
    return shapes.Case.of(await directory.get_case(case.id))


async def list_cases(call: Call) -> list[shapes.Case]:
    """Cases the caller may see, newest first."""
    paging = call.query_as(Paging)
    query = orm.Case.all()
    if not call.staff.sees_everything:
        query = query.filter(id__in=await visibility.assigned_case_ids(call.staff))
    return [shapes.Case.of(case) for case in await paging.page_of(query).prefetch_related("office")]


async def _visible_case(staff: Staff, case_id: int) -> orm.Case:
    case = await orm.Case.get_or_none(id=case_id).prefetch_related("office")
    if case is None or not await visibility.can_see_case(staff, case):
        raise NotFound("No case has this id.")
    return case


async def get_case(call: Call) -> shapes.Case:
    return shapes.Case.of(await _visible_case(call.staff, call.ids["case_id"]))


async def create_assignment(call: Call) -> shapes.Assignment:
    """Supervisors and admins only. An unknown `case_id` or `staff_email`, or an `end` before `start`, answers
    422 naming the field."""
    require_manager(call.staff)
    body = call.body_as(AssignmentInput)
    assignment = await directory.create_assignment(
        case_id=body.case_id,
        staff_email=body.staff_email,
        primary=body.primary,
        start=body.start,
        end=body.end,
        by=call.staff,
    )
    await assignment.fetch_related("staff")
    return shapes.Assignment.of(assignment)


async def list_assignments(call: Call) -> list[shapes.Assignment]:
    """Assignments on cases the caller may see, newest first."""
    paging = call.query_as(AssignmentQuery)
    query = orm.Assignment.all()
    if not call.staff.sees_everything:
        query = query.filter(case_id__in=await visibility.assigned_case_ids(call.staff))
    if paging.case_id is not None:
        query = query.filter(case_id=paging.case_id)
    rows = await paging.page_of(query).prefetch_related("staff")
    return [shapes.Assignment.of(row) for row in rows]


async def get_assignment(call: Call) -> shapes.Assignment:
    assignment = await orm.Assignment.get_or_none(id=call.ids["assignment_id"]).prefetch_related("staff", "case")
    if assignment is None or not await visibility.can_see_case(call.staff, assignment.case):
        raise NotFound("No assignment has this id.")
    return shapes.Assignment.of(assignment)


# ---------------------------------------------------------------- messages


async def _message_for(staff: Staff, message_id: int) -> shapes.Message:
    message = await messaging.get_message_for(staff, message_id)
    await message.fetch_related("media", "attempts")
    return shapes.Message.of(message, await visibility.visible_case_ids(staff))


async def send_message(call: Call) -> shapes.Message:
    """Answers 201 with the message at once; the provider may be called after the answer, so follow `status` on
    the message or the event stream. The number is `to` if given, else the client's mobile (the client of
    `client_id`, or of `case_id`'s case), else the client's first number.

    A send our rules refuse (no consent to text, opted out, no number on file) answers 409 and stores no message.
    A send the provider refuses answers 201 with `status` `failed`, its `error_code` and `error_message`."""
    body = call.body_as(MessageInput)
    if body.case_id is None and body.client_id is None and not body.to:
        require({"to": "Give case_id, client_id or to."})
    request = SendRequest(
        body=body.body, case_id=body.case_id, client_id=body.client_id, to=body.to, send_at=body.send_at
    )
    outbox = call.request.app.state.outbox
    message = await messaging.send_text(outbox, call.staff, request)
    if messaging.due_now(message):
        call.after.add_task(outbox_service.send_all_now, outbox, [message.id])
    return await _message_for(call.staff, message.id)


async def get_message(call: Call) -> shapes.Message:
    return await _message_for(call.staff, call.ids["message_id"])


async def cancel_message(call: Call) -> shapes.Message:
    """Stops a text that is still `scheduled` in our outbox: it becomes `canceled`, with a timeline step, and a
    `message.status` event tells open tabs. Cancelling a text already cancelled is harmless and answers it again.
    Once the outbox has handed the text to the provider (`queued` or later) it cannot be stopped: 409. Any staff
    member who may see the text may cancel it, as in the SMS queue page."""
    message_id = call.ids["message_id"]
    await sms_queue.cancel_scheduled(call.request.app.state.bus, call.staff, message_id)
    return await _message_for(call.staff, message_id)


async def retry_message(call: Call) -> shapes.Message:
    """A stuck text (due and not taken by the provider for longer than the outbox allows) is made due at once; a
    failed text the outbox gave up on (the provider busy or failing, no connection, no answer — never a refusal
    such as 21211 or 21610, nor a text the provider took) goes back in the outbox as `queued` for a new round of
    attempts. Either way it is handed to the provider after this answer: follow `status`, `attempts` or the event
    stream. A text whose last attempt had no answer is looked up at the provider first, so it is never sent twice.
    Consent is checked as the text leaves: a number that opted out meanwhile gets nothing (the text is
    `canceled`). Anything else answers 409 saying why."""
    message_id = call.ids["message_id"]
    outbox = call.request.app.state.outbox
    message = await sms_queue.retry_now(call.request.app.state.bus, call.staff, message_id, outbox.rules)
    if messaging.due_now(message):
        call.after.add_task(outbox_service.send_all_now, outbox, [message.id])
    return await _message_for(call.staff, message_id)


async def list_queue(call: Call) -> list[shapes.QueueItem]:
    """Outbound texts still waiting: `scheduled` (for later, in our outbox) and `queued` or `accepted` (on their
    way, in our outbox or at the provider; `provider_sid` tells which), that the caller may see, newest first. A
    scheduled text due in its client's quiet hours (outside the organisation's window, 8 a.m. to 9 p.m. unless
    changed, in the client's time zone) is held: `held_until` says when it will go, and its `error_message` says
    so in words. With `state`, only the texts in that state of the outbox (`failed`: those that failed today)."""
    paging = call.query_as(QueueQuery)
    rules = call.request.app.state.outbox.rules
    visible = await visibility.visible_case_ids(call.staff)
    if paging.state is None:
        entries = await sms_queue.queue_for(call.staff, limit=paging.limit, before=paging.before, rules=rules)
    else:
        entries = await sms_queue.texts_in_state(
            call.staff, paging.state, rules, limit=paging.limit, before=paging.before
        )
    return [
        shapes.QueueItem.model_validate(
            {
                **shapes.Message.fields_of(e.message, visible),
                "held_until": e.hold.until if e.hold else None,
                "state": e.state,
            }
        )
        for e in entries
    ]


async def add_message_link(call: Call) -> shapes.Message:
    """Adds a link with reason `manual` and, if the text was not yet on the case, its case note. Filing it again
    is harmless. The caller must be able to see both the text and the case (else 404). A `message.links` event
    tells open tabs."""
    message_id = call.ids["message_id"]
    await linking.add_link(call.request.app.state.bus, call.staff, message_id, call.body_as(LinkInput).case_id)
    return await _message_for(call.staff, message_id)


async def remove_message_link(call: Call) -> None:
    """Removes every link of the text to the case, whatever rule made it, and the case note it made. 404 when the
    text is not filed on that case, or the caller may not see the text or the case. A `message.links` event tells
    open tabs."""
    await linking.remove_link(call.request.app.state.bus, call.staff, call.ids["message_id"], call.ids["case_id"])


async def case_transcript(call: Call) -> shapes.Transcript:
    """The case file's record: every text filed on the case (`messages`, each with its status timeline and
    attachments), the consent changes of the numbers involved (`consent_events`), every filing on the case and
    every text taken off it (`link_changes`), and all of these merged as the printable page and its CSV show
    them (`entries`). Only what the caller may see; 404 for a case they may not see."""
    transcript = await transcripts.case_transcript(call.staff, call.ids["case_id"])
    await audit.record(audit.Action.TRANSCRIPT_EXPORTED, call.staff, transcript.case, format="api")
    return shapes.Transcript.of(transcript)


async def case_notes(call: Call) -> list[shapes.CaseNote]:
    """Each text filed on a case makes one note there (however many rules filed it): who sent it, what it said
    and when. Taking the text off the case removes its note."""
    paging = call.query_as(Paging)
    case = await _visible_case(call.staff, call.ids["case_id"])
    query = orm.CaseNote.filter(case_id=case.id)
    return [shapes.CaseNote.of(note) for note in await paging.page_of(query)]


async def case_documents(call: Call) -> list[shapes.Document]:
    """Every stored attachment of every text filed on the case. Attachments still being fetched, refused or failed
    are not documents; see the message's `media`."""
    paging = call.query_as(Paging)
    case = await _visible_case(call.staff, call.ids["case_id"])
    documents = sorted(await media.documents_of_case(case.id), key=lambda item: item.id, reverse=True)
    page = [item for item in documents if paging.before is None or item.id < paging.before][: paging.limit]
    return [shapes.Document.of(item) for item in page]


async def get_media(call: Call) -> Response:
    """The stored file of an attachment (the `url` of a message's `media` item or of a document), for callers who
    may see its text's conversation or a case the text is filed on. Attachments not stored (pending, refused,
    failed) answer 404."""
    from inbox.routes.media import file_response  # the attachments module serves the bytes, one way for pages and API

    item = await media.visible_media(call.staff, call.ids["media_id"])
    return await file_response(item, call.request.app.state.settings)


# ---------------------------------------------------------------- case events and reminders


def _reminder_specs(reminders: list[shapes.ReminderInput] | None) -> tuple[case_events.ReminderSpec, ...] | None:
    if reminders is None:
        return None
    return tuple(
        case_events.ReminderSpec(r.minutes_before, r.at_local_time, r.quick_entry_id, r.ask_confirmation)
        for r in reminders
    )


async def create_event(call: Call) -> shapes.Event:
    """Anyone who may see the case. Each reminder is a scheduled text to the client's mobile, filed on the case
    and shown on the queue like any other: consent and quiet hours are decided when it leaves. Without
    `reminders`, the organisation's defaults for the kind (hearing: 7 days and 1 day before at 9 a.m., client
    time; appointment: 1 day and 2 hours before; meeting: 1 day before; deadline: as a hearing). A reminder whose
    time has already passed is not made (`status` `skipped`)."""
    body = call.body_as(shapes.EventInput)
    data = case_events.EventInput(
        kind=body.kind,
        title=body.title,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        place=body.place or "",
        notes=body.notes or "",
        attendee_emails=tuple(body.attendee_emails or ()),
        reminders=_reminder_specs(body.reminders),
    )
    event = await case_events.create_event(call.request.app.state.bus, call.staff, call.ids["case_id"], data)
    return shapes.Event.of(event)


async def list_events(call: Call) -> list[shapes.Event]:
    """Soonest first, cancelled events included (`cancelled_at`)."""
    return [shapes.Event.of(e) for e in await case_events.events_of_case(call.staff, call.ids["case_id"])]


async def get_event(call: Call) -> shapes.Event:
    return shapes.Event.of(await case_events.get_event(call.staff, call.ids["event_id"]))


async def update_event(call: Call) -> shapes.Event:
    """Only the fields given change. A cancelled event cannot be changed (409)."""
    patch = call.body_as(shapes.EventPatch)
    event = await case_events.get_event(call.staff, call.ids["event_id"])
    given = {name: getattr(patch, name) for name in patch.model_fields_set}
    if "reminders" in given:
        given["reminders"] = _reminder_specs(patch.reminders)
    if "attendee_emails" in given:
        given["attendee_emails"] = tuple(patch.attendee_emails or ())
    for text_field in ("place", "notes"):
        if text_field in given and given[text_field] is None:
            given[text_field] = ""
    for required in ("kind", "title", "starts_at"):
        if required in given and given[required] is None:
            require({required: "Give a value, or leave the field out."})
    data = case_events.with_changes(event, **given)
    return shapes.Event.of(await case_events.update_event(call.request.app.state.bus, call.staff, event.id, data))


async def cancel_event(call: Call) -> shapes.Event:
    """The event is kept, with `cancelled_at`; its reminders still in our outbox are cancelled. Cancelling it
    again is harmless."""
    event = await case_events.cancel_event(call.request.app.state.bus, call.staff, call.ids["event_id"])
    return shapes.Event.of(event)


# ---------------------------------------------------------------- outgoing webhooks

ADMINS_ONLY = "Only administrators may manage webhook endpoints."


def require_admin_caller(staff: Staff) -> None:
    if staff.role != orm.Role.ADMIN:
        raise Forbidden(ADMINS_ONLY)


async def create_webhook_endpoint(call: Call) -> shapes.WebhookEndpointCreated:
    """Admins only. Register a URL to receive the chosen events, POSTed as `{"type", "timestamp", "data"}` and
    signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with the `whsec_`
    secret answered here, once. Retried with backoff for about a day; receivers dedupe by `webhook-id`."""
    require_admin_caller(call.staff)
    body = call.body_as(shapes.WebhookEndpointInput)
    box = call.request.app.state.webhooks.box
    bus = call.request.app.state.bus
    endpoint, secret = await outgoing_webhooks.create_endpoint(box, call.staff, body.url, list(body.events), bus)
    return shapes.WebhookEndpointCreated(id=endpoint.id, secret=secret)


async def list_webhook_endpoints(call: Call) -> list[shapes.WebhookEndpoint]:
    """Admins only. Every endpoint, oldest first (never its secret)."""
    require_admin_caller(call.staff)
    return [shapes.WebhookEndpoint.of(endpoint) for endpoint in await outgoing_webhooks.list_endpoints()]


async def delete_webhook_endpoint(call: Call) -> None:
    """Admins only. The endpoint and its delivery log; nothing more is sent to it."""
    require_admin_caller(call.staff)
    await outgoing_webhooks.delete_endpoint(call.staff, call.ids["endpoint_id"], call.request.app.state.bus)


# ---------------------------------------------------------------- alerts


async def list_alerts(call: Call) -> list[shapes.Alert]:
    """Advocates: open alerts addressed to them under the alert policy in force when the text arrived (the case's
    primary assignee, or every current assignee), on cases they may still see. Supervisors and admins: every open
    alert."""
    paging = call.query_as(Paging)
    rows = await alerts.alerts_for(call.staff, limit=paging.limit, before=paging.before, newest_first=True)
    return [shapes.Alert.of(alert) for alert in rows]


async def dismiss_alert(call: Call) -> shapes.Alert:
    """One person dismissing an alert dismisses it for everyone it was addressed to. Dismissing it again is
    harmless and keeps the first dismissal. Needs no body. Alerts on cases the caller may not see answer 404."""
    alert = await alerts.dismiss(call.request.app.state.bus, call.staff, call.ids["alert_id"])
    return shapes.Alert.of(await orm.Alert.get(id=alert.id).prefetch_related("assignees__staff", "dismissed_by"))


# ---------------------------------------------------------------- surveys


async def survey_results(call: Call) -> shapes.SurveyResults:
    """Supervisors and admins only. A reply counts when it comes from a recipient's number within the campaign's
    reply window (`reply_window_days` from when its text left) and is the first reply to it: its whole text,
    trimmed, in any casing, with trailing punctuation dropped, is matched against the options (`" yes "` and
    `"Yes."` are `YES`); anything else counts as `other`. Keywords (STOP, HELP, START …) are never answers. A
    campaign that asks no question has no options and no replies."""
    return shapes.SurveyResults.of(await surveys.results_for(call.staff, call.ids["campaign_id"]))


# ---------------------------------------------------------------- campaigns (bulk texts)


def _excluded(rows: list[campaigns.LeftOut]) -> list[shapes.Excluded]:
    return [shapes.Excluded(client_id=r.client_id, number=r.number, reason=r.reason) for r in rows]


async def create_campaign(call: Call) -> shapes.CampaignCreated:
    """Supervisors and admins only. Makes a draft: the recipients the filter matches (one per case) and those
    left out, with the reason. Nothing is sent until it is started; consent is checked again as each text leaves."""
    body = call.body_as(shapes.CampaignInput)
    given = body.filter.model_dump() if body.filter is not None else {}
    words = campaigns.FilterWords(**{k: v or "" for k, v in given.items()})
    data = campaigns.CampaignInput(
        name=body.name,
        body=body.body,
        filter=words,
        options=tuple(body.options or ()),
        reply_window_days=body.reply_window_days or 7,
        alerts_on_replies=bool(body.alerts_on_replies),
    )
    campaign = await campaigns.create_campaign(call.request.app.state.bus, call.staff, data)
    progress = await campaigns.progress(campaign.id)
    return shapes.CampaignCreated(
        id=campaign.id,
        status=progress.state.value,
        recipients=progress.recipients,
        excluded=_excluded(await campaigns.left_out(campaign.id)),
    )


async def get_campaign(call: Call) -> shapes.CampaignProgress:
    """Supervisors and admins only. The counts now (follow them live on the event stream: `message.status` events
    name their `campaign_id`)."""
    campaign = await campaigns.get_campaign(call.staff, call.ids["campaign_id"])
    return await _campaign_answer(call, campaign.id)


async def _campaign_answer(call: Call, campaign_id: int) -> shapes.CampaignProgress:
    progress = await campaigns.progress(campaign_id)
    excluded = await campaigns.left_out(campaign_id) + await campaigns.refused_at_send(campaign_id)
    return shapes.CampaignProgress(
        id=campaign_id,
        status=progress.state.value,
        recipients=progress.recipients,
        waiting=progress.waiting,
        sent=progress.sent,
        delivered=progress.delivered,
        failed=progress.failed,
        excluded=_excluded(excluded),
        replies=progress.replies,
    )


async def start_campaign(call: Call) -> shapes.CampaignProgress:
    """Puts every recipient's text in the outbox, paced at the sending number's throughput; each is filed on the
    recipient's case and shown in their thread."""
    campaign = await campaigns.start(call.request.app.state.bus, call.staff, call.ids["campaign_id"])
    worker = getattr(call.request.app.state, "worker", None)
    if worker is not None:
        worker.wake()
    return await _campaign_answer(call, campaign.id)


async def pause_campaign(call: Call) -> shapes.CampaignProgress:
    """Texts not yet handed to Twilio are held until the campaign is resumed."""
    campaign = await campaigns.pause(call.request.app.state.bus, call.staff, call.ids["campaign_id"])
    return await _campaign_answer(call, campaign.id)


async def resume_campaign(call: Call) -> shapes.CampaignProgress:
    campaign = await campaigns.resume(call.request.app.state.bus, call.staff, call.ids["campaign_id"])
    worker = getattr(call.request.app.state, "worker", None)
    if worker is not None:
        worker.wake()
    return await _campaign_answer(call, campaign.id)


async def cancel_campaign(call: Call) -> shapes.CampaignProgress:
    """Texts not yet handed to Twilio are cancelled (they stay in the threads, marked); sent ones stay sent."""
    campaign = await campaigns.cancel(call.request.app.state.bus, call.staff, call.ids["campaign_id"])
    return await _campaign_answer(call, campaign.id)


# ---------------------------------------------------------------- events and this document


async def events(call: Call) -> Response:
    """A `text/event-stream` that stays open. The subscription is made before the response headers are sent, so
    nothing published after them is missed. Each event's `event:` line is its type and its `data:` line is one
    JSON object with the ids it concerns; the caller only receives events about texts they may see.

    Event types:

    - `stream.open` — always first: `{"staff_id"}` (the token's owner).
    - `message.received` — a client's text arrived: `{"type", "message_id", "conversation_id", "provider_sid",
      "case_ids"}`.
    - `message.sent` — staff sent or scheduled a text (also once the provider has answered): same fields as
      `message.received`.
    - `message.status` — a text moved along its statuses: the same fields plus `"status"`, `"error_code"` and
      `"campaign_id"` (the bulk text it belongs to, else null).
      `"from_schedule"` (true once, when a scheduled text leaves the schedule: handed to sending, or canceled).
    - `message.links` — a text was filed on, or taken off, a case by hand: `{"type", "message_id",
      "conversation_id", "case_ids"}`.
    - `message.media` — an attachment was stored, refused or failed: `{"type", "message_id", "conversation_id",
      "media_id", "status"}`.
    - `alert.raised` / `alert.dismissed` — an alert addressed to the caller (or any, for supervisors and admins):
      `{"type", "alert_id", "case_id", "message_id"}`; `alert.raised` also has `"count"`. One alert is open per
      conversation and case: a further text from the client raises the same `alert_id` again with the new
      `message_id` (the latest text) and `count` (the texts waiting).
    - `consent.changed` — a number's consent changed (a keyword, a reply to an opt-in request, Twilio's 21610,
      staff or this API): `{"type", "phone", "okay_to_text", "opted_out", "conversation_ids", "message_id",
      "consent_event_ids"}` — the number's state after it (some record okay to text; some record opted out), its
      conversations, the text that caused it and the ledger entries made. Fetch the client for its `consent_log`.
    - `case_event.changed` — a hearing, appointment, meeting or deadline on a case the caller may see was added,
      updated or cancelled, or the client confirmed it by text: `{"type", "event_id", "case_id", "change"}` with
      `change` one of `added`, `updated`, `cancelled`, `confirmed`. Fetch `/events/{event_id}` for the event.
    - `survey.answered` — supervisors and admins: a client's reply was counted against a survey: `{"type",
      "campaign_id", "recipient_id", "message_id"}`. Fetch `/campaigns/{campaign_id}/results`.
    - `stream.missed` — an event that may have concerned the caller could not be delivered (e.g. the database was
      briefly unreachable): `{"type"}`. Re-fetch what you show.

    Fetch `/messages/{message_id}` for the message itself. Comment lines (`: ping`) are sent every 15 seconds to
    keep the connection open. More types may be added later; ignore types you do not know.

    Resuming: every event but `stream.open` has an `id:` line, a number that grows with each event (across every
    server process). The server ends the stream when the reader falls behind or the server stops; reconnect with
    the header `Last-Event-ID: <the last id you received>` (an EventSource does this by itself) and you are sent,
    in order and before anything new, the events since then that you may see. Events are kept at least an hour:
    from an id older than that you get one `stream.missed` instead — re-fetch what you show. An id may come
    twice around a reconnect, never be skipped. Without the header the stream starts from now. A `Last-Event-ID`
    that is not a whole number is refused (400)."""
    return open_stream(call.request, call.staff, "json", last_event_id(call.request.headers.get("last-event-id")))


async def openapi(call: Call) -> Response:
    """Needs no token."""
    return JSONResponse(OPENAPI)


EVENT_STREAM_EXAMPLE = (
    "event: stream.open\n"
    'data: {"staff_id": 3}\n\n'
    "event: message.received\n"
    "id: 1041\n"
    'data: {"type": "message.received", "message_id": 41, "conversation_id": 7, '
    '"provider_sid": "SM0123456789abcdef0123456789abcdef", "case_ids": []}\n\n'
    "event: message.status\n"
    "id: 1042\n"
    'data: {"type": "message.status", "message_id": 42, "conversation_id": 7, "status": "delivered", '
    '"provider_sid": "SM00000000000000000000000000000042", "error_code": null, "case_ids": [12], '
    '"campaign_id": null}\n\n'
)
# ---------------------------------------------------------------- tasks


async def list_tasks(call: Call) -> list[shapes.Task]:
    """Open tasks by due time, then done ones. Anyone who may see the case."""
    return [shapes.Task.of(t) for t in await tasks.tasks_of_case(call.staff, call.ids["case_id"])]


async def create_task(call: Call) -> shapes.Task:
    """Anyone who may see the case. The assignee gets reminders texted to the mobile on their profile (if they
    have one and have reminders on): the day before at 9 a.m. and at the due time, in the organisation's time
    zone. They are ordinary texts in the outbox: whether they may leave is decided when they do (reminders still
    on, the mobile has not texted STOP)."""
    body = call.body_as(shapes.TaskInput)
    data = tasks.TaskInput(body.title, body.due_at, body.assignee_id, body.notes or "")
    return shapes.Task.of(await tasks.create_task(call.request.app.state.bus, call.staff, call.ids["case_id"], data))


async def update_task(call: Call) -> shapes.Task:
    """Only the fields given change. Anyone who may see the task: its assignee and maker, whoever may see its
    case, supervisors and admins."""
    patch = call.body_as(shapes.TaskPatch)
    for required in ("title", "due_at"):
        if required in patch.model_fields_set and getattr(patch, required) is None:
            require({required: "Give a value, or leave the field out."})
    change = tasks.TaskChange(
        title=patch.title,
        due_at=patch.due_at,
        assignee_id=patch.assignee_id,
        notes="" if "notes" in patch.model_fields_set and patch.notes is None else patch.notes,
        done=patch.done,
    )
    return shapes.Task.of(await tasks.update_task(call.request.app.state.bus, call.staff, call.ids["task_id"], change))


MANAGERS_ONLY = "Only supervisors and admins may create clients, cases and assignments."
CONSENT_REFUSAL = (
    "Refused by a rule: the number opted out (texted STOP), the client has not agreed to texts, or the client has "
    'no number on file. No message is stored. `error` names the latest cause in the consent ledger ("This number '
    'opted out on 21 Nov: the client texted STOP. …").'
)

# The table: one row per operation, in the document's order. Every `{name}` in a path is an id.
OPERATIONS: list[Operation] = [
    Operation("GET", "/clients", list_clients, "listClients", "List clients", "directory",
              answer=list[shapes.Client], answer_words="A page of clients, newest first.", query=Paging),
    Operation("POST", "/clients", create_client, "createClient", "Create a client", "directory",
              answer=shapes.Client, answer_words="The new client.", status=201, body=ClientInput,
              errors={403: MANAGERS_ONLY}),
    Operation("GET", "/clients/{client_id}", get_client, "getClient", "Get one client", "directory",
              answer=shapes.Client, answer_words="The client."),
    Operation("POST", "/clients/{client_id}/phones/{phone_id}/consent", set_phone_consent, "setPhoneConsent",
              "Record whether a client agreed to texts on one number", "directory",
              answer=shapes.Phone, answer_words="The phone, with its consent ledger.", body=ConsentInput),
    Operation("GET", "/cases", list_cases, "listCases", "List cases", "directory",
              answer=list[shapes.Case], answer_words="A page of cases, newest first.", query=Paging),
    Operation("POST", "/cases", create_case, "createCase", "Create a case", "directory",
              answer=shapes.Case, answer_words="The new case.", status=201, body=CaseInput,
              errors={403: MANAGERS_ONLY}),
    Operation("GET", "/cases/{case_id}", get_case, "getCase", "Get one case", "directory",
              answer=shapes.Case, answer_words="The case."),
    Operation("GET", "/cases/{case_id}/transcript", case_transcript, "getCaseTranscript",
              "A case's transcript: its texts, consent changes and link changes, oldest first", "messages",
              answer=shapes.Transcript, answer_words="The case's record, oldest first (not paged)."),
    Operation("GET", "/cases/{case_id}/notes", case_notes, "listCaseNotes", "The case notes texts made on a case",
              "cases", answer=list[shapes.CaseNote], answer_words="A page of notes, newest first.", query=Paging),
    Operation("GET", "/cases/{case_id}/documents", case_documents, "listCaseDocuments",
              "The attachments (MMS) of texts filed on a case", "cases",
              answer=list[shapes.Document], answer_words="A page of documents, newest first.", query=Paging),
    Operation("POST", "/cases/{case_id}/events", create_event, "createCaseEvent",
              "Add a hearing, appointment, meeting or deadline to a case, with its client reminders", "case-events",
              answer=shapes.Event, answer_words="The event with its reminders.", status=201, body=shapes.EventInput),
    Operation("GET", "/cases/{case_id}/events", list_events, "listCaseEvents", "A case's events", "case-events",
              answer=list[shapes.Event], answer_words="The case's events, soonest first (not paged)."),
    Operation("GET", "/events/{event_id}", get_event, "getCaseEvent", "Get one case event", "case-events",
              answer=shapes.Event, answer_words="The event with its reminders."),
    Operation("PATCH", "/events/{event_id}", update_event, "updateCaseEvent",
              "Change a case event (a new start moves its pending reminders)", "case-events",
              answer=shapes.Event, answer_words="The event as it is now.", body=shapes.EventPatch,
              errors={409: "The event was cancelled."}),
    Operation("DELETE", "/events/{event_id}", cancel_event, "cancelCaseEvent",
              "Cancel a case event and its pending reminders", "case-events",
              answer=shapes.Event, answer_words="The event, with `cancelled_at`."),
    Operation("GET", "/cases/{case_id}/tasks", list_tasks, "listCaseTasks", "A case's tasks", "tasks",
              answer=list[shapes.Task], answer_words="Open tasks by due time, then done ones (not paged)."),
    Operation("POST", "/cases/{case_id}/tasks", create_task, "createCaseTask",
              "Add a task to a case, with reminders to its assignee's mobile", "tasks",
              answer=shapes.Task, answer_words="The task with its reminders.", status=201, body=shapes.TaskInput),
    Operation("PATCH", "/tasks/{task_id}", update_task, "updateTask",
              "Change a task or mark it done (its pending reminders follow)", "tasks",
              answer=shapes.Task, answer_words="The task as it is now.", body=shapes.TaskPatch),
    Operation("GET", "/assignments", list_assignments, "listAssignments", "List assignments", "directory",
              answer=list[shapes.Assignment], answer_words="A page of assignments, newest first.",
              query=AssignmentQuery),
    Operation("POST", "/assignments", create_assignment, "createAssignment", "Put a staff member on a case",
              "directory", answer=shapes.Assignment, answer_words="The new assignment.", status=201,
              body=AssignmentInput, errors={403: MANAGERS_ONLY}),
    Operation("GET", "/assignments/{assignment_id}", get_assignment, "getAssignment", "Get one assignment",
              "directory", answer=shapes.Assignment, answer_words="The assignment."),
    Operation("POST", "/messages", send_message, "sendMessage", "Send (or schedule) a text", "messages",
              answer=shapes.Message, status=201, body=MessageInput,
              answer_words="The stored message (`queued`, `scheduled`, or `failed` if the provider refused it).",
              errors={403: "Advocates may text only the numbers of clients on their current cases.",
                      404: "No such case or client, or one the caller may not see.", 409: CONSENT_REFUSAL}),
    Operation("GET", "/messages/{message_id}", get_message, "getMessage",
              "Get one text with its status timeline, links and attachments", "messages",
              answer=shapes.Message, answer_words="The message."),
    Operation("DELETE", "/messages/{message_id}", cancel_message, "cancelMessage", "Cancel a scheduled text",
              "messages", answer=shapes.Message, answer_words="The message, now `canceled`.",
              errors={409: "Already handed to the provider (or not a text we send): it can no longer be cancelled."}),
    Operation("POST", "/messages/{message_id}/retry", retry_message, "retryMessage",
              "Retry a stuck text, or a failed one the provider did not refuse", "messages",
              answer=shapes.Message, answer_words="The message, back in the outbox and due now.",
              errors={409: "Not stuck, not failed, refused by the provider (it would be again), cancelled, or already "
                           "with the provider: `error` says which and what to do."}),
    Operation("GET", "/queue", list_queue, "listQueue", "Scheduled and queued texts, or the texts in one state",
              "messages", answer=list[shapes.QueueItem], answer_words="A page of waiting texts, newest first.",
              query=QueueQuery),
    Operation("POST", "/messages/{message_id}/links", add_message_link, "linkMessageToCase",
              "File a text on a case by hand", "messages",
              answer=shapes.Message, answer_words="The message with its links.", status=201, body=LinkInput),
    Operation("DELETE", "/messages/{message_id}/links/{case_id}", remove_message_link, "unlinkMessageFromCase",
              "Take a text off a case", "messages", answer_words="Taken off the case.", status=204),
    Operation("GET", "/media/{media_id}", get_media, "getMedia", "Download an attachment", "messages",
              answer=Raw("*/*", {"type": "string", "contentMediaType": "application/octet-stream"}),
              answer_words="The file, with its content type."),
    Operation("GET", "/alerts", list_alerts, "listAlerts", "Open alerts for the caller", "alerts",
              answer=list[shapes.Alert], answer_words="A page of open alerts, newest first.", query=Paging),
    Operation("POST", "/alerts/{alert_id}/dismiss", dismiss_alert, "dismissAlert", "Dismiss an alert, for everyone",
              "alerts", answer=shapes.Alert, answer_words="The alert, with `dismissed_at` and `dismissed_by`."),
    Operation("GET", "/campaigns/{campaign_id}/results", survey_results, "getSurveyResults",
              "A survey's tallies per answer option and its replies", "campaigns",
              answer=shapes.SurveyResults, answer_words="The tallies and every counted reply.",
              errors={403: surveys.NOT_A_MANAGER}),
    Operation("POST", "/campaigns", create_campaign, "createCampaign", "Compose a bulk text and preview its recipients",
              "campaigns", answer=shapes.CampaignCreated, status=201, body=shapes.CampaignInput,
              answer_words="The draft: how many get it, and who is left out and why.",
              errors={403: campaigns.MANAGERS_ONLY}),
    Operation("GET", "/campaigns/{campaign_id}", get_campaign, "getCampaign", "A bulk text's progress", "campaigns",
              answer=shapes.CampaignProgress, answer_words="The counts now.", errors={403: campaigns.MANAGERS_ONLY}),
    Operation("POST", "/campaigns/{campaign_id}/start", start_campaign, "startCampaign", "Send a draft bulk text",
              "campaigns", answer=shapes.CampaignProgress, answer_words="The counts now.",
              errors={403: campaigns.MANAGERS_ONLY, 409: "Not a draft, or nobody would get it."}),
    Operation("POST", "/campaigns/{campaign_id}/pause", pause_campaign, "pauseCampaign", "Pause a bulk text",
              "campaigns", answer=shapes.CampaignProgress, answer_words="The counts now.",
              errors={403: campaigns.MANAGERS_ONLY, 409: "It is not sending."}),
    Operation("POST", "/campaigns/{campaign_id}/resume", resume_campaign, "resumeCampaign", "Resume a paused bulk text",
              "campaigns", answer=shapes.CampaignProgress, answer_words="The counts now.",
              errors={403: campaigns.MANAGERS_ONLY, 409: "It is not paused."}),
    Operation("POST", "/campaigns/{campaign_id}/cancel", cancel_campaign, "cancelCampaign",
              "Cancel a bulk text's unsent texts", "campaigns", answer=shapes.CampaignProgress,
              answer_words="The counts now.",
              errors={403: campaigns.MANAGERS_ONLY, 409: "It has finished or was cancelled already."}),
    Operation("POST", "/webhook-endpoints", create_webhook_endpoint, "createWebhookEndpoint",
              "Register an outgoing webhook endpoint", "webhooks", answer=shapes.WebhookEndpointCreated, status=201,
              body=shapes.WebhookEndpointInput, answer_words="Its id and its signing secret (shown once).",
              errors={403: ADMINS_ONLY}),
    Operation("GET", "/webhook-endpoints", list_webhook_endpoints, "listWebhookEndpoints",
              "List outgoing webhook endpoints", "webhooks", answer=list[shapes.WebhookEndpoint],
              answer_words="Every endpoint, oldest first.", errors={403: ADMINS_ONLY}),
    Operation("DELETE", "/webhook-endpoints/{endpoint_id}", delete_webhook_endpoint, "deleteWebhookEndpoint",
              "Delete an outgoing webhook endpoint", "webhooks", answer_words="Deleted.", status=204,
              errors={403: ADMINS_ONLY}),
    Operation("GET", "/events", events, "streamEvents", "Live events (server-sent events)", "events",
              answer=Raw("text/event-stream", {"type": "string"}, EVENT_STREAM_EXAMPLE,
                         {"Cache-Control": "Always `no-store`."}),
              answer_words="The event stream.",
              errors={400: LAST_EVENT_ID_REFUSED}),
    Operation("GET", "/openapi.json", openapi, "getOpenApiDocument", "This OpenAPI document", "meta",
              answer=Raw("application/json", {"type": "object"}), answer_words="The OpenAPI 3.1 document.",
              public=True),
]  # fmt: skip

routes = [route_of(operation) for operation in OPERATIONS]
OPENAPI: dict[str, Any] = document(OPERATIONS)
