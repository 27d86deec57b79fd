"""Server-side sessions: the cookie carries a random key, the session lives in the database.

Only the key's SHA-256 is stored, and that digest is also the session's name in events and open
streams (it cannot be turned back into a cookie). A session ends when it signs out, when its staff
member signs out everywhere, changes their password or is deactivated, after the idle timeout and
at its absolute lifetime. Ending deletes the row, so a copied cookie is worth nothing afterwards,
and publishes an event that closes the session's open event streams at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Q

from inbox.events import Bus, SessionEnded, SessionsEnded
from inbox.models import Staff, StaffSession, flat_values
from inbox.services.unit_of_work import unit_of_work

# "Last seen" is written at most this often: no database write on every request just to say so.
TOUCH_EVERY = timedelta(minutes=1)
# request.session keys kept in their own columns; everything else goes into the JSON column.
STAFF_KEY = "staff_id"
CSRF_KEY = "csrf"


@dataclass(frozen=True)
class SessionRules:
    idle: timedelta = timedelta(hours=12)
    lifetime: timedelta = timedelta(days=7)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def contents(record: StaffSession | None) -> dict[str, Any]:
    """What request.session shows for a stored session."""
    if record is None:
        return {}
    data = dict(record.data)
    if record.staff_id is not None:
        data[STAFF_KEY] = record.staff_id
    if record.csrf_token:
        data[CSRF_KEY] = record.csrf_token
    return data


def _columns(session: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in session.items() if k not in (STAFF_KEY, CSRF_KEY)}
    staff_id = session.get(STAFF_KEY)
    return {
        "staff_id": int(staff_id) if staff_id is not None else None,
        "csrf_token": str(session.get(CSRF_KEY) or ""),
        "data": data,
    }


def is_live(record: StaffSession, now: datetime) -> bool:
    return now < record.idle_expires_at and now < record.expires_at


async def find_live(key: str, now: datetime) -> StaffSession | None:
    """The session a cookie names, with its staff member, unless it ended or expired."""
    record = await StaffSession.get_or_none(key_hash=key_digest(key)).select_related("staff")
    if record is None or not is_live(record, now):
        return None
    return record


async def still_stored(record: StaffSession) -> bool:
    return await StaffSession.exists(id=record.id)


async def start(session: dict[str, Any], now: datetime, rules: SessionRules) -> tuple[str, StaffSession]:
    """A new session under a new random key; answers the key (for the cookie) and the row."""
    key = secrets.token_urlsafe(32)
    record = await StaffSession.create(
        key_hash=key_digest(key),
        created_at=now,
        last_seen_at=now,
        idle_expires_at=now + rules.idle,
        expires_at=now + rules.lifetime,
        **_columns(session),
    )
    return key, record


async def store(record: StaffSession, session: dict[str, Any], now: datetime, rules: SessionRules) -> None:
    """Saves what the request changed. An UPDATE by id: a session ended meanwhile stays ended."""
    await StaffSession.filter(id=record.id).update(
        last_seen_at=now, idle_expires_at=_idle_expiry(record, now, rules), **_columns(session)
    )


async def touch(record: StaffSession, now: datetime, rules: SessionRules) -> None:
    """Keeps an active session alive: written only when "last seen" is over a minute old."""
    if now - record.last_seen_at < TOUCH_EVERY:
        return
    await StaffSession.filter(id=record.id).update(last_seen_at=now, idle_expires_at=_idle_expiry(record, now, rules))


def _idle_expiry(record: StaffSession, now: datetime, rules: SessionRules) -> datetime:
    return min(now + rules.idle, record.expires_at)


async def forget(record: StaffSession) -> None:
    """Removes a session that holds nothing any more (not a sign-out: no streams to end)."""
    await StaffSession.filter(id=record.id).delete()


async def end(bus: Bus, record: StaffSession | None) -> None:
    """Sign-out: this session only, and the event streams it opened."""
    if record is None:
        return
    async with unit_of_work(bus) as uow:
        await StaffSession.filter(id=record.id).delete()
        uow.publish(SessionEnded(session_id=record.key_hash))


async def end_all(bus: Bus, staff: Staff, *, keep: StaffSession | None = None, every_stream: bool = False) -> int:
    """Ends every session of a staff member (but `keep`); with every_stream their API streams close too.

    Answers how many sessions ended.
    """
    query = StaffSession.filter(staff_id=staff.id)
    if keep is not None:
        query = query.exclude(id=keep.id)
    async with unit_of_work(bus) as uow:
        ended = [str(key) for key in await flat_values(query.values_list("key_hash", flat=True))]
        await StaffSession.filter(key_hash__in=ended).delete()
        if ended or every_stream:
            uow.publish(SessionsEnded(staff_id=staff.id, session_ids=ended, every_stream=every_stream))
    return len(ended)


async def remove_expired(bus: Bus, now: datetime) -> int:
    """Deletes expired sessions and closes any stream still open on one; answers how many went."""
    expired = StaffSession.filter(Q(idle_expires_at__lte=now) | Q(expires_at__lte=now))
    async with unit_of_work(bus) as uow:
        rows = await expired.values_list("staff_id", "key_hash")
        await StaffSession.filter(key_hash__in=[key for _, key in rows]).delete()
        by_staff: dict[int, list[str]] = {}
        for staff_id, key in rows:
            if staff_id is not None:
                by_staff.setdefault(int(staff_id), []).append(str(key))
        for staff_id, keys in by_staff.items():
            uow.publish(SessionsEnded(staff_id=staff_id, session_ids=keys))
    return len(rows)
