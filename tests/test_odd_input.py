"""Input that can never be valid gets a clear answer, never a 500: ids beyond the database's integer range
(PostgreSQL `integer` keys), NUL bytes and unpaired surrogates in query strings, forms and JSON, `limit` over
its maximum, and methods a path does not take (405 with `Allow`). The API always answers its error shape
`{"error", "fields"}`; pages answer the 404 or error page. Run on SQLite and PostgreSQL alike."""

from __future__ import annotations

import html
import random
import re
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from inbox.models import Client, ClientPhone, Message, QuickEntry, WebhookPayload
from inbox.routes.api import OPERATIONS
from inbox.routes.guards import MAX_ID, IdConvertor, digits_up_to, record_id
from tests.support.api import assert_error
from tests.support.records import MARIA
from tests.support.staff import ApiClientFactory, StaffClient
from tests.support.webhooks import inbound_params, signed_post_args

TOO_LARGE = [str(MAX_ID + 1), "99999999999999999999"]


@pytest.fixture
async def admin_page(make_staff, signed_in) -> StaffClient:
    client: StaffClient = await signed_in(await make_staff("admin"))
    return client


# ---------------------------------------------------------------- the bound itself


def test_the_id_bound_is_postgresqls_integer() -> None:
    assert MAX_ID == 2**31 - 1
    pattern = re.compile(f"^{IdConvertor.regex}$")
    numbers = [0, 1, 9, 10, 999_999_999, 1_000_000_000, MAX_ID - 1, MAX_ID, *random.sample(range(MAX_ID), 2000)]
    assert all(pattern.match(str(n)) for n in numbers)
    assert pattern.match("0042")
    beyond = [MAX_ID + 1, MAX_ID + 10, 2_999_999_999, 10**10, 10**20, *random.sample(range(MAX_ID + 1, 10**12), 2000)]
    assert not any(pattern.match(str(n)) for n in beyond)
    assert not any(pattern.match(text) for text in ("", "-1", "1.0", "1e3", "abc"))
    assert digits_up_to(305) == "0*(?:[0-9]{1,2}|[0-2][0-9]{2}|30[0-4]|305)"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("42", 42), (" 7 ", 7), (str(MAX_ID), MAX_ID), (str(MAX_ID + 1), None), ("-1", None), ("", None), (None, None),
     ("1e3", None), ("٣", None), ("99999999999999999999", None)],
)  # fmt: skip
def test_record_id_reads_only_ids_the_database_can_hold(value: object, expected: int | None) -> None:
    assert record_id(value) == expected


# ---------------------------------------------------------------- API: ids and paging


def path_operations() -> list[tuple[str, str, str]]:
    cases = []
    for operation in OPERATIONS:
        for name in operation.path_names:
            cases.append((operation.method, operation.path, name))
    return cases


@pytest.mark.parametrize(
    ("method", "template", "name"), path_operations(), ids=[f"{m} {p} {n}" for m, p, n in path_operations()]
)
async def test_api_path_ids_the_database_cannot_hold_are_422_naming_the_field(
    supervisor: httpx.AsyncClient, method: str, template: str, name: str
) -> None:
    for value in [*TOO_LARGE, "0", "-1", "abc"]:
        path = template.replace(f"{{{name}}}", value)
        path = re.sub(r"\{\w+\}", "1", path)
        response = await supervisor.request(method, f"/api/v1{path}", json={"case_id": 1, "okay_to_text": True})
        body = assert_error(response, 422)
        assert set(body["fields"]) == {name}, (value, body)


async def test_an_id_too_large_says_so(supervisor: httpx.AsyncClient) -> None:
    body = assert_error(await supervisor.get("/api/v1/messages/99999999999999999999"), 422)
    assert body["fields"] == {"message_id": f"No record has an id this large: ids go up to {MAX_ID}."}


LISTS = ["/clients", "/cases", "/assignments", "/queue", "/alerts", "/cases/1/notes", "/cases/1/documents"]


@pytest.mark.parametrize("path", LISTS)
async def test_paging_values_out_of_range_are_422_naming_them(supervisor: httpx.AsyncClient, path: str) -> None:
    for field, value in [("before", TOO_LARGE[0]), ("before", TOO_LARGE[1]), ("before", "-5"), ("limit", "201"),
                         ("limit", "0"), ("limit", "ten")]:  # fmt: skip
        body = assert_error(await supervisor.get(f"/api/v1{path}", params={field: value}), 422)
        assert set(body["fields"]) == {field}, (value, body)


async def test_limit_over_its_maximum_is_refused_not_capped(supervisor: httpx.AsyncClient) -> None:
    body = assert_error(await supervisor.get("/api/v1/clients", params={"limit": 500}), 422)
    assert body["fields"] == {"limit": "Must be at most 200."}
    assert (await supervisor.get("/api/v1/clients", params={"limit": 200})).status_code == 200


async def test_assignments_case_id_filter_beyond_the_range_is_422(supervisor: httpx.AsyncClient) -> None:
    body = assert_error(await supervisor.get("/api/v1/assignments", params={"case_id": TOO_LARGE[1]}), 422)
    assert set(body["fields"]) == {"case_id"}


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/api/v1/messages", {"body": "Hello", "case_id": MAX_ID + 1}, "case_id"),
        ("/api/v1/messages", {"body": "Hello", "client_id": 10**30}, "client_id"),
        ("/api/v1/cases", {"number": "1", "title": "T", "client_id": MAX_ID + 1}, "client_id"),
        ("/api/v1/assignments", {"case_id": 10**20, "staff_email": "a@example.org"}, "case_id"),
        ("/api/v1/messages/1/links", {"case_id": MAX_ID + 1}, "case_id"),
    ],
)
async def test_ids_in_bodies_beyond_the_range_are_422(
    supervisor: httpx.AsyncClient, fake_twilio, path: str, payload: dict[str, Any], field: str
) -> None:
    body = assert_error(await supervisor.post(path, json=payload), 422)
    assert field in body["fields"]
    assert fake_twilio.requests == []


# ---------------------------------------------------------------- API: text the database cannot store


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "Maria\x00 Lopez", "phones": []}, "name"),
        ({"name": "Maria", "phones": [{"number": "+1404\x005387319"}]}, "phones.0.number"),
        ({"name": "Maria", "external_id": "\x00", "phones": []}, "external_id"),
        ({"name": "Maria", "phones": [], "unknown": {"deep": ["\x00"]}}, "unknown.deep.0"),
    ],
    ids=["name", "nested-number", "external-id", "ignored-field"],
)
async def test_nul_in_a_json_string_is_422_naming_the_field_and_stores_nothing(
    supervisor: httpx.AsyncClient, payload: dict[str, Any], field: str
) -> None:
    body = assert_error(await supervisor.post("/api/v1/clients", json=payload), 422)
    assert field in body["fields"]
    assert "NUL" in body["fields"][field]
    assert await Client.all().count() == 0


async def test_an_unpaired_surrogate_in_json_is_422_naming_the_field(supervisor: httpx.AsyncClient) -> None:
    raw = b'{"name": "Maria \\ud800 Lopez", "phones": []}'
    response = await supervisor.post("/api/v1/clients", content=raw, headers={"Content-Type": "application/json"})
    body = assert_error(response, 422)
    assert set(body["fields"]) == {"name"} and "surrogate" in body["fields"]["name"]
    assert await Client.all().count() == 0


async def test_nul_in_a_sent_text_sends_nothing(supervisor: httpx.AsyncClient, make_case, fake_twilio) -> None:
    case = await make_case(phone=MARIA)
    body = assert_error(
        await supervisor.post("/api/v1/messages", json={"case_id": case.case_id, "body": "Room\x00 4B"}), 422
    )
    assert set(body["fields"]) == {"body"}
    assert await Message.all().count() == 0 and fake_twilio.requests == []


@pytest.mark.parametrize("query", ["limit=%00", "before=1%002", "q=%00", "%00=1"])
async def test_nul_in_an_api_query_string_is_422_naming_the_parameter(
    supervisor: httpx.AsyncClient, query: str
) -> None:
    body = assert_error(await supervisor.get(f"/api/v1/clients?{query}"), 422)
    name = query.split("=")[0].replace("%00", "\ufffd")
    assert set(body["fields"]) == {name}


# ---------------------------------------------------------------- API: one error shape


async def test_every_api_error_has_error_and_fields(
    anonymous: httpx.AsyncClient, supervisor: httpx.AsyncClient, make_staff, api_client: ApiClientFactory, make_case
) -> None:
    advocate = await api_client(await make_staff("advocate"))
    await make_case(phone=MARIA, okay_to_text=False)
    assert_error(await anonymous.get("/api/v1/clients"), 401)
    assert_error(await advocate.post("/api/v1/clients", json={"name": "X", "phones": []}), 403)
    assert_error(await supervisor.get("/api/v1/clients/12345"), 404)
    assert_error(await supervisor.get("/api/v1/no/such/path"), 404)
    assert_error(await supervisor.put("/api/v1/clients"), 405)
    assert_error(await supervisor.post("/api/v1/messages", json={"to": MARIA, "body": "Hi"}), 409)
    assert_error(await supervisor.post("/api/v1/clients", content=b"[]"), 422)
    assert assert_error(await supervisor.post("/api/v1/clients", content=b"{"), 422)["fields"] == {}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/v1/messages/1", "DELETE, GET, HEAD"),
        ("PATCH", "/api/v1/clients", "GET, HEAD, POST"),
        ("GET", "/api/v1/alerts/1/dismiss", "POST"),
        ("POST", "/api/v1/openapi.json", "GET, HEAD"),
    ],
)
async def test_api_405_lists_every_method_the_path_takes(
    supervisor: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await supervisor.request(method, path)
    body = assert_error(response, 405)
    assert response.headers["allow"] == allowed
    assert method in body["error"]


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ({"phones": []}, "name", "This field is required."),
        ({"name": 42, "phones": []}, "name", "Must be text (a JSON string)."),
        ({"name": "", "phones": []}, "name", "Must not be empty."),
        ({"name": "x" * 201, "phones": []}, "name", "Keep it to 200 characters; this has 201."),
        ({"name": "M", "phones": [{"number": MARIA, "kind": "fax"}]}, "phones.0.kind", "Must be one of"),
        (
            {"name": "M", "phones": [{"number": MARIA, "okay_to_text": "yes"}]},
            "phones.0.okay_to_text",
            "Must be true or false.",
        ),
        ({"name": "M", "phones": {}}, "phones", "Must be a list."),
    ],
)
async def test_validation_errors_are_words_a_person_can_act_on(
    supervisor: httpx.AsyncClient, payload: dict[str, Any], field: str, words: str
) -> None:
    body = assert_error(await supervisor.post("/api/v1/clients", json=payload), 422)
    assert body["error"] == "Please correct the highlighted fields."
    assert body["fields"][field].startswith(words), body


async def test_a_send_at_without_an_offset_asks_for_one(supervisor: httpx.AsyncClient, make_case) -> None:
    case = await make_case(phone=MARIA)
    response = await supervisor.post(
        "/api/v1/messages", json={"case_id": case.case_id, "body": "Hi", "send_at": "2099-01-01T09:00:00"}
    )
    assert assert_error(response, 422)["fields"] == {"send_at": "Give the time zone offset, e.g. 2026-11-21T15:00:00Z."}


# ---------------------------------------------------------------- pages


def page_routes(app: Starlette) -> list[tuple[str, str]]:
    found = []
    for route in app.routes:
        if isinstance(route, Route) and route.param_convertors and route.methods:
            found.extend((method, route.path) for method in sorted(route.methods - {"HEAD"}))
    return found


async def test_every_page_route_with_an_id_bounds_it(app: Starlette) -> None:
    routes = [route for route in app.routes if isinstance(route, Route)]
    int_params = [
        (route.path, name) for route in routes for name, convertor in route.param_convertors.items()
        if route.path.count(f"{{{name}:int}}")
    ]  # fmt: skip
    assert len(int_params) > 20
    for path, name in int_params:
        assert isinstance(routes[[r.path for r in routes].index(path)].param_convertors[name], IdConvertor), path
    api_mount = next(route for route in app.routes if isinstance(route, Mount) and route.path == "/api/v1")
    assert all(":int}" not in route.path for route in api_mount.routes if isinstance(route, Route))


async def test_page_ids_the_database_cannot_hold_are_the_404_page(app: Starlette, admin_page: StaffClient) -> None:
    checked = 0
    for method, template in page_routes(app):
        if ":int}" not in template:
            continue
        for value in TOO_LARGE:
            path = re.sub(r"\{\w+:int\}", value, template)
            response = await admin_page.http.request(method, path, data={"csrf_token": admin_page.csrf})
            assert response.status_code == 404, (method, path, response.status_code)
            assert "Not found" in response.text and "There is no such page." in response.text
            checked += 1
    assert checked > 40


@pytest.mark.parametrize(
    "url",
    [
        "/quick-entries/picker?conversation_id=99999999999999999999",
        "/quick-entries/fill?quick_entry=99999999999&case_id=1&form=case",
        "/quick-entries/fill?quick_entry=1&conversation_id=99999999999999999999",
        "/admin/channels/1?tested=99999999999999999999",
    ],
)
async def test_page_query_ids_the_database_cannot_hold_are_no_record(admin_page: StaffClient, url: str) -> None:
    response = await admin_page.get(url)
    assert response.status_code in (200, 204, 404), response.text


async def test_older_messages_with_a_before_beyond_the_range_is_not_an_error(
    admin_page: StaffClient, anonymous: httpx.AsyncClient, make_case
) -> None:
    await make_case(phone=MARIA)
    await anonymous.post(
        **signed_post_args("/webhooks/twilio/messages", inbound_params("SM" + "a" * 32, MARIA, "Which courtroom?"))
    )
    message = await Message.get(provider_sid="SM" + "a" * 32)
    response = await admin_page.get(f"/conversations/{message.conversation_id}/older?before={TOO_LARGE[1]}")
    assert response.status_code == 200 and "Which courtroom?" in response.text


async def test_a_link_form_with_a_case_id_beyond_the_range_asks_for_a_case(
    admin_page: StaffClient, anonymous: httpx.AsyncClient, make_case
) -> None:
    await make_case(phone=MARIA)
    await anonymous.post(**signed_post_args("/webhooks/twilio/messages", inbound_params("SM" + "b" * 32, MARIA, "Hi")))
    message = await Message.get(provider_sid="SM" + "b" * 32)
    response = await admin_page.post(f"/messages/{message.id}/links", {"case_id": TOO_LARGE[1]})
    assert response.status_code == 422 and "Choose a case." in response.text


@pytest.mark.parametrize("url", ["/?q=%00", "/conversations?q=Maria%00", "/cases?x=%00", "/?%00=1"])
async def test_nul_in_a_page_query_string_is_a_422_page_naming_it(admin_page: StaffClient, url: str) -> None:
    response = await admin_page.get(url)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    name = url.split("?")[1].split("=")[0].replace("%00", "\ufffd")
    assert f"{name}: Remove the NUL character" in response.text


async def test_nul_in_a_form_field_is_a_422_and_nothing_is_sent(
    admin_page: StaffClient, make_case, fake_twilio
) -> None:
    case = await make_case(phone=MARIA)
    await admin_page.get(f"/cases/{case.case_id}/text")
    response = await admin_page.post(f"/cases/{case.case_id}/text", {"body": "Room\x00 4B", "to": MARIA})
    assert response.status_code == 422
    assert "“body”: Remove the NUL character" in response.text
    assert await Message.all().count() == 0 and fake_twilio.requests == []


async def test_nul_in_an_admin_form_saves_nothing(admin_page: StaffClient) -> None:
    await admin_page.get("/admin/quick-entries/new")
    response = await admin_page.post(
        "/admin/quick-entries", {"name": "Reminder\x00", "language": "", "body": "Your hearing is Monday."}
    )
    assert response.status_code == 422 and "“name”" in response.text
    assert await QuickEntry.all().count() == 0


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/login", "GET, HEAD, POST"),
        ("DELETE", "/admin/settings", "GET, HEAD, POST"),
        ("GET", "/logout", "POST"),
        ("POST", "/static/app.css", "GET, HEAD"),
    ],
)
async def test_page_405_lists_every_method_the_path_takes(
    admin_page: StaffClient, method: str, path: str, allowed: str
) -> None:
    response = await admin_page.http.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert f"This address does not take {method}: it takes {allowed}." in html.unescape(response.text)


# ---------------------------------------------------------------- webhooks: the signature first, never a 500


async def test_a_signed_webhook_with_nul_is_refused_without_storing_it(anonymous: httpx.AsyncClient) -> None:
    params = inbound_params("SM" + "c" * 32, MARIA, "Which\x00 courtroom?")
    response = await anonymous.post(**signed_post_args("/webhooks/twilio/messages", params))
    assert response.status_code == 422 and response.headers["content-type"].startswith("text/plain")
    assert "Body" in response.text
    assert await WebhookPayload.all().count() == 0 and await Message.all().count() == 0


async def test_an_unsigned_webhook_with_nul_is_403_as_any_unsigned_one(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post(
        "/webhooks/twilio/messages?x=%00", data=inbound_params("SM" + "d" * 32, MARIA, "Hi\x00")
    )
    assert response.status_code == 403
    assert not await ClientPhone.filter(number=MARIA).exists() and await WebhookPayload.all().count() == 0
