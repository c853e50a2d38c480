"""What clients ask of processing: transcripts as files, progress as events, processing again."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi.responses import JSONResponse, PlainTextResponse, Response

from service.errors import Conflict
from service.processing import queue
from service.processing.formats import to_srt, to_txt, to_vtt
from service.processing.schemas import ProgressEvent, SubtitleLayout, TranscriptFormat
from service.users.models import User
from service.videos.models import Video
from service.videos.service import get_completed_video, get_own_video, visible_to

FINAL_STATUSES = ("completed", "failed", "cancelled")
TXT_MEDIA_TYPE = "text/plain; charset=utf-8"
SUBTITLE_FORMATS = {
    "srt": (to_srt, "application/x-subrip; charset=utf-8"),
    "vtt": (to_vtt, "text/vtt; charset=utf-8"),
}


async def transcript_file(
    raw_id: str, viewer: User | None, format: TranscriptFormat, layout: SubtitleLayout
) -> Response:
    video = await get_completed_video(raw_id, viewer, "its transcript is ready")
    disposition = {"content-disposition": f'attachment; filename="{video.id}.{format}"'}
    if format == "json":
        return JSONResponse(video.transcript.model_dump(mode="json"), headers=disposition)
    if format == "txt":
        return PlainTextResponse(to_txt(video.transcript), media_type=TXT_MEDIA_TYPE, headers=disposition)
    if video.transcript.untimed:
        raise Conflict(
            f"the transcript has no timings (it came from the old service): POST /videos/{video.id}/reprocess "
            "makes them; format=txt or json serve its text"
        )
    render, media_type = SUBTITLE_FORMATS[format]
    text = await asyncio.to_thread(render, video.transcript, layout.max_line_width, layout.max_line_count)
    return PlainTextResponse(text, media_type=media_type, headers=disposition)


PROGRESS_PROJECTION = {"status": 1, "job": 1}


def progress_of(video_id: str, document: dict[str, Any]) -> ProgressEvent:
    job = document.get("job") or {}
    return ProgressEvent(
        id=video_id,
        status=document["status"],
        stage=job.get("stage"),
        progress=job.get("progress", 0.0),
        error=job.get("error"),
        note=job.get("note"),
    )


async def progress_events(
    video: Video,
    viewer: User | None,
    poll_seconds: float,
    credentials_hold: Callable[[], Awaitable[bool]],
    recheck_seconds: float,
) -> AsyncIterator[ProgressEvent]:
    """The video's progress each time it changes, until it completes, fails or is deleted, or the
    viewer may no longer see it: it went private, or the credentials were revoked (asked again
    every `recheck_seconds`).

    Each poll reads the status and job alone, not the transcript or chat."""
    collection = Video.get_motor_collection()
    last: ProgressEvent | None = None
    current: dict[str, Any] | None = {"status": video.status, "job": video.job.model_dump()}
    rechecked = time.monotonic()
    while current is not None:
        event = progress_of(str(video.id), current)
        if event != last:
            yield event
            last = event
        if event.status in FINAL_STATUSES:
            return
        await asyncio.sleep(poll_seconds)
        if time.monotonic() - rechecked >= recheck_seconds:
            if not await credentials_hold():
                return
            rechecked = time.monotonic()
        current = await collection.find_one({"_id": video.id, **visible_to(viewer)}, PROGRESS_PROJECTION)


async def reprocess(raw_id: str, viewer: User | None) -> Video:
    video = await get_own_video(raw_id, viewer)
    if video.file is None:
        raise Conflict("the video has no stored file to process; upload it again")
    requeued = await queue.requeue(video.id)
    if requeued is None:
        raise Conflict(f"the video is already {video.status}; it can be processed again once it completes or fails")
    return requeued


async def cancel(raw_id: str, viewer: User | None) -> Video:
    video = await get_own_video(raw_id, viewer)
    cancelled = await queue.cancel(video.id)
    if cancelled is None:
        raise Conflict(f"the video is {video.status}; only a queued or processing video can be cancelled")
    return cancelled
