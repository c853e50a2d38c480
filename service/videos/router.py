from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from service.context import AppContext, get_context
from service.users.dependencies import Viewer
from service.videos import service
from service.videos.models import VideoStatus
from service.videos.schemas import VideoOut, VideoPage, VideoPatch

router = APIRouter(prefix="/videos", tags=["videos"])

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
                    },
                }
            }
        },
    }
}


@router.post("", status_code=status.HTTP_202_ACCEPTED, openapi_extra=UPLOAD_BODY)
async def upload_video(
    request: Request, context: Annotated[AppContext, Depends(get_context)], viewer: Viewer
) -> VideoOut:
    """Upload a video (multipart field `file`, optional `language`); it is queued for processing."""
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
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
    status: VideoStatus | None = None,
) -> VideoPage:
    """Videos, newest first, without transcript segments or chat."""
    return await service.list_videos(viewer, limit, cursor, status)


@router.get("/{video_id}")
async def get_video(video_id: str, viewer: Viewer) -> VideoOut:
    return VideoOut.of(await service.get_video(video_id, viewer))


@router.patch("/{video_id}")
async def update_video(video_id: str, patch: VideoPatch, viewer: Viewer) -> VideoOut:
    """Make a video public or private (`is_public`), or rename it (`filename`)."""
    return VideoOut.of(await service.update_video(video_id, viewer, patch.model_dump(exclude_none=True)))


@router.delete("/{video_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_video(video_id: str, context: Annotated[AppContext, Depends(get_context)], viewer: Viewer) -> Response:
    """Delete the video's document and its file."""
    await service.delete_video(context, video_id, viewer)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
