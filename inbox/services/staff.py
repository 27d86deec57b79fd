"""Staff accounts, passwords (argon2) and API tokens.

Hashing and checking a password take tens of milliseconds of CPU by design: they run in a worker
thread, never on the event loop, so one sign-in does not stall every open stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets

from argon2 import Parameters, PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from tortoise.transactions import in_transaction

from inbox.events import Bus
from inbox.models import ApiToken, Office, Role, Staff, StaffSession
from inbox.phones import InvalidPhoneNumber, normalise
from inbox.services import audit, sessions, staff_reminders
from inbox.services.errors import Forbidden, NotFound, ValidationFailed, require
from inbox.services.unit_of_work import unit_of_work

MIN_PASSWORD_LENGTH = 8

ARGON2_PROFILE_VARIABLE = "INBOX_ARGON2_PROFILE"


def hasher_from_environment() -> PasswordHasher:
    """argon2-cffi's recommended parameters (RFC 9106's low-memory choice, ~0.1 s of CPU a hash) unless
    INBOX_ARGON2_PROFILE names another of its profiles. The test suite sets CHEAPEST: it creates thousands of
    accounts and signs each in, and nothing it checks depends on the cost. A hash records its own parameters,
    so one made with another profile still verifies, and is re-made with these at its next sign-in."""
    name = os.environ.get(ARGON2_PROFILE_VARIABLE)
    if not name:
        return PasswordHasher()
    parameters = getattr(profiles, name, None)
    if not isinstance(parameters, Parameters):
        known = ", ".join(n for n in dir(profiles) if isinstance(getattr(profiles, n), Parameters))
        raise RuntimeError(f"{ARGON2_PROFILE_VARIABLE}={name!r} is not an argon2 profile (one of: {known})")
    return PasswordHasher.from_parameters(parameters)


PASSWORD_HASHER = hasher_from_environment()
# Checked against when the email is unknown, so a wrong email costs as long as a wrong password.
_DUMMY_HASH = PASSWORD_HASHER.hash(secrets.token_urlsafe(16))


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(PASSWORD_HASHER.hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return PASSWORD_HASHER.verify(password_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False


async def password_matches(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(_verify, password_hash, password)


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


async def create_staff(
    *,
    email: str,
    name: str,
    role: str,
    password: str | None = None,
    mobile: str | None = None,
    office: Office | None = None,
    by: Staff | None = None,
) -> tuple[Staff, str]:
    """A new staff account; answers it with its password (generated when none is given). `by` is the admin
    who added it (None: the command line, the demo), for the audit trail."""
    email = normalise_email(email)
    errors: dict[str, str] = {}
    if "@" not in email:
        errors["email"] = "Enter an email address."
    elif await Staff.exists(email=email):
        errors["email"] = f"There is already an account for {email}."
    if not (name or "").strip():
        errors["name"] = "Enter a name."
    if role not in {r.value for r in Role}:
        errors["role"] = "Role must be advocate, supervisor or admin."
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        errors["password"] = f"Passwords need at least {MIN_PASSWORD_LENGTH} characters."
    mobile_e164 = None
    if mobile:
        try:
            mobile_e164 = normalise(mobile)
        except InvalidPhoneNumber as exc:
            errors["mobile"] = str(exc)
    require(errors)
    password = password or secrets.token_urlsafe(12)
    password_hash = await hash_password(password)
    async with in_transaction():
        staff = await Staff.create(
            email=email,
            name=name.strip(),
            role=Role(role),
            password_hash=password_hash,
            mobile=mobile_e164,
            office=office,
        )
        await audit.record(audit.Action.STAFF_CHANGED, by, staff, change="created", email=email, role=role)
    return staff, password


async def authenticate(email: str, password: str) -> Staff | None:
    """The active staff member with this email and password, or None."""
    staff = await check_credentials(email, password)
    return staff if staff is not None and staff.is_active else None


async def check_credentials(email: str, password: str) -> Staff | None:
    """The staff member with this email and password, active or not (one password check either way), so the
    sign-in page can tell a deactivated person why, which only someone who knows the password learns."""
    staff = await Staff.get_or_none(email=normalise_email(email))
    matches = await password_matches(staff.password_hash if staff else None, password)
    if staff is None or not matches:
        return None
    await _rehash_if_outdated(staff, password)
    return staff


async def _rehash_if_outdated(staff: Staff, password: str) -> None:
    """A hash made with other parameters (older, weaker) is replaced while the password is at hand."""
    if staff.password_hash and PASSWORD_HASHER.check_needs_rehash(staff.password_hash):
        staff.password_hash = await hash_password(password)
        await Staff.filter(id=staff.id).update(password_hash=staff.password_hash)


async def change_password(
    bus: Bus, staff: Staff, current: str, new: str, confirm: str, *, keep: StaffSession | None
) -> int:
    """A staff member changes their own password; every other session of theirs ends.

    Answers how many sessions ended. The current password is checked first (the caller throttles).
    """
    errors: dict[str, str] = {}
    if not await password_matches(staff.password_hash, current):
        errors["current_password"] = "That is not your current password."
    if len(new) < MIN_PASSWORD_LENGTH:
        errors["new_password"] = f"Passwords need at least {MIN_PASSWORD_LENGTH} characters."
    elif new != confirm:
        errors["confirm_password"] = "The two new passwords are not the same."
    require(errors)
    staff.password_hash = await hash_password(new)
    await Staff.filter(id=staff.id).update(password_hash=staff.password_hash)
    return await sessions.end_all(bus, staff, keep=keep)


async def save_reminder_settings(bus: Bus, staff: Staff, mobile: str, reminders_on: bool) -> Staff:
    """A staff member sets their own mobile and turns their task and calendar reminders on or off. Pending
    reminders follow at once: cancelled when turned off, sent to the new mobile when it changed, made for
    open tasks and coming events when turned on. An empty mobile removes it."""
    mobile_e164 = None
    if mobile.strip():
        try:
            mobile_e164 = normalise(mobile)
        except InvalidPhoneNumber as exc:
            require({"mobile": str(exc)})
    if (staff.mobile, staff.staff_reminders) == (mobile_e164, reminders_on):
        return staff
    async with unit_of_work(bus):
        staff.mobile, staff.staff_reminders = mobile_e164, reminders_on
        await staff.save(update_fields=["mobile", "staff_reminders"])
        await staff_reminders.sync_staff(staff)
    return staff


async def set_active(bus: Bus, admin: Staff, staff_id: int, active: bool) -> Staff:
    """An admin deactivates (or reactivates) a staff member; deactivation ends all their sessions
    and event streams at once. Nobody deactivates themselves: there must be an admin left to undo it."""
    if admin.role != Role.ADMIN:
        raise Forbidden("Only administrators may change staff accounts.")
    staff = await Staff.get_or_none(id=staff_id)
    if staff is None:
        raise NotFound("There is no such staff member.")
    if staff.id == admin.id and not active:
        raise ValidationFailed("You cannot deactivate your own account.")
    async with unit_of_work(bus):
        if staff.is_active != active:
            staff.is_active = active
            await staff.save(update_fields=["is_active"])
            change = "reactivated" if active else "deactivated"
            await audit.record(audit.Action.STAFF_CHANGED, admin, staff, change=change, email=staff.email)
        if not active:
            await sessions.end_all(bus, staff, every_stream=True)
    return staff


async def staff_list() -> list[Staff]:
    return await Staff.all().prefetch_related("office").order_by("-is_active", "name", "id")


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_api_token(email: str) -> str:
    """A new bearer token for the JSON API. Only its digest is stored: show it once."""
    staff = await Staff.get_or_none(email=normalise_email(email))
    if staff is None:
        raise NotFound(f"No staff account has the email {email}.")
    token = "ci_" + secrets.token_urlsafe(32)
    await ApiToken.create(staff=staff, token_hash=_token_digest(token))
    return token


async def staff_for_token(token: str) -> Staff | None:
    record = await ApiToken.get_or_none(token_hash=_token_digest(token)).prefetch_related("staff")
    if record is None or not record.staff.is_active:
        return None
    return record.staff
