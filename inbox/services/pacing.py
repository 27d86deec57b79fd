"""Each sending number's pace, shared by every worker: in the database (the default), or in Redis when
INBOX_PACING_URL names one.

Both keep one number per channel — the GCRA "theoretical arrival time" of its next segment
(inbox.services.delivery_rules) — and change it atomically: the database under the claim's row lock,
Redis in one Lua script. Redis takes that write off the database's channel row, which every claim for
the channel would otherwise queue on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

import coredis
from tortoise.expressions import Q

from inbox.models import Channel
from inbox.services.delivery_rules import OutboxRules

# Redis keys live a day past their schedule: an idle channel's key simply expires.
KEY_PREFIX = "inbox:pace:"
KEY_LIFETIME_MS = 24 * 3600 * 1000

# Times are whole microseconds since the epoch (exact in Lua's doubles; float seconds drift: five sends
# of 1 s after `now` came to a hair past now + 5, and the burst lost a text). '%.0f' writes them out whole.
# KEYS[1] the channel's schedule; ARGV: now, this text's interval, the burst tolerance, the key's lifetime.
# Answers {1, schedule} when the text may go now (the schedule moved on), else {0, when it may go}.
RESERVE = """
local now = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if tat < now then tat = now end
if tat - tonumber(ARGV[3]) > now then
  return {0, string.format('%.0f', tat - tonumber(ARGV[3]))}
end
redis.call('SET', KEYS[1], string.format('%.0f', tat + tonumber(ARGV[2])), 'PX', ARGV[4])
return {1, string.format('%.0f', tat + tonumber(ARGV[2]))}
"""
# KEYS[1]; ARGV: the new schedule, the key's lifetime. Only ever moves the schedule later (a 429).
PUSH = """
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > tat then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
"""


class Pacer(Protocol):
    async def busy(self, rules: OutboxRules, now: datetime) -> dict[int, datetime]:
        """Channels ahead of their pace, and when each may send again."""
        ...

    async def reserve(self, rules: OutboxRules, channel: Channel, segments: int, now: datetime) -> bool:
        """Take the channel's next slot for a text of `segments` segments; False when it must wait."""
        ...

    async def hold_until(self, rules: OutboxRules, channel: Channel, until: datetime) -> None:
        """Nothing leaves the channel before `until` (Twilio answered 429)."""
        ...

    async def schedule_of(self, channel: Channel) -> datetime | None:
        """The channel's schedule (for the queue page's "through in")."""
        ...

    async def close(self) -> None: ...


def held_schedule(rules: OutboxRules, channel: Channel, until: datetime) -> datetime:
    """The schedule that sends nothing before `until`: past it by the burst tolerance, or the burst would
    let the next few texts straight into the 429; from `until` on the channel sends at its throughput."""
    return until + rules.tolerance(channel.throughput)


class DatabasePacer:
    """The schedule in `channel.pace_next_at`, changed inside the claim's transaction."""

    async def busy(self, rules: OutboxRules, now: datetime) -> dict[int, datetime]:
        busy: dict[int, datetime] = {}
        for channel_id, pace_next_at, throughput in await Channel.filter(pace_next_at__gt=now).values_list(
            "id", "pace_next_at", "throughput"
        ):
            free_at = rules.free_at(pace_next_at, throughput, now)
            if free_at > now:
                busy[channel_id] = free_at
        return busy

    async def reserve(self, rules: OutboxRules, channel: Channel, segments: int, now: datetime) -> bool:
        locked = await Channel.select_for_update().get(id=channel.id)
        if rules.free_at(locked.pace_next_at, locked.throughput, now) > now:
            return False
        locked.pace_next_at = rules.next_pace(locked.pace_next_at, locked.throughput, segments, now)
        await locked.save(update_fields=["pace_next_at"])
        channel.pace_next_at = locked.pace_next_at
        return True

    async def hold_until(self, rules: OutboxRules, channel: Channel, until: datetime) -> None:
        paced = held_schedule(rules, channel, until)
        await Channel.filter(Q(pace_next_at=None) | Q(pace_next_at__lt=paced), id=channel.id).update(pace_next_at=paced)

    async def schedule_of(self, channel: Channel) -> datetime | None:
        return channel.pace_next_at

    async def close(self) -> None:
        return None


class RedisPacer:
    """The schedule in Redis (`inbox:pace:<channel id>`), in microseconds since the epoch."""

    def __init__(self, url: str, prefix: str = KEY_PREFIX) -> None:
        self._prefix = prefix  # several installations (or test runs) may share one Redis
        self._pool = coredis.ConnectionPool.from_url(url)
        self._redis = coredis.Redis(connection_pool=self._pool)
        self._reserve = self._redis.register_script(RESERVE)
        self._push = self._redis.register_script(PUSH)

    async def busy(self, rules: OutboxRules, now: datetime) -> dict[int, datetime]:
        channels = await Channel.all().values_list("id", "throughput")
        if not channels:
            return {}
        schedules = await self._redis.mget([self._key(channel_id) for channel_id, _ in channels])
        busy: dict[int, datetime] = {}
        for (channel_id, throughput), raw in zip(channels, schedules, strict=True):
            if raw is None:
                continue
            free_at = rules.free_at(moment(raw), throughput, now)
            if free_at > now:
                busy[channel_id] = free_at
        return busy

    async def reserve(self, rules: OutboxRules, channel: Channel, segments: int, now: datetime) -> bool:
        interval = round(1_000_000 * max(segments, 1) / max(channel.throughput, 1))
        tolerance = micros_of(now + rules.tolerance(channel.throughput)) - micros_of(now)
        args = (str(micros_of(now)), str(interval), str(tolerance), str(KEY_LIFETIME_MS))
        answer = await self._reserve(keys=[self._key(channel.id)], args=args)
        taken, _ = list(answer)  # type: ignore[arg-type]  # coredis types script answers loosely
        return int(taken) == 1

    async def hold_until(self, rules: OutboxRules, channel: Channel, until: datetime) -> None:
        paced = held_schedule(rules, channel, until)
        await self._push(keys=[self._key(channel.id)], args=(str(micros_of(paced)), str(KEY_LIFETIME_MS)))

    async def schedule_of(self, channel: Channel) -> datetime | None:
        raw = await self._redis.get(self._key(channel.id))
        return moment(raw) if raw is not None else None

    def _key(self, channel_id: int) -> str:
        return f"{self._prefix}{channel_id}"

    async def answers(self) -> bool:
        """Whether Redis is reachable (a health check, and tests)."""
        try:
            return bool(await self._redis.ping())
        except (coredis.exceptions.RedisError, OSError):
            return False

    async def close(self) -> None:
        self._pool.disconnect()


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros_of(moment: datetime) -> int:
    """Whole microseconds since the epoch (timedelta arithmetic: exact, unlike timestamp())."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def moment(raw: str | bytes) -> datetime:
    text = raw.decode() if isinstance(raw, bytes) else raw
    return EPOCH + timedelta(microseconds=int(text))


def pacer_for(url: str) -> Pacer:
    """INBOX_PACING_URL: `database` (the default) or redis://host:6379."""
    if url.startswith(("redis://", "rediss://")):
        return RedisPacer(url)
    return DatabasePacer()
