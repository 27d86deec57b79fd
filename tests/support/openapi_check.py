"""Every answer the API gives in the tests is checked against the OpenAPI document: its status must be documented
for the operation, and a JSON body must match the documented schema. Attached as an httpx response hook to the
test clients, so each existing API test also checks the document against real answers."""

from __future__ import annotations

import re
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from inbox.routes.api import OPENAPI

PREFIX = "/api/v1"
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)) + "$")


OPERATIONS = [
    (method.upper(), _template_regex(path), path, operation)
    for path, item in OPENAPI["paths"].items()
    for method, operation in item.items()
    if method in HTTP_METHODS
]
ERROR = {"$ref": "#/components/schemas/Error", "components": OPENAPI["components"]}


def operation_for(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    method = "GET" if method == "HEAD" else method
    for known_method, pattern, template, operation in OPERATIONS:
        if known_method == method and pattern.match(path):
            return template, operation
    return None


def schema_errors(schema: dict[str, Any], body: Any) -> list[str]:
    validator = Draft202012Validator(
        {**schema, "components": OPENAPI["components"]}, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    return [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(body)]


async def check_against_document(response: httpx.Response) -> None:
    path = response.request.url.path
    if not path.startswith(PREFIX + "/"):
        return
    found = operation_for(response.request.method, path.removeprefix(PREFIX))
    status = response.status_code
    if found is None:  # no such operation: the router's 404 or 405, in the error shape
        assert status in (404, 405), f"{response.request.method} {path}: {status} for no documented operation"
        await response.aread()
        assert schema_errors(ERROR, response.json()) == [], response.text
        return
    template, operation = found
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        await response.aread()  # an endless stream is never read here
    documented = operation["responses"].get(str(status))
    where = f"{response.request.method} {template} answered {status}"
    assert documented is not None, f"{where}, which is not documented: {response.text[:300]}"
    content = documented.get("content", {})
    media_type = response.headers.get("content-type", "").split(";")[0]
    if "application/json" in content and media_type == "application/json" and response.request.method != "HEAD":
        await response.aread()
        errors = schema_errors(content["application/json"]["schema"], response.json())
        assert errors == [], f"{where}, not as documented: {errors}"
    elif content:
        assert media_type in content or "*/*" in content, f"{where} as {media_type}, documented {list(content)}"
    for header in documented.get("headers", {}):
        assert header in response.headers, f"{where} without its documented {header} header"
