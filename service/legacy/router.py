"""The SQLite service's routes, kept so its JSON clients keep working. `GET /videos/` (with the
slash) is the old list; `GET /videos` the new one."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from service.context import AppContext, get_context
from service.legacy import service
from service.legacy.schemas import (
    LegacyChatRow,
    LegacyLanguages,
    LegacyQuestion,
    LegacyUpload,
    LegacyVideo,
    LegacyVideoListItem,
    LegacyVideoStatus,
)
from service.openapi import STORE_WRITE_FAILED, error_responses
from service.users.dependencies import Viewer
from service.videos.router import UPLOAD_BODY, UPLOAD_ERRORS

router = APIRouter(tags=["legacy"], deprecated=True)


@router.post("/upload-video/", openapi_extra=UPLOAD_BODY, responses=UPLOAD_ERRORS)
async def upload_video(
    request: Request,
    context: Annotated[AppContext, Depends(get_context)],
    viewer: Viewer,
    language: str | None = None,
    ui_language: str | None = None,
) -> LegacyUpload:
    """Upload a video (multipart field `file`); in the query `language` ('auto' or a Whisper code) and
    `ui_language` (a code `/supported-languages/` lists), kept with the video."""
    return await service.upload(
        context,
        viewer,
        content_type=request.headers.get("content-type", ""),
        body=request.stream(),
        language=language,
        ui_language=ui_language,
    )


@router.get("/videos/")
async def list_videos(viewer: Viewer) -> list[LegacyVideoListItem]:
    return await service.list_videos(viewer)


@router.get("/video/{video_id}", responses=error_responses(404))
async def get_video(video_id: str, context: Annotated[AppContext, Depends(get_context)], viewer: Viewer) -> LegacyVideo:
    return await service.video(video_id, viewer, context.storage)


@router.get("/video-status/{video_id}", responses=error_responses(404))
async def get_video_status(
    video_id: str, context: Annotated[AppContext, Depends(get_context)], viewer: Viewer
) -> LegacyVideoStatus:
    return await service.video_status(video_id, viewer, context.storage)


@router.get("/chat-history/{video_id}", responses=error_responses(404))
async def get_chat_history(video_id: str, viewer: Viewer) -> list[LegacyChatRow]:
    return await service.chat_history(video_id, viewer)


@router.post("/ask-question/", responses=error_responses(404, 409, 502, *STORE_WRITE_FAILED))
async def ask_question(
    question: LegacyQuestion, context: Annotated[AppContext, Depends(get_context)], viewer: Viewer
) -> LegacyChatRow:
    """Ask about a completed video (`{video_id, question}`); answers with the stored chat row."""
    return await service.ask_question(context, viewer, question)


@router.get("/supported-languages/")
async def supported_languages(context: Annotated[AppContext, Depends(get_context)], viewer: Viewer) -> LegacyLanguages:
    """Every Whisper language, `enabled` where the configured model transcribes it (English alone
    for an English-only model such as the default tiny.en)."""
    return await service.supported_languages(context.settings)
