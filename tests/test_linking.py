"""Filing texts on cases (LegalServer's rules, seed 002), driven the way it happens for real: staff send
through the JSON API (the fake Twilio is called), clients answer through the signed webhook, links and
case notes are read back through the API.

Decisions these tests pin down:
- Closed cases are linked like open ones: LegalServer links "any other case" that texted the number or
  has it in a phone field, whatever its disposition.
- Ended assignments do not change linking (only whom an alert is addressed to).
- A text scheduled for later (or canceled) was not sent: it does not make its case "sent from".
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from inbox.events import MessageLinksChanged
from inbox.models import (
    Alert,
    AlertAssignee,
    Case,
    CaseNote,
    Client,
    ClientPhone,
    Conversation,
    MessageLink,
    Organisation,
    Staff,
)
from inbox.services import conversations, linking, settings_cache
from inbox.services.errors import ValidationFailed
from tests.support.events import next_event
from tests.support.records import MARIA, assign, new_case, new_client
from tests.support.staff import ApiClientFactory
from tests.support.webhooks import text_in

MARIA_PEOPLE = "(404) 538-7319"
JUAN = "+14045550188"
NEW_NUMBER = "+14045550142"
STRANGER = "+14045550777"


async def text_from_case(api: httpx.AsyncClient, case_id: int, to: str | None = None, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"case_id": case_id, "body": "Your hearing is Monday at 9.", **extra}
    if to:
        payload["to"] = to
    response = await api.post("/api/v1/messages", json=payload)
    assert response.status_code == 201, response.text
    return response.json()


async def links_of(api: httpx.AsyncClient, message_id: int) -> list[tuple[int, str]]:
    response = await api.get(f"/api/v1/messages/{message_id}")
    assert response.status_code == 200, response.text
    return [(link["case_id"], link["reason"]) for link in response.json()["links"]]


async def notes_of(api: httpx.AsyncClient, case_id: int) -> list[dict[str, Any]]:
    response = await api.get(f"/api/v1/cases/{case_id}/notes")
    assert response.status_code == 200, response.text
    return response.json()


async def set_policy(policy: str) -> None:
    await Organisation.filter().update(linking_policy=policy)
    settings_cache.forget()  # written past the services: this process's copy is stale


# ---------------------------------------------------------------- the default policy


async def test_default_links_the_sent_from_case_every_case_that_texted_and_every_case_with_the_number(
    supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    housing, benefits = (await new_case(supervisor, maria))["id"], (await new_case(supervisor, maria))["id"]
    xavier = (await new_client(supervisor, "Xavier Diaz", "+14045550100"))["id"]
    # A case whose client does not have the number texts it anyway (e.g. a witness on Xavier's case).
    xavier_case = (await new_case(supervisor, xavier))["id"]
    await text_from_case(supervisor, xavier_case, to=MARIA)
    await text_from_case(supervisor, housing)  # the last text to Maria's number

    inbound = await text_in(anonymous, MARIA)

    links = await links_of(supervisor, inbound.id)
    assert links[0] == (housing, "sent_from")
    assert sorted(links) == sorted(
        [
            (housing, "sent_from"),
            (xavier_case, "texted_before"),  # regardless of the phone numbers on the case
            (benefits, "client_phone"),
            (housing, "client_phone"),
        ]
    )
    message = (await supervisor.get(f"/api/v1/messages/{inbound.id}")).json()
    assert message["case_ids"] == sorted([housing, benefits, xavier_case])


async def test_a_case_chosen_by_two_rules_has_two_links_and_one_case_note(
    supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    housing = (await new_case(supervisor, maria))["id"]
    await text_from_case(supervisor, housing)

    inbound = await text_in(anonymous, MARIA, "Which courtroom?")

    assert sorted(await links_of(supervisor, inbound.id)) == [(housing, "client_phone"), (housing, "sent_from")]
    notes = [note for note in await notes_of(supervisor, housing) if note["message_id"] == inbound.id]
    assert len(notes) == 1
    assert await CaseNote.filter(message_id=inbound.id).count() == 1


async def test_each_case_gets_one_note_with_the_text_sender_and_time(
    supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient, supervisor_staff: Staff
) -> None:
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    housing, benefits = (await new_case(supervisor, maria))["id"], (await new_case(supervisor, maria))["id"]
    sent = await text_from_case(supervisor, housing)

    inbound = await text_in(anonymous, MARIA, "Is it in room 4?")
    received = (await supervisor.get(f"/api/v1/messages/{inbound.id}")).json()

    for case_id in (housing, benefits):
        notes = [note for note in await notes_of(supervisor, case_id) if note["message_id"] == inbound.id]
        assert len(notes) == 1, case_id
        note = notes[0]
        assert note["case_id"] == case_id
        assert note["body"] == "Is it in room 4?"
        assert note["author"] == f"Maria Lopez (text from {MARIA_PEOPLE})"
        assert note["at"] == received["created_at"]
    # The text staff sent is a note on the case it was sent from, and only there.
    outbound_notes = await CaseNote.filter(message_id=sent["id"]).values_list("case_id", "author", "body")
    assert outbound_notes == [(housing, f"Sam Supervisor (text to {MARIA_PEOPLE})", "Your hearing is Monday at 9.")]
    assert sent["links"] == [{"case_id": housing, "reason": "sent_from"}]


async def test_every_other_case_that_texted_the_number_is_linked_texted_before(
    supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    first = (await new_case(supervisor, maria))["id"]
    second = (await new_case(supervisor, maria))["id"]
    third = (await new_case(supervisor, maria))["id"]
    await text_from_case(supervisor, first)
    await text_from_case(supervisor, second)
    await text_from_case(supervisor, first)  # the same case again: still one texted-before link each

    inbound = await text_in(anonymous, MARIA)

    links = await links_of(supervisor, inbound.id)
    by_rule = {reason: sorted(case for case, why in links if why == reason) for reason in {why for _, why in links}}
    assert by_rule == {
        "sent_from": [first],
        "texted_before": [second],
        "client_phone": sorted([first, second, third]),
    }


async def test_a_text_scheduled_for_later_does_not_make_its_case_the_sent_from_case(
    supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    housing, benefits = (await new_case(supervisor, maria))["id"], (await new_case(supervisor, maria))["id"]
    await text_from_case(supervisor, housing)
    scheduled = await text_from_case(supervisor, benefits, send_at="2099-01-01T09:00:00Z")
    assert scheduled["status"] == "scheduled"

    inbound = await text_in(anonymous, MARIA)

    links = await links_of(supervisor, inbound.id)
    assert (housing, "sent_from") in links
    assert (benefits, "sent_from") not in links and (benefits, "texted_before") not in links
    assert (benefits, "client_phone") in links


async def test_clients_sharing_a_phone_both_have_their_cases_linked(
    supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    juan = (await new_client(supervisor, "Juan Lopez", MARIA))["id"]  # the family's one mobile
    maria_case, juan_case = (await new_case(supervisor, maria))["id"], (await new_case(supervisor, juan))["id"]

    inbound = await text_in(anonymous, MARIA)

    assert sorted(await links_of(supervisor, inbound.id)) == sorted(
        [(maria_case, "client_phone"), (juan_case, "client_phone")]
    )
    note = (await notes_of(supervisor, juan_case))[0]
    assert note["message_id"] == inbound.id
    # The note cannot know which of them wrote: it names both.
    assert set(note["author"].removesuffix(f" (text from {MARIA_PEOPLE})").split(" / ")) == {
        "Maria Lopez",
        "Juan Lopez",
    }
    assert sorted(await Alert.filter(message_id=inbound.id).values_list("case_id", flat=True)) == sorted(
        [maria_case, juan_case]
    )


async def test_on_a_shared_phone_an_advocate_sees_only_the_links_to_cases_they_may_see(
    supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient, make_staff, api_client: ApiClientFactory
) -> None:
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    juan = (await new_client(supervisor, "Juan Lopez", MARIA))["id"]
    maria_case, juan_case = (await new_case(supervisor, maria))["id"], (await new_case(supervisor, juan))["id"]
    advocate = await make_staff("advocate")
    await assign(maria_case, advocate, primary=True)
    as_advocate = await api_client(advocate)

    inbound = await text_in(anonymous, MARIA)

    seen = (await as_advocate.get(f"/api/v1/messages/{inbound.id}")).json()
    assert seen["links"] == [{"case_id": maria_case, "reason": "client_phone"}]
    assert seen["case_ids"] == [maria_case]
    everything = (await supervisor.get(f"/api/v1/messages/{inbound.id}")).json()
    assert everything["case_ids"] == sorted([maria_case, juan_case])
    transcript = (await as_advocate.get(f"/api/v1/cases/{maria_case}/transcript")).json()
    assert [m["case_ids"] for m in transcript["messages"]] == [[maria_case]]
    assert (await as_advocate.get(f"/api/v1/cases/{juan_case}/notes")).status_code == 404


async def test_a_number_that_changed(supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient) -> None:
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    housing = (await new_case(supervisor, maria))["id"]
    await text_from_case(supervisor, housing)
    # The case management system changes Maria's number (there is no edit call in the API yet).
    await ClientPhone.filter(client_id=maria, number=MARIA).update(number=NEW_NUMBER)

    from_old = await text_in(anonymous, MARIA, "still me, old phone")
    from_new = await text_in(anonymous, NEW_NUMBER, "new phone, same Maria")

    # The old number is on no record now, but the case texted it: it is still filed there.
    assert await links_of(supervisor, from_old.id) == [(housing, "sent_from")]
    # The new number was never texted: it is found through the client record.
    assert await links_of(supervisor, from_new.id) == [(housing, "client_phone")]
    notes = {note["message_id"]: note for note in await notes_of(supervisor, housing)}
    assert notes[from_old.id]["author"] == f"{MARIA_PEOPLE} (text from {MARIA_PEOPLE})"  # no client has that number now
    assert notes[from_new.id]["author"] == "Maria Lopez (text from (404) 555-0142)"


async def test_closed_cases_are_linked_like_open_ones(
    supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    closed_texted = (await new_case(supervisor, maria))["id"]
    closed_on_record = (await new_case(supervisor, maria))["id"]
    still_open = (await new_case(supervisor, maria))["id"]
    await text_from_case(supervisor, closed_texted)
    await Case.filter(id__in=[closed_texted, closed_on_record]).update(closed_on=date.today() - timedelta(days=30))

    inbound = await text_in(anonymous, MARIA)

    links = await links_of(supervisor, inbound.id)
    assert (closed_texted, "sent_from") in links
    assert {case for case, _ in links} == {closed_texted, closed_on_record, still_open}
    assert await CaseNote.filter(message_id=inbound.id).count() == 3


async def test_ended_assignments_do_not_change_linking_only_who_is_alerted(
    supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient, make_staff
) -> None:
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    housing, benefits = (await new_case(supervisor, maria))["id"], (await new_case(supervisor, maria))["id"]
    left, current = await make_staff("advocate"), await make_staff("advocate")
    yesterday = date.today() - timedelta(days=1)
    await assign(housing, left, primary=True, start=date(2020, 1, 1), end=yesterday)
    await assign(housing, current, primary=True)
    await assign(benefits, left, primary=True, start=date(2020, 1, 1), end=yesterday)  # nobody current on benefits

    inbound = await text_in(anonymous, MARIA)

    assert {case for case, _ in await links_of(supervisor, inbound.id)} == {housing, benefits}
    housing_alert = await Alert.get(message_id=inbound.id, case_id=housing)
    assert await AlertAssignee.filter(alert=housing_alert).values_list("staff_id", flat=True) == [current.id]
    benefits_alert = await Alert.get(message_id=inbound.id, case_id=benefits)
    assert await AlertAssignee.filter(alert=benefits_alert).count() == 0


async def test_an_unknown_number_is_linked_nowhere_and_its_conversation_is_unmatched(
    supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient, supervisor_staff: Staff
) -> None:
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    await new_case(supervisor, maria)

    inbound = await text_in(anonymous, STRANGER, "Hi, who is this?")

    received = (await supervisor.get(f"/api/v1/messages/{inbound.id}")).json()
    assert received["links"] == [] and received["case_ids"] == []
    assert await CaseNote.filter(message_id=inbound.id).count() == 0
    assert await Alert.filter(message_id=inbound.id).count() == 0
    unmatched = await conversations.inbox_rows(supervisor_staff, "unmatched")
    assert [row.conversation.phone for row in unmatched] == [STRANGER]


# ---------------------------------------------------------------- best guess


async def test_best_guess_links_only_the_case_most_recently_texted_from(
    supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    await set_policy("best_guess")
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    housing, benefits = (await new_case(supervisor, maria))["id"], (await new_case(supervisor, maria))["id"]
    xavier = (await new_client(supervisor, "Xavier Diaz", "+14045550100"))["id"]
    xavier_case = (await new_case(supervisor, xavier))["id"]
    await text_from_case(supervisor, benefits)
    await text_from_case(supervisor, housing)

    first = await text_in(anonymous, MARIA)
    assert await links_of(supervisor, first.id) == [(housing, "best_guess")]

    await text_from_case(supervisor, xavier_case, to=MARIA)
    second = await text_in(anonymous, MARIA)
    assert await links_of(supervisor, second.id) == [(xavier_case, "best_guess")]
    assert await CaseNote.filter(message_id=second.id).values_list("case_id", flat=True) == [xavier_case]


async def test_best_guess_without_texts_takes_the_most_recently_created_case_with_the_number(
    supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    await set_policy("best_guess")
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    juan = (await new_client(supervisor, "Juan Lopez", MARIA))["id"]  # shares the phone
    await new_case(supervisor, maria)
    newest = (await new_case(supervisor, juan))["id"]
    xavier = (await new_client(supervisor, "Xavier Diaz", "+14045550100"))["id"]
    await new_case(supervisor, xavier)  # newer, other number

    inbound = await text_in(anonymous, MARIA)

    assert await links_of(supervisor, inbound.id) == [(newest, "best_guess")]
    assert await Alert.filter(message_id=inbound.id).values_list("case_id", flat=True) == [newest]


async def test_best_guess_includes_closed_cases_and_ignores_unknown_numbers(
    supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    await set_policy("best_guess")
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    await new_case(supervisor, maria)
    newest = (await new_case(supervisor, maria))["id"]
    await Case.filter(id=newest).update(closed_on=date.today())

    inbound = await text_in(anonymous, MARIA)
    stranger = await text_in(anonymous, STRANGER)

    assert await links_of(supervisor, inbound.id) == [(newest, "best_guess")]
    assert await links_of(supervisor, stranger.id) == []


async def test_switching_policy_back_to_default_applies_to_the_next_text(
    supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    housing, benefits = (await new_case(supervisor, maria))["id"], (await new_case(supervisor, maria))["id"]
    await set_policy("best_guess")
    guessed = await text_in(anonymous, MARIA)
    await set_policy("default")
    both = await text_in(anonymous, MARIA)

    assert await links_of(supervisor, guessed.id) == [(benefits, "best_guess")]
    assert sorted(await links_of(supervisor, both.id)) == sorted(
        [(housing, "client_phone"), (benefits, "client_phone")]
    )


# ---------------------------------------------------------------- by hand, through the API


async def test_filing_a_text_by_hand_adds_a_manual_link_a_note_and_an_event(
    app: Starlette, supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    housing = (await new_case(supervisor, maria))["id"]
    xavier = (await new_client(supervisor, "Xavier Diaz", "+14045550100"))["id"]
    xavier_case = (await new_case(supervisor, xavier))["id"]
    inbound = await text_in(anonymous, MARIA, "About Xavier's case too")

    async with app.state.bus.subscribe() as subscription:
        response = await supervisor.post(f"/api/v1/messages/{inbound.id}/links", json={"case_id": xavier_case})
        event = await next_event(subscription, MessageLinksChanged)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"] == inbound.id
    assert body["links"] == [
        {"case_id": housing, "reason": "client_phone"},
        {"case_id": xavier_case, "reason": "manual"},
    ]
    assert body["case_ids"] == sorted([housing, xavier_case])
    assert (event.message_id, event.conversation_id, sorted(event.case_ids)) == (
        inbound.id,
        inbound.conversation_id,
        sorted([housing, xavier_case]),
    )
    notes = await notes_of(supervisor, xavier_case)
    assert [(n["message_id"], n["body"]) for n in notes] == [(inbound.id, "About Xavier's case too")]
    assert notes[0]["author"] == f"Maria Lopez (text from {MARIA_PEOPLE})"
    link = await MessageLink.get(message_id=inbound.id, case_id=xavier_case)
    assert link.reason == "manual" and link.linked_by_id is not None

    # Filing it again is harmless: no second link, no second note.
    again = await supervisor.post(f"/api/v1/messages/{inbound.id}/links", json={"case_id": xavier_case})
    assert again.status_code == 201
    assert await MessageLink.filter(message_id=inbound.id, case_id=xavier_case).count() == 1
    assert await CaseNote.filter(message_id=inbound.id, case_id=xavier_case).count() == 1


async def test_filing_by_hand_on_a_case_already_linked_by_a_rule_keeps_one_note(
    supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    housing = (await new_case(supervisor, maria))["id"]
    inbound = await text_in(anonymous, MARIA)

    response = await supervisor.post(f"/api/v1/messages/{inbound.id}/links", json={"case_id": housing})

    assert response.status_code == 201
    assert [(link["case_id"], link["reason"]) for link in response.json()["links"]] == [
        (housing, "client_phone"),
        (housing, "manual"),
    ]
    assert await CaseNote.filter(message_id=inbound.id, case_id=housing).count() == 1


async def test_taking_a_text_off_a_case_removes_every_link_there_and_its_note(
    app: Starlette, supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    housing, benefits = (await new_case(supervisor, maria))["id"], (await new_case(supervisor, maria))["id"]
    await text_from_case(supervisor, housing)
    inbound = await text_in(anonymous, MARIA)

    async with app.state.bus.subscribe() as subscription:
        response = await supervisor.delete(f"/api/v1/messages/{inbound.id}/links/{housing}")
        event = await next_event(subscription, MessageLinksChanged)

    assert response.status_code == 204 and response.content == b""
    assert await links_of(supervisor, inbound.id) == [(benefits, "client_phone")]
    assert (event.message_id, event.case_ids) == (inbound.id, [benefits])
    assert inbound.id not in [note["message_id"] for note in await notes_of(supervisor, housing)]
    assert inbound.id in [note["message_id"] for note in await notes_of(supervisor, benefits)]
    # Nothing is left to take off: 404.
    again = await supervisor.delete(f"/api/v1/messages/{inbound.id}/links/{housing}")
    assert again.status_code == 404 and again.json()["error"]


async def test_manual_links_need_a_case_id_and_a_message_and_case_the_caller_may_see(
    supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient, make_staff, api_client: ApiClientFactory
) -> None:
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    housing = (await new_case(supervisor, maria))["id"]
    xavier = (await new_client(supervisor, "Xavier Diaz", "+14045550100"))["id"]
    xavier_case = (await new_case(supervisor, xavier))["id"]
    advocate = await make_staff("advocate")
    await assign(housing, advocate, primary=True)
    as_advocate = await api_client(advocate)
    from_maria = await text_in(anonymous, MARIA)
    from_xavier = await text_in(anonymous, "+14045550100")

    missing = await as_advocate.post(f"/api/v1/messages/{from_maria.id}/links", json={})
    assert missing.status_code == 422 and "case_id" in missing.json()["fields"]
    wrong_type = await as_advocate.post(f"/api/v1/messages/{from_maria.id}/links", json={"case_id": str(housing)})
    assert wrong_type.status_code == 422
    # A case the advocate may not see, a text they may not see, a text that does not exist.
    assert (
        await as_advocate.post(f"/api/v1/messages/{from_maria.id}/links", json={"case_id": xavier_case})
    ).status_code == 404
    assert (
        await as_advocate.post(f"/api/v1/messages/{from_xavier.id}/links", json={"case_id": housing})
    ).status_code == 404
    assert (await as_advocate.post("/api/v1/messages/999999/links", json={"case_id": housing})).status_code == 404
    assert (await as_advocate.delete(f"/api/v1/messages/{from_xavier.id}/links/{xavier_case}")).status_code == 404
    assert await MessageLink.filter(message_id=from_xavier.id).values_list("case_id", flat=True) == [xavier_case]
    assert not await MessageLink.exists(message_id=from_maria.id, case_id=xavier_case)
    # Their own case and text: allowed.
    removed = await as_advocate.delete(f"/api/v1/messages/{from_maria.id}/links/{housing}")
    assert removed.status_code == 204
    added = await as_advocate.post(f"/api/v1/messages/{from_maria.id}/links", json={"case_id": housing})
    assert added.status_code == 201 and added.json()["links"] == [{"case_id": housing, "reason": "manual"}]


async def test_linking_an_unmatched_conversation_to_a_client_files_its_past_texts(
    app: Starlette, supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient, supervisor_staff: Staff
) -> None:
    maria = (await new_client(supervisor, "Maria Lopez", MARIA))["id"]
    housing = (await new_case(supervisor, maria))["id"]
    first = await text_in(anonymous, STRANGER, "This is Maria, on my sister's phone")
    second = await text_in(anonymous, STRANGER, "Did you get my message?")
    conversation = await Conversation.get(phone=STRANGER)
    case_number = (await Case.get(id=housing)).number

    async with app.state.bus.subscribe() as subscription:
        await linking.link_unmatched(app.state.bus, supervisor_staff, conversation.id, case_number)
        events = [
            await next_event(subscription, MessageLinksChanged),
            await next_event(subscription, MessageLinksChanged),
        ]

    assert sorted(e.message_id for e in events) == sorted([first.id, second.id])
    for message in (first, second):
        assert await links_of(supervisor, message.id) == [(housing, "manual")]
    notes = {note["message_id"]: note for note in await notes_of(supervisor, housing)}
    assert notes[first.id]["body"] == "This is Maria, on my sister's phone"
    assert notes[second.id]["author"] == "Maria Lopez (text from (404) 555-0777)"
    # The number joined Maria's record, without consent to text.
    phone = await ClientPhone.get(client_id=maria, number=STRANGER)
    assert phone.okay_to_text is False
    assert await conversations.inbox_rows(supervisor_staff, "unmatched") == []
    # From now on the rules find the case on their own.
    third = await text_in(anonymous, STRANGER, "Thanks")
    assert await links_of(supervisor, third.id) == [(housing, "client_phone")]


async def test_linking_a_conversation_to_a_case_of_another_client_is_refused(
    supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient, supervisor_staff: Staff
) -> None:
    maria = await Client.get(id=(await new_client(supervisor, "Maria Lopez", MARIA))["id"])
    xavier = (await new_client(supervisor, "Xavier Diaz", "+14045550100"))["id"]
    xavier_case = await Case.get(id=(await new_case(supervisor, xavier))["id"])
    await text_in(anonymous, STRANGER)
    conversation = await Conversation.get(phone=STRANGER)

    with pytest.raises(ValidationFailed) as caught:
        await linking.link_conversation_to_client(conversation, maria, xavier_case, supervisor_staff)

    assert "case_id" in caught.value.fields
    assert not await MessageLink.exists(message__conversation_id=conversation.id)
    assert not await ClientPhone.exists(number=STRANGER)
