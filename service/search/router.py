from typing import Annotated

from fastapi import APIRouter, Query

from service.clock import UtcTime
from service.pagination import MAX_PAGE_SIZE
from service.search import service
from service.search.schemas import SearchPage
from service.users.dependencies import Viewer
from service.videos.models import VideoStatus

router = APIRouter(tags=["search"])


@router.get("/search")
async def search(
    viewer: Viewer,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=500,
            description='MongoDB text search: words match any, "a phrase" must appear, -word excludes',
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 10,
    cursor: str | None = None,
    status: VideoStatus | None = None,
    uploaded_after: UtcTime | None = None,
    uploaded_before: UtcTime | None = None,
) -> SearchPage:
    """Videos ranked by MongoDB's text score, each with the transcript moments that match."""
    return await service.search(q, viewer, limit, cursor, status, uploaded_after, uploaded_before)
