from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.sse import EventSourceResponse, ServerSentEvent

from service.openapi import STORE_WRITE_FAILED, error_responses
from service.processing import service
from service.processing.schemas import (
    MAX_LINE_COUNT_LIMIT,
    MAX_LINE_WIDTH_LIMIT,
    MIN_LINE_WIDTH,
    SubtitleLayout,
    TranscriptFormat,
)
from service.processing.subtitles import MAX_LINE_COUNT, MAX_LINE_WIDTH
from service.users.dependencies import CredentialsRecheck, Viewer
from service.videos.dependencies import video_from_path
from service.videos.models import Video
from service.videos.schemas import VideoOut

router = APIRouter(prefix="/videos", tags=["processing"])

EVENT_POLL_SECONDS = 0.5
CREDENTIALS_RECHECK_SECONDS = 5.0


@router.get("/{video_id}/transcript", response_class=Response, responses=error_responses(404, 409))
async def transcript(
    video_id: str,
    viewer: Viewer,
    format: TranscriptFormat = "json",
    max_line_width: Annotated[int, Query(ge=MIN_LINE_WIDTH, le=MAX_LINE_WIDTH_LIMIT)] = MAX_LINE_WIDTH,
    max_line_count: Annotated[int, Query(ge=1, le=MAX_LINE_COUNT_LIMIT)] = MAX_LINE_COUNT,
) -> Response:
    """The transcript as a file: json, txt, srt or vtt. Subtitles (srt, vtt) follow broadcast
    rules: cues of at most `max_line_count` lines of `max_line_width` characters, 1 to 7 s each.
    409 until the video is completed."""
    return await service.transcript_file(video_id, viewer, format, SubtitleLayout(max_line_width, max_line_count))


@router.get("/{video_id}/events", response_class=EventSourceResponse, responses=error_responses(404))
async def events(
    video: Annotated[Video, Depends(video_from_path)], viewer: Viewer, recheck: CredentialsRecheck
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent `progress` events with status, stage and progress, until the video completes or
    fails, or the caller may no longer see it (it went private, or their credentials were revoked)."""
    progress = service.progress_events(video, viewer, EVENT_POLL_SECONDS, recheck, CREDENTIALS_RECHECK_SECONDS)
    async for event in progress:
        yield ServerSentEvent(event="progress", data=event)


@router.post(
    "/{video_id}/reprocess",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(404, 409, *STORE_WRITE_FAILED),
)
async def reprocess(video_id: str, viewer: Viewer) -> VideoOut:
    """Queue a completed, failed or cancelled video again. 409 while it is queued or processing."""
    return VideoOut.of(await service.reprocess(video_id, viewer))


@router.post(
    "/{video_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(404, 409, *STORE_WRITE_FAILED),
)
async def cancel(video_id: str, viewer: Viewer) -> VideoOut:
    """Stop a queued or processing video; it becomes `cancelled` (the worker stops within a
    second) and POST /videos/{id}/reprocess queues it again. 409 when it is not queued or processing."""
    return VideoOut.of(await service.cancel(video_id, viewer))
