from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from service.videos.models import VideoStatus

TranscriptFormat = Literal["json", "txt", "srt", "vtt"]
MIN_LINE_WIDTH = 10
MAX_LINE_WIDTH_LIMIT = 200
MAX_LINE_COUNT_LIMIT = 5


@dataclass(frozen=True)
class SubtitleLayout:
    """How srt and vtt cues are laid out: lines per cue and characters per line."""

    max_line_width: int
    max_line_count: int


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
