"""What rarely changes and every webhook reads — the channels, the organisation's linking and alert
policies, the enabled outgoing-webhook endpoints (every unit of work with an event they take) — kept in memory,
each process its own copy.

A service that changes them calls `settings_news.changed(bus, what)` once its write is done: this process forgets its
copy at once, and the `SettingsChanged` event tells every other process on the bus to forget theirs
(`follow`). A process that missed events (its queue lagged) forgets everything. Channels read from the
copy are only a first guess for a webhook: when none of them validates its signature, the route reads
the channels again (a channel just added or its token just changed in another process) before refusing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from inbox.events import Bus, Lagged, SettingsChanged
from inbox.models import AlertPolicy, Channel, LinkingPolicy, Organisation, WebhookEndpoint

log = logging.getLogger(__name__)

CHANNELS = "channels"
ORGANISATION = "organisation"
ENDPOINTS = "webhook_endpoints"


@dataclass(frozen=True)
class Policies:
    linking: LinkingPolicy
    alerts: AlertPolicy


_channels: dict[str, list[Channel]] | None = None
_policies: Policies | None = None
_endpoints: list[Subscriber] | None = None


@dataclass(frozen=True)
class Subscriber:
    """An enabled outgoing-webhook endpoint: its id and the event types it takes."""

    id: int
    events: frozenset[str]


async def channels_of_account(account_sid: str) -> list[Channel]:
    """The account's channels, oldest first, from this process's copy (read once from the database)."""
    global _channels
    if _channels is None:
        loaded: dict[str, list[Channel]] = {}
        for channel in await Channel.all().order_by("id"):
            loaded.setdefault(channel.account_sid, []).append(channel)
        _channels = loaded
    return list(_channels.get(account_sid, []))


async def policies() -> Policies:
    global _policies
    if _policies is None:
        organisation = await Organisation.first()
        _policies = Policies(
            organisation.linking_policy if organisation else LinkingPolicy.DEFAULT,
            organisation.alert_policy if organisation else AlertPolicy.PRIMARY,
        )
    return _policies


async def webhook_subscribers() -> list[Subscriber]:
    """The enabled endpoints, oldest first, from this process's copy (read once from the database)."""
    global _endpoints
    if _endpoints is None:
        rows = await WebhookEndpoint.filter(enabled=True).order_by("id").only("id", "events")
        _endpoints = [Subscriber(row.id, frozenset(row.events)) for row in rows]
    return list(_endpoints)


def is_cached(what: str) -> bool:
    copies = {CHANNELS: _channels, ORGANISATION: _policies, ENDPOINTS: _endpoints}
    return copies[what] is not None


def forget(what: str | None = None) -> None:
    """Drops this process's copy of `what` (everything when None): the next read goes to the database."""
    global _channels, _policies, _endpoints
    if what in (None, CHANNELS):
        _channels = None
    if what in (None, ORGANISATION):
        _policies = None
    if what in (None, ENDPOINTS):
        _endpoints = None


async def follow(bus: Bus) -> None:
    """Forgets what other processes announce they changed (runs for the life of the process)."""
    async with bus.subscribe() as subscription:
        async for event in subscription:
            if isinstance(event, SettingsChanged):
                forget(event.what)
            elif isinstance(event, Lagged):
                forget()
