"""The organisation's rules: character limit, linking and alert policies, media handling, opt-in requests."""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.transactions import in_transaction

from inbox.events import Bus
from inbox.models import AlertPolicy, LinkingPolicy, Organisation, Role, Staff
from inbox.services import audit, settings_news, visibility
from inbox.services.errors import Forbidden, require
from inbox.services.limits import check_fits

TWILIO_BODY_LIMIT = 1600


@dataclass(frozen=True)
class OrganisationRules:
    name: str
    char_limit: int
    linking_policy: str
    alert_policy: str
    dismiss_alerts_on_reply: bool
    delete_media_at_provider: bool
    # Consent: may staff send the opt-in request, and its words (None: keep the words as they are).
    opt_in_requests: bool = True
    opt_in_text: str | None = None


async def current() -> Organisation:
    """The organisation's row, read once per request (a queue page asked 14 times): a settings save changes
    this same instance, so the rest of its request sees the change."""
    return await visibility.kept_for_request("organisation", _read)


async def _read() -> Organisation:
    organisation = await Organisation.first()
    return organisation or await Organisation.create()


# ---------------------------------------------------------------- how long a text may be


async def text_limit() -> int:
    """The most characters a text may have: the organisation's limit, never more than Twilio takes."""
    return min((await current()).char_limit, TWILIO_BODY_LIMIT)


def check_text_length(errors: dict[str, str], field: str, text: str, limit: int) -> None:
    """The one check of a text against the limit (sent, scheduled, edited, a quick entry, a channel's
    answers). A field that already has an error keeps it."""
    if len(text) > limit and field not in errors:
        errors[field] = f"Texts are limited to {limit} characters; this one has {len(text)}."


# ---------------------------------------------------------------- the settings page


def check_rules(rules: OrganisationRules) -> None:
    errors: dict[str, str] = {}
    if not rules.name.strip():
        errors["name"] = "Give the organisation a name."
    check_fits(errors, "name", rules.name.strip(), Organisation)
    if not 1 <= rules.char_limit <= TWILIO_BODY_LIMIT:
        errors["char_limit"] = f"The limit must be between 1 and {TWILIO_BODY_LIMIT} characters (Twilio's maximum)."
    if rules.linking_policy not in {p.value for p in LinkingPolicy}:
        errors["linking_policy"] = "Choose “default” or “best guess”."
    if rules.alert_policy not in {p.value for p in AlertPolicy}:
        errors["alert_policy"] = "Choose “primary assignee” or “all assignees”."
    if rules.opt_in_text is not None:
        words = rules.opt_in_text.strip()
        if not words:
            errors["opt_in_text"] = "Write the opt-in request's text (it asks the client to reply Y or YES)."
        elif 1 <= rules.char_limit <= TWILIO_BODY_LIMIT:
            check_text_length(errors, "opt_in_text", words, rules.char_limit)
    require(errors)


# The settings page's fields: the audit trail names those a save changed (not their values: the opt-in text is long).
SETTING_FIELDS = (
    "name",
    "char_limit",
    "linking_policy",
    "alert_policy",
    "dismiss_alerts_on_reply",
    "delete_media_at_provider",
    "opt_in_requests",
    "opt_in_text",
)


async def update_rules(staff: Staff, rules: OrganisationRules, bus: Bus | None = None) -> Organisation:
    if staff.role != Role.ADMIN:
        raise Forbidden("Only administrators may change the organisation's settings.")
    check_rules(rules)
    organisation = await current()
    before = [getattr(organisation, name) for name in SETTING_FIELDS]
    organisation.name = rules.name.strip()
    organisation.char_limit = rules.char_limit
    organisation.linking_policy = LinkingPolicy(rules.linking_policy)
    organisation.alert_policy = AlertPolicy(rules.alert_policy)
    organisation.dismiss_alerts_on_reply = rules.dismiss_alerts_on_reply
    organisation.delete_media_at_provider = rules.delete_media_at_provider
    organisation.opt_in_requests = rules.opt_in_requests
    if rules.opt_in_text is not None:
        organisation.opt_in_text = rules.opt_in_text.strip()
    changed = [name for name, old in zip(SETTING_FIELDS, before, strict=True) if getattr(organisation, name) != old]
    async with in_transaction():
        await organisation.save()
        await audit.record(audit.Action.SETTING_CHANGED, staff, organisation, changed=changed)
    await settings_news.changed(bus, settings_news.ORGANISATION)
    return organisation
