from pydantic import BaseModel

from service.videos.schemas import VideoListItem


class Moment(BaseModel):
    """A transcript segment holding the query's words: where a client can jump to."""

    start: float
    end: float
    text: str


class SearchHit(BaseModel):
    video: VideoListItem
    score: float
    matches: list[Moment]


class SearchPage(BaseModel):
    items: list[SearchHit]
    next_cursor: str | None
