"""The JSON API under /api/v1, as an integrator uses it: bearer tokens, the contract's paths and field
names, error shapes, who sees what, and sending through the real Twilio library to a fake Twilio."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from inbox.models import ApiToken, Client, ClientPhone, Message, MessageStatusEvent, Organisation, Staff
from inbox.services import messaging
from tests.support.api import as_it_is_now, assert_error, assert_iso_with_offset
from tests.support.apps import asgi_client
from tests.support.config import FROM_NUMBER, PUBLIC_URL
from tests.support.records import MARIA, new_case, new_client
from tests.support.staff import ApiClientFactory
from tests.support.webhooks import inbound_params, signed_post_args, status_callback

STATUS_CALLBACK = f"{PUBLIC_URL}/webhooks/twilio/status"


async def send(api: httpx.AsyncClient, **payload: Any) -> httpx.Response:
    return await api.post("/api/v1/messages", json=payload)


# ---------------------------------------------------------------- tokens


async def test_no_token_is_401_with_a_json_error(anonymous: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/api/v1/clients"),
        ("POST", "/api/v1/clients"),
        ("GET", "/api/v1/cases"),
        ("POST", "/api/v1/messages"),
        ("GET", "/api/v1/messages/1"),
    ]:
        response = await anonymous.request(method, path, json={})
        assert_error(response, 401)
        assert response.headers["www-authenticate"].lower().startswith("bearer")


@pytest.mark.parametrize(
    "header",
    ["Bearer not-a-real-token", "Bearer ", "Basic YWxpY2U6c2VjcmV0", "ci_only-the-token"],
    ids=["unknown-token", "empty-token", "basic-auth", "no-scheme"],
)
async def test_a_bad_token_is_401(app, make_staff, header: str) -> None:
    await make_staff("admin")
    async with asgi_client(app) as client:
        response = await client.get("/api/v1/clients", headers={"Authorization": header})
    assert_error(response, 401)


async def test_token_of_a_deactivated_account_stops_working(make_staff, api_client: ApiClientFactory) -> None:
    staff = await make_staff("supervisor")
    api = await api_client(staff)
    assert (await api.get("/api/v1/clients")).status_code == 200
    await Staff.filter(id=staff.id).update(is_active=False)
    assert_error(await api.get("/api/v1/clients"), 401)


async def test_tokens_are_stored_only_as_digests(make_staff, api_client: ApiClientFactory) -> None:
    api = await api_client(await make_staff("admin"))
    token = api.headers["Authorization"].removeprefix("Bearer ")
    stored = [row.token_hash for row in await ApiToken.all()]
    assert stored and token not in stored and all(len(digest) == 64 for digest in stored)


async def test_openapi_document_is_served_without_a_token(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    for path in (
        "/clients",
        "/cases",
        "/assignments",
        "/messages",
        "/messages/{message_id}",
        "/cases/{case_id}/transcript",
    ):
        assert path in document["paths"], path


async def test_unknown_api_path_is_a_json_404(supervisor: httpx.AsyncClient) -> None:
    assert_error(await supervisor.get("/api/v1/no-such-thing"), 404)


# ---------------------------------------------------------------- clients


async def test_create_client_answers_201_with_numbers_in_e164(supervisor: httpx.AsyncClient) -> None:
    response = await supervisor.post(
        "/api/v1/clients",
        json={
            "name": "Maria Lopez",
            "external_id": "LS-1001",
            "preferred_language": "es",
            "phones": [
                {"number": "(404) 538-7319", "kind": "mobile", "okay_to_text": True},
                {"number": "404.555.0123", "kind": "home", "okay_to_text": False},
            ],
        },
    )
    assert response.status_code == 201, response.text
    client = response.json()
    assert isinstance(client["id"], int)
    assert (
        client["name"] == "Maria Lopez" and client["external_id"] == "LS-1001" and client["preferred_language"] == "es"
    )
    phones = {(p["number"], p["kind"], p["okay_to_text"], p["opted_out"]) for p in client["phones"]}
    assert phones == {("+14045387319", "mobile", True, False), ("+14045550123", "home", False, False)}
    assert_iso_with_offset(client["created_at"])
    # Stored, not just echoed.
    fetched = await supervisor.get(f"/api/v1/clients/{client['id']}")
    assert fetched.status_code == 200 and fetched.json() == client
    assert await ClientPhone.filter(client_id=client["id"], number="+14045387319", okay_to_text=True).exists()


async def test_malformed_phone_number_is_422_naming_the_field_and_stores_nothing(supervisor: httpx.AsyncClient) -> None:
    response = await supervisor.post(
        "/api/v1/clients",
        json={"name": "Maria Lopez", "phones": [{"number": "not a phone", "kind": "mobile", "okay_to_text": True}]},
    )
    body = assert_error(response, 422)
    assert set(body["fields"]) == {"phones.0.number"}
    assert await Client.all().count() == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"phones": []}, "name"),
        ({"name": "   ", "phones": []}, "name"),
        ({"name": 42, "phones": []}, "name"),
        ({"name": "M", "phones": "+14045387319"}, "phones"),
        ({"name": "M", "phones": [{"number": MARIA, "kind": "fax", "okay_to_text": True}]}, "phones.0.kind"),
        ({"name": "M", "phones": [{"number": MARIA, "okay_to_text": "yes"}]}, "phones.0.okay_to_text"),
        ({"name": "M", "phones": [{"kind": "mobile"}]}, "phones.0.number"),
        ({"name": "M", "phones": [{"number": MARIA}, {"number": "12"}]}, "phones.1.number"),
    ],
    ids=[
        "missing-name",
        "blank-name",
        "name-not-string",
        "phones-not-list",
        "bad-kind",
        "okay-not-bool",
        "no-number",
        "second-phone",
    ],
)
async def test_invalid_client_input_is_422_with_field_errors(
    supervisor: httpx.AsyncClient, payload: dict[str, Any], field: str
) -> None:
    body = assert_error(await supervisor.post("/api/v1/clients", json=payload), 422)
    assert field in body["fields"], body
    assert await Client.all().count() == 0


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"a string"'], ids=["broken", "array", "string"])
async def test_a_body_that_is_not_a_json_object_is_422(supervisor: httpx.AsyncClient, raw: bytes) -> None:
    response = await supervisor.post("/api/v1/clients", content=raw, headers={"Content-Type": "application/json"})
    assert_error(response, 422)


async def test_duplicate_external_id_is_refused_with_a_field_error(supervisor: httpx.AsyncClient) -> None:
    await new_client(supervisor, external_id="LS-1")
    body = assert_error(
        await supervisor.post("/api/v1/clients", json={"name": "Other", "external_id": "LS-1", "phones": []}), 422
    )
    assert "external_id" in body["fields"]


async def test_html_in_names_is_stored_as_given_and_answered_as_json(supervisor: httpx.AsyncClient) -> None:
    name = '<script>alert("x")</script><b>Maria</b>'
    client = await new_client(supervisor, name=name)
    response = await supervisor.get(f"/api/v1/clients/{client['id']}")
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["name"] == name
    assert (await Client.get(id=client["id"])).name == name


async def test_lists_are_newest_first_and_paged_with_limit_and_before(supervisor: httpx.AsyncClient) -> None:
    ids = [(await new_client(supervisor, name=f"Client {n}", phones=[]))["id"] for n in range(5)]
    everything = await supervisor.get("/api/v1/clients")
    assert everything.status_code == 200
    assert [c["id"] for c in everything.json()] == ids[::-1]
    first_page = (await supervisor.get("/api/v1/clients", params={"limit": 2})).json()
    assert [c["id"] for c in first_page] == [ids[4], ids[3]]
    second_page = (await supervisor.get("/api/v1/clients", params={"limit": 2, "before": first_page[-1]["id"]})).json()
    assert [c["id"] for c in second_page] == [ids[2], ids[1]]
    last_page = (await supervisor.get("/api/v1/clients", params={"limit": 2, "before": second_page[-1]["id"]})).json()
    assert [c["id"] for c in last_page] == [ids[0]]


@pytest.mark.parametrize("query", [{"limit": "ten"}, {"before": "yesterday"}], ids=["limit", "before"])
async def test_paging_parameters_must_be_integers(supervisor: httpx.AsyncClient, query: dict[str, str]) -> None:
    body = assert_error(await supervisor.get("/api/v1/clients", params=query), 422)
    assert set(query) <= set(body["fields"])


async def test_unknown_ids_are_404(supervisor: httpx.AsyncClient) -> None:
    for path in (
        "/api/v1/clients/999999",
        "/api/v1/cases/999999",
        "/api/v1/assignments/999999",
        "/api/v1/messages/999999",
        "/api/v1/cases/999999/transcript",
    ):
        assert_error(await supervisor.get(path), 404)


# ---------------------------------------------------------------- cases and assignments


async def test_create_and_read_a_case(supervisor: httpx.AsyncClient) -> None:
    client = await new_client(supervisor)
    case = await new_case(
        supervisor, client["id"], "16E-20010101", legal_problem="Housing", office="Atlanta", external_id="LS-C-1"
    )
    assert isinstance(case["id"], int)
    assert (case["number"], case["title"], case["client_id"]) == ("16E-20010101", "Eviction defence", client["id"])
    assert (case["legal_problem"], case["office"], case["external_id"]) == ("Housing", "Atlanta", "LS-C-1")
    assert_iso_with_offset(case["created_at"])
    assert (await supervisor.get(f"/api/v1/cases/{case['id']}")).json() == case
    assert [c["id"] for c in (await supervisor.get("/api/v1/cases")).json()] == [case["id"]]
    assert (await supervisor.get(f"/api/v1/clients/{client['id']}")).json()["case_ids"] == [case["id"]]


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({"title": "T", "client_id": None}, {"number", "client_id"}),
        ({"number": "16E-1", "title": "T", "client_id": 999999}, {"client_id"}),
        ({"number": "16E-1", "title": "T", "client_id": "1"}, {"client_id"}),
        ({"number": "16E-1", "client_id": 1}, {"title"}),
    ],
    ids=["missing", "unknown-client", "client-id-string", "no-title"],
)
async def test_invalid_case_input_is_422(
    supervisor: httpx.AsyncClient, payload: dict[str, Any], fields: set[str]
) -> None:
    body = assert_error(await supervisor.post("/api/v1/cases", json=payload), 422)
    assert fields <= set(body["fields"]), body


async def test_duplicate_case_number_is_refused(supervisor: httpx.AsyncClient) -> None:
    client = await new_client(supervisor)
    await new_case(supervisor, client["id"], number="16E-7")
    response = await supervisor.post(
        "/api/v1/cases", json={"number": "16E-7", "title": "Again", "client_id": client["id"]}
    )
    assert "number" in assert_error(response, 422)["fields"]


async def test_create_and_list_assignments(supervisor: httpx.AsyncClient, make_staff) -> None:
    advocate = await make_staff("advocate")
    client = await new_client(supervisor)
    case = await new_case(supervisor, client["id"])
    other = await new_case(supervisor, client["id"], number="16E-20010102")
    response = await supervisor.post(
        "/api/v1/assignments",
        json={"case_id": case["id"], "staff_email": advocate.email.upper(), "primary": True, "end": "2099-01-31"},
    )
    assert response.status_code == 201, response.text
    assignment = response.json()
    assert (assignment["case_id"], assignment["staff_email"], assignment["primary"]) == (
        case["id"],
        advocate.email,
        True,
    )
    assert assignment["start"] == date.today().isoformat() and assignment["end"] == "2099-01-31"
    second = (
        await supervisor.post(
            "/api/v1/assignments", json={"case_id": other["id"], "staff_email": advocate.email, "primary": False}
        )
    ).json()
    assert [a["id"] for a in (await supervisor.get("/api/v1/assignments")).json()] == [second["id"], assignment["id"]]
    assert [a["id"] for a in (await supervisor.get("/api/v1/assignments", params={"case_id": case["id"]})).json()] == [
        assignment["id"]
    ]
    assert (await supervisor.get(f"/api/v1/assignments/{assignment['id']}")).json() == assignment


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"staff_email": "nobody@example.org"}, "staff_email"),
        ({"primary": "yes"}, "primary"),
        ({"start": "2026-05-10", "end": "2026-05-01"}, "end"),
        ({"start": "next tuesday"}, "start"),
        ({"case_id": 999999}, "case_id"),
    ],
    ids=["unknown-staff", "primary-not-bool", "end-before-start", "bad-date", "unknown-case"],
)
async def test_invalid_assignment_input_is_422(
    supervisor: httpx.AsyncClient, make_staff, payload: dict[str, Any], field: str
) -> None:
    advocate = await make_staff("advocate")
    case = await new_case(supervisor, (await new_client(supervisor))["id"])
    body = assert_error(
        await supervisor.post(
            "/api/v1/assignments", json={"case_id": case["id"], "staff_email": advocate.email, **payload}
        ),
        422,
    )
    assert field in body["fields"], body


# ---------------------------------------------------------------- who sees what


async def test_advocates_may_not_create_clients_cases_or_assignments(
    make_staff, api_client: ApiClientFactory, make_case
) -> None:
    advocate = await make_staff("advocate")
    api = await api_client(advocate)
    mine = await make_case(assignee=advocate)
    assert_error(await api.post("/api/v1/clients", json={"name": "X", "phones": []}), 403)
    assert_error(
        await api.post("/api/v1/cases", json={"number": "16E-9", "title": "T", "client_id": mine.client_id}), 403
    )
    assert_error(
        await api.post("/api/v1/assignments", json={"case_id": mine.case_id, "staff_email": advocate.email}), 403
    )
    assert await Client.all().count() == 1


@pytest.mark.parametrize("role", ["supervisor", "admin"])
async def test_supervisors_and_admins_see_everything(
    make_staff, api_client: ApiClientFactory, make_case, role: str
) -> None:
    api = await api_client(await make_staff(role))
    first, second = await make_case(phone=MARIA), await make_case(phone="+14045550123", name="James Smith")
    assert {c["id"] for c in (await api.get("/api/v1/clients")).json()} == {first.client_id, second.client_id}
    assert {c["id"] for c in (await api.get("/api/v1/cases")).json()} == {first.case_id, second.case_id}
    assert (await api.get(f"/api/v1/clients/{second.client_id}")).status_code == 200


async def test_advocates_see_only_clients_on_their_current_cases(
    make_staff, api_client: ApiClientFactory, make_case, supervisor: httpx.AsyncClient
) -> None:
    advocate = await make_staff("advocate")
    api = await api_client(advocate)
    mine = await make_case(phone=MARIA, assignee=advocate)
    theirs = await make_case(phone="+14045550123", name="James Smith", assignee=await make_staff("advocate"))
    ended = await make_case(phone="+14045550106", name="Dana Whitfield")
    ending_later = await make_case(phone="+14045550145", name="Lee Park")
    today = date.today()
    for case, start, end in [
        (ended, today - timedelta(days=30), today - timedelta(days=1)),
        (ending_later, today - timedelta(days=30), today + timedelta(days=1)),
    ]:
        response = await supervisor.post(
            "/api/v1/assignments",
            json={
                "case_id": case.case_id,
                "staff_email": advocate.email,
                "start": start.isoformat(),
                "end": end.isoformat(),
            },
        )
        assert response.status_code == 201, response.text

    visible_clients = {c["id"] for c in (await api.get("/api/v1/clients")).json()}
    assert visible_clients == {mine.client_id, ending_later.client_id}
    assert {c["id"] for c in (await api.get("/api/v1/cases")).json()} == {mine.case_id, ending_later.case_id}
    assert {a["case_id"] for a in (await api.get("/api/v1/assignments")).json()} == {mine.case_id, ending_later.case_id}
    assert (await api.get(f"/api/v1/clients/{mine.client_id}")).status_code == 200
    assert (await api.get(f"/api/v1/cases/{ending_later.case_id}")).status_code == 200
    for hidden in (theirs, ended):
        assert_error(await api.get(f"/api/v1/clients/{hidden.client_id}"), 404)
        assert_error(await api.get(f"/api/v1/cases/{hidden.case_id}"), 404)
        assert_error(await api.get(f"/api/v1/cases/{hidden.case_id}/transcript"), 404)
    hidden_assignment = (await supervisor.get("/api/v1/assignments", params={"case_id": theirs.case_id})).json()[0]
    assert_error(await api.get(f"/api/v1/assignments/{hidden_assignment['id']}"), 404)


async def test_an_advocate_with_no_cases_sees_empty_lists(make_staff, api_client: ApiClientFactory, make_case) -> None:
    await make_case()
    api = await api_client(await make_staff("advocate"))
    for path in ("/api/v1/clients", "/api/v1/cases", "/api/v1/assignments"):
        response = await api.get(path)
        assert response.status_code == 200 and response.json() == [], path


# ---------------------------------------------------------------- sending


async def test_send_for_a_case_goes_to_the_clients_mobile_through_twilio(
    supervisor: httpx.AsyncClient, make_case, fake_twilio
) -> None:
    fake_twilio.callbacks_enabled = False
    case = await make_case(phone=MARIA)
    response = await send(supervisor, case_id=case.case_id, body="Your hearing is Monday at 9.")
    assert response.status_code == 201, response.text
    # The answer comes at once, before Twilio is called: the text is in our outbox.
    assert (response.json()["status"], response.json()["provider_sid"]) == ("queued", None)
    message = await as_it_is_now(supervisor, response)
    assert message["direction"] == "outbound"
    assert (message["from"], message["to"], message["body"]) == (FROM_NUMBER, MARIA, "Your hearing is Monday at 9.")
    assert message["status"] == "queued" and message["error_code"] is None
    assert message["provider_sid"] == fake_twilio.messages[0]["sid"]
    assert message["case_ids"] == [case.case_id]
    assert [step["status"] for step in message["timeline"]] == ["queued"]
    assert_iso_with_offset(message["timeline"][0]["at"])
    assert_iso_with_offset(message["created_at"])

    assert len(fake_twilio.requests) == 1
    request = fake_twilio.requests[0]
    assert request["To"] == MARIA and request["From"] == FROM_NUMBER
    assert request["Body"] == "Your hearing is Monday at 9."
    assert request["StatusCallback"] == STATUS_CALLBACK


async def test_status_callbacks_make_the_timeline_queued_sent_delivered(
    supervisor: httpx.AsyncClient, make_case, fake_twilio
) -> None:
    case = await make_case(phone=MARIA)
    response = await send(supervisor, case_id=case.case_id, body="Your hearing is Monday at 9.")
    assert response.status_code == 201, response.text
    await fake_twilio.callbacks_done()
    assert [c.status_code for c in fake_twilio.callbacks] == [200, 200]
    message = (await supervisor.get(f"/api/v1/messages/{response.json()['id']}")).json()
    assert message["status"] == "delivered"
    assert [step["status"] for step in message["timeline"]] == ["queued", "sent", "delivered"]
    for step in message["timeline"]:
        assert_iso_with_offset(step["at"]) and step["error_code"] is None
    assert set(message) >= {
        "id",
        "direction",
        "from",
        "to",
        "body",
        "status",
        "error_code",
        "provider_sid",
        "case_ids",
        "timeline",
    }


async def test_an_undelivered_callback_shows_in_the_message(
    supervisor: httpx.AsyncClient, make_case, fake_twilio
) -> None:
    fake_twilio.outcomes[MARIA] = [("sent", None), ("undelivered", 30003)]
    case = await make_case(phone=MARIA)
    message_id = (await send(supervisor, case_id=case.case_id, body="Hello")).json()["id"]
    await fake_twilio.callbacks_done()
    message = (await supervisor.get(f"/api/v1/messages/{message_id}")).json()
    assert (message["status"], message["error_code"]) == ("undelivered", 30003)
    assert "unreachable" in message["error_message"].lower()
    assert message["timeline"][-1] == {
        "status": "undelivered",
        "at": message["timeline"][-1]["at"],
        "error_code": 30003,
    }


async def test_number_defaults_to_the_mobile_even_when_another_phone_comes_first(
    supervisor: httpx.AsyncClient, fake_twilio
) -> None:
    fake_twilio.callbacks_enabled = False
    client = await new_client(
        supervisor,
        phones=[
            {"number": "+14045550123", "kind": "home", "okay_to_text": True},
            {"number": MARIA, "kind": "mobile", "okay_to_text": True},
        ],
    )
    response = await send(supervisor, client_id=client["id"], body="Hello")
    assert response.status_code == 201, response.text
    assert response.json()["to"] == MARIA and response.json()["case_ids"] == []
    assert fake_twilio.requests[0]["To"] == MARIA


async def test_send_to_an_explicit_number_for_a_case(supervisor: httpx.AsyncClient, make_case, fake_twilio) -> None:
    fake_twilio.callbacks_enabled = False
    case = await make_case(phone=MARIA)
    await ClientPhone.create(client_id=case.client_id, number="+14045550123", kind="work", okay_to_text=True)
    response = await send(supervisor, case_id=case.case_id, to="(404) 555-0123", body="At work?")
    assert response.status_code == 201, response.text
    assert response.json()["to"] == "+14045550123" and response.json()["case_ids"] == [case.case_id]
    assert fake_twilio.requests[0]["To"] == "+14045550123"


@pytest.mark.parametrize("setup", ["not_okay_to_text", "opted_out", "unknown_number"])
async def test_a_send_our_rules_refuse_is_409_with_no_message_and_no_provider_call(
    supervisor: httpx.AsyncClient, make_case, fake_twilio, setup: str
) -> None:
    case = await make_case(phone=MARIA, okay_to_text=setup != "not_okay_to_text")
    if setup == "opted_out":
        await ClientPhone.filter(number=MARIA).update(opted_out=True)
    payload = {"to": "+14045550199"} if setup == "unknown_number" else {"case_id": case.case_id}
    response = await send(supervisor, body="Hello", **payload)
    assert_error(response, 409)
    assert await Message.all().count() == 0
    assert await MessageStatusEvent.all().count() == 0
    assert fake_twilio.requests == []


async def test_an_unknown_sender_who_texted_us_may_be_answered(
    supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient, fake_twilio
) -> None:
    fake_twilio.callbacks_enabled = False
    stranger = "+14045550199"
    inbound = await anonymous.post(
        **signed_post_args("/webhooks/twilio/messages", inbound_params("SM" + "b" * 32, stranger, "Is this legal aid?"))
    )
    assert inbound.status_code == 200
    response = await send(supervisor, to=stranger, body="Yes, how can we help?")
    assert response.status_code == 201, response.text
    assert fake_twilio.requests[0]["To"] == stranger


@pytest.mark.parametrize(
    ("code", "words"),
    [(21211, "not a valid phone number"), (21614, "landline"), (21610, "opted out")],
)
async def test_a_send_the_provider_refuses_is_201_failed_with_plain_words(
    supervisor: httpx.AsyncClient, make_case, fake_twilio, code: int, words: str
) -> None:
    fake_twilio.reject[MARIA] = code
    case = await make_case(phone=MARIA)
    response = await send(supervisor, case_id=case.case_id, body="Hello")
    message = await as_it_is_now(supervisor, response)
    assert (message["status"], message["error_code"], message["provider_sid"]) == ("failed", code, None)
    assert words in message["error_message"].lower()
    assert [(s["status"], s["error_code"]) for s in message["timeline"]] == [("queued", None), ("failed", code)]
    assert len(fake_twilio.requests) == 1
    stored = await Message.get(id=message["id"])
    assert (stored.status, stored.error_code) == ("failed", code)


async def test_provider_opt_out_21610_marks_the_number_so_the_next_send_is_409(
    supervisor: httpx.AsyncClient, make_case, fake_twilio
) -> None:
    fake_twilio.reject[MARIA] = 21610
    case = await make_case(phone=MARIA)
    first = await send(supervisor, case_id=case.case_id, body="Hello")
    assert (await as_it_is_now(supervisor, first))["status"] == "failed"
    client = (await supervisor.get(f"/api/v1/clients/{case.client_id}")).json()
    assert client["phones"][0]["opted_out"] is True
    assert_error(await send(supervisor, case_id=case.case_id, body="Hello again"), 409)
    assert len(fake_twilio.requests) == 1
    assert await Message.all().count() == 1


async def test_other_refusals_do_not_opt_the_number_out(supervisor: httpx.AsyncClient, make_case, fake_twilio) -> None:
    fake_twilio.reject[MARIA] = 21614
    case = await make_case(phone=MARIA)
    await send(supervisor, case_id=case.case_id, body="Hello")
    assert not await ClientPhone.filter(number=MARIA, opted_out=True).exists()
    del fake_twilio.reject[MARIA]
    fake_twilio.callbacks_enabled = False
    assert (await send(supervisor, case_id=case.case_id, body="Hello again")).json()["status"] == "queued"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"body": ""}, "body"),
        ({"body": "   \n "}, "body"),
        ({}, "body"),
        ({"body": 5}, "body"),
        ({"body": "x" * 161}, "body"),
        ({"body": "Hello", "to": "not a number"}, "to"),
        ({"body": "Hello", "to": "+1 404 538"}, "to"),
        ({"body": "Hello", "send_at": "tomorrow"}, "send_at"),
        ({"body": "Hello", "send_at": "2099-01-01T09:00:00"}, "send_at"),
        ({"body": "Hello", "case_id": "1"}, "case_id"),
    ],
    ids=[
        "empty",
        "blank",
        "missing",
        "not-string",
        "over-limit",
        "to-junk",
        "to-short",
        "send-at-junk",
        "send-at-no-offset",
        "case-id-string",
    ],
)
async def test_invalid_send_is_422_and_nothing_is_sent(
    supervisor: httpx.AsyncClient, make_case, fake_twilio, payload: dict[str, Any], field: str
) -> None:
    case = await make_case(phone=MARIA)
    payload = {"case_id": case.case_id, **payload} if "case_id" not in payload else payload
    body = assert_error(await send(supervisor, **payload), 422)
    assert field in body["fields"], body
    assert await Message.all().count() == 0
    assert fake_twilio.requests == []


async def test_send_without_any_recipient_is_422(supervisor: httpx.AsyncClient, fake_twilio) -> None:
    body = assert_error(await send(supervisor, body="Hello"), 422)
    assert "to" in body["fields"]
    assert fake_twilio.requests == []


async def test_the_character_limit_is_the_organisations(supervisor: httpx.AsyncClient, make_case, fake_twilio) -> None:
    fake_twilio.callbacks_enabled = False
    case = await make_case(phone=MARIA)
    assert (await send(supervisor, case_id=case.case_id, body="x" * 160)).status_code == 201
    await Organisation.all().update(char_limit=300)
    assert (await send(supervisor, case_id=case.case_id, body="y" * 300)).status_code == 201
    assert "body" in assert_error(await send(supervisor, case_id=case.case_id, body="z" * 301), 422)["fields"]
    assert [r["Body"] for r in fake_twilio.requests] == ["x" * 160, "y" * 300]


async def test_unknown_case_or_client_in_a_send_is_404(supervisor: httpx.AsyncClient, fake_twilio) -> None:
    assert_error(await send(supervisor, case_id=999999, body="Hello"), 404)
    assert_error(await send(supervisor, client_id=999999, body="Hello"), 404)
    assert fake_twilio.requests == []


async def test_a_future_send_at_is_scheduled_and_the_provider_is_not_called(
    supervisor: httpx.AsyncClient, make_case, fake_twilio
) -> None:
    case = await make_case(phone=MARIA)
    when = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    response = await send(
        supervisor,
        case_id=case.case_id,
        body="Reminder: hearing tomorrow.",
        send_at=when.isoformat().replace("+00:00", "Z"),
    )
    assert response.status_code == 201, response.text
    message = response.json()
    assert message["status"] == "scheduled" and message["provider_sid"] is None
    assert assert_iso_with_offset(message["send_at"]) == when
    assert [s["status"] for s in message["timeline"]] == ["scheduled"]
    assert fake_twilio.requests == []


async def test_a_send_at_in_another_offset_is_understood(supervisor: httpx.AsyncClient, make_case, fake_twilio) -> None:
    case = await make_case(phone=MARIA)
    when = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    local = when.astimezone(timezone(timedelta(hours=-5))).isoformat()
    assert local.endswith("-05:00")
    message = (await send(supervisor, case_id=case.case_id, body="Reminder", send_at=local)).json()
    assert message["status"] == "scheduled"
    assert assert_iso_with_offset(message["send_at"]) == when


async def test_a_past_send_at_sends_now(supervisor: httpx.AsyncClient, make_case, fake_twilio) -> None:
    fake_twilio.callbacks_enabled = False
    case = await make_case(phone=MARIA)
    response = await send(supervisor, case_id=case.case_id, body="Now please", send_at="2020-01-01T00:00:00Z")
    assert response.status_code == 201 and response.json()["status"] == "queued"
    assert len(fake_twilio.requests) == 1


async def test_advocates_send_only_to_clients_on_their_cases(
    make_staff, api_client: ApiClientFactory, make_case, fake_twilio
) -> None:
    fake_twilio.callbacks_enabled = False
    advocate = await make_staff("advocate")
    api = await api_client(advocate)
    mine = await make_case(phone=MARIA, assignee=advocate)
    theirs = await make_case(phone="+14045550123", name="James Smith", assignee=await make_staff("advocate"))
    assert (await send(api, case_id=mine.case_id, body="Hello")).status_code == 201
    assert_error(await send(api, case_id=theirs.case_id, body="Hello"), 404)
    assert_error(await send(api, client_id=theirs.client_id, body="Hello"), 404)
    assert [r["To"] for r in fake_twilio.requests] == [MARIA]


async def test_advocates_read_only_messages_to_their_clients(
    make_staff, api_client: ApiClientFactory, make_case, supervisor: httpx.AsyncClient, fake_twilio
) -> None:
    fake_twilio.callbacks_enabled = False
    advocate = await make_staff("advocate")
    api = await api_client(advocate)
    mine = await make_case(phone=MARIA, assignee=advocate)
    theirs = await make_case(phone="+14045550123", name="James Smith")
    to_mine = (await send(supervisor, case_id=mine.case_id, body="One")).json()
    to_theirs = (await send(supervisor, case_id=theirs.case_id, body="Two")).json()
    assert (await api.get(f"/api/v1/messages/{to_mine['id']}")).json()["body"] == "One"
    assert_error(await api.get(f"/api/v1/messages/{to_theirs['id']}"), 404)
    assert (await supervisor.get(f"/api/v1/messages/{to_theirs['id']}")).json()["body"] == "Two"


async def test_a_case_transcript_is_oldest_first_and_only_that_case(
    supervisor: httpx.AsyncClient, make_case, fake_twilio
) -> None:
    case = await make_case(phone=MARIA)
    other = await make_case(phone="+14045550123", name="James Smith")
    sent = [(await send(supervisor, case_id=case.case_id, body=f"Text {n}")).json()["id"] for n in range(3)]
    await send(supervisor, case_id=other.case_id, body="Elsewhere")
    await fake_twilio.callbacks_done()
    response = await supervisor.get(f"/api/v1/cases/{case.case_id}/transcript")
    assert response.status_code == 200
    transcript = response.json()
    assert transcript["case_id"] == case.case_id
    assert [m["id"] for m in transcript["messages"]] == sent
    assert [m["body"] for m in transcript["messages"]] == ["Text 0", "Text 1", "Text 2"]
    first = transcript["messages"][0]
    assert first["status"] == "delivered" and [s["status"] for s in first["timeline"]] == [
        "queued",
        "sent",
        "delivered",
    ]
    assert first == (await supervisor.get(f"/api/v1/messages/{first['id']}")).json()


async def test_an_empty_transcript(supervisor: httpx.AsyncClient, make_case) -> None:
    case = await make_case()
    transcript = (await supervisor.get(f"/api/v1/cases/{case.case_id}/transcript")).json()
    assert transcript["case_id"] == case.case_id
    assert transcript["messages"] == [] and transcript["link_changes"] == []
    # The client's number was recorded okay to text when the record was made: the case file says so.
    assert [c["okay_to_text"] for c in transcript["consent_events"]] == [True]
    assert [e["kind"] for e in transcript["entries"]] == ["consent"]


async def test_advocates_may_not_text_a_number_they_cannot_see(
    make_staff, api_client: ApiClientFactory, make_case, anonymous: httpx.AsyncClient, fake_twilio
) -> None:
    fake_twilio.callbacks_enabled = False
    advocate = await make_staff("advocate")
    api = await api_client(advocate)
    mine = await make_case(phone=MARIA, assignee=advocate)
    await make_case(phone="+14045550123", name="James Smith")  # consented, on nobody's case of theirs
    stranger = "+14045550199"
    await anonymous.post(
        **signed_post_args("/webhooks/twilio/messages", inbound_params("SM" + "c" * 32, stranger, "Hello?"))
    )
    assert_error(await send(api, to="+14045550123", body="Hello"), 403)
    assert_error(await send(api, to=stranger, body="Hello"), 403)
    assert_error(await send(api, case_id=mine.case_id, to="+14045550123", body="Hello"), 403)
    assert fake_twilio.requests == []
    assert not await Message.filter(direction="outbound").exists()
    # Their own client's number, given explicitly, is fine.
    response = await send(api, to="404-538-7319", body="Hello")
    assert response.status_code == 201 and response.json()["to"] == MARIA


async def test_a_case_and_a_client_that_do_not_belong_together_are_422(
    supervisor: httpx.AsyncClient, make_case, fake_twilio
) -> None:
    maria = await make_case(phone=MARIA)
    james = await make_case(phone="+14045550123", name="James Smith")
    body = assert_error(await send(supervisor, case_id=maria.case_id, client_id=james.client_id, body="Hello"), 422)
    assert "client_id" in body["fields"]
    assert fake_twilio.requests == [] and await Message.all().count() == 0
    fake_twilio.callbacks_enabled = False
    both = await send(supervisor, case_id=maria.case_id, client_id=maria.client_id, body="Hello")
    assert both.status_code == 201 and both.json()["to"] == MARIA


async def test_inbound_messages_are_readable_by_those_who_may_see_them(
    make_staff, api_client: ApiClientFactory, make_case, supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    advocate = await make_staff("advocate")
    api = await api_client(advocate)
    await make_case(phone=MARIA, assignee=advocate)
    for sid, sender in (("SM" + "d" * 32, MARIA), ("SM" + "e" * 32, "+14045550199")):
        response = await anonymous.post(
            **signed_post_args("/webhooks/twilio/messages", inbound_params(sid, sender, "Which courtroom?"))
        )
        assert response.status_code == 200
    from_maria = await Message.get(provider_sid="SM" + "d" * 32)
    unmatched = await Message.get(provider_sid="SM" + "e" * 32)
    message = (await api.get(f"/api/v1/messages/{from_maria.id}")).json()
    assert (message["direction"], message["status"], message["from"], message["to"]) == (
        "inbound",
        "received",
        MARIA,
        FROM_NUMBER,
    )
    assert message["provider_sid"] == "SM" + "d" * 32 and message["body"] == "Which courtroom?"
    assert [s["status"] for s in message["timeline"]] == ["received"]
    # Unmatched conversations: supervisors and admins only.
    assert_error(await api.get(f"/api/v1/messages/{unmatched.id}"), 404)
    assert (await supervisor.get(f"/api/v1/messages/{unmatched.id}")).json()["from"] == "+14045550199"


async def test_a_callback_that_beat_the_providers_answer_keeps_its_place_in_the_timeline(
    app, supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient, make_case, fake_twilio
) -> None:
    fake_twilio.callbacks_enabled = False
    case = await make_case(phone=MARIA)
    sent = await as_it_is_now(supervisor, await send(supervisor, case_id=case.case_id, body="Hello"))
    sid = sent["provider_sid"]
    # Twilio's "sent" arrives while its answer to our create is not stored yet: it is kept for later…
    await Message.filter(id=sent["id"]).update(provider_sid=None)
    assert (await anonymous.post(**status_callback(sid, "sent"))).status_code == 200
    await Message.filter(id=sent["id"]).update(provider_sid=sid)
    # …"delivered" comes after the answer is stored, and the kept "sent" is applied last.
    assert (await anonymous.post(**status_callback(sid, "delivered"))).status_code == 200
    await messaging.apply_early_callbacks(app.state.outbox, await Message.get(id=sent["id"]))
    message = (await supervisor.get(f"/api/v1/messages/{sent['id']}")).json()
    assert message["status"] == "delivered"
    assert [step["status"] for step in message["timeline"]] == ["queued", "sent", "delivered"]
