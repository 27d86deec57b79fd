"""News of a settings change: this process forgets its copy (inbox.services.settings_cache) at once, and every
other process hears of it through the bus once the change has committed."""

from __future__ import annotations

from inbox.events import Bus, SettingsChanged
from inbox.services import unit_of_work as units
from inbox.services.settings_cache import CHANNELS, ENDPOINTS, ORGANISATION, forget

__all__ = ["CHANNELS", "ENDPOINTS", "ORGANISATION", "changed"]


async def changed(bus: Bus | None, what: str) -> None:
    """After a write to `what`: forgotten here now, and in every other process through the bus."""
    forget(what)
    if bus is not None:
        # Joins the caller's unit of work when there is one: the others hear of it once it has committed.
        async with units.unit_of_work(bus) as uow:
            uow.publish(SettingsChanged(what=what))
