"""Answers to requests about the whole video ("10 key points"), made from its stored summary.

The offline `local` provider writes nothing new: it lists what the summary holds, with the
moments each item comes from, and says so when it holds fewer items than were asked for.
"""

from collections.abc import Callable

from service.ai.intents import WholeVideoRequest
from service.ai.schemas import AnswerDraft, KeyPoint, Overview
from service.ai.wording import wording_language, words_in
from service.videos.models import Chapter, Citation

DEFAULT_COUNT = 10
"""Items listed when the request names no number ("key points")."""


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def span(start: float, end: float) -> str:
    return f"{clock(start)}–{clock(end)}"


def overview_answer(overview: Overview | None, wanted: WholeVideoRequest, fallback_language: str | None) -> AnswerDraft:
    """The answer in the summary's language (its own words in that language where it has them)."""
    language = (overview.language if overview else None) or fallback_language
    wording = words_in(language)
    if overview is None:
        return AnswerDraft(text=wording["no_summary"], citations=[], language=wording_language(language))
    answer = _ANSWERS[wanted.kind]
    text, citations = answer(overview, wanted, wording)
    return AnswerDraft(text=text, citations=citations, language=language)


def _chapter_citation(chapter: Chapter) -> Citation:
    return Citation(start=chapter.start, end=chapter.end, text=chapter.summary or chapter.title)


def _key_point_citation(point: KeyPoint) -> Citation | None:
    if point.start is None or point.end is None:
        return None
    return Citation(start=point.start, end=point.end, text=point.text, low_confidence=point.low_confidence)


def _heading(title: str, listed: int, asked: int | None, wording: dict[str, str]) -> str:
    if asked is not None and asked > listed:
        return f"{title} ({wording['fewer'].format(count=listed, asked=asked)}):"
    return f"{title}:"


def _key_point_line(number: int, point: KeyPoint) -> str:
    moment = f"[{span(point.start, point.end)}] " if point.start is not None and point.end is not None else ""
    return f"{number}. {moment}{point.text}"


def _chapter_line(number: int, chapter: Chapter) -> str:
    about = f" — {chapter.summary}" if chapter.summary else ""
    return f"{number}. [{span(chapter.start, chapter.end)}] {chapter.title}{about}"


def _key_points(overview: Overview, wanted: WholeVideoRequest, wording: dict[str, str]) -> tuple[str, list[Citation]]:
    if not overview.key_points:
        return _summary(overview, wanted, wording)
    points = overview.key_points[: wanted.count or DEFAULT_COUNT]
    lines = [_heading(wording["key_points"], len(points), wanted.count, wording)]
    lines += [_key_point_line(n, point) for n, point in enumerate(points, start=1)]
    return "\n".join(lines), [c for c in map(_key_point_citation, points) if c is not None]


def _chapters(overview: Overview, wanted: WholeVideoRequest, wording: dict[str, str]) -> tuple[str, list[Citation]]:
    if not overview.chapters:
        return _summary(overview, wanted, wording)
    chapters = overview.chapters[: wanted.count] if wanted.count else overview.chapters
    lines = [_heading(wording["chapters"], len(chapters), wanted.count, wording)]
    lines += [_chapter_line(n, chapter) for n, chapter in enumerate(chapters, start=1)]
    return "\n".join(lines), [_chapter_citation(chapter) for chapter in chapters]


def _summary(overview: Overview, wanted: WholeVideoRequest, wording: dict[str, str]) -> tuple[str, list[Citation]]:
    """The summary with its chapters; a detailed one with the key points too."""
    parts = [f"{wording['summary']}: {overview.text}"]
    citations = [_chapter_citation(chapter) for chapter in overview.chapters]
    if overview.chapters:
        lines = [_chapter_line(n, chapter) for n, chapter in enumerate(overview.chapters, start=1)]
        parts.append("\n".join([f"{wording['chapters']}:", *lines]))
    if wanted.detailed and overview.key_points:
        lines = [_key_point_line(n, point) for n, point in enumerate(overview.key_points, start=1)]
        parts.append("\n".join([f"{wording['key_points']}:", *lines]))
        citations += [c for c in map(_key_point_citation, overview.key_points) if c is not None]
    return "\n\n".join(parts), citations


def _questions(overview: Overview, wanted: WholeVideoRequest, wording: dict[str, str]) -> tuple[str, list[Citation]]:
    """One question per chapter (what it covers), then one per key point said at a known moment."""
    pairs: list[tuple[str, str, Citation]] = []
    for chapter in overview.chapters:
        question = wording["chapter_question"].format(title=chapter.title, span=span(chapter.start, chapter.end))
        pairs.append((question, chapter.summary or chapter.title, _chapter_citation(chapter)))
    answered = {answer for _, answer, _ in pairs}
    for point in overview.key_points:
        citation = _key_point_citation(point)
        if citation is not None and point.text not in answered:
            pairs.append((wording["moment_question"].format(time=clock(citation.start)), point.text, citation))
    if not pairs:
        return _summary(overview, wanted, wording)
    pairs = pairs[: wanted.count or DEFAULT_COUNT]
    lines = [_heading(wording["questions"], len(pairs), wanted.count, wording)]
    for number, (question, answer, _) in enumerate(pairs, start=1):
        lines.append(f"{number}. {wording['q']}: {question}\n   {wording['a']}: {answer}")
    return "\n".join(lines), [citation for _, _, citation in pairs]


_ANSWERS: dict[str, Callable[[Overview, WholeVideoRequest, dict[str, str]], tuple[str, list[Citation]]]] = {
    "key_points": _key_points,
    "chapters": _chapters,
    "summary": _summary,
    "questions": _questions,
}
