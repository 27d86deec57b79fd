"""Linking by hand in the staff pages: the message page, unmatched numbers, the case page, settings."""

from __future__ import annotations

from inbox.models import (
    CaseNote,
    ClientPhone,
    Conversation,
    LinkingPolicy,
    MessageLink,
    Organisation,
)
from tests.support.webhooks import text_in


async def test_the_message_page_shows_the_timeline_and_the_cases_with_reasons(
    signed_in, make_staff, make_case, anonymous
) -> None:
    advocate = await make_staff("advocate")
    case = await make_case(assignee=advocate)
    message = await text_in(anonymous, "+14045387319", "Which courtroom?")
    staff = await signed_in(advocate)
    page = await staff.get(f"/messages/{message.id}")
    assert page.status_code == 200
    assert "Which courtroom?" in page.text and "received" in page.text
    assert case.number in page.text and "number on client record" in page.text
    thread = await staff.get(f"/conversations/{message.conversation_id}")
    assert f'href="/messages/{message.id}"' in thread.text and "number on client record" in thread.text


async def test_staff_file_a_text_on_another_case_and_take_it_off_again(
    signed_in, make_staff, make_case, anonymous
) -> None:
    advocate = await make_staff("advocate")
    first = await make_case(assignee=advocate)
    second = await make_case(phone="+14045550123", assignee=advocate, name="James Smith")
    message = await text_in(anonymous, "+14045387319", "About both my cases")
    staff = await signed_in(advocate)
    await staff.get(f"/messages/{message.id}")

    added = await staff.post(f"/messages/{message.id}/links", {"case_id": second.case_id})
    assert added.status_code == 303
    assert await MessageLink.exists(message=message, case_id=second.case_id, reason="manual")
    note = await CaseNote.get(message=message, case_id=second.case_id)
    assert note.body == "About both my cases"
    assert "linked by hand" in (await staff.get(f"/messages/{message.id}")).text

    removed = await staff.post(f"/messages/{message.id}/links/{first.case_id}/delete")
    assert removed.status_code == 303
    assert not await MessageLink.exists(message=message, case_id=first.case_id)
    assert not await CaseNote.exists(message=message, case_id=first.case_id)
    assert await MessageLink.exists(message=message, case_id=second.case_id)


async def test_an_advocate_cannot_file_a_text_on_a_case_that_is_not_theirs(
    signed_in, make_staff, make_case, anonymous
) -> None:
    advocate = await make_staff("advocate")
    await make_case(assignee=advocate)
    other = await make_case(phone="+14045550123", name="Someone Else")
    message = await text_in(anonymous, "+14045387319", "Hello")
    staff = await signed_in(advocate)
    await staff.get(f"/messages/{message.id}")
    response = await staff.post(f"/messages/{message.id}/links", {"case_id": other.case_id})
    assert response.status_code == 404
    assert not await MessageLink.exists(message=message, case_id=other.case_id)
    assert other.number not in (await staff.get(f"/messages/{message.id}")).text


async def test_link_forms_need_the_csrf_token(signed_in, make_staff, make_case, anonymous) -> None:
    supervisor = await make_staff("supervisor")
    case = await make_case()
    message = await text_in(anonymous, "+14045550199", "Unknown here")
    staff = await signed_in(supervisor)
    assert (await staff.post(f"/messages/{message.id}/links", {"case_id": case.case_id}, csrf=False)).status_code == 403
    conversation = await Conversation.get(phone="+14045550199")
    response = await staff.post(f"/conversations/{conversation.id}/link", {"case_number": case.number}, csrf=False)
    assert response.status_code == 403
    assert not await MessageLink.exists(message=message)


async def test_an_unmatched_number_joins_a_client_and_its_texts_join_the_case(
    signed_in, make_staff, make_case, anonymous
) -> None:
    supervisor = await make_staff("supervisor")
    case = await make_case(phone="+14045387319", name="Maria Lopez")
    first = await text_in(anonymous, "+14045550199", "It's Maria, new phone")
    second = await text_in(anonymous, "+14045550199", "Did you get my text?")
    staff = await signed_in(supervisor)
    conversation = await Conversation.get(phone="+14045550199")
    page = await staff.get(f"/conversations/{conversation.id}")
    assert "Unknown number" in page.text and 'action="/conversations/' in page.text

    response = await staff.post(f"/conversations/{conversation.id}/link", {"case_number": case.number})
    assert response.status_code == 303
    phone = await ClientPhone.get(number="+14045550199")
    assert phone.client_id == case.client_id and phone.okay_to_text is False
    for message in (first, second):
        assert await MessageLink.exists(message=message, case_id=case.case_id, reason="manual")
        assert await CaseNote.exists(message=message, case_id=case.case_id)
    after = await staff.get(f"/conversations/{conversation.id}")
    assert "Maria Lopez" in after.text and "Unknown number" not in after.text
    later = await text_in(anonymous, "+14045550199", "Thanks")
    assert await MessageLink.exists(message=later, case_id=case.case_id, reason="client_phone")


async def test_linking_to_an_unknown_case_number_keeps_what_was_typed(signed_in, make_staff, anonymous) -> None:
    supervisor = await make_staff("supervisor")
    await text_in(anonymous, "+14045550199", "Hello?")
    staff = await signed_in(supervisor)
    conversation = await Conversation.get(phone="+14045550199")
    await staff.get(f"/conversations/{conversation.id}")
    response = await staff.post(f"/conversations/{conversation.id}/link", {"case_number": "16E-<b>NOPE</b>"})
    assert response.status_code == 422
    assert "16E-&lt;b&gt;NOPE&lt;/b&gt;" in response.text and "<b>NOPE" not in response.text
    assert not await ClientPhone.exists(number="+14045550199")


async def test_a_refused_link_keeps_the_conversation_list_beside_the_thread(
    signed_in, make_staff, make_case, anonymous
) -> None:
    supervisor = await make_staff("supervisor")
    await make_case(phone="+14045387319", name="Maria Lopez")
    await text_in(anonymous, "+14045387319", "Which courtroom?")
    await text_in(anonymous, "+14045550199", "Hello?")
    staff = await signed_in(supervisor)
    unknown = await Conversation.get(phone="+14045550199")
    known = await Conversation.get(phone="+14045387319")
    page = await staff.get(f"/conversations/{unknown.id}")
    # The pane with the link form is marked so that narrow screens show it under the thread (app.css).
    assert 'class="panes has-thread unknown-number"' in page.text
    assert "unknown-number" not in (await staff.get(f"/conversations/{known.id}")).text

    refused = await staff.post(f"/conversations/{unknown.id}/link", {"case_number": "16E-NOPE"})
    assert refused.status_code == 422 and "No case numbered “16E-NOPE” that you may see." in refused.text
    assert 'value="16E-NOPE"' in refused.text
    for conversation in (unknown, known):  # the list is there without JavaScript's re-fetch
        assert f'<li id="conversation-{conversation.id}"' in refused.text
    assert "Maria Lopez" in refused.text


async def test_only_admins_change_settings_and_bad_values_are_kept_with_a_reason(signed_in, make_staff) -> None:
    supervisor = await signed_in(await make_staff("supervisor"))
    assert (await supervisor.get("/admin/settings")).status_code == 403
    admin = await signed_in(await make_staff("admin"))
    page = await admin.get("/admin/settings")
    assert page.status_code == 200 and 'name="linking_policy"' in page.text
    form = {"name": "Atlanta Legal Aid", "char_limit": "2000", "linking_policy": "best_guess", "alert_policy": "all"}
    refused = await admin.post("/admin/settings", form)
    assert refused.status_code == 422 and "1600" in refused.text and 'value="2000"' in refused.text
    assert (await Organisation.first()).linking_policy == LinkingPolicy.DEFAULT
    saved = await admin.post("/admin/settings", {**form, "char_limit": "320", "dismiss_alerts_on_reply": "on"})
    assert saved.status_code == 303
    organisation = await Organisation.first()
    assert organisation.char_limit == 320 and organisation.linking_policy == LinkingPolicy.BEST_GUESS
    assert organisation.alert_policy == "all" and organisation.dismiss_alerts_on_reply is True
    assert (await supervisor.post("/admin/settings", {**form, "char_limit": "100"})).status_code == 403
    assert (await Organisation.first()).char_limit == 320


async def test_the_best_guess_setting_changes_how_replies_are_filed(
    signed_in, make_staff, make_case, anonymous
) -> None:
    admin = await signed_in(await make_staff("admin"))
    older = await make_case(phone="+14045387319")
    newer = await make_case(phone="+14045387319", name="Maria Lopez (second matter)")
    await admin.get("/admin/settings")
    form = {"name": "Org", "char_limit": "160", "linking_policy": "best_guess", "alert_policy": "primary"}
    assert (await admin.post("/admin/settings", form)).status_code == 303
    message = await text_in(anonymous, "+14045387319", "Hi")
    links = await MessageLink.filter(message=message).values_list("case_id", "reason")
    assert links == [(newer.case_id, "best_guess")]
    assert older.case_id not in [case_id for case_id, _ in links]
