from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from service.context import AppContext, get_context
from service.media import service
from service.media.schemas import MediaTokenOut
from service.openapi import error_responses
from service.users.dependencies import CREDENTIALS_OPTIONAL, Caller, Viewer
from service.videos.models import Video

router = APIRouter(prefix="/videos", tags=["media"])

_BINARY = {"schema": {"type": "string", "format": "binary"}}
MEDIA_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "The whole file, in its own content type", "content": {"*/*": _BINARY}},
    206: {"description": "The byte range asked for (`Content-Range`)", "content": {"*/*": _BINARY}},
    **error_responses(404, 416),
}
THUMBNAIL_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "A JPEG poster frame", "content": {"image/jpeg": _BINARY}},
    **error_responses(404),
}


async def media_video(
    video_id: str,
    context: Annotated[AppContext, Depends(get_context)],
    caller: Caller,
    token: Annotated[
        str | None, Query(description="a media token from POST /videos/{video_id}/media-token, instead of credentials")
    ] = None,
) -> Video:
    return await service.media_video(context.settings, video_id, caller, token)


MediaVideo = Annotated[Video, Depends(media_video)]


@router.post("/{video_id}/media-token", responses=error_responses(404))
async def media_token(
    video_id: str, context: Annotated[AppContext, Depends(get_context)], viewer: Viewer
) -> MediaTokenOut:
    """A short-lived token for this video's /media and /thumbnail (`?token=`), for elements that
    cannot send credentials (`<video src>`, `<img src>`)."""
    return await service.issue_token(context.settings, video_id, viewer)


@router.get("/{video_id}/media", response_class=Response, responses=MEDIA_ANSWERS, openapi_extra=CREDENTIALS_OPTIONAL)
@router.head("/{video_id}/media", response_class=Response, include_in_schema=False)
async def media(request: Request, context: Annotated[AppContext, Depends(get_context)], video: MediaVideo) -> Response:
    """The video's file, for players: a `Range: bytes=START-END` (or `START-`, or `-LENGTH`) gets
    206 with those bytes, no Range (or several ranges) 200 with the whole file, a range past the
    end 416. HEAD answers the same headers without the body."""
    headers = request.headers
    return await service.media(context, video, request.method, headers.get("range"), headers.get("if-range"))


@router.get(
    "/{video_id}/thumbnail",
    response_class=Response,
    responses=THUMBNAIL_ANSWERS,
    openapi_extra=CREDENTIALS_OPTIONAL,
)
async def thumbnail(context: Annotated[AppContext, Depends(get_context)], video: MediaVideo) -> Response:
    """A poster frame (JPEG, at most 320 pixels wide) from 10% into the video, made on the first
    request and kept. 404 for a video with no picture (audio only)."""
    return await service.thumbnail(context, video)
