"""Alerts: an inbound text on a case raises one for its assignees; one dismissal clears it for all."""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise.expressions import Q

from inbox.events import AlertDismissed, AlertRaised, Bus, Event
from inbox.models import Alert, AlertAssignee, AlertPolicy, Assignment, Case, Message, Organisation, Staff
from inbox.services import visibility
from inbox.services.errors import NotFound


async def alert_policy() -> AlertPolicy:
    organisation = await Organisation.first()
    return organisation.alert_policy if organisation else AlertPolicy.PRIMARY


async def assignees_for(case_id: int, policy: AlertPolicy) -> list[int]:
    """Current assignees (no end date, or one in the future): the primary ones, or all of them."""
    query = Assignment.filter(visibility.current_assignments(), case_id=case_id)
    if policy == AlertPolicy.PRIMARY:
        query = query.filter(primary=True)
    return list(dict.fromkeys(await query.order_by("id").values_list("staff_id", flat=True)))


async def raise_alerts(message: Message, case_ids: list[int]) -> list[Event]:
    """One alert per case the text landed on; call inside the inbound transaction, publish after."""
    policy = await alert_policy()
    events: list[Event] = []
    for case_id in case_ids:
        alert, created = await Alert.get_or_create(case_id=case_id, message=message)
        if not created:
            continue
        for staff_id in await assignees_for(case_id, policy):
            await AlertAssignee.create(alert=alert, staff_id=staff_id)
        events.append(AlertRaised(alert_id=alert.id, case_id=case_id, message_id=message.id))
    return events


def open_alerts_for(staff: Staff) -> Q:
    """The alerts a person is shown: addressed to them — or, for supervisors and admins, all open ones."""
    if staff.sees_everything:
        return Q(dismissed_at=None)
    return Q(dismissed_at=None, assignees__staff_id=staff.id)


async def alerts_for(staff: Staff, limit: int = 200, before: int | None = None) -> list[Alert]:
    query = Alert.filter(open_alerts_for(staff)).distinct()
    if before:
        query = query.filter(id__lt=before)
    return await query.order_by("created_at", "id").limit(limit).prefetch_related(
        "case__office", "case__client", "message", "assignees__staff"
    )


async def open_alert_count(staff: Staff) -> int:
    return await Alert.filter(open_alerts_for(staff)).distinct().count()


async def visible_alert(staff: Staff, alert_id: int) -> Alert:
    alert = await Alert.get_or_none(id=alert_id).prefetch_related("case", "assignees")
    if alert is None:
        raise NotFound("No alert has this id.")
    addressed = any(a.staff_id == staff.id for a in alert.assignees)
    if not (staff.sees_everything or addressed or await visibility.can_see_case(staff, alert.case)):
        raise NotFound("No alert has this id.")
    return alert


async def dismiss(bus: Bus, staff: Staff, alert_id: int) -> Alert:
    """Dismissed for everyone at once (LegalServer's rule). Dismissing twice is harmless."""
    alert = await visible_alert(staff, alert_id)
    changed = await Alert.filter(id=alert.id, dismissed_at=None).update(
        dismissed_at=datetime.now(UTC), dismissed_by_id=staff.id, dismissed_because="dismissed"
    )
    await alert.refresh_from_db()
    if changed:
        await bus.publish(AlertDismissed(alert_id=alert.id, case_id=alert.case_id, message_id=alert.message_id))
    return alert


async def dismiss_on_reply(conversation_id: int, staff: Staff) -> list[Event]:
    """Answering the client clears the alerts of the texts they sent in this conversation (a setting)."""
    organisation = await Organisation.first()
    if not (organisation and organisation.dismiss_alerts_on_reply):
        return []
    alerts = await Alert.filter(dismissed_at=None, message__conversation_id=conversation_id)
    events: list[Event] = []
    for alert in alerts:
        changed = await Alert.filter(id=alert.id, dismissed_at=None).update(
            dismissed_at=datetime.now(UTC), dismissed_by_id=staff.id, dismissed_because="replied"
        )
        if changed:
            events.append(AlertDismissed(alert_id=alert.id, case_id=alert.case_id, message_id=alert.message_id))
    return events


async def case_of(alert: Alert) -> Case:
    return await Case.get(id=alert.case_id)
