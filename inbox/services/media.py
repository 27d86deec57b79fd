"""Attachments (MMS): what arrived with a text, fetched after the webhook is answered, stored by hash;
and what staff attach to a text, served to Twilio from a signed, expiring URL.

Files live at INBOX_MEDIA_DIR/<sha256[:2]>/<sha256>: the same bytes are stored once, and no name that
came from a URL, a header or an upload ever reaches the file system. The type a file is served with
is decided by its first bytes, never by what the sender declared.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from tortoise.expressions import F, Q, Subquery

from inbox import clock
from inbox.events import Bus, MediaChanged
from inbox.models import Conversation, Media, MediaStatus, Message, MessageLink, Organisation, Staff, flat_values
from inbox.services import visibility
from inbox.services.errors import NotFound, ValidationFailed
from inbox.services.limits import clip, fits
from inbox.services.unit_of_work import unit_of_work
from inbox.sms.base import MediaDeleteFailed, MediaFetchFailed, MediaTooLarge, MediaUrlRefused, Provider

log = logging.getLogger(__name__)

MAX_MEDIA_ITEMS = 10  # Twilio's own limit per message
MAX_MEDIA_BYTES = 5 * 1024 * 1024  # Twilio's own limit per item (and per outbound message)
MAX_ATTEMPTS = 5
# After attempt n fails, the next one waits RETRY_DELAYS[n - 1]. A claimed row is also leased for that
# long, so an attempt that dies with its process is retried by whoever comes next.
RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1))
FETCH_TIMEOUT_SECONDS = 55.0
# Twilio may keep an outbound text in its queue for hours before fetching the attachment.
PUBLIC_URL_LIFETIME = timedelta(hours=24)

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# Shown in the browser rather than downloaded; everything else is a download.
INLINE_TYPES = IMAGE_TYPES | {"application/pdf"}
# What staff may attach to a text.
OUTBOUND_TYPES = INLINE_TYPES
OCTET_STREAM = "application/octet-stream"

EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/heic": "heic",
    "application/pdf": "pdf",
    "video/mp4": "mp4",
    "video/3gpp": "3gp",
    "audio/mp4": "m4a",
    "audio/amr": "amr",
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "text/vcard": "vcf",
    OCTET_STREAM: "bin",
}
KIND_WORDS = {
    "image": "photo",
    "application/pdf": "document",
    "audio": "audio",
    "video": "video",
    "text/vcard": "contact",
}
TYPE_WORDS = {
    "application/pdf": "PDF document",
    "image/heic": "HEIC photo",
    "text/vcard": "contact card",
    OCTET_STREAM: "file of unknown type",
}


# ---------------------------------------------------------------- what a file is, where it lives


def sniff_type(content: bytes) -> str:
    """The type the first bytes prove, from a short allow-list; anything else is opaque bytes."""
    head = content[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"):
            return "image/heic"
        if brand.startswith(b"3g"):
            return "video/3gpp"
        if brand in (b"M4A ", b"M4B "):
            return "audio/mp4"
        return "video/mp4"
    if head.startswith(b"#!AMR"):
        return "audio/amr"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:11].upper() == b"BEGIN:VCARD":
        return "text/vcard"
    return OCTET_STREAM


MAX_IMAGE_SIDE = 100_000  # larger is a broken or hostile header, not a photo


def image_size(content: bytes) -> tuple[int, int] | None:
    """A JPEG, PNG, GIF or WebP image's width and height in pixels, from its header; None when unreadable."""
    size = _image_size(content)
    if size is None or not all(0 < side <= MAX_IMAGE_SIDE for side in size):
        return None
    return size


def _image_size(content: bytes) -> tuple[int, int] | None:
    kind = sniff_type(content)
    if kind == "image/png" and content[12:16] == b"IHDR":
        return int.from_bytes(content[16:20], "big"), int.from_bytes(content[20:24], "big")
    if kind == "image/gif" and len(content) >= 10:
        return int.from_bytes(content[6:8], "little"), int.from_bytes(content[8:10], "little")
    if kind == "image/webp":
        return _webp_size(content)
    if kind == "image/jpeg":
        return _jpeg_size(content)
    return None


def _webp_size(content: bytes) -> tuple[int, int] | None:
    chunk = content[12:16]
    if chunk == b"VP8 " and len(content) >= 30:  # lossy: 14-bit sizes after the key frame's start code
        return int.from_bytes(content[26:28], "little") & 0x3FFF, int.from_bytes(content[28:30], "little") & 0x3FFF
    if chunk == b"VP8L" and len(content) >= 25:  # lossless: 14 bits each, minus one, after the signature byte
        bits = int.from_bytes(content[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(content) >= 30:  # extended: 24 bits each, minus one
        return int.from_bytes(content[24:27], "little") + 1, int.from_bytes(content[27:30], "little") + 1
    return None


# Start-of-frame markers (the frame header holds the size); C4, C8 and CC are other segments.
JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(content: bytes) -> tuple[int, int] | None:
    """Walks the segments up to the frame header. (An EXIF rotation is not applied: a rotated photo's box is
    corrected by the browser once it loads.)"""
    at = 2
    while at + 9 <= len(content):
        if content[at] != 0xFF:
            return None
        marker = content[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in JPEG_FRAMES:
            height = int.from_bytes(content[at + 5 : at + 7], "big")
            width = int.from_bytes(content[at + 7 : at + 9], "big")
            return width, height
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
            continue
        at += 2 + int.from_bytes(content[at + 2 : at + 4], "big")
    return None


def served_type(media: Media) -> str:
    """Only a type our own sniffing produced is ever sent back; never text/html."""
    return media.content_type if media.content_type in EXTENSIONS else OCTET_STREAM


def is_inline(media: Media) -> bool:
    return served_type(media) in INLINE_TYPES


def display_name(content_type: str, message_id: int, position: int) -> str:
    """A name of our own making, e.g. photo-41-1.jpg: nothing from a URL, header or upload."""
    kind = KIND_WORDS.get(content_type) or KIND_WORDS.get(content_type.split("/")[0], "attachment")
    return f"{kind}-{message_id}-{position + 1}.{EXTENSIONS.get(content_type, 'bin')}"


def type_words(content_type: str) -> str:
    """The type as people say it: "PNG image", "PDF document"."""
    if content_type in TYPE_WORDS:
        return TYPE_WORDS[content_type]
    major, _, minor = content_type.partition("/")
    noun = {"image": "image", "audio": "audio", "video": "video"}.get(major, "file")
    return f"{EXTENSIONS.get(content_type, minor).upper()} {noun}"


def storage_path(media_dir: Path, sha256: str) -> Path:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError("not a SHA-256 hex digest")
    return media_dir / sha256[:2] / sha256


async def store_bytes(media_dir: Path, content: bytes) -> str:
    """Writes the bytes under their hash (once: the same bytes are never stored twice); answers the hash."""
    sha256 = hashlib.sha256(content).hexdigest()
    await asyncio.to_thread(_write_once, storage_path(media_dir, sha256), content)
    return sha256


def _write_once(path: Path, content: bytes) -> None:
    if path.is_file() and path.stat().st_size == len(content):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside, then renamed into place: a reader never sees half a file.
    partial = path.parent / f".{path.name}.{secrets.token_hex(6)}.part"
    try:
        partial.write_bytes(content)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


# ---------------------------------------------------------------- inbound: registered, then fetched


async def register_inbound_media(message: Message, items: Sequence[tuple[str, str]]) -> list[Media]:
    """A row per MediaUrlN, inside the inbound transaction: pending, or refused past the 10-item limit
    (or for an address longer than we keep)."""
    rows = []
    for position, (url, content_type) in enumerate(items):
        refusal = None
        if position >= MAX_MEDIA_ITEMS:
            refusal = f"Not kept: a text carries at most {MAX_MEDIA_ITEMS} attachments."
        elif not fits(url, Media, "source_url"):
            refusal = "Not kept: Twilio's address for it is too long to store (the webhook keeps it)."
        rows.append(
            await Media.create(
                message=message,
                position=position,
                source_url=url if fits(url, Media, "source_url") else None,
                declared_type=clip(content_type, Media, "declared_type"),
                status=MediaStatus.REFUSED if refusal else MediaStatus.PENDING,
                error=refusal,
                next_attempt_at=None if refusal else clock.now(),
            )
        )
    return rows


async def fetch_pending_for_message(provider: Provider, media_dir: Path, bus: Bus, message_id: int) -> int:
    """Downloads a message's pending attachments (run after the webhook is answered). Answers how many were tried."""
    tried = 0
    try:
        rows = await Media.filter(message_id=message_id, status=MediaStatus.PENDING).order_by("position")
        for media in rows:
            if await fetch_one(provider, media_dir, bus, media):
                tried += 1
    except Exception:  # after the answer nobody is waiting for an error; the worker retries what is left
        log.exception("Fetching the media of message %s failed; the worker will retry", message_id)
    return tried


async def fetch_due_media(
    provider: Provider, media_dir: Path, bus: Bus, at: datetime | None = None, limit: int = 20
) -> int:
    """The worker's round: pending attachments whose next attempt is due. Answers how many were tried."""
    moment = at or clock.now()
    due = (
        await Media.filter(Q(next_attempt_at=None) | Q(next_attempt_at__lte=moment), status=MediaStatus.PENDING)
        .order_by("next_attempt_at", "id")
        .limit(limit)
    )
    tried = 0
    for media in due:
        if await fetch_one(provider, media_dir, bus, media, at=moment):
            tried += 1
    return tried


async def fetch_one(provider: Provider, media_dir: Path, bus: Bus, media: Media, at: datetime | None = None) -> bool:
    """One attempt at one attachment, if this process wins the claim on it. Never raises for a bad download."""
    moment = at or clock.now()
    attempt = media.attempts + 1
    if not await _claim(media, moment):
        return False
    try:
        async with asyncio.timeout(FETCH_TIMEOUT_SECONDS):
            fetched = await provider.fetch_media(media.source_url or "")
    except MediaTooLarge:
        await _settle(
            media, MediaStatus.REFUSED, f"Not kept: larger than the {MAX_MEDIA_BYTES // (1024 * 1024)} MB limit."
        )
    except MediaUrlRefused:
        await _settle(media, MediaStatus.FAILED, "Not downloaded: the address is not a Twilio media address.")
    except MediaFetchFailed as error:
        await _attempt_failed(media, attempt, _reason(error), moment)
    except TimeoutError:
        await _attempt_failed(media, attempt, "the download took too long", moment)
    except Exception:  # a bug or an odd answer must not lose the attachment: it stays visible and is retried
        log.exception("Downloading media %s failed unexpectedly", media.id)
        await _attempt_failed(media, attempt, "an unexpected error (see the server log)", moment)
    else:
        await _store_fetched(media_dir, media, fetched.content)
        await _delete_at_provider(provider, media)
    await _announce(bus, media)
    return True


async def _claim(media: Media, moment: datetime) -> bool:
    """A conditional UPDATE on the attempt count: of two processes, exactly one fetches."""
    lease = RETRY_DELAYS[min(media.attempts, len(RETRY_DELAYS) - 1)]
    won = await Media.filter(id=media.id, status=MediaStatus.PENDING, attempts=media.attempts).update(
        attempts=F("attempts") + 1, next_attempt_at=moment + lease
    )
    if won:
        media.attempts += 1
        media.next_attempt_at = moment + lease
    return bool(won)


def _reason(error: MediaFetchFailed) -> str:
    if error.status in (401, 403):
        return (
            f"Twilio refused our credentials (HTTP {error.status}); check the account SID and auth token "
            "of this sending number"
        )
    if error.status == 404:
        return "Twilio has no media at that address (HTTP 404)"
    return error.reason


async def _attempt_failed(media: Media, attempt: int, reason: str, moment: datetime) -> None:
    if attempt >= MAX_ATTEMPTS:
        await _settle(media, MediaStatus.FAILED, f"Could not be downloaded after {attempt} attempts: {reason}.")
        return
    media.error = clip(f"Attempt {attempt} of {MAX_ATTEMPTS} failed: {reason}. Trying again.", Media, "error")
    media.next_attempt_at = moment + RETRY_DELAYS[attempt - 1]
    await media.save(update_fields=["error", "next_attempt_at"])


async def _settle(media: Media, status: MediaStatus, error: str) -> None:
    media.status = status
    media.error = clip(error, Media, "error")  # a download's reason may quote a long address
    media.next_attempt_at = None
    await media.save(update_fields=["status", "error", "next_attempt_at"])


async def _store_fetched(media_dir: Path, media: Media, content: bytes) -> None:
    if len(content) > MAX_MEDIA_BYTES:  # the adapter caps downloads; a provider that does not is held to it
        await _settle(
            media, MediaStatus.REFUSED, f"Not kept: larger than the {MAX_MEDIA_BYTES // (1024 * 1024)} MB limit."
        )
        return
    content_type = sniff_type(content)
    media.sha256 = await store_bytes(media_dir, content)
    media.size = len(content)
    media.width, media.height = image_size(content) or (None, None)
    media.content_type = content_type
    media.filename = display_name(content_type, media.message_id, media.position)
    media.status = MediaStatus.STORED
    media.error = None
    media.next_attempt_at = None
    await media.save(
        update_fields=[
            "sha256",
            "size",
            "width",
            "height",
            "content_type",
            "filename",
            "status",
            "error",
            "next_attempt_at",
        ]
    )


async def _delete_at_provider(provider: Provider, media: Media) -> None:
    """The organisation's option: once the file is ours, Twilio need not keep a copy."""
    if media.status != MediaStatus.STORED or not media.source_url:
        return
    organisation = await Organisation.first()
    if organisation is None or not organisation.delete_media_at_provider:
        return
    try:
        await provider.delete_media(media.source_url)
    except MediaDeleteFailed as error:
        log.warning("Media %s is stored but Twilio still has it: %s", media.id, error.reason)
        return
    media.deleted_at_provider = clock.now()
    await media.save(update_fields=["deleted_at_provider"])


async def _announce(bus: Bus, media: Media) -> None:
    """The attempt's outcome, already committed (each step above saves as it goes)."""
    async with unit_of_work(bus) as uow:
        conversation_id = await flat_values(
            Message.filter(id=media.message_id).values_list("conversation_id", flat=True)
        )
        uow.publish(
            MediaChanged(
                message_id=media.message_id,
                conversation_id=conversation_id[0] if conversation_id else 0,
                media_id=media.id,
                status=media.status.value,
            )
        )


# ---------------------------------------------------------------- outbound: attached by staff


@dataclass(frozen=True)
class Attachment:
    """A file staff attached to a text, as uploaded. Its name is never used for storage."""

    content: bytes
    filename: str = ""


@dataclass(frozen=True)
class CheckedAttachment:
    content: bytes
    content_type: str


def check_attachments(attachments: Sequence[Attachment]) -> list[CheckedAttachment]:
    """Images (JPEG, PNG, GIF, WebP) and PDFs, 5 MB at most in all, proven by their bytes."""
    if len(attachments) > MAX_MEDIA_ITEMS:
        raise ValidationFailed(
            f"A text carries at most {MAX_MEDIA_ITEMS} attachments.", {"attachment": "Too many attachments."}
        )
    if sum(len(a.content) for a in attachments) > MAX_MEDIA_BYTES:
        message = f"Attachments are limited to {MAX_MEDIA_BYTES // (1024 * 1024)} MB; choose a smaller file."
        raise ValidationFailed(message, {"attachment": message})
    checked = []
    for attachment in attachments:
        content_type = sniff_type(attachment.content)
        if not attachment.content:
            message = "The attached file is empty."
            raise ValidationFailed(message, {"attachment": message})
        if content_type not in OUTBOUND_TYPES:
            message = "Only photos (JPEG, PNG, GIF, WebP) and PDF documents can be attached to a text."
            raise ValidationFailed(message, {"attachment": message})
        checked.append(CheckedAttachment(attachment.content, content_type))
    return checked


async def store_outbound(media_dir: Path, attachments: Sequence[CheckedAttachment]) -> list[str]:
    """The files, written before the message row exists (harmless if the send is then refused)."""
    return [await store_bytes(media_dir, attachment.content) for attachment in attachments]


async def attach_outbound(message: Message, attachments: Sequence[CheckedAttachment], hashes: Sequence[str]) -> None:
    """Media rows of an outbound text, inside its transaction: stored from the start."""
    for position, (attachment, sha256) in enumerate(zip(attachments, hashes, strict=True)):
        width, height = image_size(attachment.content) or (None, None)
        await Media.create(
            message=message,
            position=position,
            declared_type=attachment.content_type,
            content_type=attachment.content_type,
            filename=display_name(attachment.content_type, message.id, position),
            size=len(attachment.content),
            width=width,
            height=height,
            sha256=sha256,
            status=MediaStatus.STORED,
        )


def media_signature(key: str, media_id: int, expires: int) -> str:
    return hmac.new(key.encode(), f"public-media:{media_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def public_url_of(public_url: str, key: str, media_id: int, moment: datetime | None = None) -> str:
    """Where Twilio fetches an outbound attachment: this one file, until the URL expires."""
    if not key:
        raise ValueError("outbound attachments need a signing key (INBOX_SECRET_KEY)")
    expires = int(((moment or clock.now()) + PUBLIC_URL_LIFETIME).timestamp())
    signature = media_signature(key, media_id, expires)
    return f"{public_url}/media/public/{media_id}?expires={expires}&signature={signature}"


async def public_urls_of(public_url: str, key: str, message_id: int) -> tuple[str, ...]:
    rows = await Media.filter(message_id=message_id, status=MediaStatus.STORED).order_by("position")
    return tuple(public_url_of(public_url, key, media.id) for media in rows)


async def media_for_signed_url(key: str, media_id: int, expires: str, signature: str) -> Media | None:
    """The outbound file a signed URL names, or None when the signature is wrong or has expired."""
    try:
        expires_at = int(expires)
    except ValueError:
        return None
    if not key or expires_at < clock.now().timestamp():
        return None
    if not hmac.compare_digest(media_signature(key, media_id, expires_at), signature):
        return None
    return await Media.get_or_none(id=media_id, status=MediaStatus.STORED, message__direction="outbound")


# ---------------------------------------------------------------- reading


async def visible_media(staff: Staff, media_id: int) -> Media:
    """A stored file for staff who may see its message: its conversation, or a case it is filed on."""
    media = await Media.get_or_none(id=media_id, status=MediaStatus.STORED).prefetch_related("message")
    if media is None or not await _may_see_message(staff, media.message):
        raise NotFound("No attachment has this id.")
    return media


async def _may_see_message(staff: Staff, message: Message) -> bool:
    if staff.sees_everything:
        return True
    conversation = await Conversation.get(id=message.conversation_id)
    if await visibility.can_see_conversation(staff, conversation):
        return True
    cases = await visibility.visible_case_ids(staff)
    return bool(cases) and await MessageLink.exists(message_id=message.id, case_id__in=list(cases or ()))


async def documents_of_case(case_id: int) -> list[Media]:
    """The stored attachments of every text filed on the case, newest text first."""
    message_ids = MessageLink.filter(case_id=case_id).values("message_id")
    return await (
        Media.filter(status=MediaStatus.STORED, message_id__in=Subquery(message_ids))
        .order_by("-message_id", "position")
        .prefetch_related("message")
    )
