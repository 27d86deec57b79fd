"""The outbox: every text we send — by hand, scheduled, automatic, a keyword's answer, a retry — is a
Message row that is also its own job.

    scheduled/queued · waiting ──claim──▶ queued · sending (a worker's lease) ──Twilio──▶ accepted (SID)
                        ▲                        │  429 / 5xx / no connection / timeout
                        └──── retrying ◀─────────┘  (refusals, and giving up: failed with the reason)

`status` keeps Twilio's words; `outbox_state` says what the outbox is doing (None once it is done).

Claiming holds with any number of workers: `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL (workers
skip each other's rows instead of queueing behind them), and on both databases a conditional UPDATE
that only one claimant can win. In the same transaction, and only then, the text's consent and quiet
hours are decided: a STOP committed before that moment wins and the text is canceled with the reason.
The channel's pace is reserved there too (GCRA, shared through the database by every worker).

The provider call happens after that transaction commits, under the lease, which is renewed just before
the call only if this claim still holds the text (the attempt number fences a claim: a lane slowed past
its lease never sends what was recovered meanwhile). A call whose outcome is
unknown (a timeout, a worker killed mid-call whose lease then expired) is never simply repeated:
Twilio is asked first whether it has the text, and its SID is adopted when it does.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from inbox import clock, metrics
from inbox.models import (
    AttemptOutcome,
    Channel,
    Direction,
    Message,
    MessageStatus,
    MessageStatusEvent,
    OutboxState,
    SendAttempt,
)
from inbox.services import campaigns, consent, media, quiet_hours
from inbox.services.limits import clip
from inbox.services.messaging import (
    Outbox,
    apply_early_callbacks,
    mark_failed,
    status_changed,
    status_word,
)
from inbox.services.providers import ChannelNotReady
from inbox.services.unit_of_work import current_unit, unit_of_work
from inbox.sms.base import OutboundText, ProviderRejected, ProviderUnavailable, SendResult

log = logging.getLogger(__name__)

CLAIMABLE = (OutboxState.WAITING, OutboxState.RETRYING)
IN_THE_OUTBOX = (OutboxState.WAITING, OutboxState.SENDING, OutboxState.RETRYING)
# Candidates read per claim round (SQLite, where claims race by conditional UPDATE).
CANDIDATES = 20
# A look-up searches from a little before the first attempt: clocks differ.
LOOK_UP_MARGIN = timedelta(minutes=1)
# What a text's attempts say when the worker sending it stopped mid-call (or a person retried it then).
RECOVERED_DETAIL = "The worker sending it stopped before Twilio answered; Twilio is asked before it is sent again."


def worker_name(role: str = "worker") -> str:
    """Who holds a lease: host, process and a random tag (a restarted process is someone else)."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Claimed:
    """A text this worker holds under its lease, ready to hand over."""

    message: Message
    channel: Channel
    look_up_first: bool  # the last attempt's outcome is unknown: ask Twilio before sending again
    at: datetime  # the moment the claim was judged at: now, or the moved clock `claim_next(now=…)` was given
    _taken: float = field(default_factory=time.monotonic, init=False, compare=False, repr=False)

    def now(self) -> datetime:
        """The claim's clock run on by the time spent since: the attempt's outcome, its Retry-After and its
        backoff are counted on the clock the claim was judged by (a test that moves the clock moves them)."""
        return self.at + timedelta(seconds=time.monotonic() - self._taken)


@dataclass(frozen=True)
class Idle:
    """Nothing could be claimed; `until`: when a paced channel frees (None: nothing due but new work)."""

    until: datetime | None = None


# ---------------------------------------------------------------- claiming


def due(now: datetime) -> Q:
    """Rows a worker may claim: waiting or retrying and due, or held under a lease that expired."""
    return Q(outbox_state__in=list(CLAIMABLE), next_attempt_at__lte=now) | Q(
        outbox_state=OutboxState.SENDING, lease_expires_at__lt=now
    )


async def busy_channels(outbox: Outbox, now: datetime) -> dict[int, datetime]:
    """Channels ahead of their pace, and when each may send again."""
    return await outbox.pacer.busy(outbox.rules, now)


async def claim_next(outbox: Outbox, now: datetime | None = None, message_id: int | None = None) -> Claimed | Idle:
    """Claim the next due text (or the one named) for this worker, deciding consent, quiet hours and
    pace as it is claimed. Texts canceled or held on the way are skipped."""
    moment = (now or clock.now()).astimezone(UTC)
    for _ in range(CANDIDATES * 5):  # texts canceled or held on the way do not end the round
        busy = await busy_channels(outbox, moment)
        query = Message.filter(due(moment))
        if message_id is not None:
            query = query.filter(id=message_id)
        if busy:
            query = query.exclude(conversation__channel_id__in=list(busy))
        outcome = await _claim_one(outbox, query, moment)
        if outcome is None:
            return Idle(min(busy.values()) if busy else None)
        if isinstance(outcome, Claimed):
            return outcome
        if message_id is not None:
            return Idle()
    return Idle()


class _Skipped:
    """A text claimed and then canceled, held for quiet hours, or left for a busy channel."""


SKIPPED = _Skipped()


async def _claim_one(outbox: Outbox, query: QuerySet[Message], now: datetime) -> Claimed | _Skipped | None:
    """One claim in its own transaction; None when nothing is due."""
    ordered = query.order_by("next_attempt_at", "id")
    if Message._meta.db.capabilities.dialect == "postgres":
        async with unit_of_work(outbox.bus):
            row = await ordered.select_for_update(skip_locked=True, of=("message",)).first()
            if row is None:
                return None
            await _take(row, outbox, now)
            return await _decide(outbox, row, now)
    # SQLite: candidates first, then a transaction that begins with the conditional UPDATE (a write
    # first, so a second process never has to upgrade a read lock).
    candidates = await ordered.limit(CANDIDATES)
    if not candidates:
        return None
    for row in candidates:
        async with unit_of_work(outbox.bus):
            if not await _take(row, outbox, now):
                continue
            return await _decide(outbox, row, now)
    return SKIPPED


async def _take(row: Message, outbox: Outbox, now: datetime) -> bool:
    """The conditional UPDATE only one claimant wins: the row becomes this worker's, under a lease."""
    won = await Message.filter(due(now), id=row.id).update(
        outbox_state=OutboxState.SENDING,
        lease_owner=outbox.worker_id,
        lease_expires_at=now + outbox.rules.lease,
    )
    return bool(won)


async def _decide(outbox: Outbox, before: Message, now: datetime) -> Claimed | _Skipped:
    """Inside the claim's transaction: may it leave now? Canceled (no consent), held (quiet hours,
    a busy channel) or marked for sending with its pace reserved."""
    message = await Message.get(id=before.id)
    recovered = before.outbox_state == OutboxState.SENDING  # its worker's lease expired mid-call
    if recovered:
        await _note_recovered(message, before.lease_owner or "", now)
    refusal = await consent.refusal_at_send(message)
    if refusal is not None:
        await _cancel_claimed(message, f"Not sent: {refusal}", now)
        return SKIPPED
    if message.send_at is not None:  # scheduled texts respect the client's quiet hours, retries too
        hold = await quiet_hours.note_hold(message, now)
        if hold is not None:
            await _release(message, before, hold.until)
            current_unit().publish(status_changed(message))
            return SKIPPED
        if message.error_message and quiet_hours.is_hold_note(message.error_message):
            await quiet_hours.save_note(message, None)
    channel = await Channel.get(id=(await message.conversation).channel_id)
    if not await outbox.pacer.reserve(outbox.rules, channel, message.segments, now):
        await _release(message, before, before.next_attempt_at or now)
        return SKIPPED
    await _mark_sending(message, now, unknown=recovered or message.outcome_unknown)
    return Claimed(message, channel, look_up_first=message.outcome_unknown, at=now)


async def _mark_sending(message: Message, now: datetime, unknown: bool) -> None:
    fields = {
        "attempt_count": message.attempt_count + 1,
        "first_attempt_at": message.first_attempt_at or now,
        "outcome_unknown": unknown,
    }
    from_schedule = message.status == MessageStatus.SCHEDULED
    if from_schedule:
        fields["status"] = MessageStatus.QUEUED
        await MessageStatusEvent.create(message_id=message.id, status=MessageStatus.QUEUED, at=now)
    await Message.filter(id=message.id).update(**fields)
    await message.refresh_from_db()
    current_unit().publish(status_changed(message, from_schedule=from_schedule))


async def _release(message: Message, before: Message, next_attempt_at: datetime) -> None:
    """Back to where it was, due later: the claim is given up without an attempt. A text recovered from a
    worker that stopped mid-call keeps its unknown outcome: it leaves `sending` here, so the next claim
    would not see it was recovered, and it must still be looked up at Twilio before it goes."""
    state = before.outbox_state if before.outbox_state in CLAIMABLE else OutboxState.RETRYING
    await Message.filter(id=message.id).update(
        outbox_state=state,
        next_attempt_at=next_attempt_at,
        lease_owner=None,
        lease_expires_at=None,
        outcome_unknown=message.outcome_unknown,
    )


async def _note_recovered(message: Message, owner: str, now: datetime) -> None:
    await SendAttempt.create(
        message_id=message.id,
        at=now,
        outcome=AttemptOutcome.UNKNOWN,
        detail=RECOVERED_DETAIL,
        worker=clip(owner, SendAttempt, "worker") or "",
    )
    message.outcome_unknown = True


async def _cancel_claimed(message: Message, reason: str, now: datetime) -> None:
    await Message.filter(id=message.id).update(
        status=MessageStatus.CANCELED,
        outbox_state=None,
        next_attempt_at=None,
        lease_owner=None,
        lease_expires_at=None,
        error_message=clip(reason, Message, "error_message"),
    )
    await MessageStatusEvent.create(message_id=message.id, status=MessageStatus.CANCELED, at=now)
    await message.refresh_from_db()
    current_unit().publish(status_changed(message))
    await _left_the_outbox(message)


async def _left_the_outbox(message: Message) -> None:
    """Inside the unit of work that took the text out of the outbox: its campaign may now be finished."""
    if message.campaign_id is not None:
        await campaigns.finish_if_done(message.campaign_id)


# ---------------------------------------------------------------- handing over


async def deliver(outbox: Outbox, claimed: Claimed) -> Message:
    """The provider call for a claimed text, outside any transaction; its outcome stored and announced."""
    message, channel = claimed.message, claimed.channel
    try:
        provider = outbox.provider_for(channel)
    except ChannelNotReady as exc:
        return await _give_up(outbox, message, claimed.now(), None, str(exc), AttemptOutcome.FAILED)
    try:
        text = await outbound_text(outbox, message, channel)
    except ValueError:  # no signing key configured: Twilio could not fetch the attachment
        words = "The attachment could not be offered to Twilio (no secret key is set)."
        return await _give_up(outbox, message, claimed.now(), None, words, None)
    if claimed.look_up_first:
        since = (message.first_attempt_at or message.created_at) - LOOK_UP_MARGIN
        try:
            found = await metrics.provider_call("find_sent", provider.find_sent(text, since))
        except ProviderUnavailable as exc:
            return await _retry_later(outbox, message, claimed.now(), exc, looking_up=True)
        if found is not None:
            return await _accepted(outbox, message, claimed.now(), found, adopted=True)
    if not await _still_ours_to_send(outbox, claimed):
        return message
    try:
        result = await metrics.provider_call("send", provider.send(text))
    except ProviderRejected as exc:
        return await _refused(outbox, message, claimed.now(), exc)
    except ProviderUnavailable as exc:
        return await _retry_later(outbox, message, claimed.now(), exc)
    except Exception as exc:  # an unexpected failure mid-call: it may have reached Twilio
        log.exception("Sending message %s failed unexpectedly", message.id)
        unknown = ProviderUnavailable(repr(exc), outcome_unknown=True)
        return await _retry_later(outbox, message, claimed.now(), unknown)
    return await _accepted(outbox, message, claimed.now(), result)


async def outbound_text(outbox: Outbox, message: Message, channel: Channel) -> OutboundText:
    media_urls = await media.public_urls_of(outbox.public_url, outbox.media_key, message.id)
    return OutboundText(
        to=message.to_number,
        body=message.body,
        from_number=None if channel.messaging_service_sid else channel.from_number,
        messaging_service_sid=channel.messaging_service_sid,
        media_urls=media_urls,
        status_callback=outbox.status_callback,
    )


def _ours(outbox: Outbox, message: Message) -> Q:
    """The row is still held by this claim: a lease that expired meanwhile belongs to whoever recovered it.
    The attempt number is the claim's fencing token (each claim counts one more): the owner's name alone
    cannot tell a recovered claim from a stale one when another lane of the same worker recovered it."""
    return Q(
        id=message.id,
        outbox_state=OutboxState.SENDING,
        lease_owner=outbox.worker_id,
        attempt_count=message.attempt_count,
    )


async def _still_ours_to_send(outbox: Outbox, claimed: Claimed) -> bool:
    """Just before the create, and only then, the lease runs again from now — if this claim still holds
    the text. A lane slowed past its lease (a loaded machine, a stopped process, a slow look-up) may find
    the text recovered meanwhile: looked up at Twilio, found missing and sent. Sending it now would make
    it go twice, so the stale claim ends here and the recovered one's outcome stands.

    The renewal itself may stall too (the database under load). If it took longer than `send_within`,
    the create could reach Twilio after the renewed lease passed and a recovering worker had looked
    for it: the text is handed back, untried, rather than sent late."""
    message, started = claimed.message, time.monotonic()
    renewed = await Message.filter(_ours(outbox, message)).update(lease_expires_at=claimed.now() + outbox.rules.lease)
    if not renewed:
        log.warning("Message %s was not sent by %s: its lease passed on before the call", message.id, outbox.worker_id)
        return False
    if time.monotonic() - started <= outbox.rules.send_within.total_seconds():
        return True
    log.warning("Message %s is handed back by %s: renewing its lease took too long", message.id, outbox.worker_id)
    await _hand_back(outbox, message, claimed.now())
    return False


async def _hand_back(outbox: Outbox, message: Message, now: datetime) -> None:
    """The claim is given up without a call: due again at once, this claim's attempt not counted."""
    async with unit_of_work(outbox.bus) as uow:
        if await Message.filter(_ours(outbox, message)).update(
            outbox_state=OutboxState.RETRYING,
            next_attempt_at=now,
            attempt_count=message.attempt_count - 1,
            lease_owner=None,
            lease_expires_at=None,
        ):
            await message.refresh_from_db()
            uow.publish(status_changed(message))


OUT_OF_THE_OUTBOX = {"outbox_state": None, "next_attempt_at": None, "lease_owner": None, "lease_expires_at": None}


async def _accepted(
    outbox: Outbox, message: Message, now: datetime, result: SendResult, adopted: bool = False
) -> Message:
    status = status_word(result.status) or MessageStatus.QUEUED
    async with unit_of_work(outbox.bus) as uow:
        taken = await Message.filter(_ours(outbox, message)).update(
            provider_sid=result.provider_sid,
            status=status,
            outcome_unknown=False,
            error_code=None,
            error_message=None,
            **OUT_OF_THE_OUTBOX,
        )
        if not taken:
            log.warning("Message %s was accepted as %s after its lease passed on", message.id, result.provider_sid)
            return message
        detail = "Twilio already had it (found by looking it up)." if adopted else ""
        await _attempt(outbox, message, now, AttemptOutcome.ACCEPTED, detail=detail)
        if message.campaign_id is not None:  # a bulk text's case note: written as it goes, not at the start
            await campaigns.note_sent_text(message, message.first_attempt_at or now)
        if status != MessageStatus.QUEUED:  # "accepted" (a Messaging Service), or what a look-up found
            await MessageStatusEvent.create(message_id=message.id, status=status, at=now)
        await message.refresh_from_db()
        uow.publish(status_changed(message))
        await _left_the_outbox(message)
    # Only now that the SID is committed: a callback arriving from here on finds its message; earlier
    # ones (and what the look-up said) are applied in the order Twilio sent them.
    await apply_early_callbacks(outbox, message)
    await message.refresh_from_db()
    return message


async def _refused(outbox: Outbox, message: Message, now: datetime, exc: ProviderRejected) -> Message:
    """Twilio refused the text (4xx): never retried."""
    async with unit_of_work(outbox.bus) as uow:
        if not await Message.filter(_ours(outbox, message)).update(**OUT_OF_THE_OUTBOX):
            return message
        await _attempt(outbox, message, now, AttemptOutcome.FAILED, exc.code, exc.message)
        await mark_failed(message, exc.code, exc.message)
        uow.publish(status_changed(message))
        await _left_the_outbox(message)
    return message


async def _retry_later(
    outbox: Outbox, message: Message, now: datetime, exc: ProviderUnavailable, looking_up: bool = False
) -> Message:
    """Not taken now: tried again after a backoff (or Twilio's Retry-After), until the round is spent."""
    unknown = exc.outcome_unknown or message.outcome_unknown or looking_up
    cause = retry_cause(exc, looking_up)
    if message.attempt_count >= outbox.rules.max_attempts:
        words = f"{cause} Gave up after {message.attempt_count} attempts; retry it from the queue."
        outcome = AttemptOutcome.UNKNOWN if unknown else AttemptOutcome.FAILED
        return await _give_up(outbox, message, now, exc.code, words, outcome, unknown=unknown)
    wait = outbox.rules.wait_after(message.attempt_count, exc.retry_after)
    next_at = now + timedelta(seconds=wait)
    async with unit_of_work(outbox.bus) as uow:
        if not await Message.filter(_ours(outbox, message)).update(
            outbox_state=OutboxState.RETRYING,
            next_attempt_at=next_at,
            lease_owner=None,
            lease_expires_at=None,
            outcome_unknown=unknown,
            error_code=exc.code,
            error_message=clip(cause, Message, "error_message"),
        ):
            return message
        outcome = AttemptOutcome.UNKNOWN if exc.outcome_unknown else AttemptOutcome.RETRY
        await _attempt(outbox, message, now, outcome, exc.code, cause, next_at)
        if exc.status == 429:  # the whole channel backs off, not just this text
            await _push_pace(outbox, message, next_at)
        await message.refresh_from_db()
        uow.publish(status_changed(message))
    return message


def retry_cause(exc: ProviderUnavailable, looking_up: bool = False) -> str:
    """What the bubble says is happening, before "trying again at …"."""
    if looking_up:
        return "Twilio could not be asked whether it has this text."
    if exc.status == 429:
        return "Twilio is busy."
    if exc.status is not None and exc.status >= 500:
        return f"Twilio had a problem (HTTP {exc.status})."
    if exc.outcome_unknown:
        return "Twilio did not answer in time; it is asked before the text is sent again."
    return "Twilio could not be reached."


async def _push_pace(outbox: Outbox, message: Message, until: datetime) -> None:
    """The channel sends nothing before `until` (see pacing.held_schedule)."""
    channel = await Channel.get(id=(await message.conversation).channel_id)
    await outbox.pacer.hold_until(outbox.rules, channel, until)


async def _give_up(
    outbox: Outbox,
    message: Message,
    now: datetime,
    code: int | None,
    words: str,
    outcome: AttemptOutcome | None,
    unknown: bool = False,
) -> Message:
    async with unit_of_work(outbox.bus) as uow:
        if not await Message.filter(_ours(outbox, message)).update(outcome_unknown=unknown, **OUT_OF_THE_OUTBOX):
            return message
        if outcome is not None:
            await _attempt(outbox, message, now, outcome, code, words)
        else:
            metrics.text_failed()
        await mark_failed(message, code, words)
        # mark_failed words a Twilio code in general terms ("could not be sent (Twilio error 20503)"); the
        # bubble must say what happened — given up after N attempts, retry it from the queue.
        message.error_message = clip(words, Message, "error_message")
        await message.save(update_fields=["error_message", "updated_at"])
        uow.publish(status_changed(message))
        await _left_the_outbox(message)
    return message


async def _attempt(
    outbox: Outbox,
    message: Message,
    at: datetime,
    outcome: AttemptOutcome,
    code: int | None = None,
    detail: str = "",
    next_attempt_at: datetime | None = None,
) -> None:
    metrics.text_attempt(outcome.value)
    await SendAttempt.create(
        message_id=message.id,
        at=at,
        outcome=outcome,
        error_code=code,
        detail=clip(detail, SendAttempt, "detail") or "",
        next_attempt_at=next_attempt_at,
        worker=clip(outbox.worker_id, SendAttempt, "worker") or "",
    )


# ---------------------------------------------------------------- sending one text now


async def send_now(outbox: Outbox, message_id: int) -> Message | None:
    """Claim and hand over one text at once (a person pressed Send; the webhook has been answered).
    When another worker holds it, or its channel is busy, the workers get it in turn."""
    try:
        claimed = await claim_next(outbox, message_id=message_id)
        if isinstance(claimed, Claimed):
            return await deliver(outbox, claimed)
    except Exception:  # nobody waits for this answer; the text stays in the outbox for the workers
        log.exception("Sending message %s at once failed; the outbox worker will try it", message_id)
    return None


async def send_all_now(outbox: Outbox, message_ids: list[int]) -> None:
    for message_id in message_ids:
        await send_now(outbox, message_id)


async def release_leases(outbox: Outbox) -> int:
    """A worker shutting down hands back what it claimed but did not send: waiting again, at once."""
    return await Message.filter(
        outbox_state=OutboxState.SENDING, lease_owner=outbox.worker_id, direction=Direction.OUTBOUND
    ).update(
        # The call may have been cut off in flight: Twilio is asked before it is sent again.
        outbox_state=OutboxState.RETRYING,
        outcome_unknown=True,
        lease_owner=None,
        lease_expires_at=None,
        next_attempt_at=clock.now(),
    )


# ---------------------------------------------------------------- a person's retry (inbox.services.queue decides)


async def due_at_once(message: Message, who: str, now: datetime) -> bool:
    """A person's "Retry now" on a stuck text (inside their unit of work): due now; False when it has moved on.
    One whose worker stopped mid-call (its lease expired) may have reached Twilio: it is marked unknown, so
    Twilio is asked before it is sent again."""
    if message.outbox_state == OutboxState.SENDING:
        won = await Message.filter(id=message.id, outbox_state=OutboxState.SENDING, lease_expires_at__lt=now).update(
            outbox_state=OutboxState.RETRYING,
            outcome_unknown=True,
            lease_owner=None,
            lease_expires_at=None,
            next_attempt_at=now,
        )
        if won:
            await SendAttempt.create(
                message_id=message.id,
                at=now,
                outcome=AttemptOutcome.UNKNOWN,
                detail=RECOVERED_DETAIL,
                worker=clip(f"retried by {who}", SendAttempt, "worker") or "",
            )
        return bool(won)
    won = await Message.filter(
        id=message.id, outbox_state__in=[OutboxState.WAITING, OutboxState.RETRYING], provider_sid=None
    ).update(next_attempt_at=now)
    return bool(won)


async def new_round(message: Message, who: str, now: datetime) -> bool:
    """A person's retry of a failed text the outbox gave up on (inside their unit of work): failed → queued,
    retrying, due now — a new round of attempts; False when it has moved on. `outcome_unknown` is kept (Twilio
    is then asked first, from the first attempt on); otherwise the round starts afresh, and its stuck clock."""
    won = await Message.filter(id=message.id, status=MessageStatus.FAILED, provider_sid=None, outbox_state=None).update(
        status=MessageStatus.QUEUED,
        outbox_state=OutboxState.RETRYING,
        attempt_count=0,
        next_attempt_at=now,
        first_attempt_at=message.first_attempt_at if message.outcome_unknown else None,
        error_code=None,
        error_message=clip(f"Retried by {who}.", Message, "error_message"),
        updated_at=now,
    )
    if won:
        await MessageStatusEvent.create(message_id=message.id, status=MessageStatus.QUEUED, at=now)
    return bool(won)
