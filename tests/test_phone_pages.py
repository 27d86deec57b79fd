"""Issue 10's phone-sized and smaller page fixes, as the server renders them: the folding header, the compact
composer, one time style, consent notices inside list items, the opt-in request setting, no tick on an
opted-out number, the message page's case choices, the dashboard's unmatched numbers, the client phone.
(What only a browser shows — the menu folding, no sideways scrolling, axe — is for the browser tests.)"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

from inbox.models import ClientPhone, Conversation, LinkingPolicy, Message, MessageStatus, Organisation
from inbox.services import settings_cache
from inbox.services.directory import create_case
from inbox.web import exact_time, local_time, reason_once, time_ago
from tests.support.records import MARIA
from tests.support.webhooks import text_in

UNKNOWN = "+14045550199"


# ---------------------------------------------------------------- the header and the composer


async def test_the_header_folds_behind_a_menu_button_that_names_what_it_opens(
    signed_in, make_staff, make_case, anonymous
) -> None:
    advocate = await make_staff("advocate")
    await make_case(assignee=advocate)
    message = await text_in(anonymous, MARIA, "Which courtroom?")
    staff = await signed_in(advocate)
    page = (await staff.get(f"/conversations/{message.conversation_id}")).text
    # The button controls the block holding the links and the sign-out: static/phone.js folds it on a phone.
    assert re.search(r'<button type="button" class="menu-toggle" aria-expanded="false" aria-controls="top-menu">', page)
    menu = page[page.index('<div id="top-menu"') : page.index("</header>")]
    assert 'href="/cases"' in menu and 'action="/logout"' in menu and 'id="alert-badge"' in menu
    assert '<script src="/static/phone.js" defer></script>' in page
    # The composer's attachment is an icon button: the field stays reachable by keyboard (visually hidden, not
    # `hidden`), named for screen readers, and the picked file is said beside it.
    composer = page[page.index('<form id="composer"') : page.index("</form>", page.index('<form id="composer"'))]
    field = re.search(r'<input type="file" name="attachment"[^>]*>', composer)
    assert field and 'class="sr-only"' in field.group(0) and " hidden" not in field.group(0)
    assert 'data-photo-preview="composer-attachment"' in field.group(0) and 'id="composer-attachment"' in composer
    assert '<span class="sr-only">Attach a photo or PDF (5 MB at most)</span>' in composer


async def test_the_inbox_without_a_thread_has_a_heading(signed_in, make_staff) -> None:
    staff = await signed_in(await make_staff("advocate"))
    page = (await staff.get("/")).text
    assert '<h1 class="sr-only">Inbox</h1>' in page and page.count("<h1") == 1


async def test_a_consent_notice_is_a_list_item_holding_a_note(signed_in, make_staff, make_case, anonymous) -> None:
    advocate = await make_staff("advocate")
    await make_case(assignee=advocate)
    stop = await text_in(anonymous, MARIA, "STOP")
    page = (await (await signed_in(advocate)).get(f"/conversations/{stop.conversation_id}")).text
    item = re.search(r'<li id="consent-notice-\d+" class="notice consent-notice">\s*<div role="note">', page)
    assert item, "a list may hold only list items: the note goes inside one"
    assert '<li id="consent-notice-' in page and 'role="note">' in page
    assert not re.search(r'<li[^>]*role="note"', page)


# ---------------------------------------------------------------- times


def test_every_time_says_how_long_ago_with_the_moment_on_hover_and_the_timeline_to_the_second() -> None:
    now = datetime(2026, 11, 21, 12, 0, 30, tzinfo=UTC)
    moment = now - timedelta(hours=2, minutes=5)
    shown = str(time_ago(moment, now))
    assert shown == '<time datetime="2026-11-21T09:55:30Z" title="Nov 21, 09:55 UTC" data-local>2 h ago</time>'
    assert local_time is time_ago  # one style on every page
    assert ">in 3 d<" in str(time_ago(now + timedelta(days=3, minutes=1), now))
    assert ">Nov 01<" in str(time_ago(now - timedelta(days=20), now))  # further off, the date
    exact = str(exact_time(moment))
    assert exact == '<time datetime="2026-11-21T09:55:30Z" data-local="exact">Nov 21, 09:55:30 UTC</time>'
    assert str(time_ago(None)) == "" and str(exact_time(None)) == ""


def test_a_status_reason_does_not_repeat_the_status() -> None:
    assert reason_once("canceled", "Canceled: the client texted STOP.") == "the client texted STOP."
    assert reason_once("failed", "Landline: cannot receive texts") == "Landline: cannot receive texts"
    assert reason_once("canceled", "No colon here") == "No colon here"


async def test_a_canceled_text_says_canceled_once_and_its_timeline_has_seconds(
    app, anonymous, make_case, make_staff, api_client, signed_in, fake_twilio
) -> None:
    fake_twilio.callbacks_enabled = False
    supervisor = await make_staff("supervisor")
    case = await make_case(phone=MARIA)
    api = await api_client(supervisor)
    send_at = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    created = await api.post(
        "/api/v1/messages", json={"case_id": case.case_id, "body": "Hearing Monday", "send_at": send_at}
    )
    assert created.status_code == 201, created.text
    await text_in(anonymous, MARIA, "STOP")
    message = await Message.get(id=created.json()["id"])
    assert message.status == MessageStatus.CANCELED and message.error_message.startswith("Canceled:")
    staff = await signed_in(supervisor)
    thread = (await staff.get(f"/conversations/{message.conversation_id}")).text
    status = re.search(rf'<span id="message-{message.id}-status".*?</span>\s*</span>', thread, re.DOTALL)
    assert status, thread
    words = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", status.group(0))).strip()
    assert words == "✕ canceled — the client texted STOP."
    detail = (await staff.get(f"/messages/{message.id}")).text
    timeline = detail[
        detail.index('<ol class="timeline">') : detail.index("</ol>", detail.index('<ol class="timeline">'))
    ]
    assert re.findall(r'data-local="exact">\w{3} \d{2}, \d{2}:\d{2}:\d{2} UTC<', timeline)


# ---------------------------------------------------------------- consent settings and actions


async def test_admins_turn_opt_in_requests_off_and_word_them_on_the_settings_page(
    signed_in, make_staff, make_case
) -> None:
    case = await make_case(phone=MARIA, okay_to_text=False)
    admin = await signed_in(await make_staff("admin"))
    page = (await admin.get("/admin/settings")).text
    assert re.search(r'name="opt_in_requests" checked', page)
    original = (await Organisation.first()).opt_in_text
    assert original in page
    form = {"name": "Atlanta Legal Aid", "char_limit": "160", "linking_policy": "default", "alert_policy": "primary"}

    refused = await admin.post("/admin/settings", {**form, "opt_in_text": "   "})
    assert refused.status_code == 422 and "Write the opt-in request's text" in unescape(refused.text)
    assert 'name="opt_in_requests" >' in refused.text  # the box as it was sent (unticked), kept
    too_long = "Reply Y or YES to get texts. " + "x" * 160
    refused = await admin.post("/admin/settings", {**form, "opt_in_requests": "on", "opt_in_text": too_long})
    assert refused.status_code == 422 and "Texts are limited to 160 characters" in refused.text
    assert too_long in refused.text
    organisation = await Organisation.first()
    assert organisation.opt_in_requests is True and organisation.opt_in_text == original

    words = "Atlanta Legal Aid: reply Y or YES to get texts about your case. Reply STOP to stop."
    saved = await admin.post("/admin/settings", {**form, "opt_in_text": f" {words} "})
    assert saved.status_code == 303
    organisation = await Organisation.first()
    assert organisation.opt_in_requests is False and organisation.opt_in_text == words
    assert "Ask for consent by text" not in (await admin.get(f"/clients/{case.client_id}")).text

    saved = await admin.post("/admin/settings", {**form, "opt_in_requests": "on", "opt_in_text": words})
    assert saved.status_code == 303 and (await Organisation.first()).opt_in_requests is True
    assert "Ask for consent by text" in (await admin.get(f"/clients/{case.client_id}")).text


async def test_an_opted_out_number_is_offered_neither_tick_nor_untick(
    signed_in, make_staff, make_case, anonymous
) -> None:
    case = await make_case(phone=MARIA)
    staff = await signed_in(await make_staff("supervisor"))
    assert "Untick okay to text" in (await staff.get(f"/clients/{case.client_id}")).text
    await text_in(anonymous, MARIA, "STOP")
    page = (await staff.get(f"/clients/{case.client_id}")).text
    assert "opted out" in page and "Only the client can undo this, by texting START." in page
    assert "Untick okay to text" not in page and "Tick okay to text" not in page
    phone = await ClientPhone.get(number=MARIA)
    pane = (await staff.get(f"/clients/{case.client_id}/phones/{phone.id}/consent")).text
    assert "opted out" in pane and "okay to text</button>" not in pane


# ---------------------------------------------------------------- the message page


async def test_filing_on_another_case_preselects_none_and_offers_the_texters_own_cases_first(
    signed_in, make_staff, make_case, anonymous
) -> None:
    await Organisation.all().update(linking_policy=LinkingPolicy.BEST_GUESS)  # filed on one of Maria's cases only
    settings_cache.forget()  # written past the services: this process's copy is stale
    maria = await make_case(phone=MARIA)
    newer = await create_case(
        number="16E-20019999", title="Second matter", client_id=maria.client_id, legal_problem="Housing"
    )
    james = await make_case(phone="+14045550123", name="James Smith")
    message = await text_in(anonymous, MARIA, "About my cases")
    staff = await signed_in(await make_staff("supervisor"))
    page = (await staff.get(f"/messages/{message.id}")).text
    select = page[page.index('<select name="case_id"') : page.index("</select>", page.index('<select name="case_id"'))]
    assert '<option value="" selected>Choose a case…</option>' in select and select.count("selected") == 1
    own = select.index('<optgroup label="This client\'s cases">')
    other = select.index('<optgroup label="Other clients\' cases">')
    assert own < other
    filed_on = newer.id  # best guess: the newest case with the number
    assert f'value="{filed_on}"' not in select
    assert own < select.index(f'value="{maria.case_id}"') < other < select.index(f'value="{james.case_id}"')

    refused = await staff.post(f"/messages/{message.id}/links", {"case_id": ""})
    assert refused.status_code == 422 and "Choose a case." in refused.text


# ---------------------------------------------------------------- the dashboard


async def test_the_dashboard_lists_texts_from_unknown_numbers_under_unmatched(
    signed_in, make_staff, make_case, anonymous
) -> None:
    advocate = await make_staff("advocate")
    await make_case(assignee=advocate)
    await text_in(anonymous, MARIA, "Which courtroom?")
    await text_in(anonymous, UNKNOWN, "Hi, is this legal aid? I got a court letter.")
    unknown = await Conversation.get(phone=UNKNOWN)
    supervisor = await signed_in(await make_staff("supervisor"))
    page = (await supervisor.get("/alerts")).text
    # The page asks for the section once loaded (finding none unmatched reads every conversation).
    placeholder = page[page.index('<section id="alert-unmatched"') :]
    placeholder = placeholder[: placeholder.index("</section>")]
    assert 'hx-trigger="load, sse:update delay:700ms"' in placeholder
    assert 'data-refresh-url="/alerts/unmatched"' in placeholder and "court letter" not in placeholder
    fragment = await supervisor.get("/alerts/unmatched")
    assert fragment.status_code == 200 and fragment.headers["cache-control"] == "no-store"
    section = fragment.text[: fragment.text.index("</section>")]
    assert 'Unmatched <span class="count">(1 waiting)</span>' in section
    assert f'href="/conversations/{unknown.id}"' in section and "I got a court letter." in section
    assert "Which courtroom?" not in section  # Maria is a client: her text is an alert, above
    assert 'hx-trigger="sse:update delay:700ms"' in section  # once there, it follows live updates only
    # Advocates have no dashboard: neither the section nor its fragment.
    mine = await signed_in(advocate)
    assert "alert-unmatched" not in (await mine.get("/alerts")).text
    assert (await mine.get("/alerts/unmatched")).status_code == 403
