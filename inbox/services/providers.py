"""One provider per channel: Twilio with the channel's own account, token and sender, or the simulator.

The registry decrypts a channel's token (or takes the environment's, for the account TWILIO_* names),
builds the provider through the factories the app gives it (services never import an adapter), and
keeps it until the channel's credentials change. A replaced provider is closed when the registry is,
not at once: a send may still be using it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime

from inbox.crypto import SecretBox, SecretUnreadable
from inbox.models import Channel
from inbox.services import channels
from inbox.sms.base import (
    ChannelCredentials,
    FetchedMedia,
    MediaDeleteFailed,
    MediaFetchFailed,
    OutboundText,
    Provider,
    ProviderInfo,
    ProviderUnavailable,
    SendResult,
)

log = logging.getLogger(__name__)

TwilioFactory = Callable[[ChannelCredentials], Provider]
SimulatorFactory = Callable[[], Provider]

# The account a Twilio media URL belongs to: …/Accounts/AC…/Messages/MM…/Media/ME…
_MEDIA_ACCOUNT = re.compile(r"/Accounts/(AC[0-9a-fA-F]{32})/")


class ChannelNotReady(ProviderUnavailable):
    """The channel cannot talk to Twilio: it has no auth token, or one this secret key cannot decrypt."""


Fingerprint = tuple[bool, str, str | None, str | None, str | None]


class ProviderRegistry:
    def __init__(
        self,
        secret_box: SecretBox,
        twilio: TwilioFactory,
        simulator: SimulatorFactory,
        env_account_sid: str | None = None,
        env_auth_token: str | None = None,
    ) -> None:
        self._box = secret_box
        self._twilio = twilio
        self._simulator_factory = simulator
        self._simulator: Provider | None = None
        self._env_account_sid = env_account_sid
        self._env_auth_token = str(env_auth_token) if env_auth_token else None
        self._cache: dict[int, tuple[Fingerprint, Provider]] = {}
        self._retired: list[Provider] = []

    def __repr__(self) -> str:
        return f"ProviderRegistry(channels={sorted(self._cache)!r})"

    def for_channel(self, channel: Channel) -> Provider:
        """The channel's provider, built on first use. ChannelNotReady when it has no usable token."""
        fingerprint: Fingerprint = (
            channel.is_simulator,
            channel.account_sid,
            channel.auth_token_encrypted,
            channel.from_number,
            channel.messaging_service_sid,
        )
        cached = self._cache.get(channel.id)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        provider = self.simulator() if channel.is_simulator else self._twilio(self.credentials_of(channel))
        if cached is not None and cached[1] is not self._simulator:
            self._retired.append(cached[1])
        self._cache[channel.id] = (fingerprint, provider)
        return provider

    def simulator(self) -> Provider:
        if self._simulator is None:
            self._simulator = self._simulator_factory()
        return self._simulator

    def credentials_of(self, channel: Channel) -> ChannelCredentials:
        return ChannelCredentials(
            account_sid=channel.account_sid,
            auth_token=self.auth_token_of(channel),
            from_number=channel.from_number,
            messaging_service_sid=channel.messaging_service_sid,
            label=channel.label,
        )

    def auth_token_of(self, channel: Channel) -> str:
        if channel.auth_token_encrypted:
            try:
                return self._box.decrypt(channel.auth_token_encrypted)
            except SecretUnreadable as error:
                raise ChannelNotReady(
                    f"the auth token of “{channel.label}” cannot be decrypted (INBOX_SECRET_KEY changed?): "
                    "enter it again on the channel's page"
                ) from error
        if self.uses_environment_token(channel) and self._env_auth_token:
            return self._env_auth_token
        raise ChannelNotReady(f"“{channel.label}” has no auth token: enter it on the channel's page")

    def uses_environment_token(self, channel: Channel) -> bool:
        """No stored token means the environment's, for the account TWILIO_ACCOUNT_SID names."""
        return not channel.auth_token_encrypted and channel.account_sid == self._env_account_sid

    def validate_webhook(self, channel: Channel, url: str, params: Mapping[str, str], signature: str) -> bool:
        try:
            provider = self.for_channel(channel)
        except ChannelNotReady as error:
            log.warning("Cannot check a webhook for channel %s: %s", channel.id, error)
            return False
        return provider.validate_webhook(url, params, signature)

    async def for_sender(self, from_number: str | None, messaging_service_sid: str | None) -> Provider | None:
        channel = await channels.channel_for_sender(from_number, messaging_service_sid)
        return self.for_channel(channel) if channel is not None else None

    async def for_media_url(self, url: str) -> Provider | None:
        """The provider whose credentials may fetch `url`: its account's; None when no account is named."""
        match = _MEDIA_ACCOUNT.search(url)
        if match is None:
            return None
        for channel in await channels.channels_of_account(match.group(1)):
            try:
                return self.for_channel(channel)
            except ChannelNotReady:
                continue
        return None

    async def close(self) -> None:
        providers = [provider for _, provider in self._cache.values()] + self._retired
        if self._simulator is not None:
            providers.append(self._simulator)
        self._cache.clear()
        self._retired.clear()
        closed: set[int] = set()
        for provider in providers:
            if id(provider) not in closed:
                closed.add(id(provider))
                await provider.close()


class RoutedProvider:
    """The one Provider for code that serves every channel but holds a single provider (the outbox
    worker's attachment retries): a media URL is fetched with the credentials of the account it names,
    a text is sent by the channel whose sender it names; anything else falls back to `fallback`."""

    def __init__(self, registry: ProviderRegistry, fallback: Provider) -> None:
        self._registry = registry
        self._fallback = fallback
        self.info: ProviderInfo = fallback.info

    def __repr__(self) -> str:
        return f"RoutedProvider(fallback={self._fallback!r})"

    async def send(self, text: OutboundText) -> SendResult:
        provider = await self._registry.for_sender(text.from_number, text.messaging_service_sid)
        return await (provider or self._fallback).send(text)

    async def find_sent(self, text: OutboundText, since: datetime) -> SendResult | None:
        provider = await self._registry.for_sender(text.from_number, text.messaging_service_sid)
        return await (provider or self._fallback).find_sent(text, since)

    def validate_webhook(self, url: str, params: Mapping[str, str], signature: str) -> bool:
        return self._fallback.validate_webhook(url, params, signature)

    async def fetch_media(self, url: str) -> FetchedMedia:
        provider = await self._media_provider(url)
        if provider is None:
            raise MediaFetchFailed(url, "no sending number of this account has a usable auth token")
        return await provider.fetch_media(url)

    async def delete_media(self, url: str) -> None:
        provider = await self._media_provider(url)
        if provider is None:
            raise MediaDeleteFailed(url, "no sending number of this account has a usable auth token")
        await provider.delete_media(url)

    async def close(self) -> None:
        """The registry owns the providers and closes them."""

    async def _media_provider(self, url: str) -> Provider | None:
        if _MEDIA_ACCOUNT.search(url) is None:
            return self._fallback  # not a Twilio account URL (the simulator's client phone)
        return await self._registry.for_media_url(url)
