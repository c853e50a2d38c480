"""Search over every video's words, through the MongoDB text index `search`, down to the moment.

The same Motor calls run on MongoDB and on the embedded store, which supplies `$text` itself.
"""

from datetime import datetime
from typing import Any

from service.db.mongodb import TEXT_SCORE
from service.errors import InvalidInput
from service.pagination import decode_offset, encode_offset
from service.search.schemas import Moment, SearchHit, SearchPage
from service.text import TextQuery, contains_phrase, distinct_terms, parse_text_query, words
from service.users.models import User
from service.videos.models import Segment, Video, VideoStatus
from service.videos.schemas import VideoListItem
from service.videos.service import visible_to

MOMENTS_PER_VIDEO = 3
SEARCH_PROJECTION = {"chat": 0, "score": TEXT_SCORE}
SEARCH_ORDER = [("score", TEXT_SCORE), ("uploaded_at", -1), ("_id", -1)]
"""A total order: pages taken with skip partition the hits only if no two documents tie."""


def _filter(
    query: str, viewer: User | None, status: VideoStatus | None, after: datetime | None, before: datetime | None
) -> dict[str, Any]:
    conditions: dict[str, Any] = {"$text": {"$search": query}, **visible_to(viewer)}
    if status is not None:
        conditions["status"] = status
    uploaded: dict[str, datetime] = {}
    if after is not None:
        uploaded["$gte"] = after
    if before is not None:
        uploaded["$lt"] = before
    if uploaded:
        conditions["uploaded_at"] = uploaded
    return conditions


def matching_moments(
    segments: list[Segment], query: TextQuery, language: str, limit: int = MOMENTS_PER_VIDEO
) -> list[Moment]:
    """The segments holding the query's terms (or phrases), most terms first, then earliest."""
    wanted = set(query.terms(language))
    ranked = []
    for segment in segments:
        spoken_words = words(segment.text)
        found = wanted.intersection(distinct_terms(spoken_words, language))
        spoken = " ".join(spoken_words)
        phrases = sum(len(p.split()) for p in query.phrases if contains_phrase(spoken, p))
        if found or phrases:
            ranked.append((-(len(found) + phrases), segment.start, segment))
    ranked.sort(key=lambda item: item[:2])
    return [Moment(start=s.start, end=s.end, text=s.text) for _, _, s in ranked[:limit]]


async def search(
    q: str,
    viewer: User | None,
    limit: int,
    cursor: str | None,
    status: VideoStatus | None,
    uploaded_after: datetime | None,
    uploaded_before: datetime | None,
) -> SearchPage:
    query = q.strip()
    if not query:
        raise InvalidInput("q must hold at least one word")
    offset = decode_offset(cursor)
    raw = (
        await Video.get_motor_collection()
        .find(_filter(query, viewer, status, uploaded_after, uploaded_before), SEARCH_PROJECTION)
        .sort(SEARCH_ORDER)
        .skip(offset)
        .limit(limit + 1)
        .to_list(None)
    )
    parsed = parse_text_query(query)
    hits = []
    for document in raw[:limit]:
        score = document.pop("score")
        video = Video.model_validate(document)
        segments = video.transcript.segments if video.transcript else []
        hits.append(
            SearchHit(
                video=VideoListItem.of(video),
                score=round(score, 4),
                matches=matching_moments(segments, parsed, video.search_language),
            )
        )
    return SearchPage(items=hits, next_cursor=encode_offset(offset + limit) if len(raw) > limit else None)
