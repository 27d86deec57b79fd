"""The OpenAPI document is generated from the table of operations and the pydantic models, is valid OpenAPI 3.1,
lists exactly the routes that exist, and its schemas match the JSON the answer models produce (built here from
stand-in rows, so no database is needed). Real answers are checked against it by tests/support/openapi_check.py
in every API test."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from pydantic import BaseModel
from starlette.routing import Route

from inbox.models import AttemptOutcome, ConsentSource, Direction, LinkReason, MediaStatus, MessageStatus, PhoneKind
from inbox.routes import api, api_models
from inbox.routes import openapi as generator
from inbox.routes.api import OPENAPI, OPERATIONS
from inbox.routes.errors import error_answer
from inbox.routes.guards import MAX_ID
from inbox.services.surveys import Option, Reply, Results, Tally

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


def produced(answer: BaseModel) -> dict[str, Any]:
    """What goes on the wire: the answer serialised as the endpoint does."""
    result: dict[str, Any] = json.loads(answer.model_dump_json())
    return result


def assert_matches(name: str, wire: dict[str, Any]) -> None:
    assert set(SCHEMAS[name]["properties"]) == set(wire), name
    assert set(SCHEMAS[name]["required"]) == set(wire), name
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in schema_validator(name).iter_errors(wire)]
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
    assert OPENAPI["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_nothing_in_the_document_is_kept_by_hand() -> None:
    """Every path item comes from a row of the table; the old hand-kept document is gone."""
    rows = {(operation.path, operation.method.lower()) for operation in OPERATIONS}
    assert rows == documented_operations()
    assert not hasattr(generator, "OPENAPI")


# ---------------------------------------------------------------- routes


def route_operations() -> set[tuple[str, str]]:
    operations = set()
    for route in api.routes:
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD":  # Starlette adds HEAD to every GET route
                operations.add((route.path, method.lower()))
    return operations


def documented_operations() -> set[tuple[str, str]]:
    return {(path, method) for path, item in OPENAPI["paths"].items() for method in item if method in HTTP_METHODS}


def test_every_route_is_documented_and_every_documented_operation_is_a_route() -> None:
    assert route_operations() == documented_operations()


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in OPENAPI["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


OPERATION_IDS = [f"{method} {path}" for path, method, _ in operations()]


@pytest.mark.parametrize(("path", "method", "operation"), operations(), ids=OPERATION_IDS)
def test_authenticated_operations_document_401(path: str, method: str, operation: dict[str, Any]) -> None:
    if operation.get("security") == []:
        assert "401" not in operation["responses"]
    else:
        assert "401" in operation["responses"]
        assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]


@pytest.mark.parametrize(("path", "method", "operation"), operations(), ids=OPERATION_IDS)
def test_every_error_answer_is_the_error_shape(path: str, method: str, operation: dict[str, Any]) -> None:
    for status, answer in operation["responses"].items():
        if int(status) >= 400:
            assert answer["content"] == {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


@pytest.mark.parametrize(("path", "method", "operation"), operations(), ids=OPERATION_IDS)
def test_ids_in_paths_are_bounded_and_documented_with_404_and_422(
    path: str, method: str, operation: dict[str, Any]
) -> None:
    names = re.findall(r"\{(\w+)\}", path)
    parameters = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "path"}
    assert set(parameters) == set(names)
    for parameter in parameters.values():
        assert parameter["required"] is True
        assert (parameter["schema"]["type"], parameter["schema"]["minimum"]) == ("integer", 1)
        assert parameter["schema"]["maximum"] == MAX_ID == 2**31 - 1
    if names:
        assert {"404", "422"} <= set(operation["responses"])


def test_the_error_schema_always_has_error_and_fields() -> None:
    assert SCHEMAS["Error"]["required"] == ["error", "fields"]
    for answer in (error_answer(422, "Please correct the highlighted fields.", {"name": "Must not be empty."}),
                   error_answer(401, "This token is not valid.")):  # fmt: skip
        body = json.loads(bytes(answer.body))
        assert set(body) == {"error", "fields"}
        assert list(schema_validator("Error").iter_errors(body)) == []
    assert error_answer(401, "This token is not valid.").headers["WWW-Authenticate"] == "Bearer"


def test_only_managers_creations_sending_and_survey_results_answer_403() -> None:
    forbidding = {(path, method) for path, method, operation in operations() if "403" in operation["responses"]}
    campaigns = {("/campaigns", "post"), ("/campaigns/{campaign_id}", "get")} | {
        (f"/campaigns/{{campaign_id}}/{action}", "post") for action in ("start", "pause", "resume", "cancel")
    }
    webhook_endpoints = {  # admins only
        ("/webhook-endpoints", "post"),
        ("/webhook-endpoints", "get"),
        ("/webhook-endpoints/{endpoint_id}", "delete"),
    }
    assert forbidding == {
        ("/clients", "post"),
        ("/cases", "post"),
        ("/assignments", "post"),
        ("/messages", "post"),
        ("/campaigns/{campaign_id}/results", "get"),
        *campaigns,
        *webhook_endpoints,
    }


def test_lists_are_paged_with_limit_and_before() -> None:
    for path in (
        "/clients",
        "/cases",
        "/assignments",
        "/cases/{case_id}/notes",
        "/cases/{case_id}/documents",
        "/alerts",
        "/queue",
    ):
        operation = OPENAPI["paths"][path]["get"]
        parameters = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
        limit, before = parameters["limit"]["schema"], parameters["before"]["schema"]
        assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 200, 50), path
        assert (before["type"], before["minimum"], before["maximum"]) == ("integer", 1, MAX_ID), path
        assert "422" in operation["responses"], path
        assert operation["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array"


def test_the_event_stream_is_described() -> None:
    response = OPENAPI["paths"]["/events"]["get"]["responses"]["200"]
    assert "text/event-stream" in response["content"]
    assert "Cache-Control" in response["headers"]
    description = OPENAPI["paths"]["/events"]["get"]["description"]
    for event_type in ("stream.open", "message.received", "message.sent", "message.status", "consent.changed"):
        assert f"`{event_type}`" in description


def test_request_bodies_are_the_input_models() -> None:
    expected = {
        ("/clients", "post"): "ClientInput",
        ("/cases", "post"): "CaseInput",
        ("/assignments", "post"): "AssignmentInput",
        ("/messages", "post"): "MessageInput",
        ("/messages/{message_id}/links", "post"): "LinkInput",
        ("/clients/{client_id}/phones/{phone_id}/consent", "post"): "ConsentInput",
        ("/cases/{case_id}/events", "post"): "EventInput",
        ("/events/{event_id}", "patch"): "EventPatch",
        ("/cases/{case_id}/tasks", "post"): "TaskInput",
        ("/tasks/{task_id}", "patch"): "TaskPatch",
        ("/campaigns", "post"): "CampaignInput",
        ("/webhook-endpoints", "post"): "WebhookEndpointInput",
    }
    bodies = {
        (path, method): operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        for path, method, operation in operations()
        if "requestBody" in operation
    }
    assert bodies == expected
    assert SCHEMAS["ConsentInput"]["required"] == ["okay_to_text"]
    assert SCHEMAS["MessageInput"]["required"] == ["body"]
    assert set(SCHEMAS["CaseInput"]["required"]) == {"number", "title", "client_id"}
    assert set(SCHEMAS["EventInput"]["required"]) == {"kind", "title", "starts_at"}
    assert "required" not in SCHEMAS["EventPatch"]
    assert set(SCHEMAS["TaskInput"]["required"]) == {"title", "due_at"}
    assert set(SCHEMAS["WebhookEndpointInput"]["required"]) == {"url", "events"}
    assert "required" not in SCHEMAS["TaskPatch"]


def test_enums_are_the_models_own() -> None:
    assert SCHEMAS["MessageStatus"]["enum"] == [s.value for s in MessageStatus]
    assert SCHEMAS["LinkReason"]["enum"] == [r.value for r in LinkReason]
    assert SCHEMAS["MediaStatus"]["enum"] == [m.value for m in MediaStatus]
    assert SCHEMAS["Direction"]["enum"] == [d.value for d in Direction]
    assert SCHEMAS["PhoneKind"]["enum"] == [k.value for k in PhoneKind]
    assert SCHEMAS["ConsentSource"]["enum"] == [s.value for s in ConsentSource]


def test_manual_links_media_and_alerts_are_documented_with_their_answers() -> None:
    paths = OPENAPI["paths"]
    assert set(paths["/messages/{message_id}/links"]["post"]["responses"]) >= {"201", "404", "422"}
    assert set(paths["/messages/{message_id}/links/{case_id}"]["delete"]["responses"]) >= {"204", "404"}
    assert set(paths["/media/{media_id}"]["get"]["responses"]) >= {"200", "404"}
    assert set(paths["/alerts/{alert_id}/dismiss"]["post"]["responses"]) >= {"200", "404"}
    assert set(paths["/messages/{message_id}"]["delete"]["responses"]) >= {"200", "404", "409"}
    consent = paths["/clients/{client_id}/phones/{phone_id}/consent"]["post"]
    assert set(consent["responses"]) == {"200", "401", "404", "422", "429"}


# ---------------------------------------------------------------- the answer models match the document


def message_row(**changes: Any) -> SimpleNamespace:
    values: dict[str, Any] = {
        "id": 42,
        "conversation_id": 7,
        "direction": Direction.OUTBOUND,
        "from_number": "+15550000000",
        "to_number": "+15551234567",
        "body": "Your hearing is on Monday at 9.",
        "status": MessageStatus.FAILED,
        "error_code": 30007,
        "error_message": "The carrier filtered the message.",
        "provider_sid": "SM00000000000000000000000000000042",
        "segments": 1,
        "links": [],
        "media": [],
        "sent_by_id": 5,
        "send_at": AT,
        "created_at": AT,
        "timeline": [],
        "attempts": [],
        "outbox_state": None,
        "next_attempt_at": None,
        "purpose": None,
    }
    values.update(changes)
    return ns(**values)


def test_message_answer_matches_the_schema() -> None:
    message = message_row(
        links=[
            ns(id=9, case_id=3, reason="client_phone"),
            ns(id=7, case_id=12, reason="sent_from"),
            ns(id=8, case_id=12, reason="client_phone"),
        ],
        media=[
            ns(id=5, position=1, status=MediaStatus.PENDING, content_type="application/octet-stream",
               declared_type="application/pdf", size=0),
            ns(id=4, position=0, status=MediaStatus.STORED, content_type="image/jpeg",
               declared_type="image/jpeg", size=48213),
        ],
        timeline=[
            ns(id=2, status=MessageStatus.FAILED, at=AT, error_code=30007),
            ns(id=1, status=MessageStatus.QUEUED, at=AT, error_code=None),
        ],
        attempts=[
            ns(id=11, at=LATER, outcome=AttemptOutcome.FAILED, error_code=30007, next_attempt_at=None),
            ns(id=10, at=AT, outcome=AttemptOutcome.RETRY, error_code=20429, next_attempt_at=LATER),
        ],
    )  # fmt: skip
    wire = produced(api_models.Message.of(message))  # type: ignore[arg-type]
    assert_matches("Message", wire)
    for attempt in wire["attempts"]:
        assert_matches("Attempt", attempt)
    assert wire["attempts"][0] == {
        "at": "2026-11-21T15:00:00Z", "outcome": "retry", "error_code": 20429, "next_attempt_at": "2026-11-22T09:30:00Z"
    }  # fmt: skip
    assert [a["outcome"] for a in wire["attempts"]] == ["retry", "failed"] and wire["next_attempt_at"] is None
    assert wire["from"] == "+15550000000" and "from_" not in wire
    assert wire["case_ids"] == [3, 12]
    assert wire["created_at"] == "2026-11-21T15:00:00Z"  # ISO 8601 with its offset, as the contract says
    for step in wire["timeline"]:
        assert_matches("TimelineStep", step)
    assert [step["status"] for step in wire["timeline"]] == ["queued", "failed"]
    assert wire["links"] == [
        {"case_id": 12, "reason": "sent_from"},
        {"case_id": 12, "reason": "client_phone"},
        {"case_id": 3, "reason": "client_phone"},
    ]
    assert [item["id"] for item in wire["media"]] == [4, 5]
    for item in wire["media"]:
        assert_matches("MediaItem", item)
    assert wire["media"][0] == {
        "id": 4,
        "content_type": "image/jpeg",
        "size": 48213,
        "url": "/api/v1/media/4",
        "status": "stored",
    }
    assert wire["media"][1]["content_type"] == "application/pdf"  # declared, until the file is stored


def test_message_answer_leaves_out_links_to_cases_the_reader_may_not_see() -> None:
    message = message_row(
        direction=Direction.INBOUND,
        status=MessageStatus.RECEIVED,
        links=[ns(id=1, case_id=3, reason="client_phone"), ns(id=2, case_id=4, reason="client_phone")],
    )
    wire = produced(api_models.Message.of(message, {4, 99}))  # type: ignore[arg-type]
    assert wire["case_ids"] == [4]
    assert wire["links"] == [{"case_id": 4, "reason": "client_phone"}]
    assert produced(api_models.Message.of(message, set()))["links"] == []  # type: ignore[arg-type]
    assert produced(api_models.Message.of(message, None))["case_ids"] == [3, 4]  # type: ignore[arg-type]


def test_an_inbound_text_with_nothing_optional_matches() -> None:
    message = message_row(
        direction=Direction.INBOUND,
        status=MessageStatus.RECEIVED,
        error_code=None,
        error_message=None,
        provider_sid=None,
        sent_by_id=None,
        send_at=None,
    )
    assert_matches("Message", produced(api_models.Message.of(message)))  # type: ignore[arg-type]


def test_queue_item_is_a_message_with_held_until() -> None:
    wire = produced(
        api_models.QueueItem.model_validate(
            {**api_models.Message.fields_of(message_row(), None), "held_until": LATER, "state": "stuck"}  # type: ignore[arg-type]
        )
    )
    assert_matches("QueueItem", wire)
    assert wire["state"] == "stuck"
    assert set(SCHEMAS["QueueItem"]["properties"]) == set(SCHEMAS["Message"]["properties"]) | {"held_until", "state"}


def test_client_answer_matches_the_schema() -> None:
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
    wire = produced(api_models.Client.of(client))  # type: ignore[arg-type]
    assert_matches("Client", wire)
    for phone in wire["phones"]:
        assert_matches("Phone", phone)
        for entry in phone["consent_log"]:
            assert_matches("ConsentLogEntry", entry)
    assert [entry["source"] for entry in wire["phones"][1]["consent_log"]] == ["api", "keyword"]  # oldest first
    assert wire["phones"][1]["consent_log"][1] == {
        "okay_to_text": False,
        "opted_out": True,
        "source": "keyword",
        "at": "2026-11-22T09:30:00Z",
        "message_id": 41,
    }
    bare = ns(id=2, name="B", external_id=None, preferred_language=None, phones=[], cases=[], created_at=AT)
    assert_matches("Client", produced(api_models.Client.of(bare)))  # type: ignore[arg-type]


def test_case_answer_matches_the_schema() -> None:
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
    wire = produced(api_models.Case.of(case))  # type: ignore[arg-type]
    assert_matches("Case", wire)
    assert (wire["opened"], wire["office"]) == ("2026-11-01", "Downtown")
    open_case = ns(**{**vars(case), "legal_problem": None, "office": None, "external_id": None, "closed_on": None})
    assert_matches("Case", produced(api_models.Case.of(open_case)))  # type: ignore[arg-type]


def test_assignment_answer_matches_the_schema() -> None:
    ended = ns(
        id=3,
        case_id=12,
        staff=ns(email="advocate@example.org"),
        primary=True,
        start=date(2026, 11, 1),
        end=date(2026, 12, 1),
    )
    assert_matches("Assignment", produced(api_models.Assignment.of(ended)))  # type: ignore[arg-type]
    current = ns(**{**vars(ended), "end": None})
    assert_matches("Assignment", produced(api_models.Assignment.of(current)))  # type: ignore[arg-type]


def test_note_document_and_alert_answers_match_the_schema() -> None:
    note = ns(id=1, case_id=12, message_id=41, author="Maria Lopez", body="Which courtroom?", at=AT)
    assert_matches("CaseNote", produced(api_models.CaseNote.of(note)))  # type: ignore[arg-type]
    orphan = ns(id=2, case_id=12, message_id=None, author="Alice", body="", at=AT)
    assert_matches("CaseNote", produced(api_models.CaseNote.of(orphan)))  # type: ignore[arg-type]
    document = ns(id=4, message_id=41, content_type="image/jpeg", size=48213, filename="photo-41-1.jpg", created_at=AT)
    wire = produced(api_models.Document.of(document))  # type: ignore[arg-type]
    assert_matches("Document", wire)
    assert wire["url"] == "/api/v1/media/4"
    open_alert = ns(
        id=1,
        case_id=12,
        message_id=41,
        text_count=3,
        assignees=[ns(staff=ns(email="b@example.org")), ns(staff=ns(email="a@example.org"))],
        created_at=AT,
        dismissed_at=None,
        dismissed_by_id=None,
        dismissed_by=None,
    )
    wire = produced(api_models.Alert.of(open_alert))  # type: ignore[arg-type]
    assert_matches("Alert", wire)
    assert wire["assignee_emails"] == ["a@example.org", "b@example.org"] and wire["count"] == 3
    dismissed = ns(
        **{**vars(open_alert), "dismissed_at": AT, "dismissed_by_id": 3, "dismissed_by": ns(email="sam@example.org")}
    )
    wire = produced(api_models.Alert.of(dismissed))  # type: ignore[arg-type]
    assert_matches("Alert", wire)
    assert wire["dismissed_by"] == "sam@example.org"


def test_every_operation_that_takes_a_token_documents_the_throttle() -> None:
    for path, methods in OPENAPI["paths"].items():
        for method, operation in methods.items():
            if operation.get("security") == []:
                continue  # the document itself needs no token
            throttled = operation["responses"].get("429")
            assert throttled is not None and "Retry-After" in throttled["headers"], (method, path)


def test_survey_results_answer_matches_the_schema() -> None:
    def reply(message_id: int, body: str, option: str | None) -> Reply:
        return Reply(1, 4, "Ada", 12, "16E-1", "+15551234567", option, message_id, 7, body, AT)

    results = Results(
        campaign=ns(id=3),  # type: ignore[arg-type]
        options=[Option("1", "Very helpful"), Option("YES", "")],
        tallies=[Tally(Option("1", "Very helpful"), 1), Tally(Option("YES", ""), 0)],
        other=1,
        sent=5,
        replies=[reply(41, " 1 ", "1"), reply(42, "It was fine", None)],
    )
    wire = produced(api_models.SurveyResults.of(results))
    assert_matches("SurveyResults", wire)
    for item in wire["replies"]:
        assert_matches("SurveyReply", item)
    assert wire == {
        "options": {"1": 1, "YES": 0},
        "other": 1,
        "replies": [
            {"client_id": 4, "message_id": 41, "body": " 1 ", "option": "1"},
            {"client_id": 4, "message_id": 42, "body": "It was fine", "option": None},
        ],
    }
