"""Clients, cases and assignments for a test to work with: set up through the services (as the
make_case fixture does) or, by the functions that take `api`, through the JSON API as an integrator would."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx

from inbox.models import Staff
from inbox.services.directory import create_assignment

MARIA = "+14045387319"  # Maria Lopez's mobile: the make_case fixture's client unless told otherwise

_case_numbers = itertools.count(1)


@dataclass
class CaseFile:
    client_id: int
    case_id: int
    number: str


MakeCase = Callable[..., Awaitable[CaseFile]]  # the make_case fixture


async def assign(
    case_id: int, staff: Staff, primary: bool = False, start: date | None = None, end: date | None = None
) -> None:
    """`staff` on the case from `start` (90 days ago unless told, so that an `end` in the past is an
    assignment that has ended) until `end`."""
    start = start or date.today() - timedelta(days=90)
    await create_assignment(case_id=case_id, staff_email=staff.email, primary=primary, start=start, end=end)


async def new_client(
    api: httpx.AsyncClient,
    name: str = "Maria Lopez",
    *numbers: str,
    phones: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A client created through the API, as it answered; with `numbers` (Maria's unless given) as mobiles
    okay to text, or exactly `phones`."""
    if phones is None:
        phones = [{"number": number, "kind": "mobile", "okay_to_text": True} for number in numbers or (MARIA,)]
    response = await api.post("/api/v1/clients", json={"name": name, "phones": phones, **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def new_case(api: httpx.AsyncClient, client_id: int, number: str | None = None, **fields: Any) -> dict[str, Any]:
    """A case of the client created through the API, as it answered; numbered afresh unless told."""
    number = number or f"16E-3001{next(_case_numbers):04d}"
    response = await api.post(
        "/api/v1/cases", json={"number": number, "title": "Eviction defence", "client_id": client_id, **fields}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
