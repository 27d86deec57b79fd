"""Clients, cases and assignments: what the case management system pushes in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from tortoise.transactions import in_transaction

from inbox.models import Assignment, Case, Client, ClientPhone, ConsentSource, Office, PhoneKind, Staff
from inbox.phones import InvalidPhoneNumber, normalise
from inbox.services import audit, consent, visibility
from inbox.services.errors import NotFound, require
from inbox.services.limits import check_fits

# How a new client's okay-to-text starts its consent ledger, by who created the client.
CREATED_BY: dict[ConsentSource, str] = {
    ConsentSource.API: "client created through the API",
    ConsentSource.STAFF: "client created by staff",
    ConsentSource.IMPORT: "client imported",
}


@dataclass(frozen=True)
class PhoneInput:
    number: str
    kind: str = PhoneKind.MOBILE.value
    okay_to_text: bool = False


def _check_phones(phones: list[PhoneInput], errors: dict[str, str]) -> list[tuple[str, PhoneKind, bool]]:
    checked = []
    kinds = {k.value for k in PhoneKind}
    for index, phone in enumerate(phones):
        try:
            number = normalise(phone.number)
        except InvalidPhoneNumber as exc:
            errors[f"phones.{index}.number"] = str(exc)
            continue
        if phone.kind not in kinds:
            errors[f"phones.{index}.kind"] = "Kind must be mobile, home or work."
            continue
        checked.append((number, PhoneKind(phone.kind), bool(phone.okay_to_text)))
    return checked


async def create_client(
    *,
    name: str,
    phones: list[PhoneInput],
    external_id: str | None = None,
    preferred_language: str | None = None,
    source: ConsentSource = ConsentSource.API,
    staff: Staff | None = None,
) -> Client:
    """A client and their numbers; each number's okay-to-text opens its consent ledger, credited to
    `source` (and `staff`, who made the call or owns the API token)."""
    errors: dict[str, str] = {}
    if not (name or "").strip():
        errors["name"] = "Enter the client's name."
    check_fits(errors, "name", (name or "").strip(), Client)
    check_fits(errors, "external_id", external_id, Client)
    check_fits(errors, "preferred_language", preferred_language, Client)
    if external_id and "external_id" not in errors and await Client.exists(external_id=external_id):
        errors["external_id"] = f"A client with external id {external_id} already exists."
    checked = _check_phones(phones, errors)
    require(errors)
    async with in_transaction():
        client = await Client.create(
            name=name.strip(), external_id=external_id or None, preferred_language=preferred_language or None
        )
        for number, kind, okay in checked:
            phone = await ClientPhone.create(client=client, number=number, kind=kind, okay_to_text=okay)
            detail = CREATED_BY.get(source, "client created") + (f" by {staff.name}" if staff is not None else "")
            await consent.record_new_phone(phone, source, detail, staff)
    visibility.forget()
    return client


async def office_named(name: str | None) -> Office | None:
    if not name:
        return None
    office, _ = await Office.get_or_create(name=name.strip())
    return office


async def create_case(
    *,
    number: str,
    title: str,
    client_id: int | None,
    legal_problem: str | None = None,
    office: str | None = None,
    external_id: str | None = None,
) -> Case:
    errors: dict[str, str] = {}
    number = (number or "").strip()
    if not number:
        errors["number"] = "Enter the case number."
    check_fits(errors, "number", number, Case)
    if "number" not in errors and await Case.exists(number=number):
        errors["number"] = f"Case {number} already exists."
    if not (title or "").strip():
        errors["title"] = "Enter a title."
    check_fits(errors, "title", (title or "").strip(), Case)
    check_fits(errors, "legal_problem", legal_problem, Case)
    check_fits(errors, "office", office.strip() if office else None, Office, "name")
    check_fits(errors, "external_id", external_id, Case)
    client = await Client.get_or_none(id=client_id) if isinstance(client_id, int) else None
    if client is None:
        errors["client_id"] = "No client has this id."
    if external_id and "external_id" not in errors and await Case.exists(external_id=external_id):
        errors["external_id"] = f"A case with external id {external_id} already exists."
    require(errors)
    return await Case.create(
        number=number,
        title=title.strip(),
        client=client,
        legal_problem=legal_problem or None,
        office=await office_named(office),
        external_id=external_id or None,
    )


async def create_assignment(
    *,
    case_id: int | None,
    staff_email: str,
    primary: bool = False,
    start: date | None = None,
    end: date | None = None,
    by: Staff | None = None,
) -> Assignment:
    """Puts a staff member on a case; `by` is who did (None: the system), for the audit trail."""
    errors: dict[str, str] = {}
    case = await Case.get_or_none(id=case_id) if isinstance(case_id, int) else None
    if case is None:
        errors["case_id"] = "No case has this id."
    email = (staff_email or "").strip().lower()
    check_fits(errors, "staff_email", email, Staff, "email")  # Tortoise refuses to look up a longer one
    staff = await Staff.get_or_none(email=email) if "staff_email" not in errors else None
    if staff is None:
        errors.setdefault("staff_email", "No staff account has this email.")
    if start and end and end < start:
        errors["end"] = "The end date is before the start date."
    require(errors)
    async with in_transaction():
        assignment = await Assignment.create(
            case=case, staff=staff, primary=bool(primary), start=start or date.today(), end=end
        )
        detail = {"case_id": assignment.case_id, "staff_id": assignment.staff_id, "primary": assignment.primary}
        await audit.record(audit.Action.ASSIGNMENT_CHANGED, by, assignment, change="created", **detail)
    visibility.forget()  # the answers this request kept no longer hold
    return assignment


async def get_client(client_id: int) -> Client:
    client = await Client.get_or_none(id=client_id).prefetch_related("phones__consent_log", "cases")
    if client is None:
        raise NotFound("No client has this id.")
    return client


async def get_case(case_id: int) -> Case:
    case = await Case.get_or_none(id=case_id).prefetch_related("client__phones", "office", "assignments__staff")
    if case is None:
        raise NotFound("No case has this id.")
    return case


def mobile_of(client: Client) -> ClientPhone | None:
    """The number a text defaults to: the first mobile, else the first number on file."""
    phones = list(client.phones)
    mobiles = [p for p in phones if p.kind == PhoneKind.MOBILE]
    return next(iter(mobiles or phones), None)
