"""Sending numbers ("channels"). Issue 2 bootstraps one from the provider in use."""

from __future__ import annotations

from inbox.models import Channel
from inbox.sms.base import InboundText, ProviderInfo


async def ensure_channel(info: ProviderInfo) -> Channel:
    """The channel for the provider in use, created on first start."""
    channel = await Channel.filter(account_sid=info.account_sid).order_by("id").first()
    if channel is None:
        channel = await Channel.create(
            label=info.label,
            account_sid=info.account_sid,
            from_number=info.from_number,
            messaging_service_sid=info.messaging_service_sid,
            is_simulator=info.is_simulator,
        )
    return channel


async def default_channel() -> Channel:
    channel = await Channel.all().order_by("id").first()
    if channel is None:
        raise RuntimeError("No channel is set up: the app creates one on start.")
    return channel


async def channel_for_inbound(text: InboundText) -> Channel:
    """The channel a webhook belongs to: by account and number (or Messaging Service)."""
    candidates = Channel.filter(account_sid=text.account_sid)
    if text.messaging_service_sid:
        match = await candidates.filter(messaging_service_sid=text.messaging_service_sid).first()
        if match:
            return match
    match = await candidates.filter(from_number=text.to_number).first()
    return match or await candidates.first() or await default_channel()
