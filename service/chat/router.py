from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from fastapi.sse import EventSourceResponse

from service.chat import service
from service.chat.schemas import ChatPage, ChatQuestion
from service.context import AppContext, get_context
from service.openapi import STORE_WRITE_FAILED, error_responses
from service.pagination import MAX_PAGE_SIZE
from service.users.dependencies import Viewer
from service.videos.models import ChatEntry

router = APIRouter(prefix="/videos", tags=["chat"])


@router.post(
    "/{video_id}/chat",
    status_code=status.HTTP_201_CREATED,
    response_model=ChatEntry,
    responses={
        200: {
            "description": "with ?stream=true: server-sent `delta` events, then `entry` (or `error`)",
            "content": {"text/event-stream": {}},
        },
        **error_responses(404, 409, 502, *STORE_WRITE_FAILED),
    },
)
async def ask(
    video_id: str,
    question: ChatQuestion,
    context: Annotated[AppContext, Depends(get_context)],
    viewer: Viewer,
    stream: bool = False,
) -> Any:
    """Ask about a completed video; the answer cites the moments it draws on and is kept in its chat."""
    prepared = await service.prepare(context, video_id, viewer, question)
    if stream:
        return EventSourceResponse(service.answer_events(context, prepared))
    return await service.answer(context, prepared)


@router.get("/{video_id}/chat", responses=error_responses(404))
async def chat_history(
    video_id: str,
    viewer: Viewer,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    cursor: str | None = None,
) -> ChatPage:
    """The video's questions and answers, oldest first."""
    return await service.history(video_id, viewer, limit, cursor)
