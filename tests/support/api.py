"""Reading the JSON API's answers: its one error shape and its timestamps, as the contract promises them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """An error answer with this status, in the API's error shape `{"error", "fields"}`; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "fields"}, body
    assert isinstance(body["error"], str) and body["error"]
    return body


def assert_iso_with_offset(value: str) -> datetime:
    """ISO 8601 with an explicit offset (Z or ±hh:mm), as the contract promises; the moment it names."""
    assert isinstance(value, str) and value, value
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert moment.tzinfo is not None, value
    assert value.endswith("Z") or value[-6] in "+-", value
    return moment


async def as_it_is_now(api: httpx.AsyncClient, answer: httpx.Response) -> dict[str, Any]:
    """The message a 201 answered, fetched again: the outbox hands it to Twilio after the answer."""
    assert answer.status_code == 201, answer.text
    fetched = await api.get(f"/api/v1/messages/{answer.json()['id']}")
    assert fetched.status_code == 200, fetched.text
    result: dict[str, Any] = fetched.json()
    return result
