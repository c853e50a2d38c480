from fastapi import APIRouter

from service.stats.schemas import Stats
from service.stats.service import compute_stats
from service.users.dependencies import Viewer

router = APIRouter(tags=["stats"])


@router.get("/stats")
async def stats(viewer: Viewer) -> Stats:
    """Total videos, videos uploaded today (UTC), count by status, chat entries, mean processing time."""
    return await compute_stats(viewer)
