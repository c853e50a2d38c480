"""Search over every video's words, through the MongoDB text index `search`, down to the moment.

The same Motor calls run on MongoDB and on the embedded store, which supplies `$text` itself.
"""

from bisect import bisect_right
from datetime import datetime
from itertools import accumulate
from typing import Any

from service.db.mongodb import TEXT_SCORE
from service.errors import InvalidInput
from service.pagination import decode_offset, encode_offset
from service.search.schemas import Moment, SearchHit, SearchPage
from service.text import distinct_terms, fold, words
from service.text.query import TextQuery, parse_text_query
from service.users.models import User
from service.videos.models import TEXT_SEARCH_DEFAULT_LANGUAGE, Segment, Video, VideoStatus
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
    """The segments holding the query's terms or where one of its phrases begins, most matched
    words first, then earliest.

    They are matched as the text index matches them, so a video found through its transcript has a
    moment: the query's terms in the index's default language (`/search` names none), each
    segment's words in the video's language, and phrases in the text as `transcript.text` joins the
    segments, so a phrase that runs on into the next segments counts for the one it begins in."""
    wanted = set(query.terms(TEXT_SEARCH_DEFAULT_LANGUAGE))
    phrase_words = _phrase_words_by_segment(segments, query.phrases, language)
    ranked = []
    for index, segment in enumerate(segments):
        found = len(wanted.intersection(distinct_terms(words(segment.text, language), language)))
        found += phrase_words.get(index, 0)
        if found:
            ranked.append((-found, segment.start, segment))
    ranked.sort(key=lambda item: item[:2])
    return [Moment(start=s.start, end=s.end, text=s.text) for _, _, s in ranked[:limit]]


def _phrase_words_by_segment(segments: list[Segment], phrases: tuple[str, ...], language: str) -> dict[int, int]:
    """For each segment where a phrase begins, the words of the phrases beginning there.

    Folding maps each code point on its own, so the folded segments joined by a space are the
    folded `transcript.text`, and a match's offset tells the segment it begins in."""
    if not phrases:
        return {}
    folded = [fold(segment.text, language) for segment in segments]
    next_starts = list(accumulate(len(text) + 1 for text in folded))
    joined = " ".join(folded)
    counts: dict[int, int] = {}
    for phrase in phrases:
        needle, weight = fold(phrase, language), len(words(phrase, language))
        beginning_in = set()
        position = joined.find(needle) if weight else -1
        while position != -1:
            beginning_in.add(bisect_right(next_starts, position))
            position = joined.find(needle, position + 1)
        for index in beginning_in:
            counts[index] = counts.get(index, 0) + weight
    return counts


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
