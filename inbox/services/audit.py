"""The audit trail: who exported, downloaded, changed or signed in, when and from where.

One call, `record(...)`, written inside the transaction of the change it records (a change that rolls back
leaves no entry) and, for reads (a transcript, an attachment), right before the answer goes out. Entries are
only ever added: this module has no update or delete, and on PostgreSQL a trigger refuses both (0019_audit).

The request's address reaches here through `address` (a context variable the HTTP layer sets per request),
so services need not carry it through their signatures and never learn of Starlette.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from tortoise.expressions import Q
from tortoise.models import Model

from inbox import clock
from inbox.models import AuditEntry, Role, Staff
from inbox.services.errors import Forbidden, require

# The address the current request came from ("" outside a request: the worker, the command line).
address: ContextVar[str] = ContextVar("inbox_request_address", default="")

PAGE_SIZE = 50
EXPORT_LIMIT = 100_000  # one CSV: far more than a year of a programme's entries, bounded all the same

# A detail is a few ids, names and values: never a secret nor a client's words. A key that names one is a bug.
FORBIDDEN_KEYS = frozenset({"password", "token", "auth_token", "secret", "body", "text", "api_key", "key"})


class Action(StrEnum):
    SIGNED_IN = "auth.signed_in"
    SIGN_IN_FAILED = "auth.sign_in_failed"
    TRANSCRIPT_EXPORTED = "transcript.exported"
    MEDIA_DOWNLOADED = "media.downloaded"
    LINK_CHANGED = "link.changed"
    CONSENT_CHANGED = "consent.changed"
    ASSIGNMENT_CHANGED = "assignment.changed"
    SETTING_CHANGED = "setting.changed"
    STAFF_CHANGED = "staff.changed"
    AUDIT_EXPORTED = "audit.exported"
    IMPORTED = "import.applied"  # a CSV import was written: its files and what it created and changed, per kind


Scalar = str | int | bool | None
# A setting's values before and after a change: short ones only (setting_changes), by the setting's name.
Values = dict[str, Scalar]
Detail = Scalar | list[str] | list[int] | Values
SHORT_VALUE = 120  # characters: a value longer than this is named as changed, its words not kept


async def record(action: Action, actor: Staff | None, obj: Model | None = None, /, **detail: Detail) -> AuditEntry:
    """Adds one entry: `obj` is what was acted on (its table and id), `detail` a few safe facts about it
    (positional-only above, so a detail may be called `action` too)."""
    nested = [key for value in detail.values() if isinstance(value, dict) for key in value]
    secret = FORBIDDEN_KEYS.intersection([*detail, *nested])
    if secret:
        raise ValueError(f"An audit detail may not hold {sorted(secret)}: never secrets or message text.")
    return await AuditEntry.create(
        at=clock.now(),
        actor=actor,
        action=action.value,
        object_kind=obj._meta.db_table if obj is not None else "",
        object_id=obj.pk if obj is not None else None,
        detail=detail,
        ip=address.get()[:64],
    )


def setting_changes(
    before: Mapping[str, Scalar] | None, after: Mapping[str, Scalar], words_kept_out: Set[str] = frozenset()
) -> dict[str, Detail]:
    """A settings change's detail: `changed` names every value that differs (all of them for a new setting,
    `before` None), `before` and `after` hold the short ones. A value in `words_kept_out` (a quick entry's text)
    or longer than SHORT_VALUE is only named."""
    old: Mapping[str, Scalar] = before or {}
    changed = [name for name, value in after.items() if before is None or old.get(name) != value]
    shown = [
        name
        for name in changed
        if name not in words_kept_out and all(len(str(value)) <= SHORT_VALUE for value in (old.get(name), after[name]))
    ]
    detail: dict[str, Detail] = {"changed": changed, "after": {name: after[name] for name in shown}}
    if before is not None:
        detail["before"] = {name: old.get(name) for name in shown}
    return detail


# ---------------------------------------------------------------- reading: the admin page and its CSV


@dataclass(frozen=True)
class Filters:
    actor_id: int | None = None
    action: str = ""  # an action ("link.changed"), or its area ("auth" or "auth.") for all of them
    object_kind: str = ""
    object_id: int | None = None
    since: date | None = None  # whole days, UTC, both ends included
    until: date | None = None

    def query_string(self) -> dict[str, str]:
        """The filters as the page's query parameters (for its links: next page, CSV)."""
        values = {
            "actor": self.actor_id,
            "action": self.action,
            "object_kind": self.object_kind,
            "object_id": self.object_id,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }
        return {key: str(value) for key, value in values.items() if value not in (None, "")}


def parse_filters(raw: dict[str, str]) -> Filters:
    """The page's query parameters as Filters; a bad one is named with what to type instead."""
    errors: dict[str, str] = {}
    actor_id = _whole_number(raw.get("actor", ""), "actor", errors)
    object_id = _whole_number(raw.get("object_id", ""), "object_id", errors)
    since = _day(raw.get("since", ""), "since", errors)
    until = _day(raw.get("until", ""), "until", errors)
    if since and until and until < since:
        errors["until"] = "The end date is before the start date."
    action = raw.get("action", "").strip()[:40]
    object_kind = raw.get("object_kind", "").strip()[:30]
    require(errors)
    return Filters(actor_id, action, object_kind, object_id, since, until)


def parse_before(value: str) -> int | None:
    """The page's `before` (older than this entry id), as the "Older entries" link wrote it."""
    errors: dict[str, str] = {}
    before = _whole_number(value, "before", errors)
    require(errors)
    return before


def _whole_number(value: str, field: str, errors: dict[str, str]) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 9:
        errors[field] = "Enter an id: a whole number, like 12."
        return None
    return int(value)


def _day(value: str, field: str, errors: dict[str, str]) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[field] = "Enter a date as YYYY-MM-DD, like 2026-12-01."
        return None


def _require_admin(staff: Staff) -> None:
    if staff.role != Role.ADMIN:
        raise Forbidden("Only administrators may read the audit trail.")


def _filtered(filters: Filters) -> Q:
    conditions = Q()
    if filters.actor_id is not None:
        conditions &= Q(actor_id=filters.actor_id)
    if filters.action.endswith(".") or (filters.action and "." not in filters.action):
        conditions &= Q(action__startswith=filters.action.rstrip(".") + ".")
    elif filters.action:
        conditions &= Q(action=filters.action)
    if filters.object_kind:
        conditions &= Q(object_kind=filters.object_kind)
    if filters.object_id is not None:
        conditions &= Q(object_id=filters.object_id)
    if filters.since:
        conditions &= Q(at__gte=datetime.combine(filters.since, time(), UTC))
    if filters.until:
        conditions &= Q(at__lt=datetime.combine(filters.until + timedelta(days=1), time(), UTC))
    return conditions


async def entries(
    staff: Staff, filters: Filters, before: int | None = None, limit: int = PAGE_SIZE
) -> list[AuditEntry]:
    """Entries matching `filters`, newest first, older than the entry id `before` (keyset paging). Admins only."""
    _require_admin(staff)
    query = AuditEntry.filter(_filtered(filters))
    if before is not None:
        query = query.filter(id__lt=before)
    return await query.order_by("-id").limit(limit).prefetch_related("actor")


async def export(staff: Staff, filters: Filters) -> list[AuditEntry]:
    """Every entry matching `filters` for the CSV, newest first; the export itself is recorded (before reading,
    so the file a person holds names its own making)."""
    _require_admin(staff)
    await record(Action.AUDIT_EXPORTED, staff, None, **filters.query_string())
    return await entries(staff, filters, limit=EXPORT_LIMIT)


async def actors() -> list[Staff]:
    """Everyone, for the page's actor filter."""
    return await Staff.all().order_by("name", "id")


def actions() -> list[str]:
    return [action.value for action in Action]
