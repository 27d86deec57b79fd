"""Staff accounts, passwords (argon2) and API tokens."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from inbox.events import Bus, SessionEnded
from inbox.models import ApiToken, Office, Role, Staff
from inbox.phones import InvalidPhoneNumber, normalise
from inbox.services.errors import NotFound, require

_hasher = PasswordHasher()
# Checked against when the email is unknown, so a wrong email costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False


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
) -> tuple[Staff, str]:
    """A new staff account; answers it with its password (generated when none is given)."""
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
    if password is not None and len(password) < 8:
        errors["password"] = "Passwords need at least 8 characters."
    mobile_e164 = None
    if mobile:
        try:
            mobile_e164 = normalise(mobile)
        except InvalidPhoneNumber as exc:
            errors["mobile"] = str(exc)
    require(errors)
    password = password or secrets.token_urlsafe(12)
    staff = await Staff.create(
        email=email,
        name=name.strip(),
        role=Role(role),
        password_hash=hash_password(password),
        mobile=mobile_e164,
        office=office,
    )
    return staff, password


async def authenticate(email: str, password: str) -> Staff | None:
    staff = await Staff.get_or_none(email=normalise_email(email), is_active=True)
    if not password_matches(staff.password_hash if staff else None, password):
        return None
    return staff


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


def new_session_id() -> str:
    """Names one sign-in, so its open event streams can be ended when it signs out."""
    return secrets.token_urlsafe(16)


async def end_session(bus: Bus, session_id: str | None) -> None:
    if session_id:
        await bus.publish(SessionEnded(session_id=session_id))
