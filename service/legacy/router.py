"""The SQLite service's routes, kept so its JSON clients keep working (POST /ask-question/ arrives
with the chat service). `GET /videos/` (with the slash) is the old list; `GET /videos` the new one."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from service.context import AppContext, get_context
from service.legacy import service
from service.legacy.schemas import LegacyChatRow, LegacyUpload, LegacyVideo, LegacyVideoListItem, LegacyVideoStatus
from service.videos.dependencies import content_length_of
from service.videos.router import UPLOAD_BODY

router = APIRouter(tags=["legacy"], deprecated=True)


@router.post("/upload-video/", openapi_extra=UPLOAD_BODY)
async def upload_video(
    request: Request,
    context: Annotated[AppContext, Depends(get_context)],
    language: str | None = None,
    ui_language: str | None = None,
) -> LegacyUpload:
    """Upload a video (multipart field `file`); `language` ('auto' or a Whisper code) in the query."""
    return await service.upload(
        context,
        content_type=request.headers.get("content-type", ""),
        content_length=content_length_of(request),
        body=request.stream(),
        language=language,
        ui_language=ui_language,
    )


@router.get("/videos/")
async def list_videos() -> list[LegacyVideoListItem]:
    return await service.list_videos()


@router.get("/video/{video_id}")
async def get_video(video_id: str, context: Annotated[AppContext, Depends(get_context)]) -> LegacyVideo:
    return await service.video(video_id, context.storage)


@router.get("/video-status/{video_id}")
async def get_video_status(video_id: str, context: Annotated[AppContext, Depends(get_context)]) -> LegacyVideoStatus:
    return await service.video_status(video_id, context.storage)


@router.get("/chat-history/{video_id}")
async def get_chat_history(video_id: str) -> list[LegacyChatRow]:
    return await service.chat_history(video_id)
