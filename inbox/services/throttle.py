"""Throttling failed sign-ins and API tokens, with the `limits` library (moving windows).

Counted per account (the email typed) and per client address; API tokens per address. Memory by
default (one process); INBOX_RATE_LIMIT_URL=redis://… shares the counts between processes.

Per account every attempt takes a slot *before* the password is checked and a success gives them
back, so a burst of parallel guesses cannot all slip past a check made before any of them failed.
Per address only failures count (an office behind one address signs in together every morning).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import coredis
from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from inbox.services.errors import ServiceError

log = logging.getLogger(__name__)


class Throttled(ServiceError):
    """Too many failures: refused, whatever the credentials, until the window frees (HTTP 429)."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def minutes_words(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


@dataclass(frozen=True)
class Limits:
    sign_ins_per_account: str = "10 per 15 minutes"
    sign_ins_per_address: str = "30 per 15 minutes"
    tokens_per_address: str = "30 per 15 minutes"


class Throttle:
    def __init__(self, url: str = "memory://", limits: Limits | None = None) -> None:
        limits = limits or Limits()
        # limits names its asyncio storages async+memory://, async+redis://, …; for Redis the
        # connection pool is ours, so close() can let go of its connections (limits has no close).
        self._pool: coredis.ConnectionPool | None = None
        options: dict[str, Any] = {}
        if url.startswith(("redis://", "rediss://")):
            self._pool = coredis.ConnectionPool.from_url(url)
            options["connection_pool"] = self._pool
        storage = storage_from_string(f"async+{url}", wrap_exceptions=True, **options)
        self._limiter = MovingWindowRateLimiter(storage)
        self._per_account = parse(limits.sign_ins_per_account)
        self._per_address = parse(limits.sign_ins_per_address)
        self._tokens = parse(limits.tokens_per_address)

    # ------------------------------------------------------------ sign-ins

    async def begin_sign_in(self, email: str, address: str) -> None:
        """Before a password is checked: raises Throttled while the account or the address is locked."""
        if not await self._allows(self._per_address, "sign-in-address", address):
            raise await self._refusal(self._per_address, "sign-in-address", address, "sign-ins")
        if not await self._take(self._per_account, "sign-in-account", email):
            raise await self._refusal(self._per_account, "sign-in-account", email, "sign-ins")

    async def sign_in_failed(self, address: str) -> None:
        await self._take(self._per_address, "sign-in-address", address)

    async def sign_in_succeeded(self, email: str) -> None:
        """The account's slots come back: only failures lock it."""
        try:
            await self._limiter.clear(self._per_account, "sign-in-account", email)
        except StorageError:
            log.exception("Rate-limit storage unavailable")

    # ------------------------------------------------------------ API tokens

    async def check_token(self, address: str) -> None:
        if not await self._allows(self._tokens, "api-token-address", address):
            raise await self._refusal(self._tokens, "api-token-address", address, "API tokens")

    async def token_failed(self, address: str) -> None:
        await self._take(self._tokens, "api-token-address", address)

    # ------------------------------------------------------------ the storage

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.disconnect()

    async def storage_answers(self) -> bool:
        try:
            return bool(await self._limiter.storage.check())
        except StorageError:
            return False

    async def _allows(self, item: RateLimitItem, *key: str) -> bool:
        try:
            return await self._limiter.test(item, *key)
        except StorageError:
            # Fail open: a storage outage must not lock every person out; passwords are still checked.
            log.exception("Rate-limit storage unavailable: not throttling")
            return True

    async def _take(self, item: RateLimitItem, *key: str) -> bool:
        try:
            return await self._limiter.hit(item, *key)
        except StorageError:
            log.exception("Rate-limit storage unavailable: not throttling")
            return True

    async def _refusal(self, item: RateLimitItem, kind: str, who: str, what: str) -> Throttled:
        try:
            stats = await self._limiter.get_window_stats(item, kind, who)
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        except StorageError:
            retry_after = item.get_expiry()
        return Throttled(f"Too many failed {what}. Try again in {minutes_words(retry_after)}.", retry_after)
