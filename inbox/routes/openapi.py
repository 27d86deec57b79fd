"""The OpenAPI 3.1 document of /api/v1, generated from the table of operations and the pydantic models they
name: components from `pydantic.json_schema.models_json_schema`, one path item per table row. Nothing here is
written by hand but the prose of `info` and the tags."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, get_origin

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from inbox.routes.api_models import Error
from inbox.routes.operations import IDS, Operation, Raw

REF = "#/components/schemas/{model}"

INFO = {
    "title": "Case Inbox API",
    "version": "1",
    "summary": "Two-way SMS for legal-aid programmes: clients, cases, assignments and texts.",
    "description": (
        "Send `Authorization: Bearer <token>` on every call (tokens come from `inbox create-token --email …`).\n\n"
        "Who sees what: advocates see clients on cases they are currently assigned to, and the texts exchanged "
        "with those clients' numbers; supervisors and admins see everything, unmatched conversations included. "
        "Records a caller may not see answer 404, exactly as records that do not exist.\n\n"
        'Errors are always JSON `{"error": "…", "fields": {…}}`: 401 (no or bad token), 403 (not allowed), '
        "404 (no such record or path), 405 (the path does not take that method; `Allow` lists those it takes), "
        "409 (refused by a rule, e.g. no consent to text), 422 (invalid input) or 429 (too many bad tokens from "
        "one address: wait as `Retry-After` says). `fields` names each bad field "
        "(path and query parameters by name, body fields by their path, e.g. `phones.0.number`) and is empty "
        "when no single field is to blame.\n\n"
        "Ids are whole numbers from 1 to 2147483647; anything else in a path or a parameter is a 422 naming it. "
        "No text may contain a NUL character (U+0000) or an unpaired surrogate: such input, in a body or a "
        "query string, is a 422 naming the field.\n\n"
        "Lists answer a JSON array, newest first (highest id first), paged with `?limit=` (1–200, default 50; "
        "more is a 422) and `?before=`: pass the smallest id of one page as `before` to get the next.\n\n"
        "Times are ISO 8601 with an offset (`2026-11-21T15:00:00Z`); dates are `2026-11-21`. Phone numbers are "
        "answered in E.164 (`+15551234567`)."
    ),
}
TAGS = [
    {
        "name": "directory",
        "description": "Clients, cases and assignments, usually pushed in by a case management system.",
    },
    {"name": "messages", "description": "Sending texts, reading them back, and filing them on cases."},
    {"name": "cases", "description": "What a case holds: the notes its texts made and the documents they brought."},
    {
        "name": "case-events",
        "description": "Hearings, appointments, meetings and deadlines on cases, and their client reminders.",
    },
    {
        "name": "tasks",
        "description": "Staff tasks on cases, and the reminders texted to the assignee's profile mobile.",
    },
    {"name": "alerts", "description": "Inbound texts on cases waiting for the staff assigned to them."},
    {"name": "campaigns", "description": "Bulk texts: compose, preview who gets them, send paced, follow."},
    {"name": "events", "description": "Live updates as server-sent events."},
    {
        "name": "webhooks",
        "description": "Outgoing webhooks: endpoints that get events POSTed to them, signed per Standard Webhooks.",
    },
    {"name": "meta", "description": "This document."},
]
SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token made with `inbox create-token --email …`.",
    }
}
ERROR_WORDS = {
    401: "No token, or a token that is not valid.",
    403: "Not allowed.",
    404: "No such record, or one the caller may not see.",
    409: "Refused by a rule.",
    422: "Invalid input: `fields` names each bad field.",
    429: "Too many bad tokens from this address: wait as long as `Retry-After` says.",
}


class Schemas(GenerateJsonSchema):
    """pydantic's schemas without a title on every field (the field's name says it)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def document(operations: Sequence[Operation]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        paths.setdefault(operation.path, {})[operation.method.lower()] = path_item(operation)
    return {
        "openapi": "3.1.0",
        "info": INFO,
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}],
        "tags": TAGS,
        "paths": paths,
        "components": {"securitySchemes": SECURITY_SCHEMES, "schemas": component_schemas(operations)},
    }


def component_schemas(operations: Sequence[Operation]) -> dict[str, Any]:
    """Every model a body, an answer or a query names, and what they refer to (enums, nested models)."""
    models: dict[type[BaseModel], JsonSchemaMode] = {Error: "serialization"}
    for operation in operations:
        if operation.body is not None:
            models[operation.body] = "validation"
        if operation.query is not None:
            models[operation.query] = "validation"
        if operation.answer_model is not None:
            models[operation.answer_model] = "serialization"
    _, top = models_json_schema(list(models.items()), ref_template=REF, schema_generator=Schemas)
    schemas: dict[str, Any] = top["$defs"]
    for operation in operations:
        if operation.query is not None:  # its fields become parameters; the model itself is not referred to
            schemas.pop(operation.query.__name__, None)
    return dict(sorted(schemas.items()))


def path_item(operation: Operation) -> dict[str, Any]:
    item: dict[str, Any] = {
        "tags": [operation.tag],
        "operationId": operation.operation_id,
        "summary": operation.summary,
    }
    if operation.description:
        item["description"] = operation.description
    if operation.public:
        item["security"] = []
    parameters = path_parameters(operation) + query_parameters(operation)
    if parameters:
        item["parameters"] = parameters
    if operation.body is not None:
        item["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(operation.body)}}}
    item["responses"] = responses(operation)
    return item


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def path_parameters(operation: Operation) -> list[dict[str, Any]]:
    schema = IDS.json_schema(schema_generator=Schemas)
    return [{"name": name, "in": "path", "required": True, "schema": schema} for name in operation.path_names]


def query_parameters(operation: Operation) -> list[dict[str, Any]]:
    if operation.query is None:
        return []
    schema = operation.query.model_json_schema(ref_template=REF, schema_generator=Schemas)
    parameters = []
    for name, field_schema in schema["properties"].items():
        description = field_schema.pop("description", None)
        parameter = {
            "name": name,
            "in": "query",
            "required": name in schema.get("required", []),
            "schema": without_null(field_schema),
        }
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent rather than null: `X | None` is documented as X."""
    options = [option for option in schema.get("anyOf", []) if option != {"type": "null"}]
    if len(options) != 1:
        return schema
    rest = {key: value for key, value in schema.items() if key != "anyOf" and (key, value) != ("default", None)}
    return {**options[0], **rest}


def responses(operation: Operation) -> dict[str, Any]:
    answers: dict[str, Any] = {str(operation.status): success(operation)}
    errors = dict(operation.errors)
    if not operation.public:
        errors.setdefault(401, ERROR_WORDS[401])
        errors.setdefault(429, ERROR_WORDS[429])
    if operation.path_names:
        errors.setdefault(404, ERROR_WORDS[404])
    if operation.path_names or operation.query is not None or operation.body is not None:
        errors.setdefault(422, ERROR_WORDS[422])
    for status in sorted(errors):
        answers[str(status)] = error(status, errors[status] or ERROR_WORDS.get(status, ""))
    return answers


def success(operation: Operation) -> dict[str, Any]:
    answer = operation.answer
    words = operation.answer_words or "Done."
    if answer is None:
        return {"description": words}
    if isinstance(answer, Raw):
        content: dict[str, Any] = {"schema": answer.schema}
        if answer.example is not None:
            content["example"] = answer.example
        result: dict[str, Any] = {"description": words, "content": {answer.media_type: content}}
        if answer.headers:
            result["headers"] = {
                name: {"description": text, "schema": {"type": "string"}} for name, text in answer.headers.items()
            }
        return result
    model = operation.answer_model
    assert model is not None, f"{operation.operation_id}: answer must be a model, a list of models, a Raw or None"
    schema: dict[str, Any] = ref(model)
    if get_origin(answer) is list:
        schema = {"type": "array", "items": schema}
    return {"description": words, "content": {"application/json": {"schema": schema}}}


def error(status: int, words: str) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": words, "content": {"application/json": {"schema": ref(Error)}}}
    if status == 401:
        answer["headers"] = {"WWW-Authenticate": {"description": "Always `Bearer`.", "schema": {"type": "string"}}}
    if status == 429:
        answer["headers"] = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}}
    return answer
