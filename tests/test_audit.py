"""The audit trail (issue 12, point 4): every audited action, done through the real routes, writes its row (who,
what, which object, from where); a refused change writes none; only admins read the page and its CSV; filters
and paging work; no detail ever holds a password, a token or a client's words; entries cannot be changed."""

from __future__ import annotations

import csv
import inspect
import io
import re
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import httpx
import pytest
from asyncpg.exceptions import RaiseError
from tortoise import Tortoise

from inbox import clock
from inbox.events import MediaChanged, Subscription
from inbox.models import (
    Assignment,
    AuditEntry,
    Channel,
    ClientPhone,
    Conversation,
    Media,
    Organisation,
    QuickEntry,
    Staff,
    WebhookEndpoint,
)
from inbox.services import audit
from inbox.services.unit_of_work import unit_of_work
from tests.support.channels import SECOND_SID, SECOND_TOKEN, VALID_FORM
from tests.support.events import next_event
from tests.support.fake_twilio import FakeTwilio
from tests.support.records import MARIA, MakeCase
from tests.support.staff import PASSWORD, ApiClientFactory, MakeStaff, StaffClient, post_sign_in
from tests.support.webhooks import mms_in, text_in

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
STRANGER = "+14045550188"
SECRET_WORDS = "my landlord changed the locks"


async def rows(action: audit.Action, **filters: Any) -> list[AuditEntry]:
    return await AuditEntry.filter(action=action.value, **filters).order_by("id")


async def only_row(action: audit.Action, **filters: Any) -> AuditEntry:
    found = await rows(action, **filters)
    assert len(found) == 1, [(row.action, row.object_kind, row.object_id, row.detail) for row in found]
    return found[0]


def csv_of(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.text.removeprefix("\ufeff"))))


# ---------------------------------------------------------------- signing in


async def test_signing_in_and_failing_to_are_recorded_with_the_email_tried_and_never_the_password(
    anonymous: httpx.AsyncClient, make_staff: MakeStaff
) -> None:
    advocate = await make_staff("advocate")
    wrong = "not-the-password-123"
    assert (await post_sign_in(anonymous, advocate.email, wrong)).status_code == 400
    assert (await post_sign_in(anonymous, "Nobody@Example.org", wrong)).status_code == 400
    failed = await rows(audit.Action.SIGN_IN_FAILED)
    assert [(row.actor_id, row.detail["email"]) for row in failed] == [
        (None, advocate.email),
        (None, "nobody@example.org"),
    ]
    assert all(row.ip == "127.0.0.1" for row in failed)
    assert all(wrong not in repr(row.detail) for row in failed)

    assert (await post_sign_in(anonymous, advocate.email, PASSWORD)).status_code == 303
    signed_in = await only_row(audit.Action.SIGNED_IN)
    assert (signed_in.actor_id, signed_in.object_kind, signed_in.object_id) == (advocate.id, "staff", advocate.id)
    assert signed_in.ip == "127.0.0.1" and PASSWORD not in repr(signed_in.detail)


async def test_the_right_password_for_a_deactivated_account_is_a_failed_sign_in(
    anonymous: httpx.AsyncClient, make_staff: MakeStaff
) -> None:
    gone = await make_staff("advocate")
    await Staff.filter(id=gone.id).update(is_active=False)
    assert (await post_sign_in(anonymous, gone.email, PASSWORD)).status_code == 403
    row = await only_row(audit.Action.SIGN_IN_FAILED)
    assert (
        row.actor_id is None
        and row.object_id == gone.id
        and row.detail == {"email": gone.email, "reason": "deactivated"}
    )
    assert not await rows(audit.Action.SIGNED_IN)


# ---------------------------------------------------------------- reads: transcripts and attachments


async def test_every_transcript_export_is_recorded_page_csv_and_api(
    signed_in, make_staff: MakeStaff, make_case: MakeCase, anonymous: httpx.AsyncClient, api_client: ApiClientFactory
) -> None:
    advocate = await make_staff("advocate")
    case = await make_case(assignee=advocate)
    texted = await text_in(anonymous, MARIA, SECRET_WORDS)
    staff = await signed_in(advocate)
    assert (await staff.get(f"/cases/{case.case_id}/transcript")).status_code == 200
    assert (await staff.get(f"/cases/{case.case_id}/transcript.csv")).status_code == 200
    assert (await staff.get(f"/conversations/{texted.conversation_id}/transcript")).status_code == 200
    assert (await staff.get(f"/conversations/{texted.conversation_id}/transcript.csv")).status_code == 200
    api = await api_client(advocate)
    assert (await api.get(f"/api/v1/cases/{case.case_id}/transcript")).status_code == 200

    exported = await rows(audit.Action.TRANSCRIPT_EXPORTED)
    assert [(row.actor_id, row.object_kind, row.object_id, row.detail["format"]) for row in exported] == [
        (advocate.id, "case", case.case_id, "page"),
        (advocate.id, "case", case.case_id, "csv"),
        (advocate.id, "conversation", texted.conversation_id, "page"),
        (advocate.id, "conversation", texted.conversation_id, "csv"),
        (advocate.id, "case", case.case_id, "api"),
    ]
    assert all(SECRET_WORDS not in repr(row.detail) for row in exported)


async def test_a_transcript_refused_is_no_export(signed_in, make_staff: MakeStaff, make_case: MakeCase) -> None:
    case = await make_case(assignee=await make_staff("advocate"))
    outsider = await signed_in(await make_staff("advocate"))
    assert (await outsider.get(f"/cases/{case.case_id}/transcript.csv")).status_code == 404
    assert not await rows(audit.Action.TRANSCRIPT_EXPORTED)


async def test_downloading_an_attachment_is_recorded_and_a_refused_one_is_not(
    signed_in,
    make_staff: MakeStaff,
    make_case: MakeCase,
    anonymous: httpx.AsyncClient,
    fake_twilio: FakeTwilio,
    bus_events: Subscription,
) -> None:
    advocate = await make_staff("advocate")
    await make_case(assignee=advocate)
    photo = await mms_in(anonymous, [(fake_twilio.add_media(PNG, "image/png"), "image/png")], body=SECRET_WORDS)
    await next_event(bus_events, MediaChanged)
    media = await Media.get(message_id=photo.id)
    outsider = await signed_in(await make_staff("advocate"))
    assert (await outsider.get(f"/media/{media.id}")).status_code == 404
    assert not await rows(audit.Action.MEDIA_DOWNLOADED)

    staff = await signed_in(advocate)
    answer = await staff.get(f"/media/{media.id}")
    assert answer.status_code == 200 and answer.content == PNG
    row = await only_row(audit.Action.MEDIA_DOWNLOADED)
    assert (row.actor_id, row.object_kind, row.object_id, row.detail) == (
        advocate.id,
        "media",
        media.id,
        {"message_id": photo.id},
    )


# ---------------------------------------------------------------- changes


async def test_filing_a_text_on_a_case_and_taking_it_off_are_recorded(
    signed_in, make_staff: MakeStaff, make_case: MakeCase, anonymous: httpx.AsyncClient
) -> None:
    advocate = await make_staff("advocate")
    first = await make_case(assignee=advocate)
    second = await make_case(assignee=advocate, phone="+14045550199", name="Other")
    texted = await text_in(anonymous, MARIA, SECRET_WORDS)
    staff = await signed_in(advocate)
    assert (await staff.post(f"/messages/{texted.id}/links", {"case_id": second.case_id})).status_code == 303
    assert (await staff.post(f"/messages/{texted.id}/links/{second.case_id}/delete")).status_code == 303
    # Not filed there any more: refused, and nothing recorded.
    assert (await staff.post(f"/messages/{texted.id}/links/{second.case_id}/delete")).status_code == 404
    changes = await rows(audit.Action.LINK_CHANGED)
    assert [(row.actor_id, row.object_kind, row.object_id, row.detail) for row in changes] == [
        (advocate.id, "message", texted.id, {"change": "added", "case_id": second.case_id}),
        (advocate.id, "message", texted.id, {"change": "removed", "case_id": second.case_id}),
    ]
    assert first.case_id != second.case_id


async def test_linking_an_unmatched_number_to_a_case_is_recorded(
    signed_in, make_staff: MakeStaff, make_case: MakeCase, anonymous: httpx.AsyncClient
) -> None:
    admin = await make_staff("admin")
    case = await make_case()
    texted = await text_in(anonymous, STRANGER, "hello")
    staff = await signed_in(admin)
    await staff.get(f"/conversations/{texted.conversation_id}")
    answer = await staff.post(f"/conversations/{texted.conversation_id}/link", {"case_number": case.number})
    assert answer.status_code in (200, 303), answer.text
    row = await only_row(audit.Action.LINK_CHANGED)
    assert (row.actor_id, row.object_kind, row.object_id) == (admin.id, "conversation", texted.conversation_id)
    assert row.detail == {"change": "number_added", "case_id": case.case_id}
    # Again: the number is on a record now, so it is refused and nothing more is recorded.
    other = await make_case(phone="+14045550111", name="Someone Else")
    again = await staff.post(f"/conversations/{texted.conversation_id}/link", {"case_number": other.number})
    assert again.status_code >= 400
    assert len(await rows(audit.Action.LINK_CHANGED)) == 1
    assert await Conversation.exists(id=texted.conversation_id)


async def test_staff_changing_consent_is_recorded(
    signed_in, make_staff: MakeStaff, make_case: MakeCase, anonymous: httpx.AsyncClient
) -> None:
    advocate = await make_staff("advocate")
    case = await make_case(assignee=advocate, okay_to_text=False)
    phone = await ClientPhone.get(client_id=case.client_id)
    await text_in(anonymous, MARIA, "STOP")  # the client's own keyword: in the consent ledger, not the audit trail
    staff = await signed_in(advocate)
    url = f"/clients/{case.client_id}/phones/{phone.id}/consent"
    assert (await staff.post(url, {"okay_to_text": "on"})).status_code == 303
    row = await only_row(audit.Action.CONSENT_CHANGED)
    assert (row.actor_id, row.object_kind, row.object_id) == (advocate.id, "client_phone", phone.id)
    assert row.detail == {"okay_to_text": True, "source": "staff"}
    outsider = await signed_in(await make_staff("advocate"))
    await outsider.get("/")
    assert (await outsider.post(url, {"okay_to_text": ""})).status_code == 404
    assert len(await rows(audit.Action.CONSENT_CHANGED)) == 1


async def test_an_assignment_through_the_api_is_recorded_and_a_refused_one_is_not(
    make_staff: MakeStaff, make_case: MakeCase, api_client: ApiClientFactory
) -> None:
    supervisor = await make_staff("supervisor")
    advocate = await make_staff("advocate")
    case = await make_case()
    api = await api_client(supervisor)
    refused = await api.post("/api/v1/assignments", json={"case_id": case.case_id, "staff_email": "no@example.org"})
    assert refused.status_code == 422
    assert not await rows(audit.Action.ASSIGNMENT_CHANGED)
    made = await api.post(
        "/api/v1/assignments", json={"case_id": case.case_id, "staff_email": advocate.email, "primary": True}
    )
    assert made.status_code == 201, made.text
    assignment = await Assignment.get(id=made.json()["id"])
    row = await only_row(audit.Action.ASSIGNMENT_CHANGED)
    assert (row.actor_id, row.object_kind, row.object_id) == (supervisor.id, "assignment", assignment.id)
    assert row.detail == {"change": "created", "case_id": case.case_id, "staff_id": advocate.id, "primary": True}


SETTINGS_FORM = {"name": "Atlanta Legal Aid", "char_limit": "320", "linking_policy": "default", "alert_policy": "all"}


async def test_saving_the_organisations_settings_is_recorded_with_what_changed(
    signed_in, make_staff: MakeStaff
) -> None:
    admin = await make_staff("admin")
    staff = await signed_in(admin)
    await staff.get("/admin/settings")
    refused = await staff.post("/admin/settings", {**SETTINGS_FORM, "char_limit": "2000"})
    assert refused.status_code == 422
    assert not await rows(audit.Action.SETTING_CHANGED)
    assert (await staff.post("/admin/settings", SETTINGS_FORM)).status_code == 303
    organisation = await Organisation.first()
    assert organisation is not None
    row = await only_row(audit.Action.SETTING_CHANGED)
    assert (row.actor_id, row.object_kind, row.object_id) == (admin.id, "organisation", organisation.id)
    assert {"char_limit", "alert_policy"} <= set(row.detail["changed"])
    assert "linking_policy" not in row.detail["changed"]  # it was "default" already


def channel_form(**changes: str) -> dict[str, str]:
    typed = {key: value for key, value in asdict(VALID_FORM).items() if isinstance(value, str)}
    return {**typed, "twilio_handles_opt_out": "on", **changes}


async def test_adding_and_changing_a_sending_number_is_recorded_without_its_token(
    signed_in, make_staff: MakeStaff
) -> None:
    admin = await make_staff("admin")
    staff = await signed_in(admin)
    await staff.get("/admin/channels/new")
    assert (await staff.post("/admin/channels", channel_form(throughput="0"))).status_code == 422
    assert not await rows(audit.Action.SETTING_CHANGED)
    assert (await staff.post("/admin/channels", channel_form())).status_code == 303
    channel = await Channel.get(account_sid=SECOND_SID)
    await staff.get(f"/admin/channels/{channel.id}")
    changed = await staff.post(f"/admin/channels/{channel.id}", channel_form(label="Family unit", auth_token=""))
    assert changed.status_code == 303, changed.text
    entries = await rows(audit.Action.SETTING_CHANGED, object_kind="channel", object_id=channel.id)
    assert [row.detail["changed"] for row in entries] == [["created"], ["label"]]
    assert all(row.actor_id == admin.id for row in entries)
    assert all(SECOND_TOKEN not in repr(row.detail) for row in entries)


async def setting_rows(setting: str) -> list[AuditEntry]:
    found = await rows(audit.Action.SETTING_CHANGED)
    return [row for row in found if row.detail.get("setting") == setting]


async def test_adding_changing_and_deleting_a_quick_entry_is_recorded_without_its_words(
    signed_in, make_staff: MakeStaff
) -> None:
    admin = await make_staff("admin")
    staff = await signed_in(admin)
    await staff.get("/admin/quick-entries/new")
    words = "Your hearing is tomorrow, {client_first_name}."
    form = {"name": "Hearing tomorrow", "language": "", "body": words, "position": "2"}
    assert (await staff.post("/admin/quick-entries", {**form, "body": "{nope}"})).status_code == 422
    assert not await setting_rows("quick_entry")  # refused: no entry
    assert (await staff.post("/admin/quick-entries", form)).status_code == 303
    entry = await QuickEntry.get(name="Hearing tomorrow")
    await staff.get(f"/admin/quick-entries/{entry.id}")
    changed = {**form, "language": "es", "body": "Su audiencia es mañana."}
    assert (await staff.post(f"/admin/quick-entries/{entry.id}", changed)).status_code == 303
    assert (await staff.post(f"/admin/quick-entries/{entry.id}/delete", {})).status_code == 303
    entries = await setting_rows("quick_entry")
    assert [(row.actor_id, row.object_kind, row.object_id, row.detail["change"]) for row in entries] == [
        (admin.id, "quick_entry", entry.id, "created"),
        (admin.id, "quick_entry", entry.id, "updated"),
        (admin.id, "quick_entry", entry.id, "deleted"),
    ]
    created, updated, deleted = (row.detail for row in entries)
    assert created["after"] == {"name": "Hearing tomorrow", "language": None, "position": 2}
    assert created["changed"] == ["name", "language", "body", "position"]
    assert (updated["changed"], updated["before"], updated["after"]) == (
        ["language", "body"],
        {"language": None},
        {"language": "es"},
    )
    assert deleted["before"] == {"name": "Hearing tomorrow", "language": "es", "position": 2}
    assert all("tomorrow, {" not in repr(row.detail) and "mañana" not in repr(row.detail) for row in entries)


async def test_changing_the_quiet_hours_is_recorded_with_before_and_after(signed_in, make_staff: MakeStaff) -> None:
    admin = await make_staff("admin")
    staff = await signed_in(admin)
    await staff.get("/admin/quiet-hours")
    refused = await staff.post("/admin/quiet-hours", {"start": "21", "end": "8", "time_zone": "America/Chicago"})
    assert refused.status_code == 422 and not await setting_rows("quiet_hours")
    organisation = await Organisation.first()
    assert organisation is not None
    before = (organisation.quiet_hours_start, organisation.time_zone)
    saved = await staff.post("/admin/quiet-hours", {"start": "9", "end": "20", "time_zone": "America/Chicago"})
    assert saved.status_code == 303
    [row] = await setting_rows("quiet_hours")
    assert (row.actor_id, row.object_kind, row.object_id) == (admin.id, "organisation", organisation.id)
    assert row.detail["after"] == {"quiet_hours_start": 9, "quiet_hours_end": 20, "time_zone": "America/Chicago"}
    assert (row.detail["before"]["quiet_hours_start"], row.detail["before"]["time_zone"]) == before


async def test_changing_the_default_reminders_is_recorded_per_kind(signed_in, make_staff: MakeStaff) -> None:
    admin = await make_staff("admin")
    staff = await signed_in(admin)
    await staff.get("/admin/reminders")
    fields = {
        "hearing": "7d@09:00, 1d@09:00",
        "appointment": "1d, 2h",
        "meeting": "1h",
        "deadline": "7d@09:00, 1d@09:00",
    }
    assert (await staff.post("/admin/reminders", {**fields, "meeting": "an hour"})).status_code == 422
    assert not await setting_rows("reminder_defaults")
    assert (await staff.post("/admin/reminders", {**fields, "meeting_ask": "1"})).status_code == 303
    [row] = await setting_rows("reminder_defaults")
    assert (row.actor_id, row.object_kind) == (admin.id, "organisation")
    assert row.detail["changed"] == ["meeting"]  # the other kinds were saved as they were
    assert row.detail["before"] == {"meeting": "1440 min"}
    assert row.detail["after"] == {"meeting": "60 min asking C"}


async def test_adding_disabling_enabling_and_deleting_a_webhook_endpoint_is_recorded_without_its_secret(
    signed_in, make_staff: MakeStaff
) -> None:
    admin = await make_staff("admin")
    staff = await signed_in(admin)
    await staff.get("/admin/webhooks")
    form = {"url": "https://cms.example.org/hooks?token=receivers-own", "events": ["message.received"]}
    assert (await staff.post("/admin/webhooks", {**form, "url": "ftp://nowhere"})).status_code == 422
    assert not await setting_rows("webhook_endpoint")
    added = await staff.post("/admin/webhooks", form)
    assert added.status_code == 201
    [endpoint] = await WebhookEndpoint.all()
    secret = re.search(r"whsec_[A-Za-z0-9+/=]+", added.text)
    assert secret is not None
    for step in ("disable", "enable", "delete"):
        await staff.get("/admin/webhooks")
        assert (await staff.post(f"/admin/webhooks/{endpoint.id}/{step}", {})).status_code == 303
    entries = await setting_rows("webhook_endpoint")
    assert [(row.actor_id, row.object_id, row.detail["change"]) for row in entries] == [
        (admin.id, endpoint.id, "created"),
        (admin.id, endpoint.id, "disabled"),
        (admin.id, endpoint.id, "enabled"),
        (admin.id, endpoint.id, "deleted"),
    ]
    assert entries[0].detail["events"] == ["message.received"]
    assert all(row.detail["url"] == "https://cms.example.org/hooks" for row in entries)  # no query string: a token
    assert all(secret.group(0) not in repr(row.detail) and "receivers-own" not in repr(row.detail) for row in entries)


async def test_adding_and_deactivating_staff_is_recorded_and_the_new_password_is_not(
    signed_in, make_staff: MakeStaff
) -> None:
    admin = await make_staff("admin")
    staff = await signed_in(admin)
    await staff.get("/admin/staff")
    form = {"email": "new@example.org", "name": "New Person", "role": "advocate", "office_id": "", "mobile": ""}
    added = await staff.post("/admin/staff", form)
    assert added.status_code == 201
    person = await Staff.get(email="new@example.org")
    password = added.text.split("<code>")[1].split("</code>")[0]
    assert (await staff.post("/admin/staff", form)).status_code == 422  # the same email again: refused
    await staff.get("/admin/staff")
    assert (await staff.post(f"/admin/staff/{person.id}/active", {"active": "0"})).status_code == 200
    entries = await rows(audit.Action.STAFF_CHANGED, actor_id=admin.id)
    assert [(row.object_id, row.detail["change"]) for row in entries] == [
        (person.id, "created"),
        (person.id, "deactivated"),
    ]
    assert entries[0].detail == {"change": "created", "email": "new@example.org", "role": "advocate"}
    assert all(password not in repr(row.detail) for row in entries)


async def test_a_change_that_rolls_back_leaves_no_entry(app, make_staff: MakeStaff) -> None:
    admin = await make_staff("admin")
    with pytest.raises(RuntimeError):
        async with unit_of_work(app.state.bus):
            await audit.record(audit.Action.SETTING_CHANGED, admin, admin, changed=["name"])
            raise RuntimeError("the change failed after its entry was written")
    assert not await rows(audit.Action.SETTING_CHANGED)


async def test_a_detail_may_not_name_a_secret_or_message_text(make_staff: MakeStaff) -> None:
    admin = await make_staff("admin")
    for key in ("password", "token", "body"):
        with pytest.raises(ValueError, match="never secrets"):
            await audit.record(audit.Action.SETTING_CHANGED, admin, None, **{key: "x"})
    assert not await rows(audit.Action.SETTING_CHANGED)


# ---------------------------------------------------------------- append-only


async def test_the_app_has_no_way_to_change_or_delete_an_entry(database_url: str, make_staff: MakeStaff) -> None:
    source = inspect.getsource(audit)
    assert ".update(" not in source and ".delete(" not in source and ".save(" not in source
    admin = await make_staff("admin")
    entry = await audit.record(audit.Action.SETTING_CHANGED, admin, admin, changed=["name"])
    if not database_url.startswith("postgres"):
        return  # SQLite: no trigger (whoever holds the file can change it anyway)
    connection = Tortoise.get_connection("default")
    for sql in (
        f"UPDATE audit_entry SET action = 'x' WHERE id = {entry.id}",
        f"DELETE FROM audit_entry WHERE id = {entry.id}",
    ):
        with pytest.raises(RaiseError, match="append-only"):  # PL/pgSQL's RAISE, as asyncpg names it
            await connection.execute_query(sql)
    assert (await AuditEntry.get(id=entry.id)).action == audit.Action.SETTING_CHANGED


# ---------------------------------------------------------------- the admin page and its CSV


async def test_only_admins_read_the_audit_page_and_its_csv(
    signed_in, make_staff: MakeStaff, anonymous: httpx.AsyncClient
) -> None:
    for role in ("advocate", "supervisor"):
        person = await signed_in(await make_staff(role))
        assert (await person.get("/admin/audit")).status_code == 403
        assert (await person.get("/admin/audit.csv")).status_code == 403
    assert not await rows(audit.Action.AUDIT_EXPORTED)
    answer = await anonymous.get("/admin/audit")
    assert answer.status_code in (302, 303) and "/login" in answer.headers["location"]
    admin = await signed_in(await make_staff("admin"))
    page = await admin.get("/admin/audit")
    assert page.status_code == 200 and "auth.signed_in" in page.text
    assert 'href="/admin/audit"' in (await admin.get("/admin/settings")).text


async def test_filters_by_actor_action_area_object_and_date(signed_in, make_staff: MakeStaff) -> None:
    alice, bob = await make_staff("admin", name="Alice Admin"), await make_staff("advocate", name="Bob Advocate")
    await audit.record(audit.Action.SIGNED_IN, bob, bob)
    await audit.record(audit.Action.SIGN_IN_FAILED, None, None, email="who@example.org")
    await audit.record(audit.Action.LINK_CHANGED, bob, alice, change="added", case_id=7)
    admin = await signed_in(alice)

    def shown(page: httpx.Response) -> list[str]:
        assert page.status_code == 200, page.text
        table = page.text.split('id="audit-entries"')[1]
        return [action for action in audit.actions() if f"<td>{action}</td>" in table]

    assert shown(await admin.get(f"/admin/audit?actor={bob.id}")) == ["auth.signed_in", "link.changed"]
    assert shown(await admin.get("/admin/audit?action=link.changed")) == ["link.changed"]
    assert shown(await admin.get("/admin/audit?action=auth")) == ["auth.signed_in", "auth.sign_in_failed"]
    assert shown(await admin.get(f"/admin/audit?object_kind=staff&object_id={alice.id}")) == [
        "auth.signed_in",  # Alice's own sign-in, through the real form
        "link.changed",
        "staff.changed",  # her account's making (by nobody: the tests' own set-up)
    ]
    today = clock.now().date()
    everything = shown(await admin.get("/admin/audit"))
    assert len(everything) == 4 and shown(await admin.get(f"/admin/audit?since={today}&until={today}")) == everything
    tomorrow = today + timedelta(days=1)
    assert "No entries match." in (await admin.get(f"/admin/audit?since={tomorrow}")).text
    refused = await admin.get("/admin/audit?since=yesterday&object_id=abc")
    assert refused.status_code == 422 and "YYYY-MM-DD" in refused.text and "whole number" in refused.text
    assert (await admin.get("/admin/audit.csv?since=yesterday")).status_code == 422
    assert (await admin.get("/admin/audit?before=x")).status_code == 422


async def test_newest_first_a_page_at_a_time(signed_in, make_staff: MakeStaff) -> None:
    admin = await signed_in(await make_staff("admin"))
    for n in range(audit.PAGE_SIZE + 5):
        await audit.record(audit.Action.LINK_CHANGED, admin.staff, None, case_id=n)
    first = await admin.get("/admin/audit?action=link.changed")
    assert first.status_code == 200
    ids = [int(found) for found in re.findall(r'id="audit-(\d+)"', first.text)]
    assert len(ids) == audit.PAGE_SIZE and ids == sorted(ids, reverse=True)
    older = first.text.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    assert "action=link.changed" in older
    second = await admin.get(older)
    rest = [int(found) for found in re.findall(r'id="audit-(\d+)"', second.text)]
    assert len(rest) == 5 and max(rest) < min(ids) and 'rel="next"' not in second.text


async def test_the_csv_export_is_safe_for_spreadsheets_and_is_itself_recorded(
    signed_in, make_staff: MakeStaff, anonymous: httpx.AsyncClient
) -> None:
    formula = '=HYPERLINK("http://evil.example/","x")@example.org'
    await post_sign_in(anonymous, formula, "wrong-password-1")
    admin: StaffClient = await signed_in(await make_staff("admin"))
    table = csv_of(await admin.get("/admin/audit.csv?action=auth.sign_in_failed"))
    assert table[0] == ["id", "time", "actor_id", "actor", "action", "object_kind", "object_id", "detail", "ip"]
    assert len(table) == 2 and table[1][3] == "nobody signed in"
    assert table[1][7].startswith('{"email": ') and "=hyperlink" in table[1][7]
    assert all(not cell.startswith(("=", "+", "-", "@")) for cell in table[1])
    exported = await only_row(audit.Action.AUDIT_EXPORTED)
    assert exported.actor_id == admin.staff.id and exported.detail == {"action": "auth.sign_in_failed"}


async def test_no_detail_ever_holds_a_password_a_token_or_a_clients_words(
    signed_in,
    make_staff: MakeStaff,
    make_case: MakeCase,
    anonymous: httpx.AsyncClient,
    api_client: ApiClientFactory,
) -> None:
    admin = await make_staff("admin")
    await post_sign_in(anonymous, admin.email, "a-wrong-password-9")
    case = await make_case(assignee=admin)
    texted = await text_in(anonymous, MARIA, SECRET_WORDS)
    staff = await signed_in(admin)
    await staff.get(f"/cases/{case.case_id}/transcript.csv")
    second = await make_case(phone="+14045550177", name="Other")
    await staff.post(f"/messages/{texted.id}/links", {"case_id": second.case_id})
    await staff.get("/admin/channels/new")
    await staff.post("/admin/channels", channel_form())
    await (await api_client(admin)).get(f"/api/v1/cases/{case.case_id}/transcript")
    await staff.get("/admin/audit.csv")
    everything = repr([(row.detail, row.object_kind) for row in await AuditEntry.all()])
    assert len(await AuditEntry.all()) >= 6
    for secret in (PASSWORD, "a-wrong-password-9", SECOND_TOKEN, SECRET_WORDS):
        assert secret not in everything
