"""Live updates: one bus subscription per process fans events out to every open tab.

Work is done per event, not per tab: the rows are loaded once, the audience is computed once,
and each distinct view (the bubble; a conversation row per unread count; an alert row; a badge
per count) is rendered once and shared by every tab that may see it. Tabs that may not see an
event are never sent it.

An event the hub cannot deliver (the database briefly unreachable while it loads the rows, a render
that fails) is not silently lost: every tab that might have needed it is told to catch up — an HTML
tab re-fetches its panes (the `refresh` event; static/app.js does what it does after a reconnect),
and a JSON client gets `stream.missed`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from inbox import metrics
from inbox.events import (
    AlertDismissed,
    AlertRaised,
    Bus,
    BusReconnected,
    CampaignProgressed,
    CaseEventChanged,
    ConsentChanged,
    ConversationRead,
    Event,
    Lagged,
    MediaChanged,
    MessageLinksChanged,
    MessageReceived,
    MessageSent,
    MessageStatusChanged,
    SessionEnded,
    SessionsEnded,
    SurveyAnswered,
    describe,
)
from inbox.models import Campaign, Case, ClientPhone, ConsentEvent, Conversation, Message, MessagePurpose, Role
from inbox.services import alerts, campaigns, case_events, consent, event_log, surveys, visibility
from inbox.services.conversations import (
    MESSAGE_VIEW_RELATIONS,
    STAFF_TITLE,
    ConversationRow,
    last_texts,
    staff_with_mobile,
    title_for,
    unread_counts,
)
from inbox.services.delivery_rules import OutboxRules
from inbox.web import templates

log = logging.getLogger(__name__)

TAB_QUEUE_SIZE = 200
# How often each process prunes the event log (it keeps event_log.KEEP).
PRUNE_SECONDS = 600

# A campaign's open pages get its panes (progress; a survey's results) at most this often (seconds), however
# many texts move or replies arrive meanwhile.
CAMPAIGN_INTERVAL = 0.5


@dataclass(frozen=True)
class CampaignPane:
    """One fragment of a campaign's pages that follows its texts and replies: rendered once per flush, for the
    managers' tabs showing the campaign. `load` gives the template's context for the campaign, or None when
    the campaign has no such pane (the results of a campaign that asks nothing)."""

    template: str
    load: Callable[[Bus, int], Awaitable[dict[str, object] | None]]


async def _progress_context(bus: Bus, campaign_id: int) -> dict[str, object] | None:
    return {"progress": await campaigns.progress(campaign_id), "oob": True}


async def _results_context(bus: Bus, campaign_id: int) -> dict[str, object] | None:
    campaign = await Campaign.get_or_none(id=campaign_id)
    if campaign is None or not campaign.answer_options:
        return None
    return {"results": await surveys.results_of(campaign), "oob": True}


CAMPAIGN_PANES: list[CampaignPane] = [
    CampaignPane("campaigns/_progress.html", _progress_context),
    CampaignPane("campaigns/results_body.html", _results_context),
]


@dataclass(frozen=True)
class Shows:
    """What an HTML tab's page shows, as its stream's query said (/events?page=1&list=1&thread=12…: base.html
    adds `page=1`, each page its `live_shows` block).

    Only a hint for filtering the busiest events (a campaign's texts): never a permission — whom an event may
    reach is decided as for any tab. A page that lies about what it shows only misses its own updates."""

    threads: frozenset[int] = frozenset()
    cases: frozenset[int] = frozenset()
    clients: frozenset[int] = frozenset()
    campaigns: frozenset[int] = frozenset()
    conversation_list: bool = False
    queue: bool = False

    def campaign_text(self, message: Message, case_ids: frozenset[int], client_ids: frozenset[int]) -> bool:
        """Whether a campaign text's bubble or status line is on this page: its thread, its case's or client's
        SMS log, or the queue."""
        return (
            message.conversation_id in self.threads
            or self.queue
            or not self.cases.isdisjoint(case_ids)
            or not self.clients.isdisjoint(client_ids)
        )


@dataclass(frozen=True)
class Delivery:
    """One server-sent event, for every tab that is to get it: the same object, encoded once."""

    event: str
    data: str
    seq: int | None = None  # the event's id (event log), sent as the `id:` line: API streams only

    @cached_property
    def frame(self) -> bytes:
        """The event as the stream writes it (`data` split into lines as EventSource joins them back)."""
        lines = [f"event: {self.event}"]
        if self.seq is not None:
            lines.append(f"id: {self.seq}")
        lines += [f"data: {line}" for line in LINE_BREAK.split(self.data)]
        return ("\n".join(lines) + "\n\n").encode()


# What EventSource takes for the end of a line (str.splitlines would also split on U+2028 and others).
LINE_BREAK = re.compile(r"\r\n|\r|\n")
# A comment line: it keeps proxies and load balancers from closing an idle stream. One heartbeat for all.
PING_FRAME = b": ping\n\n"
PING_SECONDS = 15
NOTHING = Delivery("update", "")


def json_delivery(event: Event) -> Delivery:
    """The event as API streams get it, with its id."""
    return Delivery(event.name, json.dumps(describe(event)), event.seq)


class TabQueue:
    """A tab's deliveries waiting to be written, bounded: the few methods of asyncio.Queue the hub and its readers
    use, in a fraction of its memory (a list and one waiter, for one reader), and a ping that wakes the stream
    without taking a place in the queue."""

    __slots__ = ("_items", "_pinged", "_waiter", "maxsize")

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize  # 0: unbounded
        self._items: list[Delivery | None] = []
        self._waiter: asyncio.Future[None] | None = None
        self._pinged = False

    def put_nowait(self, item: Delivery | None) -> None:
        if not self.offer(item):
            raise asyncio.QueueFull

    def offer(self, item: Delivery | None) -> bool:
        """Queues the item unless the queue is full (False): what the hub does once per tab for every event."""
        items = self._items
        if self.maxsize and len(items) >= self.maxsize:
            return False
        items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    def get_nowait(self) -> Delivery | None:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    async def get(self) -> Delivery | None:
        while not self._items:
            await self._wait()
        return self._items.pop(0)

    def ping(self) -> None:
        self._pinged = True
        self._wake()

    async def next_frame(self) -> Delivery | bytes | None:
        """For the stream: the next delivery (None: end the stream), or the heartbeat's comment when it is due."""
        while not self._items and not self._pinged:
            await self._wait()
        if self._items:
            return self._items.pop(0)
        self._pinged = False
        return PING_FRAME

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


# Told to a tab that may have missed an event the hub could not deliver. (An SSE event needs data to
# be dispatched at all.)
REFRESH = Delivery("refresh", "Re-fetch what you show: an update could not be delivered.")
MISSED = Delivery("stream.missed", json.dumps({"type": "stream.missed"}))
# Told to a page whose sign-in has ended (signed out elsewhere, a password change, deactivation) just before
# its stream closes: the page says so and stops reconnecting (base.html's sse-close), rather than look alive
# while every retry meets the sign-in page.
SIGNED_OUT = Delivery("signed-out", "Your sign-in has ended.")


@dataclass(eq=False, slots=True)
class Tab:
    staff_id: int
    sees_everything: bool
    kind: Literal["html", "json"] = "html"
    session_id: str | None = None  # the sign-in that opened it (HTML tabs)
    # What its page shows; None: not said (an API stream, a bare /events): every event it may see.
    shows: Shows | None = None
    queue: TabQueue = field(default_factory=lambda: TabQueue(TAB_QUEUE_SIZE))

    @property
    def reader(self) -> Reader:
        """Whose tab it is, as far as what it may be sent goes: every tab of one reader gets the same."""
        return (self.staff_id, self.sees_everything, self.kind)

    def push(self, delivery: Delivery) -> bool:
        return self.queue.offer(delivery)

    def close(self, last: Delivery | None = None) -> None:
        """Ends the stream, after `last` if given; the browser reconnects and re-fetches what it shows (catch-up)."""
        while not self.queue.empty():
            self.queue.get_nowait()
        if last is not None:
            self.queue.put_nowait(last)
        self.queue.put_nowait(None)

    def sign_out(self) -> None:
        """Ends the stream of a sign-in that has ended; a page is told why first (an API client just sees the end)."""
        self.close(SIGNED_OUT if self.kind == "html" else None)


# (staff id, sees everything, kind): the tabs of one reader get the same deliveries.
Reader = tuple[int, bool, str]


@dataclass
class Audience:
    tabs: list[Tab]
    assigned: dict[int, visibility.AssignedReader]  # everyone currently assigned to the number
    owner_id: int | None = None  # the staff member whose own mobile the number is (their reminders)
    # The same tabs, one list per reader (LiveHub._audience): what is worked out per reader is done once for each.
    groups: list[list[Tab]] = field(default_factory=list)

    def may_see(self, tab: Tab) -> bool:
        return self.reader_may_see(tab.staff_id, tab.sees_everything)

    def reader_may_see(self, staff_id: int, sees_everything: bool) -> bool:
        reader = self.assigned.get(staff_id)
        mine = staff_id == self.owner_id
        return sees_everything or mine or (reader is not None and reader.role == Role.ADVOCATE)

    def readable_clients(self, tab: Tab) -> frozenset[int] | None:
        """None: every client on the number; else only those on the reader's current cases."""
        if tab.sees_everything:
            return None
        reader = self.assigned.get(tab.staff_id)
        return reader.client_ids if reader else frozenset()


def visible_links(message: Message, readable_clients: frozenset[int] | None) -> frozenset[int] | None:
    """The linked cases a reader may see; None when that is all of them (the common, shared view)."""
    if readable_clients is None:
        return None
    linked = {link.case_id: link.case.client_id for link in message.links}
    visible = frozenset(case_id for case_id, client_id in linked.items() if client_id in readable_clients)
    return None if len(visible) == len(linked) else visible


def _may_show_campaign_text(shows: Shows, event: MessageStatusChanged) -> bool:
    """Whether a page might show a campaign text, judged from the event alone (no query): a page showing a
    client may show it too, which takes the text's cases to tell."""
    return (
        event.conversation_id in shows.threads
        or shows.queue
        or bool(shows.clients)
        or not shows.cases.isdisjoint(event.case_ids)
    )


def handed_over(event: Event) -> bool:
    """A scheduled text has left the schedule (sent on its way, or canceled): it leaves the thread's scheduled
    strip for the history (oob/message_status.html). Said by the event: the text as loaded now may have moved on."""
    return isinstance(event, MessageStatusChanged) and event.from_schedule


def render_fragment(name: str, **context: object) -> str:
    return templates.get_template(name).render(**context)


class LiveHub:
    def __init__(self, bus: Bus, outbox_rules: OutboxRules | None = None) -> None:
        self.bus = bus
        self.outbox_rules = outbox_rules  # status lines say "attempt 2 of 6" and when a text is stuck
        self.tabs: set[Tab] = set()
        # The same tabs by reader, kept as they attach and detach: an event's audience is decided per reader, not
        # per tab (10,000 tabs are a few dozen readers).
        self._readers: dict[Reader, dict[Tab, None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.campaign_panes = CAMPAIGN_PANES
        self.campaign_interval = CAMPAIGN_INTERVAL
        self._campaign_flushes: dict[int, asyncio.Task[None]] = {}  # campaigns with a render planned
        self._campaign_shown: dict[int, float] = {}  # loop time of each campaign's last render
        self._chores: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ping_seconds: float = PING_SECONDS

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="live-hub")
        self._chores = [
            asyncio.create_task(self._heartbeat(), name="live-heartbeat"),
            asyncio.create_task(self._prune_event_log(), name="live-event-log-pruning"),
        ]
        await self._ready.wait()

    async def stop(self) -> None:
        for flush in list(self._campaign_flushes.values()):
            flush.cancel()
        for tab in list(self.tabs):
            tab.close()
        for task in [*self._chores, *([self._task] if self._task else [])]:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _heartbeat(self) -> None:
        """One timer for every open stream (not one per response): each is woken to write a comment line."""
        while True:
            await asyncio.sleep(self.ping_seconds)
            self.beat()

    def server_stopping(self) -> None:
        """The server was told to stop (SIGTERM, Ctrl-C): it waits for open responses, so end every stream now
        (clients reconnect to another process, or to this one restarted). Safe from a signal handler."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._close_all)

    def _close_all(self) -> None:
        for tab in list(self.tabs):
            tab.close()

    def beat(self) -> None:
        for tab in list(self.tabs):
            tab.queue.ping()

    async def _prune_event_log(self) -> None:
        """Every process prunes (deleting what another has deleted is harmless): no one process must be up."""
        while True:
            try:
                await event_log.prune()
            except Exception:  # the database briefly away: try again next time
                log.exception("Could not prune the event log")
            await asyncio.sleep(PRUNE_SECONDS)

    async def replay(self, tab: Tab, events: AsyncIterator[Event]) -> AsyncIterator[Delivery]:
        """What `tab` would have been sent of these (logged) events, in order: each is delivered as live to a
        stand-in tab of the same reader, by the same rules, so replay can never show more than live would."""
        stand_in = Tab(staff_id=tab.staff_id, sees_everything=tab.sees_everything, kind=tab.kind, queue=TabQueue())
        replayer = _Replayer(self.bus, self.outbox_rules)
        replayer._add(stand_in)  # not attach: it is no open stream
        async for event in events:
            if isinstance(event, SessionEnded | SessionsEnded):
                continue  # ended other streams back then; says nothing to this one
            try:
                await replayer.deliver(event)
            except Exception:
                log.exception("Could not replay %s; the stream is told it missed something", event.name)
                stand_in.queue.put_nowait(MISSED)
            while not stand_in.queue.empty():
                delivery = stand_in.queue.get_nowait()
                if delivery is not None:
                    yield delivery

    def attach(self, tab: Tab) -> None:
        self._add(tab)
        metrics.open_streams(len(self.tabs))

    def _add(self, tab: Tab) -> None:
        self.tabs.add(tab)
        self._readers.setdefault(tab.reader, {})[tab] = None

    def detach(self, tab: Tab) -> None:
        self.tabs.discard(tab)
        group = self._readers.get(tab.reader)
        if group is not None:
            group.pop(tab, None)
            if not group:
                del self._readers[tab.reader]
        metrics.open_streams(len(self.tabs))

    async def _run(self) -> None:
        async with self.bus.subscribe() as subscription:
            self._ready.set()
            async for event in subscription:
                try:
                    await self.deliver(event)
                    metrics.delivered(event, event.name, len(self.tabs))
                except Exception:  # one bad event must not stop every live update, nor go missing unnoticed
                    log.exception("Could not deliver %s; the tabs that may need it will catch up", event.name)
                    self.catch_up(self._tabs_that_may_need(event))

    async def deliver(self, event: Event) -> None:
        if isinstance(event, Lagged):
            for tab in list(self.tabs):
                tab.close()
            return
        if isinstance(event, BusReconnected):  # the bus was down: anything published meanwhile is lost
            self.catch_up(list(self.tabs))
            return
        if not self.tabs:
            return
        if isinstance(event, CampaignProgressed):
            self._campaign_moved(event.campaign_id)
        elif isinstance(event, MessageStatusChanged) and event.campaign_id is not None:
            self._campaign_moved(event.campaign_id)
            await self._deliver_campaign_text(event)
        elif isinstance(event, (MessageReceived, MessageSent, MessageStatusChanged)):
            await self._deliver_message_event(event)
        elif isinstance(event, (MessageLinksChanged, MediaChanged)):
            await self._deliver_bubble(event)
        elif isinstance(event, (AlertRaised, AlertDismissed)):
            await self._deliver_alert(event)
        elif isinstance(event, ConversationRead):
            await self._deliver_read(event)
        elif isinstance(event, ConsentChanged):
            await self._deliver_consent(event)
        elif isinstance(event, CaseEventChanged):
            await self._deliver_case_events(event.case_id, event)
        elif isinstance(event, SurveyAnswered):
            self._survey_answered(event)
        elif isinstance(event, SessionEnded):
            self._end_sessions({event.session_id})
        elif isinstance(event, SessionsEnded):
            self._end_sessions(set(event.session_ids), staff_id=event.staff_id if event.every_stream else None)

    async def _deliver_message_event(self, event: MessageReceived | MessageSent | MessageStatusChanged) -> None:
        """A new text or a status: its bubble (or status line) and the conversation row; a case event's
        reminder that moves along its statuses also renews its case's events list (its status line)."""
        template = "oob/message_status.html" if isinstance(event, MessageStatusChanged) else "oob/message_new.html"
        message = await self._deliver_bubbles(event, template, with_rows=True)
        if (
            isinstance(event, MessageStatusChanged)
            and message is not None
            and message.purpose == MessagePurpose.EVENT_REMINDER
            and message.case_id is not None
        ):
            await self._deliver_case_events(message.case_id)

    async def _deliver_campaign_text(self, event: MessageStatusChanged) -> None:
        """One recipient's text of a campaign moved — thousands do while it drains (point 7: not one event per
        text to every tab). Its status line goes only to the pages that show that text, with no conversation
        row (a row shows nothing of a text's status); the campaign's pages get the throttled progress instead.
        API streams get every event they may see, as for any text (the contract)."""
        tabs = [t for t in self.tabs if t.kind == "json" or t.shows is None or _may_show_campaign_text(t.shows, event)]
        if not tabs:
            return  # the common case while a campaign drains: nothing is loaded or rendered
        await self._deliver_bubbles(event, "oob/message_status.html", with_rows=False, campaign_text=True)

    async def _deliver_bubble(self, event: MessageLinksChanged | MediaChanged) -> None:
        """A text's cases or attachments changed: its whole bubble again."""
        await self._deliver_bubbles(event, "oob/message_bubble.html", with_rows=False)

    async def _deliver_bubbles(
        self, event: Event, template: str, *, with_rows: bool, campaign_text: bool = False
    ) -> Message | None:
        """The text's bubble to the tabs that may see it (a campaign's text: those of them whose page shows it);
        the text (None when it is gone)."""
        message_id = event.message_id  # type: ignore[attr-defined]
        message = (
            await Message.get_or_none(id=message_id)
            .select_related("conversation")
            .prefetch_related(*MESSAGE_VIEW_RELATIONS)
        )
        if message is None:
            return None
        audience = await self._audience(message.conversation.phone)
        if not audience.tabs:
            return message
        rows = await self._rows(message.conversation, audience) if with_rows else {}
        as_json = json_delivery(event)
        bubbles: dict[frozenset[int] | None, str] = {}
        # One delivery per distinct (bubble, row): the same object, encoded once, for every tab that gets it.
        updates: dict[tuple[str, str], Delivery] = {}
        by_reader: dict[int, Delivery] = {}  # a reader's tabs all get the same: worked out once per reader
        case_ids = frozenset(link.case_id for link in message.links) | frozenset(getattr(event, "case_ids", ()))
        client_ids = frozenset(link.case.client_id for link in message.links)
        for group in audience.groups:  # one reader's tabs: everything but the pushes is done once per group
            tab = group[0]
            if tab.kind == "json":
                self._push_all(group, as_json)
                continue
            if campaign_text:
                group = [t for t in group if t.shows is None or t.shows.campaign_text(message, case_ids, client_ids)]
                if not group:
                    continue
            delivery = by_reader.get(tab.staff_id)
            if delivery is None:
                # The cases a text is filed on may include another client's (a shared phone): each
                # distinct set of cases a reader may see is one view, rendered once.
                view = visible_links(message, audience.readable_clients(tab))
                if view not in bubbles:
                    bubbles[view] = render_fragment(
                        template,
                        message=message,
                        visible_cases=view,
                        outbox_rules=self.outbox_rules,
                        handed_over=handed_over(event),
                    )
                parts = (bubbles[view], rows.get(tab.staff_id, ""))
                if parts not in updates:
                    updates[parts] = Delivery("update", "".join(parts))
                delivery = by_reader[tab.staff_id] = updates[parts]
            self._push_all(group, delivery)
        return message

    # ------------------------------------------------------------ campaigns: coalesced, at most every interval

    def _campaign_moved(self, campaign_id: int) -> None:
        """Mark the campaign dirty: its panes are rendered once the interval since the last delivery has passed,
        showing everything that moved meanwhile (point 7: not one update per text to every tab)."""
        if campaign_id in self._campaign_flushes:
            return  # a render is planned: it will show this change too
        self._campaign_flushes[campaign_id] = asyncio.create_task(
            self._flush_campaign(campaign_id), name=f"live-campaign-{campaign_id}"
        )

    async def _flush_campaign(self, campaign_id: int) -> None:
        loop = asyncio.get_running_loop()
        # `_campaign_shown` is when the last render began, then when it was delivered: a render planned while
        # another is under way waits for the interval after that one reached the tabs.
        while (wait := self._campaign_shown.get(campaign_id, -1e9) + self.campaign_interval - loop.time()) > 0:  # noqa: ASYNC110 (a deadline that moves, not an event)
            await asyncio.sleep(wait)
        # No longer planned before loading: a text that moves while this renders plans the next render.
        self._campaign_flushes.pop(campaign_id, None)
        self._campaign_shown[campaign_id] = loop.time()
        try:
            await self._render_campaign(campaign_id)
        finally:
            self._campaign_shown[campaign_id] = loop.time()

    def _survey_answered(self, event: SurveyAnswered) -> None:
        """A reply counted in a survey: managers' API streams get the event; the results pane follows with the
        campaign's next throttled render (a burst of replies is one render)."""
        as_json = json_delivery(event)
        for tab in [t for t in self.tabs if t.kind == "json" and t.sees_everything]:
            self._push(tab, as_json)
        self._campaign_moved(event.campaign_id)

    async def _render_campaign(self, campaign_id: int) -> None:
        """The campaign's panes, rendered once, to the managers' tabs showing it (they alone may see campaigns)."""
        tabs = [
            t
            for t in self.tabs
            if t.kind == "html" and t.sees_everything and (t.shows is None or campaign_id in t.shows.campaigns)
        ]
        if not tabs:
            return
        try:
            contexts = [(pane.template, await pane.load(self.bus, campaign_id)) for pane in self.campaign_panes]
            html = "".join(render_fragment(name, **context) for name, context in contexts if context is not None)
        except Exception:
            log.exception("Could not render campaign %s's progress; its pages will catch up", campaign_id)
            self.catch_up(tabs)
            return
        update = Delivery("update", html)
        for tab in tabs:
            self._push(tab, update)

    async def _deliver_alert(self, event: AlertRaised | AlertDismissed) -> None:
        """An alert reaches whom it is addressed to (while they may see its case), and supervisors
        and admins; no one else — not even other advocates on the case.

        The fragments follow the alert as it is now, not the event: a row for an open alert, none
        for a dismissed one, so a raise and a quick dismissal can arrive in any order.
        """
        alert = await alerts.alert_with_view(event.alert_id)
        if alert is None:
            return
        addressed = await alerts.addressees_who_see(alert)
        tabs = [t for t in self.tabs if t.sees_everything or t.staff_id in addressed]
        html_tabs = [t for t in tabs if t.kind == "html"]
        as_json = json_delivery(event)
        for tab in tabs:
            if tab.kind == "json":
                self._push(tab, as_json)
        if not html_tabs:
            return
        row = render_fragment("oob/alert_row.html", alert=alert)
        office = ""
        if any(t.sees_everything for t in html_tabs):
            # The dashboard is the same for every supervisor: the alert's office section, rendered once.
            sections = await alerts.dashboard(office=alerts.office_key(alert.case.office_id))
            office = "".join(render_fragment("oob/alert_office.html", section=section) for section in sections)
        badges = await self._badges(html_tabs)
        updates: dict[tuple[bool, str], Delivery] = {}
        for tab in html_tabs:
            key = (tab.sees_everything, badges[tab.staff_id])
            if key not in updates:
                updates[key] = Delivery("update", row + (office if tab.sees_everything else "") + key[1])
            self._push(tab, updates[key])

    async def _deliver_consent(self, event: ConsentChanged) -> None:
        """A number's consent changed: a notice in its open threads and its records' consent blocks
        renewed, for tabs that may see the number. A change to one client's record (staff, API,
        import) shows only to readers of that client; the client's own STOP or START to everyone."""
        audience = await self._audience(event.phone)
        if not audience.tabs:
            return
        rows = await ConsentEvent.filter(id__in=event.consent_event_ids).prefetch_related("client_phone", "staff")
        notices = consent.notices_of(rows)
        lines: dict[int, list[consent.LedgerLine]] = {}
        for row in sorted(rows, key=lambda r: (r.at, r.id), reverse=True):
            if row.client_phone_id is not None:
                lines.setdefault(row.client_phone_id, []).append(consent.ledger_line(row))
        phones = await ClientPhone.filter(number=event.phone).order_by("id")
        views = await consent.phone_consents(phones)
        as_json = json_delivery(event)
        # The same for every reader: it speaks of the number, not of any one client.
        refusal = await consent.refusal_at_send_to(event.phone)
        rendered: dict[frozenset[int] | None, Delivery] = {}
        for tab in audience.tabs:
            if tab.kind == "json":
                self._push(tab, as_json)
                continue
            readable = audience.readable_clients(tab)
            if readable not in rendered:
                rendered[readable] = Delivery("update", render_fragment(
                    "oob/consent_changed.html",
                    notices=[n for n in notices if n.visible_to(readable)],
                    conversation_ids=event.conversation_ids,
                    phones=[views[p.id] for p in phones if readable is None or p.client_id in readable],
                    lines=lines,
                    refusal=refusal,
                ))  # fmt: skip
            self._push(tab, rendered[readable])

    async def _deliver_case_events(self, case_id: int, event: CaseEventChanged | None = None) -> None:
        """A case's events list as it is now, to the tabs that may see the case (its client's assignees,
        supervisors and admins); the case page swaps it in. The list is the same for every reader, so it is
        rendered once. Given the event, API streams that may see the case get it too."""
        case = await Case.get_or_none(id=case_id)
        tabs = [t for t in self.tabs if event is not None or t.kind == "html"]
        if case is None or not tabs:
            return
        readers = (
            await visibility.staff_who_see_client(case.client_id) if any(not t.sees_everything for t in tabs) else set()
        )
        tabs = [t for t in tabs if t.sees_everything or t.staff_id in readers]
        if event is not None:
            as_json = json_delivery(event)
            for tab in tabs:
                if tab.kind == "json":
                    self._push(tab, as_json)
        html_tabs = [t for t in tabs if t.kind == "html"]
        if not html_tabs:
            return
        events = await case_events.events_of_this_case(case.id)
        # Shared by every reader's tab, so it carries no CSRF token: static/app.js fills each form's in from the page.
        fragment = render_fragment(
            "oob/case_events.html", case=case, events=[case_events.shown(e) for e in events], csrf_token=""
        )
        update = Delivery("update", fragment)
        for tab in html_tabs:
            self._push(tab, update)

    async def _badges(self, tabs: list[Tab]) -> dict[int, str]:
        """Each reader's header badge: the counts in one go, one render per distinct count."""
        counts, total = await alerts.open_alert_counts(
            [t.staff_id for t in tabs if not t.sees_everything], everything=any(t.sees_everything for t in tabs)
        )
        rendered: dict[int, str] = {}
        by_reader: dict[int, str] = {}
        for tab in tabs:
            count = (total if tab.sees_everything else counts.get(tab.staff_id)) or 0
            if count not in rendered:
                rendered[count] = render_fragment("oob/alert_badge.html", alert_count=count)
            by_reader[tab.staff_id] = rendered[count]
        return by_reader

    async def _audience(self, phone: str) -> Audience:
        # The tabs open when the event came (a copy: a tab that falls behind is detached while its group is pushed).
        readers = [(reader, list(group)) for reader, group in self._readers.items()]
        needs_lookup = any(not sees or kind == "html" for (_, sees, kind), _ in readers)
        assigned = await visibility.staff_assigned_to_phone(phone) if needs_lookup else {}
        # A number no one is assigned to may be a staff member's own mobile, which they see (visibility.py).
        owner = await staff_with_mobile(phone) if needs_lookup and not assigned else None
        audience = Audience(tabs=[], assigned=assigned, owner_id=owner.id if owner else None)
        for (staff_id, sees_everything, _), group in readers:  # one answer per reader, however many tabs they have
            if audience.reader_may_see(staff_id, sees_everything):
                audience.groups.append(group)
                audience.tabs.extend(group)
        return audience

    async def _rows(self, conversation: Conversation, audience: Audience) -> dict[int, str]:
        """The conversation row for each reader, rendered once per distinct view.

        A view is (unread count, mine, the client names this reader may see): several clients can
        share a number, and an advocate must not learn the names of clients who are not theirs.
        """
        readers = {t.staff_id: t for t in audience.tabs if t.kind == "html"}
        if not readers:
            return {}
        clients = (
            await ClientPhone.filter(number=conversation.phone)
            .order_by("client_id")
            .values_list("client_id", "client__name")
        )
        # A number on no client record may be a staff member's own mobile: titled as theirs (one query, only then).
        owner = None if clients else await staff_with_mobile(conversation.phone)
        unread = await unread_counts(sorted(readers), conversation.id)
        # The latest text says "You:" to whoever wrote it and their first name to everyone else: two views at most.
        last = (await last_texts([conversation.id])).get(conversation.id)
        rendered: dict[tuple[int, bool, tuple[str, ...], bool], str] = {}
        by_reader: dict[int, str] = {}
        for staff_id, tab in readers.items():
            readable = audience.readable_clients(tab)
            names = tuple(dict.fromkeys(name for cid, name in clients if readable is None or cid in readable))
            key = (
                unread.get(staff_id, 0),
                staff_id in audience.assigned,
                names,
                last is not None and last.sender_id == staff_id,
            )
            if key not in rendered:
                title = title_for(conversation.phone, [f"{STAFF_TITLE}{owner.name}"] if owner else list(names))
                matched = bool(clients) or owner is not None
                row = ConversationRow(conversation, title, key[0], matched, key[1], last=last, yours=key[3])
                rendered[key] = render_fragment("oob/conversation_row.html", row=row)
            by_reader[staff_id] = rendered[key]
        return by_reader

    async def _deliver_read(self, event: ConversationRead) -> None:
        tabs = [t for t in self.tabs if t.staff_id == event.staff_id and t.kind == "html"]
        conversation = await Conversation.get_or_none(id=event.conversation_id)
        if not tabs or conversation is None:
            return
        audience = Audience(tabs=tabs, assigned=await visibility.staff_assigned_to_phone(conversation.phone))
        rows = await self._rows(conversation, audience)
        updates = {staff_id: Delivery("update", row) for staff_id, row in rows.items()}
        for tab in tabs:
            self._push(tab, updates.get(tab.staff_id, NOTHING))

    def _tabs_that_may_need(self, event: Event) -> list[Tab]:
        """Whom an undelivered event might have concerned, decided without the database (which may be
        what failed): a read concerns its reader's own tabs, anything else may concern every tab."""
        if isinstance(event, ConversationRead):
            return [t for t in self.tabs if t.staff_id == event.staff_id and t.kind == "html"]
        if isinstance(event, SessionEnded | SessionsEnded):
            return []
        return list(self.tabs)

    def catch_up(self, tabs: list[Tab]) -> None:
        """Tell each tab to re-fetch what it shows: it carries no content, so any tab may be told."""
        for tab in tabs:
            self._push(tab, REFRESH if tab.kind == "html" else MISSED)

    def _end_sessions(self, session_ids: set[str], staff_id: int | None = None) -> None:
        """Closes the streams those sessions opened; given a staff member, every stream of theirs."""
        for tab in [t for t in self.tabs if t.session_id in session_ids or t.staff_id == staff_id]:
            tab.sign_out()
            self.detach(tab)

    def _push(self, tab: Tab, delivery: Delivery) -> None:
        if not tab.push(delivery):
            self._fell_behind(tab)

    def _push_all(self, tabs: list[Tab], delivery: Delivery) -> None:
        """The same delivery to many tabs (one reader's): a queue append and a wake-up each, no more."""
        for tab in [t for t in tabs if not t.queue.offer(delivery)]:
            self._fell_behind(tab)

    def _fell_behind(self, tab: Tab) -> None:
        log.warning("A tab fell behind; closing its stream so it reconnects and catches up")
        tab.close()
        self.detach(tab)


class _Replayer(LiveHub):
    """The hub's delivery rules for one stand-in tab, over logged events: a campaign's panes are for pages (live
    only), so nothing is planned for them."""

    def _campaign_moved(self, campaign_id: int) -> None:
        pass
