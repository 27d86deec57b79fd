"""Re-encrypting stored secrets with the current INBOX_SECRET_KEY (`inbox rotate-secrets`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tortoise.transactions import in_transaction

from inbox.crypto import SecretBox, SecretUnreadable
from inbox.models import Channel, WebhookEndpoint
from inbox.services import settings_cache


@dataclass
class Rotation:
    rotated: int = 0
    unreadable: list[str] = field(default_factory=list)  # labels of channels no key could decrypt


async def reencrypt_channel_tokens(box: SecretBox) -> Rotation:
    """Every sending number's stored auth token, encrypted again with the box's current key.

    A token no key can decrypt is left as it is and named, so an admin can enter it again; the
    others are rewritten in one transaction, all or none.
    """
    result = Rotation()
    async with in_transaction():
        for channel in await Channel.filter(auth_token_encrypted__isnull=False).order_by("id").select_for_update():
            try:
                channel.auth_token_encrypted = box.rotate(channel.auth_token_encrypted or "")
            except SecretUnreadable:
                result.unreadable.append(channel.label)
                continue
            await channel.save(update_fields=["auth_token_encrypted"])
            result.rotated += 1
    settings_cache.forget(settings_cache.CHANNELS)  # here; web processes re-read on a signature no copy validates
    return result


async def reencrypt_webhook_secrets(box: SecretBox) -> Rotation:
    """Every outgoing webhook endpoint's signing secret, encrypted again with the box's current key (all or
    none); `unreadable` names the URLs of those no key could decrypt (delete and register them again)."""
    result = Rotation()
    async with in_transaction():
        for endpoint in await WebhookEndpoint.all().order_by("id").select_for_update():
            try:
                endpoint.secret_encrypted = box.rotate(endpoint.secret_encrypted)
            except SecretUnreadable:
                result.unreadable.append(endpoint.url)
                continue
            await endpoint.save(update_fields=["secret_encrypted"])
            result.rotated += 1
    return result
