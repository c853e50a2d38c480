"""What clients ask of processing: transcripts as files, progress as events, processing again."""

import asyncio
from collections.abc import AsyncIterator

from fastapi.responses import JSONResponse, PlainTextResponse, Response

from service.errors import Conflict
from service.processing import queue
from service.processing.formats import to_srt, to_txt, to_vtt
from service.processing.schemas import ProgressEvent, TranscriptFormat
from service.users.models import User
from service.videos.models import Video
from service.videos.service import get_completed_video, get_own_video

FINAL_STATUSES = ("completed", "failed")
_TEXT_FORMATS = {
    "txt": (to_txt, "text/plain; charset=utf-8"),
    "srt": (to_srt, "application/x-subrip; charset=utf-8"),
    "vtt": (to_vtt, "text/vtt; charset=utf-8"),
}


async def transcript_file(raw_id: str, viewer: User | None, format: TranscriptFormat) -> Response:
    video = await get_completed_video(raw_id, viewer, "its transcript is ready")
    disposition = {"content-disposition": f'attachment; filename="{video.id}.{format}"'}
    if format == "json":
        return JSONResponse(video.transcript.model_dump(mode="json"), headers=disposition)
    render, media_type = _TEXT_FORMATS[format]
    return PlainTextResponse(render(video.transcript), media_type=media_type, headers=disposition)


def progress_of(video: Video) -> ProgressEvent:
    return ProgressEvent(
        id=str(video.id),
        status=video.status,
        stage=video.job.stage,
        progress=video.job.progress,
        error=video.job.error,
        note=video.job.note,
    )


async def progress_events(video: Video, poll_seconds: float) -> AsyncIterator[ProgressEvent]:
    """The video's progress each time it changes, until it completes, fails or is deleted."""
    last: ProgressEvent | None = None
    current: Video | None = video
    while current is not None:
        event = progress_of(current)
        if event != last:
            yield event
            last = event
        if current.status in FINAL_STATUSES:
            return
        await asyncio.sleep(poll_seconds)
        current = await Video.get(video.id)


async def reprocess(raw_id: str, viewer: User | None) -> Video:
    video = await get_own_video(raw_id, viewer)
    if video.file is None:
        raise Conflict("the video has no stored file to process; upload it again")
    requeued = await queue.requeue(video.id)
    if requeued is None:
        raise Conflict(f"the video is already {video.status}; it can be processed again once it completes or fails")
    return requeued
