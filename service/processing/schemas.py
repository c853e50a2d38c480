from dataclasses import dataclass
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


@dataclass(frozen=True)
class QueueDepth:
    """The queue as the store holds it now, the same whichever node reads it."""

    queued: int
    processing: int
    oldest_queued_age_seconds: float
    """How long the longest-waiting queued video has waited since it was queued; 0 when none is."""
