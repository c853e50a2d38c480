from typing import Annotated

from fastapi import APIRouter, Depends

from service.ai import service
from service.ai.schemas import SummarizeOptions
from service.context import AppContext, get_context
from service.openapi import STORE_WRITE_FAILED, error_responses
from service.users.dependencies import Viewer
from service.videos.models import Summary

router = APIRouter(prefix="/videos", tags=["summaries"])


@router.post("/{video_id}/summarize", responses=error_responses(404, 409, 502, *STORE_WRITE_FAILED))
async def summarize(
    video_id: str,
    context: Annotated[AppContext, Depends(get_context)],
    viewer: Viewer,
    options: SummarizeOptions | None = None,
) -> Summary:
    """Summarize a completed video again (after a summary failure, with another model, or in
    another language: `{"summary_language": "ja"}`)."""
    return await service.resummarize(video_id, viewer, context.language_model, options)
