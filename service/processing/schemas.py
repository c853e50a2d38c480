from typing import Literal

from pydantic import BaseModel

from service.videos.models import VideoStatus

TranscriptFormat = Literal["json", "txt", "srt", "vtt"]


class ProgressEvent(BaseModel):
    """One server-sent event of GET /videos/{id}/events."""

    id: str
    status: VideoStatus
    stage: str | None
    progress: float
    error: str | None
    note: str | None
