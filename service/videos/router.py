from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from service.context import AppContext, get_context
from service.openapi import STORE_WRITE_FAILED, error_responses
from service.pagination import MAX_PAGE_SIZE
from service.users.dependencies import Viewer
from service.videos import service
from service.videos.models import VideoStatus
from service.videos.schemas import MAX_PROMPT_CHARS, VideoOut, VideoPage, VideoPatch

router = APIRouter(prefix="/videos", tags=["videos"])

UPLOAD_ERRORS = error_responses(400, 413, 415, 422, *STORE_WRITE_FAILED)
"""A malformed multipart body, too large, not media, a bad field; then the store."""

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "language": {"type": "string", "default": "auto"},
                        "task": {"type": "string", "enum": ["transcribe", "translate"], "default": "transcribe"},
                        "prompt": {"type": "string", "maxLength": MAX_PROMPT_CHARS},
                        "word_timestamps": {"type": "boolean"},
                        "vad": {"type": "boolean"},
                        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
                        "summary_language": {
                            "type": "string",
                            "description": "the language of summaries and, by default, answers; default: the transcript's",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra=UPLOAD_BODY,
    responses=UPLOAD_ERRORS,
)
async def upload_video(
    request: Request, context: Annotated[AppContext, Depends(get_context)], viewer: Viewer
) -> VideoOut:
    """Upload a video (multipart field `file`); it is queued for processing. Optional fields:
    `language` spoken, `summary_language` for summaries and answers, `task` (`translate`: into
    English, where the model can), `prompt` (names or hot words), `word_timestamps`, `vad` and
    `temperature` (the server's settings when not given)."""
    video = await service.upload_video(
        context,
        viewer,
        content_type=request.headers.get("content-type", ""),
        body=request.stream(),
    )
    return VideoOut.of(video)


@router.get("")
async def list_videos(
    viewer: Viewer,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    cursor: str | None = None,
    status: VideoStatus | None = None,
) -> VideoPage:
    """Videos, newest first, without transcript segments or chat."""
    return await service.list_videos(viewer, limit, cursor, status)


@router.get("/{video_id}", responses=error_responses(404))
async def get_video(video_id: str, viewer: Viewer) -> VideoOut:
    return VideoOut.of(await service.get_video(video_id, viewer))


@router.patch("/{video_id}", responses=error_responses(404, *STORE_WRITE_FAILED))
async def update_video(video_id: str, patch: VideoPatch, viewer: Viewer) -> VideoOut:
    """Make a video public or private (`is_public`), or rename it (`filename`)."""
    return VideoOut.of(await service.update_video(video_id, viewer, patch.model_dump(exclude_none=True)))


@router.delete(
    "/{video_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404, *STORE_WRITE_FAILED)
)
async def delete_video(video_id: str, context: Annotated[AppContext, Depends(get_context)], viewer: Viewer) -> Response:
    """Delete the video's document and its file."""
    await service.delete_video(context, video_id, viewer)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
