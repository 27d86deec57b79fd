"""The organisation's rules: character limit, linking and alert policies, media handling."""

from __future__ import annotations

from dataclasses import dataclass

from inbox.models import AlertPolicy, LinkingPolicy, Organisation, Role, Staff
from inbox.services.errors import Forbidden, require

TWILIO_BODY_LIMIT = 1600


@dataclass(frozen=True)
class OrganisationRules:
    name: str
    char_limit: int
    linking_policy: str
    alert_policy: str
    dismiss_alerts_on_reply: bool
    delete_media_at_provider: bool


async def current() -> Organisation:
    organisation = await Organisation.first()
    return organisation or await Organisation.create()


def check_rules(rules: OrganisationRules) -> None:
    errors: dict[str, str] = {}
    if not rules.name.strip():
        errors["name"] = "Give the organisation a name."
    if not 1 <= rules.char_limit <= TWILIO_BODY_LIMIT:
        errors["char_limit"] = f"The limit must be between 1 and {TWILIO_BODY_LIMIT} characters (Twilio's maximum)."
    if rules.linking_policy not in {p.value for p in LinkingPolicy}:
        errors["linking_policy"] = "Choose “default” or “best guess”."
    if rules.alert_policy not in {p.value for p in AlertPolicy}:
        errors["alert_policy"] = "Choose “primary assignee” or “all assignees”."
    require(errors)


async def update_rules(staff: Staff, rules: OrganisationRules) -> Organisation:
    if staff.role != Role.ADMIN:
        raise Forbidden("Only administrators may change the organisation's settings.")
    check_rules(rules)
    organisation = await current()
    organisation.name = rules.name.strip()
    organisation.char_limit = rules.char_limit
    organisation.linking_policy = LinkingPolicy(rules.linking_policy)
    organisation.alert_policy = AlertPolicy(rules.alert_policy)
    organisation.dismiss_alerts_on_reply = rules.dismiss_alerts_on_reply
    organisation.delete_media_at_provider = rules.delete_media_at_provider
    await organisation.save()
    return organisation
