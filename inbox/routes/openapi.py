"""The OpenAPI 3.1 document served at /api/v1/openapi.json.

Written by hand as plain literals so a reader can check it against inbox/routes/api.py line by
line. Schemas mirror client_json, case_json, assignment_json, message_json (with media_json),
note_json, document_json and alert_json exactly, and tests/test_openapi_document.py keeps the two
from drifting apart. Field names are a contract
(PRODUCT.md, "The contract"): extend them, never rename them.
"""

from __future__ import annotations

from typing import Any

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Case Inbox API",
        "version": "1",
        "summary": "Two-way SMS for legal-aid programmes: clients, cases, assignments and texts.",
        "description": (
            "Send `Authorization: Bearer <token>` on every call (tokens come from "
            "`inbox create-token --email …`).\n\n"
            "Who sees what: advocates see clients on cases they are currently assigned to, and "
            "the texts exchanged with those clients' numbers; supervisors and admins see "
            "everything, unmatched conversations included. Records a caller may not see answer "
            "404, exactly as records that do not exist.\n\n"
            'Errors are JSON `{"error": "…", "fields": {…}}`: 401 (no or bad token), '
            "403 (not allowed), 404, 409 (refused by a rule, e.g. no consent to text) or "
            "422 (invalid input). `fields` names each bad field and is left out when no single "
            "field is to blame.\n\n"
            "Lists answer a JSON array, newest first (highest id first), paged with `?limit=` "
            "and `?before=`: pass the smallest id of one page as `before` to get the next.\n\n"
            "Times are ISO 8601 with an offset (`2026-11-21T15:00:00Z`); dates are "
            "`2026-11-21`. Phone numbers are answered in E.164 (`+15551234567`)."
        ),
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearerAuth": []}],
    "tags": [
        {
            "name": "directory",
            "description": "Clients, cases and assignments, usually pushed in by a case management system.",
        },
        {"name": "messages", "description": "Sending texts, reading them back, and filing them on cases."},
        {"name": "cases", "description": "What a case holds: the notes its texts made and the documents they brought."},
        {"name": "alerts", "description": "Inbound texts on cases waiting for the staff assigned to them."},
        {"name": "events", "description": "Live updates as server-sent events."},
        {"name": "meta", "description": "This document."},
    ],
    "paths": {
        "/clients": {
            "get": {
                "tags": ["directory"],
                "operationId": "listClients",
                "summary": "List clients",
                "description": "Clients the caller may see, newest first.",
                "parameters": [
                    {"$ref": "#/components/parameters/Limit"},
                    {"$ref": "#/components/parameters/Before"},
                ],
                "responses": {
                    "200": {
                        "description": "A page of clients, newest first.",
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Client"}}
                            }
                        },
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "422": {"$ref": "#/components/responses/BadPaging"},
                },
            },
            "post": {
                "tags": ["directory"],
                "operationId": "createClient",
                "summary": "Create a client",
                "description": "Supervisors and admins only. Phone numbers are stored and answered in E.164.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ClientInput"}}},
                },
                "responses": {
                    "201": {
                        "description": "The new client.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Client"}}},
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "403": {"$ref": "#/components/responses/Forbidden"},
                    "422": {"$ref": "#/components/responses/Unprocessable"},
                },
            },
        },
        "/clients/{client_id}": {
            "parameters": [
                {"name": "client_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
            ],
            "get": {
                "tags": ["directory"],
                "operationId": "getClient",
                "summary": "Get one client",
                "responses": {
                    "200": {
                        "description": "The client.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Client"}}},
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                },
            },
        },
        "/clients/{client_id}/phones/{phone_id}/consent": {
            "parameters": [
                {"name": "client_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}},
                {"name": "phone_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}},
            ],
            "post": {
                "tags": ["directory"],
                "operationId": "setPhoneConsent",
                "summary": "Record whether a client agreed to texts on one number",
                "description": (
                    "Sets the phone's `okay_to_text` and adds an entry with `source` `api` to its "
                    "`consent_log` (nothing is added when the value does not change). A `consent.changed` "
                    "event tells open tabs. An opt-out is not undone: only the client can, by texting "
                    "START (or YES to an opt-in request), so `opted_out` stays as it is. Any caller who may "
                    "see the client may record it; phones of other clients answer 404."
                ),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ConsentInput"}}},
                },
                "responses": {
                    "200": {
                        "description": "The phone, with its consent ledger.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Phone"}}},
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "422": {"$ref": "#/components/responses/Unprocessable"},
                },
            },
        },
        "/cases": {
            "get": {
                "tags": ["directory"],
                "operationId": "listCases",
                "summary": "List cases",
                "description": "Cases the caller may see, newest first.",
                "parameters": [
                    {"$ref": "#/components/parameters/Limit"},
                    {"$ref": "#/components/parameters/Before"},
                ],
                "responses": {
                    "200": {
                        "description": "A page of cases, newest first.",
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Case"}}
                            }
                        },
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "422": {"$ref": "#/components/responses/BadPaging"},
                },
            },
            "post": {
                "tags": ["directory"],
                "operationId": "createCase",
                "summary": "Create a case",
                "description": (
                    "Supervisors and admins only. An `office` named for the first time is created. "
                    "An unknown `client_id`, or a `number` or `external_id` already in use, answers 422 "
                    "naming the field."
                ),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CaseInput"}}},
                },
                "responses": {
                    "201": {
                        "description": "The new case.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Case"}}},
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "403": {"$ref": "#/components/responses/Forbidden"},
                    "422": {"$ref": "#/components/responses/Unprocessable"},
                },
            },
        },
        "/cases/{case_id}": {
            "parameters": [{"$ref": "#/components/parameters/CaseId"}],
            "get": {
                "tags": ["directory"],
                "operationId": "getCase",
                "summary": "Get one case",
                "responses": {
                    "200": {
                        "description": "The case.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Case"}}},
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                },
            },
        },
        "/cases/{case_id}/transcript": {
            "parameters": [{"$ref": "#/components/parameters/CaseId"}],
            "get": {
                "tags": ["messages"],
                "operationId": "getCaseTranscript",
                "summary": "Every text filed on a case, oldest first",
                "responses": {
                    "200": {
                        "description": "The case's texts, oldest first (not paged).",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Transcript"}}},
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                },
            },
        },
        "/cases/{case_id}/notes": {
            "parameters": [{"$ref": "#/components/parameters/CaseId"}],
            "get": {
                "tags": ["cases"],
                "operationId": "listCaseNotes",
                "summary": "The case notes texts made on a case",
                "description": (
                    "Each text filed on a case makes one note there (however many rules filed it): "
                    "who sent it, what it said and when. Taking the text off the case removes its note."
                ),
                "parameters": [
                    {"$ref": "#/components/parameters/Limit"},
                    {"$ref": "#/components/parameters/Before"},
                ],
                "responses": {
                    "200": {
                        "description": "A page of notes, newest first.",
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/CaseNote"}}
                            }
                        },
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "422": {"$ref": "#/components/responses/BadPaging"},
                },
            },
        },
        "/cases/{case_id}/documents": {
            "parameters": [{"$ref": "#/components/parameters/CaseId"}],
            "get": {
                "tags": ["cases"],
                "operationId": "listCaseDocuments",
                "summary": "The attachments (MMS) of texts filed on a case",
                "description": (
                    "Every stored attachment of every text filed on the case. Attachments still "
                    "being fetched, refused or failed are not documents; see the message's `media`."
                ),
                "parameters": [
                    {"$ref": "#/components/parameters/Limit"},
                    {"$ref": "#/components/parameters/Before"},
                ],
                "responses": {
                    "200": {
                        "description": "A page of documents, newest first.",
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Document"}}
                            }
                        },
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "422": {"$ref": "#/components/responses/BadPaging"},
                },
            },
        },
        "/assignments": {
            "get": {
                "tags": ["directory"],
                "operationId": "listAssignments",
                "summary": "List assignments",
                "description": "Assignments on cases the caller may see, newest first.",
                "parameters": [
                    {"$ref": "#/components/parameters/Limit"},
                    {"$ref": "#/components/parameters/Before"},
                    {
                        "name": "case_id",
                        "in": "query",
                        "required": False,
                        "description": "Only assignments on this case (ignored unless it is a whole number).",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "A page of assignments, newest first.",
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Assignment"}}
                            }
                        },
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "422": {"$ref": "#/components/responses/BadPaging"},
                },
            },
            "post": {
                "tags": ["directory"],
                "operationId": "createAssignment",
                "summary": "Put a staff member on a case",
                "description": (
                    "Supervisors and admins only. An unknown `case_id` or `staff_email`, or an `end` "
                    "before `start`, answers 422 naming the field."
                ),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AssignmentInput"}}},
                },
                "responses": {
                    "201": {
                        "description": "The new assignment.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Assignment"}}},
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "403": {"$ref": "#/components/responses/Forbidden"},
                    "422": {"$ref": "#/components/responses/Unprocessable"},
                },
            },
        },
        "/assignments/{assignment_id}": {
            "parameters": [
                {"name": "assignment_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
            ],
            "get": {
                "tags": ["directory"],
                "operationId": "getAssignment",
                "summary": "Get one assignment",
                "responses": {
                    "200": {
                        "description": "The assignment.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Assignment"}}},
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                },
            },
        },
        "/messages": {
            "post": {
                "tags": ["messages"],
                "operationId": "sendMessage",
                "summary": "Send (or schedule) a text",
                "description": (
                    "Answers 201 with the message at once; the provider may be called after the "
                    "answer, so follow `status` on the message or the event stream. The number is "
                    "`to` if given, else the client's mobile (the client of `client_id`, or of "
                    "`case_id`'s case), else the client's first number.\n\n"
                    "A send our rules refuse (no consent to text, opted out, no number on file) "
                    "answers 409 and stores no message. A send the provider refuses answers 201 "
                    "with `status` `failed`, its `error_code` and `error_message`."
                ),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MessageInput"}}},
                },
                "responses": {
                    "201": {
                        "description": "The stored message (`queued`, `scheduled`, or `failed` if the provider refused it).",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}},
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "409": {"$ref": "#/components/responses/Conflict"},
                    "422": {"$ref": "#/components/responses/Unprocessable"},
                },
            },
        },
        "/messages/{message_id}": {
            "parameters": [{"$ref": "#/components/parameters/MessageId"}],
            "get": {
                "tags": ["messages"],
                "operationId": "getMessage",
                "summary": "Get one text with its status timeline, links and attachments",
                "responses": {
                    "200": {
                        "description": "The message.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}},
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                },
            },
            "delete": {
                "tags": ["messages"],
                "operationId": "cancelMessage",
                "summary": "Cancel a scheduled text",
                "description": (
                    "Stops a text that is still `scheduled` in our outbox: it becomes `canceled`, with a "
                    "timeline step, and a `message.status` event tells open tabs. Cancelling a text already "
                    "cancelled is harmless and answers it again. Once the outbox has handed the text to "
                    "the provider (`queued` or later) it cannot be stopped: 409. Any staff member who may see "
                    "the text may cancel it, as in the SMS queue page."
                ),
                "responses": {
                    "200": {
                        "description": "The message, now `canceled`.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}},
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "409": {
                        "description": "Already handed to the provider (or not a text we send): it can no longer be cancelled.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                },
            },
        },
        "/queue": {
            "get": {
                "tags": ["messages"],
                "operationId": "listQueue",
                "summary": "Scheduled and queued texts",
                "description": (
                    "Outbound texts still waiting: `scheduled` (for later, in our outbox) and `queued` or "
                    "`accepted` (on their way, in our outbox or at the provider; `provider_sid` tells which), "
                    "that the caller may see, newest first. A scheduled text due in its client's quiet hours "
                    "(outside the organisation's window, 8 a.m. to 9 p.m. unless changed, in the client's time "
                    "zone) is held: `held_until` says when it will go, and its `error_message` says so in words."
                ),
                "parameters": [
                    {"$ref": "#/components/parameters/Limit"},
                    {"$ref": "#/components/parameters/Before"},
                ],
                "responses": {
                    "200": {
                        "description": "A page of waiting texts, newest first.",
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/QueueItem"}}
                            }
                        },
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "422": {"$ref": "#/components/responses/BadPaging"},
                },
            },
        },
        "/messages/{message_id}/links": {
            "parameters": [{"$ref": "#/components/parameters/MessageId"}],
            "post": {
                "tags": ["messages"],
                "operationId": "linkMessageToCase",
                "summary": "File a text on a case by hand",
                "description": (
                    "Adds a link with reason `manual` and, if the text was not yet on the case, its case "
                    "note. Filing it again is harmless. The caller must be able to see both the text and "
                    "the case (else 404). A `message.links` event tells open tabs."
                ),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LinkInput"}}},
                },
                "responses": {
                    "201": {
                        "description": "The message with its links.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}},
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "422": {"$ref": "#/components/responses/Unprocessable"},
                },
            },
        },
        "/messages/{message_id}/links/{case_id}": {
            "parameters": [{"$ref": "#/components/parameters/MessageId"}, {"$ref": "#/components/parameters/CaseId"}],
            "delete": {
                "tags": ["messages"],
                "operationId": "unlinkMessageFromCase",
                "summary": "Take a text off a case",
                "description": (
                    "Removes every link of the text to the case, whatever rule made it, and the case "
                    "note it made. 404 when the text is not filed on that case, or the caller may not "
                    "see the text or the case. A `message.links` event tells open tabs."
                ),
                "responses": {
                    "204": {"description": "Taken off the case."},
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                },
            },
        },
        "/media/{media_id}": {
            "parameters": [
                {"name": "media_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
            ],
            "get": {
                "tags": ["messages"],
                "operationId": "getMedia",
                "summary": "Download an attachment",
                "description": (
                    "The stored file of an attachment (the `url` of a message's `media` item or of a "
                    "document), for callers who may see its text's conversation or a case the text is "
                    "filed on. Attachments not stored (pending, refused, failed) answer 404."
                ),
                "responses": {
                    "200": {
                        "description": "The file, with its content type.",
                        "content": {
                            "*/*": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}
                        },
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                },
            },
        },
        "/alerts": {
            "get": {
                "tags": ["alerts"],
                "operationId": "listAlerts",
                "summary": "Open alerts for the caller",
                "description": (
                    "Advocates: open alerts addressed to them under the alert policy in force when the "
                    "text arrived (the case's primary assignee, or every current assignee), on cases they "
                    "may still see. Supervisors and admins: every open alert."
                ),
                "parameters": [
                    {"$ref": "#/components/parameters/Limit"},
                    {"$ref": "#/components/parameters/Before"},
                ],
                "responses": {
                    "200": {
                        "description": "A page of open alerts, newest first.",
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}}
                            }
                        },
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "422": {"$ref": "#/components/responses/BadPaging"},
                },
            },
        },
        "/alerts/{alert_id}/dismiss": {
            "parameters": [
                {"name": "alert_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
            ],
            "post": {
                "tags": ["alerts"],
                "operationId": "dismissAlert",
                "summary": "Dismiss an alert, for everyone",
                "description": (
                    "One person dismissing an alert dismisses it for everyone it was addressed to. "
                    "Dismissing it again is harmless and keeps the first dismissal. Needs no body. "
                    "Alerts on cases the caller may not see answer 404."
                ),
                "responses": {
                    "200": {
                        "description": "The alert, with `dismissed_at` and `dismissed_by`.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Alert"}}},
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                },
            },
        },
        "/events": {
            "get": {
                "tags": ["events"],
                "operationId": "streamEvents",
                "summary": "Live events (server-sent events)",
                "description": (
                    "A `text/event-stream` that stays open. The subscription is made before the "
                    "response headers are sent, so nothing published after them is missed. Each "
                    "event's `event:` line is its type and its `data:` line is one JSON object with "
                    "the ids it concerns; the caller only receives events about texts they may see.\n\n"
                    "Event types:\n\n"
                    '- `stream.open` — always first: `{"staff_id"}` (the token\'s owner).\n'
                    "- `message.received` — a client's text arrived: "
                    '`{"type", "message_id", "conversation_id", "provider_sid", "case_ids"}`.\n'
                    "- `message.sent` — staff sent or scheduled a text (also once the provider has "
                    "answered): same fields as `message.received`.\n"
                    "- `message.status` — a text moved along its statuses: the same fields plus "
                    '`"status"` and `"error_code"`.\n'
                    "- `message.links` — a text was filed on, or taken off, a case by hand: "
                    '`{"type", "message_id", "conversation_id", "case_ids"}`.\n'
                    "- `message.media` — an attachment was stored, refused or failed: "
                    '`{"type", "message_id", "conversation_id", "media_id", "status"}`.\n'
                    "- `alert.raised` / `alert.dismissed` — an alert addressed to the caller (or any, for "
                    'supervisors and admins): `{"type", "alert_id", "case_id", "message_id"}`.\n'
                    "- `consent.changed` — a number's consent changed (a keyword, a reply to an opt-in "
                    'request, Twilio\'s 21610, staff or this API): `{"type", "phone", "okay_to_text", '
                    '"opted_out", "conversation_ids", "message_id", "consent_event_ids"}` — the number\'s '
                    "state after it (some record okay to text; some record opted out), its conversations, the "
                    "text that caused it and the ledger entries made. Fetch the client for its `consent_log`.\n\n"
                    "Fetch `/messages/{message_id}` for the message itself. Comment lines (`: ping`) "
                    "are sent every 15 seconds to keep the connection open. The server ends the "
                    "stream when the reader falls behind or the server stops: reconnect and "
                    "re-fetch what you show. More types may be added later; "
                    "ignore types you do not know."
                ),
                "responses": {
                    "200": {
                        "description": "The event stream.",
                        "headers": {
                            "Cache-Control": {"description": "Always `no-store`.", "schema": {"type": "string"}}
                        },
                        "content": {
                            "text/event-stream": {
                                "schema": {"type": "string"},
                                "example": (
                                    "event: stream.open\n"
                                    'data: {"staff_id": 3}\n\n'
                                    "event: message.received\n"
                                    'data: {"type": "message.received", "message_id": 41, '
                                    '"conversation_id": 7, "provider_sid": "SM0123456789abcdef0123456789abcdef", '
                                    '"case_ids": []}\n\n'
                                    "event: message.status\n"
                                    'data: {"type": "message.status", "message_id": 42, '
                                    '"conversation_id": 7, "status": "delivered", '
                                    '"provider_sid": "SM00000000000000000000000000000042", '
                                    '"error_code": null, "case_ids": [12]}\n\n'
                                ),
                            }
                        },
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                },
            },
        },
        "/openapi.json": {
            "get": {
                "tags": ["meta"],
                "operationId": "getOpenApiDocument",
                "summary": "This OpenAPI document",
                "description": "Needs no token.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                },
            },
        },
    },
    "components": {
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API token made with `inbox create-token --email …`.",
            },
        },
        "parameters": {
            "Limit": {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": "How many items to answer; values outside 1–200 are clamped to that range.",
                "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
            },
            "Before": {
                "name": "before",
                "in": "query",
                "required": False,
                "description": "An id: answer only items with smaller ids (the next page after the one ending at this id).",
                "schema": {"type": "integer"},
            },
            "CaseId": {
                "name": "case_id",
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 0},
            },
            "MessageId": {
                "name": "message_id",
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 0},
            },
        },
        "responses": {
            "Unauthorized": {
                "description": "No token, or a token that is not valid.",
                "headers": {"WWW-Authenticate": {"description": "Always `Bearer`.", "schema": {"type": "string"}}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
            "Forbidden": {
                "description": "Not allowed: only supervisors and admins may create clients, cases and assignments.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
            "NotFound": {
                "description": "No such record, or one the caller may not see.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
            "Conflict": {
                "description": (
                    "Refused by a rule, e.g. the number opted out (texted STOP), the client has not "
                    "agreed to texts, or the client has no number on file. No message is stored. `error` "
                    'names the latest cause in the consent ledger ("This number opted out on 21 Nov: the '
                    'client texted STOP. …").'
                ),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
            "Unprocessable": {
                "description": (
                    "Invalid input. `fields` names each bad field (nested phone fields as "
                    "`phones.0.number`); a body that is not a JSON object answers without `fields`."
                ),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
            "BadPaging": {
                "description": "`limit` or `before` is not an integer.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {"type": "string", "description": "What went wrong, for a person to read."},
                    "fields": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "Field name → what is wrong with it. Left out when no single field is to blame.",
                    },
                },
            },
            "PhoneKind": {"type": "string", "enum": ["mobile", "home", "work"]},
            "MessageStatus": {
                "type": "string",
                "enum": [
                    "scheduled",
                    "accepted",
                    "queued",
                    "sending",
                    "sent",
                    "delivered",
                    "read",
                    "undelivered",
                    "failed",
                    "canceled",
                    "receiving",
                    "received",
                    "partially_delivered",
                ],
                "description": (
                    "Twilio's words: `scheduled` (waiting for its time in our outbox), `queued` "
                    "(accepted for sending, in our outbox or at the provider; `provider_sid` tells "
                    "which), `sending`, `sent`, `delivered`, `undelivered`, `failed`, `canceled` "
                    "(stopped before it left), `received` (inbound). `accepted`, `read`, "
                    "`receiving` and `partially_delivered` are passed through from the provider."
                ),
            },
            "Phone": {
                "type": "object",
                "required": ["id", "number", "kind", "okay_to_text", "opted_out", "consent_log"],
                "properties": {
                    "id": {"type": "integer"},
                    "number": {"type": "string", "description": "E.164, e.g. `+15551234567`."},
                    "kind": {"$ref": "#/components/schemas/PhoneKind"},
                    "okay_to_text": {
                        "type": "boolean",
                        "description": "The client agreed to receive texts on this number.",
                    },
                    "opted_out": {
                        "type": "boolean",
                        "description": (
                            "The number texted STOP (or another opt-out keyword), or Twilio refused a text to it "
                            "with 21610 — until it texts START, UNSTOP or YES. A number that opted out is never "
                            "texted, whatever `okay_to_text` says."
                        ),
                    },
                    "consent_log": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/ConsentLogEntry"},
                        "description": "Every change of this phone's consent, oldest first; the first entry is how it started.",
                    },
                },
            },
            "ConsentSource": {
                "type": "string",
                "enum": ["staff", "api", "import", "keyword", "reply", "provider"],
                "description": (
                    "Who or what made a change: `staff` (ticked or unticked on the client page, or added the "
                    "number to the record), `api` (this API), `import` (a CSV import or sample data), `keyword` "
                    "(the client texted STOP, START, … — on every record with the number), `reply` (the client "
                    "answered an opt-in request with Y or YES), `provider` (Twilio refused a text with 21610, or "
                    "reported an opt-out keyword with `OptOutType`)."
                ),
            },
            "ConsentLogEntry": {
                "type": "object",
                "required": ["okay_to_text", "opted_out", "source", "at", "message_id"],
                "properties": {
                    "okay_to_text": {"type": "boolean", "description": "The phone's `okay_to_text` after the change."},
                    "opted_out": {"type": "boolean", "description": "The phone's `opted_out` after the change."},
                    "source": {"$ref": "#/components/schemas/ConsentSource"},
                    "at": {"type": "string", "format": "date-time"},
                    "message_id": {
                        "type": ["integer", "null"],
                        "description": "The text that caused it: the client's STOP or YES, or the text Twilio refused.",
                    },
                },
            },
            "ConsentInput": {
                "type": "object",
                "required": ["okay_to_text"],
                "properties": {"okay_to_text": {"type": "boolean"}},
            },
            "PhoneInput": {
                "type": "object",
                "required": ["number"],
                "properties": {
                    "number": {"type": "string", "description": "Any common format; stored in E.164."},
                    "kind": {"$ref": "#/components/schemas/PhoneKind", "default": "mobile"},
                    "okay_to_text": {"type": "boolean", "default": False},
                },
            },
            "Client": {
                "type": "object",
                "required": ["id", "name", "external_id", "preferred_language", "phones", "case_ids", "created_at"],
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "external_id": {"type": ["string", "null"], "description": "The case management system's id."},
                    "preferred_language": {"type": ["string", "null"]},
                    "phones": {"type": "array", "items": {"$ref": "#/components/schemas/Phone"}},
                    "case_ids": {"type": "array", "items": {"type": "integer"}},
                    "created_at": {"type": "string", "format": "date-time"},
                },
            },
            "ClientInput": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 200},
                    "external_id": {"type": ["string", "null"], "description": "Must be unique among clients."},
                    "preferred_language": {"type": ["string", "null"]},
                    "phones": {"type": "array", "items": {"$ref": "#/components/schemas/PhoneInput"}, "default": []},
                },
            },
            "Case": {
                "type": "object",
                "required": [
                    "id",
                    "number",
                    "title",
                    "client_id",
                    "legal_problem",
                    "office",
                    "external_id",
                    "opened",
                    "closed",
                    "created_at",
                ],
                "properties": {
                    "id": {"type": "integer"},
                    "number": {"type": "string", "description": "The case number, unique."},
                    "title": {"type": "string"},
                    "client_id": {"type": "integer"},
                    "legal_problem": {"type": ["string", "null"]},
                    "office": {"type": ["string", "null"], "description": "The office's name."},
                    "external_id": {"type": ["string", "null"]},
                    "opened": {"type": "string", "format": "date"},
                    "closed": {"type": ["string", "null"], "format": "date"},
                    "created_at": {"type": "string", "format": "date-time"},
                },
            },
            "CaseInput": {
                "type": "object",
                "required": ["number", "title", "client_id"],
                "properties": {
                    "number": {"type": "string", "minLength": 1, "description": "Must be unique."},
                    "title": {"type": "string", "minLength": 1},
                    "client_id": {"type": "integer"},
                    "legal_problem": {"type": ["string", "null"]},
                    "office": {"type": ["string", "null"], "description": "An office name; created if new."},
                    "external_id": {"type": ["string", "null"], "description": "Must be unique among cases."},
                },
            },
            "Assignment": {
                "type": "object",
                "required": ["id", "case_id", "staff_email", "primary", "start", "end"],
                "properties": {
                    "id": {"type": "integer"},
                    "case_id": {"type": "integer"},
                    "staff_email": {"type": "string", "format": "email"},
                    "primary": {"type": "boolean"},
                    "start": {"type": "string", "format": "date"},
                    "end": {
                        "type": ["string", "null"],
                        "format": "date",
                        "description": "Current means no end date, or an end date in the future.",
                    },
                },
            },
            "AssignmentInput": {
                "type": "object",
                "required": ["case_id", "staff_email"],
                "properties": {
                    "case_id": {"type": "integer"},
                    "staff_email": {"type": "string", "format": "email", "description": "An existing staff account."},
                    "primary": {"type": "boolean", "default": False},
                    "start": {"type": ["string", "null"], "format": "date", "description": "Defaults to today."},
                    "end": {"type": ["string", "null"], "format": "date", "description": "Not before `start`."},
                },
            },
            "TimelineStep": {
                "type": "object",
                "required": ["status", "at", "error_code"],
                "properties": {
                    "status": {"$ref": "#/components/schemas/MessageStatus"},
                    "at": {"type": "string", "format": "date-time"},
                    "error_code": {"type": ["integer", "null"], "description": "Twilio's error code, if any."},
                },
            },
            "Message": {
                "type": "object",
                "required": [
                    "id",
                    "conversation_id",
                    "direction",
                    "from",
                    "to",
                    "body",
                    "status",
                    "error_code",
                    "error_message",
                    "provider_sid",
                    "segments",
                    "case_ids",
                    "links",
                    "media",
                    "sent_by",
                    "send_at",
                    "created_at",
                    "timeline",
                ],
                "properties": {
                    "id": {"type": "integer"},
                    "conversation_id": {"type": "integer"},
                    "direction": {"type": "string", "enum": ["inbound", "outbound"]},
                    "from": {
                        "type": "string",
                        "description": (
                            "The sender, normally in E.164; a short code or other odd sender is kept as it came, "
                            "and texts sent through a Messaging Service show its SID."
                        ),
                    },
                    "to": {"type": "string", "description": "The recipient, in E.164."},
                    "body": {"type": "string"},
                    "status": {"$ref": "#/components/schemas/MessageStatus"},
                    "error_code": {"type": ["integer", "null"], "description": "Twilio's error code when it failed."},
                    "error_message": {
                        "type": ["string", "null"],
                        "description": (
                            "What the error code means, for a person. Also, on a `scheduled` text due in its "
                            "client's quiet hours, when it will go (\"Held for quiet hours until 8:00 a.m. client "
                            'time …"), and on a `canceled` one, who or what cancelled it.'
                        ),
                    },
                    "provider_sid": {
                        "type": ["string", "null"],
                        "description": "Twilio's message SID; null until the provider has accepted the text.",
                    },
                    "segments": {"type": "integer", "description": "How many SMS segments the body takes."},
                    "case_ids": {
                        "type": "array",
                        "items": {"type": "integer"},
                        "description": "Cases the text is filed on that the caller may see, ascending.",
                    },
                    "links": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Link"},
                        "description": (
                            "Why the text is on each case: one entry per case and rule, in the order they were "
                            "made. Links to cases the caller may not see (a phone shared with another client) "
                            "are left out."
                        ),
                    },
                    "media": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/MediaItem"},
                        "description": "The text's attachments (MMS), in the order they came.",
                    },
                    "sent_by": {
                        "type": ["integer", "null"],
                        "description": "The sending staff member's id; null for inbound texts.",
                    },
                    "send_at": {
                        "type": ["string", "null"],
                        "format": "date-time",
                        "description": "When a scheduled text is due; null otherwise.",
                    },
                    "created_at": {"type": "string", "format": "date-time"},
                    "timeline": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/TimelineStep"},
                        "description": "Every status the text has had, oldest first.",
                    },
                },
            },
            "LinkReason": {
                "type": "string",
                "enum": ["sent_from", "texted_before", "client_phone", "best_guess", "manual"],
                "description": (
                    "`sent_from`: the case the last text to the number was sent from (and, for a text "
                    "staff sent, the case it was sent from); `texted_before`: another case that has "
                    "texted the number; `client_phone`: the number is in a phone field of the case's "
                    "client; `best_guess`: the single case the best-guess policy chose; `manual`: filed "
                    "by hand."
                ),
            },
            "Link": {
                "type": "object",
                "required": ["case_id", "reason"],
                "properties": {
                    "case_id": {"type": "integer"},
                    "reason": {"$ref": "#/components/schemas/LinkReason"},
                },
            },
            "LinkInput": {
                "type": "object",
                "required": ["case_id"],
                "properties": {"case_id": {"type": "integer", "description": "A case the caller may see."}},
            },
            "MediaStatus": {
                "type": "string",
                "enum": ["pending", "stored", "failed", "refused"],
                "description": (
                    "`pending`: still being fetched from the provider; `stored`: ready at `url`; "
                    "`failed`: fetching failed every time it was tried; `refused`: over the limits "
                    "(more than 10 items, or over 5 MB)."
                ),
            },
            "MediaItem": {
                "type": "object",
                "required": ["id", "content_type", "size", "url", "status"],
                "properties": {
                    "id": {"type": "integer"},
                    "content_type": {
                        "type": "string",
                        "description": "The stored file's type; before it is stored, the type the provider declared.",
                    },
                    "size": {"type": "integer", "description": "Bytes; 0 until stored. At most 5 MB."},
                    "url": {
                        "type": "string",
                        "description": "`/api/v1/media/{id}`: fetch it with the same token. Answers 404 until `status` is `stored`.",
                    },
                    "status": {"$ref": "#/components/schemas/MediaStatus"},
                },
            },
            "Document": {
                "type": "object",
                "required": ["id", "message_id", "content_type", "size", "filename", "url", "created_at"],
                "properties": {
                    "id": {"type": "integer", "description": "The attachment's id (as in a message's `media`)."},
                    "message_id": {"type": "integer", "description": "The text it came with."},
                    "content_type": {"type": "string"},
                    "size": {"type": "integer", "description": "Bytes."},
                    "filename": {"type": "string", "description": "A name of our making, e.g. `photo-41-1.jpg`."},
                    "url": {"type": "string", "description": "`/api/v1/media/{id}`: fetch it with the same token."},
                    "created_at": {"type": "string", "format": "date-time"},
                },
            },
            "CaseNote": {
                "type": "object",
                "required": ["id", "case_id", "message_id", "author", "body", "at"],
                "properties": {
                    "id": {"type": "integer"},
                    "case_id": {"type": "integer"},
                    "message_id": {"type": ["integer", "null"], "description": "The text that made the note."},
                    "author": {
                        "type": "string",
                        "description": "Who wrote the text, e.g. `Maria Lopez (text from (404) 538-7319)`.",
                    },
                    "body": {"type": "string", "description": "What the text said."},
                    "at": {
                        "type": "string",
                        "format": "date-time",
                        "description": "When the text was sent or received.",
                    },
                },
            },
            "Alert": {
                "type": "object",
                "required": [
                    "id",
                    "case_id",
                    "message_id",
                    "assignee_emails",
                    "created_at",
                    "dismissed_at",
                    "dismissed_by",
                ],
                "properties": {
                    "id": {"type": "integer"},
                    "case_id": {"type": "integer"},
                    "message_id": {"type": "integer", "description": "The inbound text waiting for an answer."},
                    "assignee_emails": {
                        "type": "array",
                        "items": {"type": "string", "format": "email"},
                        "description": "Whom it was addressed to when the text arrived (may be empty).",
                    },
                    "created_at": {"type": "string", "format": "date-time"},
                    "dismissed_at": {
                        "type": ["string", "null"],
                        "format": "date-time",
                        "description": "Null while open.",
                    },
                    "dismissed_by": {
                        "type": ["string", "null"],
                        "format": "email",
                        "description": "The email of whoever dismissed it (or answered the client); null while open.",
                    },
                },
            },
            "MessageInput": {
                "type": "object",
                "required": ["body"],
                "description": "Give at least one of `case_id`, `client_id` or `to`.",
                "properties": {
                    "body": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 1600,
                        "description": "Not blank; at most the organisation's character limit (160 unless changed, never over 1600).",
                    },
                    "case_id": {
                        "type": ["integer", "null"],
                        "description": "File the text on this case; without `to` or `client_id`, text the case's client.",
                    },
                    "client_id": {
                        "type": ["integer", "null"],
                        "description": "Text this client's mobile (or first number).",
                    },
                    "to": {"type": ["string", "null"], "description": "Text this number (any common format)."},
                    "send_at": {
                        "type": ["string", "null"],
                        "format": "date-time",
                        "description": "Schedule the text; the offset is required. A time already past sends at once.",
                    },
                },
            },
            "QueueItem": {
                "description": "A waiting text: the message, and when quiet hours let it go if they hold it.",
                "allOf": [
                    {"$ref": "#/components/schemas/Message"},
                    {
                        "type": "object",
                        "required": ["held_until"],
                        "properties": {
                            "held_until": {
                                "type": ["string", "null"],
                                "format": "date-time",
                                "description": (
                                    "When the text will go: the opening of the quiet-hours window in the client's "
                                    "time zone. Null when it is not held."
                                ),
                            }
                        },
                    },
                ],
            },
            "Transcript": {
                "type": "object",
                "required": ["case_id", "messages"],
                "properties": {
                    "case_id": {"type": "integer"},
                    "messages": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Message"},
                        "description": "Oldest first.",
                    },
                },
            },
        },
    },
}
