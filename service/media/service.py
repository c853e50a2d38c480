"""A video's file for players (HTTP Range), its poster frame, and the short-lived tokens that let
a `<video>` or `<img>` element, which cannot send an Authorization header, load them."""

import asyncio
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import quote

from fastapi import Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from service.clock import utc_now
from service.config import Settings
from service.context import AppContext
from service.errors import NotFound, RangeNotSatisfiable, Unauthorized
from service.http.ranges import ByteRange, requested_range
from service.media.schemas import MediaTokenOut
from service.processing.media import poster_frame
from service.storage.service import LocalStorage, OpenedFile
from service.users import service as users
from service.users.models import User
from service.videos.models import FileInfo, Video
from service.videos.service import get_video, parse_video_id

logger = logging.getLogger(__name__)

DEFAULT_CONTENT_TYPE = "application/octet-stream"
THUMBNAIL_TYPE = "image/jpeg"
THUMBNAIL_THREADS = 2
_thumbnail_pool = ThreadPoolExecutor(max_workers=THUMBNAIL_THREADS, thread_name_prefix="thumbnail")
"""Decoding is CPU work: a library page asking for twenty posters at once gets two made at a time,
and leaves the other threads (file reads, uploads) free."""


async def issue_token(settings: Settings, raw_id: str, viewer: User | None) -> MediaTokenOut:
    """A media token for a video the viewer may see. With users off nothing needs one, and the
    token answered is random, for clients that ask anyway."""
    video = await get_video(raw_id, viewer)
    if viewer is None:
        expires_at = utc_now() + timedelta(minutes=settings.media_token_minutes)
        return MediaTokenOut(token=secrets.token_urlsafe(32), expires_at=expires_at)
    issued = users.media_token(settings, viewer, str(video.id))
    return MediaTokenOut(token=issued.token, expires_at=issued.expires_at)


async def media_video(settings: Settings, raw_id: str, caller: User | None, token: str | None) -> Video:
    """The video whose media is asked for, if its reader may see it (404 otherwise, as everywhere)."""
    return await get_video(raw_id, await _media_viewer(settings, raw_id, caller, token))


async def _media_viewer(settings: Settings, raw_id: str, caller: User | None, token: str | None) -> User | None:
    """Who reads a video's media: the user a media token for this video names, when one is sent,
    else the caller's credentials (headers), as on every other route. With users off, no one
    needs credentials and a token is not looked at."""
    if not settings.auth_enabled:
        return None
    if token is not None:
        user = await users.user_from_media_token(settings, token, str(parse_video_id(raw_id)))
        if user is None:
            raise Unauthorized("the media token is invalid, expired, revoked, or for another video")
        return user
    if caller is None:
        raise Unauthorized("not authenticated: send a bearer token, an X-API-Key header, or ?token= (a media token)")
    return caller


async def media(
    context: AppContext, video: Video, method: str, range_header: str | None, if_range: str | None
) -> Response:
    """The video's file: 206 with the range asked for, 200 with all of it (see service/http/ranges.py)."""
    file = _stored_file(video)
    opened = await _open(context.storage, video, file)
    etag = f'"{file.sha256}"'
    try:
        wanted = requested_range(range_header, if_range, etag, opened.size)
    except RangeNotSatisfiable:
        opened.close()
        raise
    part = wanted or ByteRange(0, opened.size)
    headers = {
        "accept-ranges": "bytes",
        "etag": etag,
        "content-disposition": f"inline; filename*=UTF-8''{quote(video.filename, safe='')}",
        "content-length": str(part.end - part.start),
    }
    if wanted is not None:
        headers["content-range"] = wanted.content_range(opened.size)
    status = 200 if wanted is None else 206
    media_type = file.content_type or DEFAULT_CONTENT_TYPE
    if method == "HEAD":
        opened.close()
        return Response(status_code=status, headers=headers, media_type=media_type)
    body = opened.chunks(part.start, part.end)
    closing = BackgroundTask(opened.close)  # for a client gone before the body was read at all
    return StreamingResponse(body, status_code=status, headers=headers, media_type=media_type, background=closing)


async def thumbnail(context: AppContext, video: Video) -> Response:
    """The poster frame, made on the first request and kept beside the file."""
    file = _stored_file(video)
    image = await context.storage.read_thumbnail(file.key)
    if image is None:
        image = await _make_thumbnail(context.storage, video, file)
    return Response(image, media_type=THUMBNAIL_TYPE)


async def _make_thumbnail(storage: LocalStorage, video: Video, file: FileInfo) -> bytes:
    if video.metadata.video is None:
        raise NotFound("the video has no picture to make a thumbnail of (it is audio only)")
    path = storage.path(file.key)
    loop = asyncio.get_running_loop()
    image = await loop.run_in_executor(_thumbnail_pool, poster_frame, path, video.metadata.duration)
    if image is None:
        if not await asyncio.to_thread(path.is_file):
            raise _missing(video, file)
        raise NotFound("no frame of the video could be decoded for a thumbnail")
    await storage.keep_thumbnail(file.key, image)
    return image


def _stored_file(video: Video) -> FileInfo:
    if video.file is None:
        raise NotFound("the video has no stored file (it was migrated without one)")
    return video.file


async def _open(storage: LocalStorage, video: Video, file: FileInfo) -> OpenedFile:
    try:
        return await storage.open(file.key)
    except FileNotFoundError:
        raise _missing(video, file) from None


def _missing(video: Video, file: FileInfo) -> NotFound:
    """The document names a file storage does not hold: the video was deleted meanwhile (the
    document goes first), or the file was lost, which `video-analyzer check` reports."""
    logger.warning("video %s: its file %s is not in storage", video.id, file.key)
    return NotFound("the video's file is not in storage (deleted meanwhile, or lost)")
