"""How the outbox paces, retries and gives up: plain values and arithmetic, no database.

Retries back off exponentially with jitter (so a fleet of texts refused together does not come back
together): the first within 10 seconds — or after Twilio's Retry-After — then longer, until the
retry window (30 minutes by default) is spent. Pacing is GCRA (the "theoretical arrival time" of the
channel's next segment), which lets a small burst through and holds the long-run rate at the channel's
throughput however many workers share it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class OutboxRules:
    lease: timedelta = timedelta(seconds=60)
    retry_for: timedelta = timedelta(minutes=30)
    stuck_after: timedelta = timedelta(minutes=15)
    pacing_burst: int = 5  # segments a channel may send at once before its throughput paces it
    first_retry_seconds: float = 5.0
    backoff_factor: float = 4.0
    longest_wait_seconds: float = 15 * 60
    jitter: float = 0.2  # ± this share of each wait
    # Retry-After is obeyed, within reason: a misbehaving proxy must not park a text for a day.
    longest_retry_after_seconds: float = 15 * 60
    random: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    @property
    def send_within(self) -> timedelta:
        """How long after renewing its lease a worker may still start a create: the rest of the lease
        (at least twice the send timeout, inbox.app.outbox_rules) is left for the call to reach Twilio
        before a worker recovering the text may look it up there."""
        return self.lease / 4

    def planned_wait(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1-based), before jitter."""
        return min(self.first_retry_seconds * self.backoff_factor ** (attempt - 1), self.longest_wait_seconds)

    @property
    def max_attempts(self) -> int:
        """Attempts in one round: enough that the waits cover the retry window even when the jitter
        shortens every one of them (counted on the planned waits, the round could end short of it)."""
        total, attempts = 0.0, 1
        while total < self.retry_for.total_seconds():
            total += self.planned_wait(attempts) * (1 - self.jitter)
            attempts += 1
        return attempts

    def wait_after(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds until the next attempt: Twilio's Retry-After when it gave one, else the backoff."""
        if retry_after is not None and retry_after > 0:
            return min(retry_after, self.longest_retry_after_seconds)
        planned = self.planned_wait(attempt)
        return planned * (1 + self.random.uniform(-self.jitter, self.jitter))

    # ------------------------------------------------------------ pacing

    def tolerance(self, throughput: int) -> timedelta:
        """How far ahead of now a channel's schedule may run: the burst it may send at once."""
        return timedelta(seconds=max(self.pacing_burst - 1, 0) / max(throughput, 1))

    def free_at(self, pace_next_at: datetime | None, throughput: int, now: datetime) -> datetime:
        """When the channel may send its next text (now, or later when it is ahead of its pace)."""
        if pace_next_at is None:
            return now
        return max(now, pace_next_at - self.tolerance(throughput))

    def next_pace(self, pace_next_at: datetime | None, throughput: int, segments: int, now: datetime) -> datetime:
        """The channel's schedule once a text of `segments` segments has left."""
        start = max(pace_next_at or now, now)
        return start + timedelta(seconds=max(segments, 1) / max(throughput, 1))
