from pydantic import BaseModel


class Stats(BaseModel):
    total_videos: int
    videos_today: int
    by_status: dict[str, int]
    total_chat_entries: int
    average_processing_seconds: float | None
