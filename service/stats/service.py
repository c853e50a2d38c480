"""Totals over every video, computed by the store in one aggregation, not in Python."""

from datetime import UTC, datetime, time

from service.clock import utc_now
from service.stats.schemas import Stats
from service.users.models import User
from service.videos.models import Video
from service.videos.service import visible_to


def _pipeline(start_of_today: datetime, visible: dict) -> list[dict]:
    return [
        {"$match": visible},
        {
            "$facet": {
                "by_status": [{"$group": {"_id": "$status", "count": {"$sum": 1}}}],
                "today": [{"$match": {"uploaded_at": {"$gte": start_of_today}}}, {"$count": "count"}],
                "chat": [{"$group": {"_id": None, "count": {"$sum": {"$size": {"$ifNull": ["$chat", []]}}}}}],
                "processing": [
                    {
                        "$match": {
                            "status": "completed",
                            "job.started_at": {"$type": "date"},
                            "job.finished_at": {"$type": "date"},
                        }
                    },
                    {
                        "$group": {
                            "_id": None,
                            "millis": {"$avg": {"$subtract": ["$job.finished_at", "$job.started_at"]}},
                        }
                    },
                ],
            }
        },
    ]


def _first(rows: list[dict], field: str, default: float | int | None) -> float | int | None:
    return rows[0][field] if rows else default


async def compute_stats(viewer: User | None) -> Stats:
    """Over the videos the viewer may see: their own and public ones (all for admins)."""
    start_of_today = datetime.combine(utc_now().date(), time.min, tzinfo=UTC)
    [facets] = await Video.get_motor_collection().aggregate(_pipeline(start_of_today, visible_to(viewer))).to_list(None)
    by_status = {row["_id"]: row["count"] for row in facets["by_status"]}
    millis = _first(facets["processing"], "millis", None)
    return Stats(
        total_videos=sum(by_status.values()),
        videos_today=_first(facets["today"], "count", 0),
        by_status={
            name: by_status.get(name, 0) for name in ("queued", "processing", "completed", "failed", "cancelled")
        },
        total_chat_entries=_first(facets["chat"], "count", 0),
        average_processing_seconds=None if millis is None else round(millis / 1000, 3),
    )
