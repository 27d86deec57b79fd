"""The JSON API's machinery: one table of operations (inbox/routes/api.py) drives both the router and the
OpenAPI document (inbox/routes/openapi.py), so the two cannot drift apart.

Each `Operation` names its method and path, its handler, and the pydantic models of its query parameters,
request body and answer. `route_of` turns one into a Starlette route whose endpoint authenticates the bearer
token, validates the path ids, the query and the body against those models (any failure is one 422 naming
every bad field), calls the handler, and serialises what it returns through the declared answer model.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails
from starlette.background import BackgroundTasks
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inbox.models import Staff
from inbox.routes.api_models import Id
from inbox.routes.errors import error_answer, error_headers
from inbox.routes.guards import MAX_ID, find_unstorable
from inbox.services.errors import ServiceError, ValidationFailed
from inbox.services.limits import too_long
from inbox.services.staff import staff_for_token
from inbox.services.throttle import Throttle
from inbox.web import client_address

M = TypeVar("M", bound=BaseModel)
Handler = Callable[["Call"], Awaitable[Any]]

CORRECT_FIELDS = "Please correct the highlighted fields."
PATH_PARAMETER = re.compile(r"\{(\w+)\}")
IDS: TypeAdapter[int] = TypeAdapter(Id)


class Unauthorised(ServiceError):
    status = 401


@dataclass(frozen=True)
class Raw:
    """An answer that is not JSON (a file, an event stream): the handler returns the Response itself."""

    media_type: str
    schema: dict[str, Any]
    example: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # header name → what it says


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # the OpenAPI path template, also the route: every `{name}` is an id
    handler: Handler  # its docstring is the operation's description
    operation_id: str
    summary: str
    tag: str
    answer: Any = None  # a pydantic model, list[model], a Raw, or None (no content)
    answer_words: str = ""  # what the successful answer holds
    status: int = 200
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    errors: Mapping[int, str] = field(default_factory=dict)  # error answers beyond 401, 404 and 422, and why
    public: bool = False  # no token needed

    @property
    def path_names(self) -> list[str]:
        return PATH_PARAMETER.findall(self.path)

    @property
    def description(self) -> str:
        return unwrapped(self.handler.__doc__ or "")

    @property
    def answer_model(self) -> type[BaseModel] | None:
        """The model of the answer, or of each item when it is a list."""
        answer = get_args(self.answer)[0] if get_origin(self.answer) is list else self.answer
        return answer if isinstance(answer, type) and issubclass(answer, BaseModel) else None


@dataclass(frozen=True)
class Call:
    """What a handler gets: the request, who made it, and its validated path ids, query and body."""

    request: Request
    caller: Staff | None
    ids: dict[str, int]
    query: BaseModel | None
    body: BaseModel | None
    # Work for after the answer has gone (texts to hand to Twilio): a caller never waits on Twilio.
    after: BackgroundTasks = field(default_factory=BackgroundTasks)

    @property
    def staff(self) -> Staff:
        assert self.caller is not None, "public operations have no caller"
        return self.caller

    def query_as(self, model: type[M]) -> M:
        assert isinstance(self.query, model)
        return self.query

    def body_as(self, model: type[M]) -> M:
        assert isinstance(self.body, model)
        return self.body


def unwrapped(docstring: str) -> str:
    """A docstring as Markdown: paragraphs and list items on one line each, as source wrapping is not meant."""
    paragraphs = []
    for paragraph in inspect.cleandoc(docstring).split("\n\n"):
        lines: list[str] = []
        for line in paragraph.splitlines():
            if lines and not line.startswith("- "):
                lines[-1] += " " + line.strip()
            else:
                lines.append(line)
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def route_of(operation: Operation) -> Route:
    return Route(operation.path, endpoint_of(operation), methods=[operation.method], name=operation.operation_id)


def endpoint_of(operation: Operation) -> Callable[[Request], Awaitable[Response]]:
    adapter = TypeAdapter(operation.answer) if operation.answer_model is not None else None

    async def endpoint(request: Request) -> Response:
        try:
            caller = None if operation.public else await token_staff(request)
            call = await _call(operation, request, caller)
            result = await operation.handler(call)
        except ServiceError as exc:
            return error_answer(exc.status, exc.message, exc.fields, headers=error_headers(exc))
        if isinstance(result, Response):
            return result
        after = call.after if call.after.tasks else None
        if adapter is None:
            return Response(status_code=operation.status, background=after)
        return Response(
            adapter.dump_json(result), status_code=operation.status, media_type="application/json", background=after
        )

    endpoint.__name__ = operation.operation_id
    return endpoint


async def token_staff(request: Request) -> Staff:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorised("Send a token: Authorization: Bearer <token> (see `inbox create-token`).")
    throttle: Throttle = request.app.state.throttle
    await throttle.check_token(client_address(request))  # Throttled (429) after too many bad tokens
    staff = await staff_for_token(token.strip())
    if staff is None:
        await throttle.token_failed(client_address(request))
        raise Unauthorised("This token is not valid.")
    return staff


async def _call(operation: Operation, request: Request, caller: Staff | None) -> Call:
    """Path ids and query first, then the body; every bad field of the first that fails, in one 422."""
    errors: dict[str, str] = {}
    ids = {}
    for name in operation.path_names:
        try:
            ids[name] = IDS.validate_python(request.path_params[name])
        except ValidationError as exc:
            errors[name] = words_for(exc.errors()[0])
    query = None
    if operation.query is not None:
        try:
            query = operation.query.model_validate(dict(request.query_params))
        except ValidationError as exc:
            errors.update(fields_of(exc))
    if errors:
        raise ValidationFailed(CORRECT_FIELDS, errors)
    body = await json_body(request, operation.body) if operation.body is not None else None
    return Call(request, caller, ids, query, body)


async def json_body(request: Request, model: type[M]) -> M:
    raw = await request.body()
    try:
        decoded = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValidationFailed("The body is not valid JSON.") from None
    if not isinstance(decoded, dict):
        raise ValidationFailed("The body must be a JSON object.")
    refused = dict(find_unstorable(decoded))
    if refused:
        raise ValidationFailed(CORRECT_FIELDS, refused)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise ValidationFailed(CORRECT_FIELDS, fields_of(exc)) from None


# ---------------------------------------------------------------- pydantic's errors, for people


def fields_of(exc: ValidationError) -> dict[str, str]:
    """Field path (`phones.0.number`) → what to do about it; the first problem of each field."""
    fields: dict[str, str] = {}
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or "body"
        fields.setdefault(name, words_for(error))
    return fields


FIXED_WORDS = {
    "missing": "This field is required.",
    "string_type": "Must be text (a JSON string).",
    "int_type": "Must be a whole number.",
    "int_parsing": "Must be a whole number.",
    "int_from_float": "Must be a whole number.",
    "bool_type": "Must be true or false.",
    "bool_parsing": "Must be true or false.",
    "list_type": "Must be a list.",
    "model_type": "Must be an object.",
    "model_attributes_type": "Must be an object.",
    "dict_type": "Must be an object.",
    "date_type": "Must be a date like 2026-11-21.",
    "date_parsing": "Must be a date like 2026-11-21.",
    "date_from_datetime_parsing": "Must be a date like 2026-11-21.",
    "date_from_datetime_inexact": "Must be a date like 2026-11-21.",
    "datetime_type": "Must be a time like 2026-11-21T15:00:00Z.",
    "datetime_parsing": "Must be a time like 2026-11-21T15:00:00Z.",
    "datetime_from_date_parsing": "Must be a time like 2026-11-21T15:00:00Z.",
    "timezone_aware": "Give the time zone offset, e.g. 2026-11-21T15:00:00Z.",
}


def words_for(error: ErrorDetails) -> str:
    """pydantic's error in words a person can act on."""
    kind, context = error["type"], error.get("ctx") or {}
    if kind in FIXED_WORDS:
        return FIXED_WORDS[kind]
    if kind == "less_than_equal" and context.get("le") == MAX_ID:
        return f"No record has an id this large: ids go up to {MAX_ID}."
    if kind == "greater_than_equal":
        return f"Must be at least {context['ge']}."
    if kind == "less_than_equal":
        return f"Must be at most {context['le']}."
    if kind == "string_too_short" and context.get("min_length") == 1:
        return "Must not be empty."
    if kind == "string_too_short":
        return f"Use at least {context['min_length']} characters."
    if kind == "string_too_long" and isinstance(error.get("input"), str):
        return too_long(error["input"], context["max_length"])  # the same words as the pages' forms
    if kind == "string_too_long":
        return f"Use at most {context['max_length']} characters."
    if kind == "too_long":
        return f"Give at most {context['max_length']} items."
    if kind in ("enum", "literal_error"):
        return f"Must be one of {context['expected']}."
    return str(error["msg"]).removeprefix("Value error, ")
