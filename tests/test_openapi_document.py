"""The OpenAPI document is valid, lists exactly the routes that exist, and its schemas match the JSON the
API really produces (built here from stand-in objects, so no database is needed)."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from starlette.routing import Route

from inbox.models import ConsentSource, Direction, LinkReason, MediaStatus, MessageStatus, PhoneKind
from inbox.routes import api
from inbox.routes.openapi import OPENAPI

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
SCHEMAS = OPENAPI["components"]["schemas"]
AT = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def ns(**attributes: Any) -> SimpleNamespace:
    return SimpleNamespace(**attributes)


def schema_validator(name: str) -> Draft202012Validator:
    """A validator for one component schema, with the document's components to resolve its $refs."""
    root = {"$ref": f"#/components/schemas/{name}", "components": OPENAPI["components"]}
    return Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)


def assert_matches(name: str, produced: dict[str, Any]) -> None:
    assert set(SCHEMAS[name]["properties"]) == set(produced), name
    assert set(SCHEMAS[name]["required"]) == set(produced), name
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in schema_validator(name).iter_errors(produced)]
    assert errors == [], name


# ---------------------------------------------------------------- the document itself


def test_document_is_valid_openapi_3_1() -> None:
    assert OPENAPI["openapi"].startswith("3.1.")
    validate(OPENAPI, cls=OpenAPIV31SpecValidator)


def test_document_is_plain_json() -> None:
    assert json.loads(json.dumps(OPENAPI)) == OPENAPI


def test_document_is_served_under_api_v1_with_bearer_tokens() -> None:
    assert OPENAPI["servers"] == [{"url": "/api/v1"}]
    assert OPENAPI["security"] == [{"bearerAuth": []}]
    assert OPENAPI["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": OPENAPI["components"]["securitySchemes"]["bearerAuth"]["description"],
    }


# ---------------------------------------------------------------- routes


def route_operations() -> set[tuple[str, str]]:
    operations = set()
    for route in api.routes:
        assert isinstance(route, Route)
        if route.path == "/{rest:path}":
            continue
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        for method in route.methods or ():
            if method != "HEAD":  # Starlette adds HEAD to every GET route
                operations.add((path, method.lower()))
    return operations


def documented_operations() -> set[tuple[str, str]]:
    return {(path, method) for path, item in OPENAPI["paths"].items() for method in item if method in HTTP_METHODS}


def test_every_route_is_documented() -> None:
    assert route_operations() - documented_operations() == set()


def test_every_documented_operation_is_a_route() -> None:
    assert documented_operations() - route_operations() == set()


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in OPENAPI["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


@pytest.mark.parametrize(("path", "method", "operation"), operations(), ids=lambda v: v if isinstance(v, str) else "")
def test_authenticated_operations_document_401(path: str, method: str, operation: dict[str, Any]) -> None:
    if operation.get("security") == []:
        assert "401" not in operation["responses"]
    else:
        assert "401" in operation["responses"]


def test_only_managers_creations_answer_403() -> None:
    forbidding = {(path, method) for path, method, operation in operations() if "403" in operation["responses"]}
    assert forbidding == {("/clients", "post"), ("/cases", "post"), ("/assignments", "post")}


def test_lists_are_paged() -> None:
    for path in (
        "/clients",
        "/cases",
        "/assignments",
        "/cases/{case_id}/notes",
        "/cases/{case_id}/documents",
        "/alerts",
    ):
        refs = {p.get("$ref") for p in OPENAPI["paths"][path]["get"]["parameters"]}
        assert {"#/components/parameters/Limit", "#/components/parameters/Before"} <= refs
    limit = OPENAPI["components"]["parameters"]["Limit"]["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 200, 50)


def test_event_stream_is_described() -> None:
    response = OPENAPI["paths"]["/events"]["get"]["responses"]["200"]
    assert "text/event-stream" in response["content"]
    description = OPENAPI["paths"]["/events"]["get"]["description"]
    for event_type in ("stream.open", "message.received", "message.sent", "message.status", "consent.changed"):
        assert f"`{event_type}`" in description


# ---------------------------------------------------------------- schemas match the code


def test_message_schema_matches_message_json() -> None:
    message = ns(
        id=42,
        conversation_id=7,
        direction=Direction.OUTBOUND,
        from_number="+15550000000",
        to_number="+15551234567",
        body="Your hearing is on Monday at 9.",
        status=MessageStatus.FAILED,
        error_code=30007,
        error_message="The carrier filtered the message.",
        provider_sid="SM00000000000000000000000000000042",
        segments=1,
        links=[
            ns(id=9, case_id=3, reason="client_phone"),
            ns(id=7, case_id=12, reason="sent_from"),
            ns(id=8, case_id=12, reason="client_phone"),
        ],
        media=[
            ns(
                id=5,
                position=1,
                status=MediaStatus.PENDING,
                content_type="application/octet-stream",
                declared_type="application/pdf",
                size=0,
            ),
            ns(
                id=4,
                position=0,
                status=MediaStatus.STORED,
                content_type="image/jpeg",
                declared_type="image/jpeg",
                size=48213,
            ),
        ],
        sent_by_id=5,
        send_at=AT,
        created_at=AT,
        timeline=[
            ns(id=2, status=MessageStatus.FAILED, at=AT, error_code=30007),
            ns(id=1, status=MessageStatus.QUEUED, at=AT, error_code=None),
        ],
    )
    produced = api.message_json(message)  # type: ignore[arg-type]
    assert_matches("Message", produced)
    assert produced["case_ids"] == [3, 12]
    for step in produced["timeline"]:
        assert_matches("TimelineStep", step)
    assert produced["links"] == [
        {"case_id": 12, "reason": "sent_from"},
        {"case_id": 12, "reason": "client_phone"},
        {"case_id": 3, "reason": "client_phone"},
    ]
    for link in produced["links"]:
        assert_matches("Link", link)
    assert [item["id"] for item in produced["media"]] == [4, 5]
    for item in produced["media"]:
        assert_matches("MediaItem", item)
    assert produced["media"][0] == {
        "id": 4,
        "content_type": "image/jpeg",
        "size": 48213,
        "url": "/api/v1/media/4",
        "status": "stored",
    }
    assert produced["media"][1]["content_type"] == "application/pdf"  # declared, until the file is stored


def test_message_json_leaves_out_links_to_cases_the_reader_may_not_see() -> None:
    message = ns(
        id=43,
        conversation_id=7,
        direction=Direction.INBOUND,
        from_number="+15551234567",
        to_number="+15550000000",
        body="Which courtroom?",
        status=MessageStatus.RECEIVED,
        error_code=None,
        error_message=None,
        provider_sid="SM00000000000000000000000000000043",
        segments=1,
        links=[ns(id=1, case_id=3, reason="client_phone"), ns(id=2, case_id=4, reason="client_phone")],
        media=[],
        sent_by_id=None,
        send_at=None,
        created_at=AT,
        timeline=[],
    )
    produced = api.message_json(message, {4, 99})  # type: ignore[arg-type]
    assert produced["case_ids"] == [4]
    assert produced["links"] == [{"case_id": 4, "reason": "client_phone"}]
    assert api.message_json(message, set())["links"] == []  # type: ignore[arg-type]
    assert api.message_json(message, None)["case_ids"] == [3, 4]  # type: ignore[arg-type]


def test_message_schema_allows_an_inbound_text_with_nothing_optional() -> None:
    message = ns(
        id=41,
        conversation_id=7,
        direction=Direction.INBOUND,
        from_number="+15551234567",
        to_number="+15550000000",
        body="ok",
        status=MessageStatus.RECEIVED,
        error_code=None,
        error_message=None,
        provider_sid=None,
        segments=1,
        links=[],
        media=[],
        sent_by_id=None,
        send_at=None,
        created_at=AT,
        timeline=[],
    )
    assert_matches("Message", api.message_json(message))  # type: ignore[arg-type]


def test_enums_match_the_models() -> None:
    assert SCHEMAS["MessageStatus"]["enum"] == [s.value for s in MessageStatus]
    assert SCHEMAS["LinkReason"]["enum"] == [r.value for r in LinkReason]
    assert SCHEMAS["MediaStatus"]["enum"] == [m.value for m in MediaStatus]
    assert SCHEMAS["Message"]["properties"]["direction"]["enum"] == [d.value for d in Direction]
    assert SCHEMAS["PhoneKind"]["enum"] == [k.value for k in PhoneKind]
    assert SCHEMAS["ConsentSource"]["enum"] == [s.value for s in ConsentSource]


def test_client_schema_matches_client_json() -> None:
    client = ns(
        id=1,
        name="Ada Client",
        external_id="CMS-1",
        preferred_language="es",
        phones=[
            ns(id=1, number="+15551234567", kind=PhoneKind.MOBILE, okay_to_text=True, opted_out=False, consent_log=[]),
            ns(
                id=2,
                number="+15557654321",
                kind=PhoneKind.WORK,
                okay_to_text=False,
                opted_out=True,
                consent_log=[
                    ns(id=9, okay_to_text=False, opted_out=True, source=ConsentSource.KEYWORD, at=LATER, message_id=41),
                    ns(id=4, okay_to_text=False, opted_out=False, source=ConsentSource.API, at=AT, message_id=None),
                ],
            ),
        ],
        cases=[ns(id=12)],
        created_at=AT,
    )
    produced = api.client_json(client)  # type: ignore[arg-type]
    assert_matches("Client", produced)
    for phone in produced["phones"]:
        assert_matches("Phone", phone)
        for entry in phone["consent_log"]:
            assert_matches("ConsentLogEntry", entry)
    assert [entry["source"] for entry in produced["phones"][1]["consent_log"]] == ["api", "keyword"]  # oldest first
    assert produced["phones"][1]["consent_log"][1] == {
        "okay_to_text": False,
        "opted_out": True,
        "source": "keyword",
        "at": "2026-11-22T09:30:00Z",
        "message_id": 41,
    }
    bare = ns(id=2, name="B", external_id=None, preferred_language=None, phones=[], cases=[], created_at=AT)
    assert_matches("Client", api.client_json(bare))  # type: ignore[arg-type]


def test_case_schema_matches_case_json() -> None:
    case = ns(
        id=12,
        number="2026-CV-0012",
        title="Eviction defence",
        client_id=1,
        legal_problem="Housing",
        office=ns(name="Downtown"),
        external_id="CMS-12",
        opened_on=date(2026, 11, 1),
        closed_on=date(2026, 12, 1),
        created_at=AT,
    )
    assert_matches("Case", api.case_json(case))  # type: ignore[arg-type]
    open_case = ns(
        id=13,
        number="2026-CV-0013",
        title="Benefits",
        client_id=1,
        legal_problem=None,
        office=None,
        external_id=None,
        opened_on=date(2026, 11, 1),
        closed_on=None,
        created_at=AT,
    )
    assert_matches("Case", api.case_json(open_case))  # type: ignore[arg-type]


def test_assignment_schema_matches_assignment_json() -> None:
    ended = ns(
        id=3,
        case_id=12,
        staff=ns(email="advocate@example.org"),
        primary=True,
        start=date(2026, 11, 1),
        end=date(2026, 12, 1),
    )
    assert_matches("Assignment", api.assignment_json(ended))  # type: ignore[arg-type]
    current = ns(
        id=4, case_id=12, staff=ns(email="advocate@example.org"), primary=False, start=date(2026, 11, 1), end=None
    )
    assert_matches("Assignment", api.assignment_json(current))  # type: ignore[arg-type]


def test_error_schema_matches_error_response() -> None:
    with_fields = api.error_response(
        api.ValidationFailed("Please correct the highlighted fields.", {"name": "Enter the client's name."})
    )
    without_fields = api.error_response(api.Unauthorised("This token is not valid."))
    validator = schema_validator("Error")
    for response in (with_fields, without_fields):
        body = json.loads(bytes(response.body))
        assert set(body) <= set(SCHEMAS["Error"]["properties"])
        assert list(validator.iter_errors(body)) == []
    assert without_fields.headers["WWW-Authenticate"] == "Bearer"


def test_note_schema_matches_note_json() -> None:
    note = ns(
        id=1, case_id=12, message_id=41, author="Maria Lopez (text from (404) 538-7319)", body="Which courtroom?", at=AT
    )
    assert_matches("CaseNote", api.note_json(note))  # type: ignore[arg-type]
    orphan = ns(id=2, case_id=12, message_id=None, author="Alice", body="", at=AT)
    assert_matches("CaseNote", api.note_json(orphan))  # type: ignore[arg-type]


def test_document_schema_matches_document_json() -> None:
    document = ns(id=4, message_id=41, content_type="image/jpeg", size=48213, filename="photo-41-1.jpg", created_at=AT)
    produced = api.document_json(document)  # type: ignore[arg-type]
    assert_matches("Document", produced)
    assert produced["url"] == "/api/v1/media/4"


def test_alert_schema_matches_alert_json() -> None:
    open_alert = ns(
        id=1,
        case_id=12,
        message_id=41,
        assignees=[ns(staff=ns(email="b@example.org")), ns(staff=ns(email="a@example.org"))],
        created_at=AT,
        dismissed_at=None,
        dismissed_by_id=None,
        dismissed_by=None,
    )
    produced = api.alert_json(open_alert)  # type: ignore[arg-type]
    assert_matches("Alert", produced)
    assert produced["assignee_emails"] == ["a@example.org", "b@example.org"]
    dismissed = ns(
        id=2,
        case_id=12,
        message_id=41,
        assignees=[],
        created_at=AT,
        dismissed_at=AT,
        dismissed_by_id=3,
        dismissed_by=ns(email="supervisor@example.org"),
    )
    produced = api.alert_json(dismissed)  # type: ignore[arg-type]
    assert_matches("Alert", produced)
    assert produced["dismissed_by"] == "supervisor@example.org"


def test_manual_links_and_media_are_documented_with_their_answers() -> None:
    assert set(OPENAPI["paths"]["/messages/{message_id}/links"]["post"]["responses"]) >= {"201", "404", "422"}
    assert set(OPENAPI["paths"]["/messages/{message_id}/links/{case_id}"]["delete"]["responses"]) >= {"204", "404"}
    assert set(OPENAPI["paths"]["/media/{media_id}"]["get"]["responses"]) >= {"200", "404"}
    assert set(OPENAPI["paths"]["/alerts/{alert_id}/dismiss"]["post"]["responses"]) >= {"200", "404"}


def test_phone_consent_is_documented_with_its_answers() -> None:
    operation = OPENAPI["paths"]["/clients/{client_id}/phones/{phone_id}/consent"]["post"]
    assert set(operation["responses"]) == {"200", "401", "404", "422"}
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ConsentInput"
    }
    assert SCHEMAS["ConsentInput"]["required"] == ["okay_to_text"]
