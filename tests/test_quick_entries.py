"""Quick entries (Prime's "Quick Entry"): administration (admins only, CSRF, input kept on errors, the
organisation's character limit), placeholders filled in for a conversation or a case with a visible
warning for each one left empty, and language variants chosen by the client's preferred language.

Everything goes through the real app over HTTP, as a signed-in person uses it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape
from zoneinfo import ZoneInfo

import httpx

from inbox.models import Case, Client, Message, Office, Organisation, QuickEntry
from inbox.services import quick_entries
from inbox.services.directory import PhoneInput, create_case, create_client
from tests.support.pages import textarea, words
from tests.support.records import MARIA
from tests.support.staff import StaffClient
from tests.support.webhooks import text_in

STRANGER = "+14045387399"


def warnings_of(html: str) -> list[str]:
    block = re.search(r'<ul id="[\w-]+-warnings"[^>]*>(.*?)</ul>', html, re.DOTALL)
    return [words(item) for item in re.findall(r"<li>(.*?)</li>", block.group(1), re.DOTALL)] if block else []


async def entry(name: str, body: str, language: str | None = None, position: int = 0) -> QuickEntry:
    return await QuickEntry.create(name=name, body=body, language=language, position=position)


async def admin_form(admin: StaffClient, path: str = "/admin/quick-entries/new") -> httpx.Response:
    page = await admin.get(path)
    assert page.status_code == 200, page.text
    return page


# ---------------------------------------------------------------- administration


async def test_an_admin_adds_edits_and_deletes_a_quick_entry(signed_in, make_staff) -> None:
    admin = await signed_in(await make_staff("admin"))
    await admin_form(admin)
    created = await admin.post(
        "/admin/quick-entries",
        {
            "name": "Hearing reminder",
            "language": "",
            "body": "Hi {client_first_name}, your hearing on {case_number} is Monday.",
            "position": "2",
        },
    )
    assert created.status_code == 303 and created.headers["location"] == "/admin/quick-entries?saved=created"
    stored = await QuickEntry.get(name="Hearing reminder")
    assert stored.language is None and stored.position == 2 and stored.body.startswith("Hi {client_first_name}")

    listing = await admin.get("/admin/quick-entries")
    assert "Hearing reminder" in listing.text and "{client_first_name}" in unescape(listing.text)
    assert "{office_phone}" in unescape(listing.text)  # the placeholders are listed for the writer

    await admin_form(admin, f"/admin/quick-entries/{stored.id}")
    updated = await admin.post(
        f"/admin/quick-entries/{stored.id}",
        {"name": "Hearing reminder", "language": "", "body": "Hearing Monday.", "position": "1"},
    )
    assert updated.status_code == 303
    assert (await QuickEntry.get(id=stored.id)).body == "Hearing Monday."

    spanish = await admin.post(
        "/admin/quick-entries",
        {"name": "Hearing reminder", "language": "ES", "body": "Audiencia el lunes.", "position": "1"},
    )
    assert spanish.status_code == 303
    assert (await QuickEntry.get(name="Hearing reminder", language="es")).body == "Audiencia el lunes."

    deleted = await admin.post(f"/admin/quick-entries/{stored.id}/delete")
    assert deleted.status_code == 303
    assert not await QuickEntry.exists(id=stored.id)
    assert await QuickEntry.exists(name="Hearing reminder", language="es")


async def test_errors_keep_what_was_typed_and_name_each_field(signed_in, make_staff) -> None:
    admin = await signed_in(await make_staff("admin"))
    await entry("Missed appointment", "You missed your appointment.")
    await admin_form(admin)
    typed = "Please call {office_phone} about {court_room} & <bring> the lease."
    response = await admin.post(
        "/admin/quick-entries", {"name": "Missed appointment", "language": "", "body": typed, "position": "x"}
    )
    assert response.status_code == 422
    assert textarea(response.text) == typed
    assert 'value="Missed appointment"' in response.text
    text = words(response.text)
    assert "Unknown placeholder {court_room}" in text
    assert "Give a whole number" in text
    assert await QuickEntry.filter(name="Missed appointment").count() == 1

    duplicate = await admin.post(
        "/admin/quick-entries", {"name": "Missed appointment", "language": "", "body": "Again.", "position": "0"}
    )
    assert duplicate.status_code == 422
    assert "already has a default version" in words(duplicate.text)
    assert await QuickEntry.filter(name="Missed appointment").count() == 1


async def test_the_body_is_limited_to_the_organisations_character_limit(signed_in, make_staff) -> None:
    await Organisation.all().update(char_limit=40)
    admin = await signed_in(await make_staff("admin"))
    await admin_form(admin)
    too_long = "x" * 41
    response = await admin.post(
        "/admin/quick-entries", {"name": "Long", "language": "", "body": too_long, "position": "0"}
    )
    assert response.status_code == 422
    assert "limited to 40 characters; this one has 41" in words(response.text)
    assert textarea(response.text) == too_long and 'maxlength="40"' in response.text
    assert not await QuickEntry.exists(name="Long")
    ok = await admin.post("/admin/quick-entries", {"name": "Long", "language": "", "body": "x" * 40, "position": "0"})
    assert ok.status_code == 303


async def test_only_admins_may_manage_quick_entries(signed_in, make_staff) -> None:
    stored = await entry("Hearing reminder", "Hearing Monday.")
    for role in ("advocate", "supervisor"):
        person = await signed_in(await make_staff(role))
        for path in ("/admin/quick-entries", "/admin/quick-entries/new", f"/admin/quick-entries/{stored.id}"):
            assert (await person.get(path)).status_code == 403, (role, path)
        create = await person.post(
            "/admin/quick-entries", {"name": "Sneaky", "language": "", "body": "Hi", "position": "0"}
        )
        edit = await person.post(
            f"/admin/quick-entries/{stored.id}", {"name": "X", "language": "", "body": "Hi", "position": "0"}
        )
        delete = await person.post(f"/admin/quick-entries/{stored.id}/delete")
        assert (create.status_code, edit.status_code, delete.status_code) == (403, 403, 403), role
    assert [e.name for e in await QuickEntry.all()] == ["Hearing reminder"]
    assert (await QuickEntry.get(id=stored.id)).body == "Hearing Monday."


async def test_admin_forms_need_the_csrf_token(signed_in, make_staff) -> None:
    stored = await entry("Hearing reminder", "Hearing Monday.")
    admin = await signed_in(await make_staff("admin"))
    await admin_form(admin)
    form = {"name": "New", "language": "", "body": "Hi", "position": "0"}
    assert (await admin.post("/admin/quick-entries", form, csrf=False)).status_code == 403
    assert (await admin.post("/admin/quick-entries", {**form, "csrf_token": "forged"}, csrf=False)).status_code == 403
    assert (await admin.post(f"/admin/quick-entries/{stored.id}/delete", csrf=False)).status_code == 403
    assert await QuickEntry.exists(id=stored.id) and not await QuickEntry.exists(name="New")


# ---------------------------------------------------------------- filling in: a case's "Send text"


async def _case_with_office(make_case, phone: str = MARIA) -> Case:
    made = await make_case(phone=phone)
    office = await Office.create(name="Downtown office", phone="+14045550100")
    await Case.filter(id=made.case_id).update(office=office)
    return await Case.get(id=made.case_id)


async def test_placeholders_are_filled_in_for_the_case(signed_in, make_staff, make_case) -> None:
    case = await _case_with_office(make_case)
    stored = await entry(
        "Hearing reminder",
        "Hi {client_first_name} ({client_name}), case {case_number} ({case_title}): call {office_name} at "
        "{office_phone}. {staff_first_name} / {staff_name}, {organisation_name}, {today}",
    )
    alice = await signed_in(await make_staff("supervisor", name="Alice Jones"))
    response = await alice.get(
        f"/quick-entries/fill?form=case&case_id={case.id}&quick_entry={stored.id}", headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div id="text-body-wrap"')
    today = datetime.now(UTC).astimezone(ZoneInfo("America/New_York"))  # the organisation's zone says what day it is
    assert textarea(response.text) == (
        f"Hi Maria (Maria Lopez), case {case.number} ({case.title}): call Downtown office at (404) 555-0100. "
        f"Alice / Alice Jones, Case Inbox, {today:%B} {today.day}, {today.year}"
    )
    assert warnings_of(response.text) == []
    # The same field the counter watches: live segment counting goes on working after the swap.
    assert 'id="text-body"' in response.text and 'data-segment-counter="text-count"' in response.text


async def test_empty_placeholders_stay_visible_with_a_warning_each(signed_in, make_staff, make_case) -> None:
    made = await make_case(phone=MARIA)  # no office anywhere: nothing to fill {office_phone} with
    stored = await entry("Call us", "Hi {client_first_name}, please call {office_phone} about {case_number}.")
    staff = await signed_in(await make_staff("supervisor"))
    response = await staff.get(f"/quick-entries/fill?form=case&case_id={made.case_id}&quick_entry={stored.id}")
    assert textarea(response.text) == f"Hi Maria, please call {{office_phone}} about {made.number}."
    assert warnings_of(response.text) == ["{office_phone} is empty — fill it in before sending."]
    assert 'role="alert"' in response.text


async def test_unknown_placeholders_are_warned_about_too(signed_in, make_staff, make_case) -> None:
    made = await make_case(phone=MARIA)
    # Written before a placeholder was renamed, say: the admin form refuses it now, old rows may have it.
    stored = await entry("Old", "Bring {documents} to {case_number}.")
    staff = await signed_in(await make_staff("supervisor"))
    response = await staff.get(f"/quick-entries/fill?form=case&case_id={made.case_id}&quick_entry={stored.id}")
    assert textarea(response.text) == f"Bring {{documents}} to {made.number}."
    assert warnings_of(response.text) == [
        "{documents} is not a placeholder Case Inbox knows — replace it before sending."
    ]


async def test_without_javascript_the_send_text_page_takes_a_quick_entry_in_the_address(
    signed_in, make_staff, make_case
) -> None:
    made = await make_case(phone=MARIA)
    stored = await entry("Call us", "Hi {client_first_name}, call {office_phone}.")
    await entry("Another", "Hello.", position=5)
    staff = await signed_in(await make_staff("supervisor"))
    plain = await staff.get(f"/cases/{made.case_id}/text")
    assert '<form method="get" action="/cases/' in plain.text and 'name="quick_entry"' in plain.text
    assert textarea(plain.text) == ""

    page = await staff.get(f"/cases/{made.case_id}/text?quick_entry={stored.id}")
    assert page.status_code == 200
    assert textarea(page.text) == "Hi Maria, call {office_phone}."
    assert "{office_phone} is empty — fill it in before sending." in words(page.text)
    assert f'<option value="{stored.id}" selected>' in page.text
    # Sending it as it stands is the person's choice: the text goes as typed.
    sent = await staff.post(f"/cases/{made.case_id}/text", {"body": "Hi Maria, call 404-555-0100.", "to": MARIA})
    assert sent.status_code == 303


async def test_the_case_page_fill_is_limited_to_cases_the_reader_may_see(signed_in, make_staff, make_case) -> None:
    hidden = await make_case(phone=MARIA)
    stored = await entry("Call us", "Hi {client_first_name}.")
    advocate = await signed_in(await make_staff("advocate"))
    response = await advocate.get(f"/quick-entries/fill?form=case&case_id={hidden.case_id}&quick_entry={stored.id}")
    assert response.status_code == 404 and "Maria" not in response.text


# ---------------------------------------------------------------- filling in: a thread's composer


async def test_the_thread_composer_offers_each_name_once_and_fills_in_for_its_case(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    alice = await make_staff("advocate", name="Alice Jones")
    made = await make_case(phone=MARIA, assignee=alice)
    await text_in(anonymous, MARIA, "Which courtroom?")
    conversation_id = (await Message.get(direction="inbound")).conversation_id
    default = await entry("Courtroom", "Hi {client_first_name}, {case_number} is in courtroom 4B.", position=1)
    await entry("Courtroom", "Hola {client_first_name}, {case_number} es en la sala 4B.", language="es")
    await entry("Apology", "Sorry for the delay.", position=0)
    staff = await signed_in(alice)

    page = await staff.get(f"/conversations/{conversation_id}")
    assert f'hx-get="/quick-entries/picker?conversation_id={conversation_id}"' in page.text
    picker = await staff.get(f"/quick-entries/picker?conversation_id={conversation_id}", headers={"HX-Request": "true"})
    assert re.findall(r'<option value="\d+">([^<]+)</option>', picker.text) == ["Apology", "Courtroom"]
    assert "hx-include=\"#composer [name='case_id']\"" in picker.text

    filled = await staff.get(
        f"/quick-entries/fill?form=thread&conversation_id={conversation_id}&case_id={made.case_id}&quick_entry={default.id}",
        headers={"HX-Request": "true"},
    )
    assert filled.text.lstrip().startswith('<div id="composer-body-wrap"')
    assert 'id="composer-body"' in filled.text and 'data-segment-counter="composer-count"' in filled.text
    assert textarea(filled.text) == f"Hi Maria, {made.number} is in courtroom 4B."


async def test_a_thread_without_a_case_warns_that_case_fields_are_empty(
    signed_in, make_staff, anonymous: httpx.AsyncClient
) -> None:
    client = await create_client(name="Pat Reyes", phones=[PhoneInput(MARIA, "mobile", True)])
    await text_in(anonymous, MARIA, "Hello?")
    conversation_id = (await Message.get(direction="inbound")).conversation_id
    stored = await entry("Hearing", "Hi {client_first_name}, about case {case_number}: {case_title}.")
    staff = await signed_in(await make_staff("supervisor"))
    filled = await staff.get(
        f"/quick-entries/fill?form=thread&conversation_id={conversation_id}&quick_entry={stored.id}"
    )
    assert textarea(filled.text) == "Hi Pat, about case {case_number}: {case_title}."
    assert warnings_of(filled.text) == [
        "{case_number} is empty — fill it in before sending.",
        "{case_title} is empty — fill it in before sending.",
    ]
    assert client.id  # the client is known; only the case is missing


async def test_an_unknown_number_fills_only_what_it_can(signed_in, make_staff, anonymous: httpx.AsyncClient) -> None:
    await text_in(anonymous, STRANGER, "Who is this?")
    conversation_id = (await Message.get(direction="inbound")).conversation_id
    stored = await entry("Intro", "Hi {client_first_name}, this is {staff_name}.")
    staff = await signed_in(await make_staff("supervisor", name="Sam Boss"))
    filled = await staff.get(
        f"/quick-entries/fill?form=thread&conversation_id={conversation_id}&quick_entry={stored.id}"
    )
    assert textarea(filled.text) == "Hi {client_first_name}, this is Sam Boss."
    assert warnings_of(filled.text) == ["{client_first_name} is empty — fill it in before sending."]


async def test_a_filled_in_text_over_the_limit_says_so(signed_in, make_staff, make_case) -> None:
    await Organisation.all().update(char_limit=30)
    made = await make_case(phone=MARIA, name="Maria Guadalupe Lopez-Hernandez")
    stored = await entry("Name", "Dear {client_name}.")
    staff = await signed_in(await make_staff("supervisor"))
    filled = await staff.get(f"/quick-entries/fill?form=case&case_id={made.case_id}&quick_entry={stored.id}")
    assert warnings_of(filled.text) == ["Filled in, the text has 37 characters; texts are limited to 30."]


# ---------------------------------------------------------------- language variants


async def test_the_clients_preferred_language_picks_the_variant(signed_in, make_staff) -> None:
    default = await entry("Reminder", "Your hearing is on Monday, {client_first_name}.")
    await entry("Reminder", "Su audiencia es el lunes, {client_first_name}.", language="es")
    await entry("Reminder", "Sua audiência é na segunda, {client_first_name}.", language="pt-br")
    staff = await signed_in(await make_staff("supervisor"))
    expected = {
        "es": "Su audiencia es el lunes, Ana.",
        "es-MX": "Su audiencia es el lunes, Ana.",  # a regional variant falls back to its language
        "pt-BR": "Sua audiência é na segunda, Ana.",
        "fr": "Your hearing is on Monday, Ana.",  # no French version: the default
        None: "Your hearing is on Monday, Ana.",
    }
    for index, (language, text) in enumerate(expected.items()):
        client = await create_client(
            name="Ana Ruiz", phones=[PhoneInput(f"+1404538{7330 + index}", "mobile", True)], preferred_language=language
        )
        case = await create_case(number=f"LANG-{index}", title="Benefits", client_id=client.id)
        filled = await staff.get(f"/quick-entries/fill?form=case&case_id={case.id}&quick_entry={default.id}")
        assert textarea(filled.text) == text, language


def test_variant_choice_without_a_default_takes_a_stable_one() -> None:
    es = QuickEntry(id=2, name="X", language="es", body="es")
    pt = QuickEntry(id=1, name="X", language="pt", body="pt")
    assert quick_entries.pick_variant([pt, es], None).language == "es"
    assert quick_entries.pick_variant([pt, es], "pt-PT").language == "pt"


def test_fill_leaves_unknown_and_empty_placeholders_and_braces_alone() -> None:
    text, empty, unknown = quick_entries.fill(
        "{client_name} {case_number} {nope} {client_name} { spaced } {}", {"client_name": "Ana", "case_number": " "}
    )
    assert text == "Ana {case_number} {nope} Ana { spaced } {}"
    assert (empty, unknown) == (["case_number"], ["nope"])


async def test_values_for_a_client_without_cases(make_staff) -> None:
    client = await create_client(name="Lee", phones=[], preferred_language="es")
    staff = await make_staff("advocate", name="Val Ues")
    moment = datetime(2026, 11, 22, 3, tzinfo=UTC)  # still the 21st in New York
    values = await quick_entries.values_for(staff, await Client.get(id=client.id), None, moment)
    assert values["client_first_name"] == "Lee" and values["case_number"] is None
    assert values["staff_first_name"] == "Val" and values["today"] == "November 21, 2026"
