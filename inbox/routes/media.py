"""Attachments as files: to signed-in staff who may see the message, and to Twilio by signed URL.

Every answer names its own type (from the file's bytes, never the sender's word), forbids sniffing,
and runs under a Content-Security-Policy that allows nothing: a file can never act as a page of ours.
"""

from __future__ import annotations

import asyncio
import os

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from inbox.models import Media
from inbox.services import audit
from inbox.services import media as media_service
from inbox.services.errors import NotFound
from inbox.settings import Settings
from inbox.web import require_staff

# Chrome will not show a PDF inside a sandboxed document, so PDFs get `default-src 'none'` alone.
SANDBOXED_POLICY = "default-src 'none'; sandbox"
PDF_POLICY = "default-src 'none'"


async def file_response(media: Media, settings: Settings) -> Response:
    """The stored file of `media`, as a download unless it is an image or a PDF. The caller authorises."""
    if not media.sha256:
        raise NotFound("This attachment has no stored file.")
    path = media_service.storage_path(settings.media_dir, media.sha256)
    try:
        stat_result = await asyncio.to_thread(os.stat, path)
    except FileNotFoundError:
        raise NotFound("This attachment's file is missing from storage.") from None
    content_type = media_service.served_type(media)
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": PDF_POLICY if content_type == "application/pdf" else SANDBOXED_POLICY,
        "Cache-Control": "private, max-age=86400",
        "Referrer-Policy": "no-referrer",
    }
    return FileResponse(
        path,
        headers=headers,
        media_type=content_type,
        filename=media.filename or media_service.display_name(content_type, media.message_id, media.position),
        stat_result=stat_result,
        content_disposition_type="inline" if media_service.is_inline(media) else "attachment",
    )


async def staff_file(request: Request) -> Response:
    staff = await require_staff(request)
    media = await media_service.visible_media(staff, request.path_params["media_id"])
    response = await file_response(media, request.app.state.settings)  # first: a missing file is no download
    await audit.record(audit.Action.MEDIA_DOWNLOADED, staff, media, message_id=media.message_id)
    return response


async def public_file(request: Request) -> Response:
    """What Twilio fetches for an outbound attachment: only the file the signature names, until it expires."""
    settings: Settings = request.app.state.settings
    media = await media_service.media_for_signed_url(
        str(settings.secret_key),
        request.path_params["media_id"],
        request.query_params.get("expires", ""),
        request.query_params.get("signature", ""),
    )
    if media is None:
        return PlainTextResponse("This link is not valid or has expired.", status_code=403)
    return await file_response(media, settings)


routes = [
    Route("/media/{media_id:int}", staff_file, methods=["GET"]),
    Route("/media/public/{media_id:int}", public_file, methods=["GET"]),
]
