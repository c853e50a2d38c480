"""The offline default: extractive summaries and answers quoted from the transcript.

No network and no model download. A summary is the transcript's most central sentences (cosine
similarity of each sentence's TF-IDF vector to the whole transcript's), in the order spoken; an
answer quotes the passages retrieval found, with their timestamps, or says plainly that the
video does not cover the question. A request about the whole video ("10 key points") is
answered from the stored summary. It cannot translate: it writes in the transcript's language
and says so in the entry's `note` when another language was asked for.
"""

import asyncio
import math
from collections import Counter
from collections.abc import AsyncIterator

from service.ai.intents import whole_video_request
from service.ai.overview import clock, overview_answer
from service.ai.providers.base import LanguageModel
from service.ai.schemas import AnswerDraft, AnswerRequest, Excerpt, SummaryDraft, SummaryRequest
from service.ai.wording import language_note, low_confidence_note, wording_language, words_in
from service.text import TimedText, terms, text_search_language, timed_sentences, words
from service.videos.models import Chapter

QUOTE_MIN_RELEVANCE = 0.6
MAX_QUOTES = 3
CHAPTER_SECONDS = 180.0
MAX_CHAPTERS = 12


def _idf(sentence_terms: list[list[str]]) -> dict[str, float]:
    count = len(sentence_terms)
    document_frequency = Counter(term for ts in sentence_terms for term in set(ts))
    return {term: math.log((1 + count) / (1 + df)) + 1 for term, df in document_frequency.items()}


def _centrality(sentence_terms: list[list[str]], idf: dict[str, float]) -> list[float]:
    """Cosine similarity of each sentence's TF-IDF vector to the whole transcript's."""
    whole = Counter(term for ts in sentence_terms for term in ts)
    whole_vector = {term: tf * idf[term] for term, tf in whole.items()}
    whole_norm = math.sqrt(sum(v * v for v in whole_vector.values())) or 1.0
    scores = []
    for ts in sentence_terms:
        vector = {term: tf * idf[term] for term, tf in Counter(ts).items()}
        norm = math.sqrt(sum(v * v for v in vector.values())) or 1.0
        scores.append(sum(v * whole_vector[t] for t, v in vector.items()) / (norm * whole_norm))
    return scores


def _title(sentences: list[TimedText], idf: dict[str, float], language: str) -> str:
    """The chapter's three most telling words (frequent here, rare elsewhere), as they were spoken."""
    spoken: dict[str, Counter] = {}
    for sentence in sentences:
        for word in words(sentence.text, language):
            for term in terms(word, language):
                spoken.setdefault(term, Counter())[word] += 1
    weight = {term: sum(forms.values()) * idf.get(term, 1.0) for term, forms in spoken.items()}
    top = sorted(spoken, key=lambda term: (-weight[term], -len(term)))[:3]
    return ", ".join(spoken[term].most_common(1)[0][0] for term in top).capitalize() or "Untitled"


def _chapters(
    sentences: list[TimedText], centrality: list[float], idf: dict[str, float], language: str
) -> list[Chapter]:
    duration = sentences[-1].end - sentences[0].start
    count = max(1, min(MAX_CHAPTERS, math.ceil(duration / CHAPTER_SECONDS), len(sentences)))
    span = duration / count
    groups: list[list[int]] = [[] for _ in range(count)]
    for index, sentence in enumerate(sentences):
        groups[min(count - 1, int((sentence.start - sentences[0].start) / span) if span else 0)].append(index)
    chapters = []
    for group in filter(None, groups):
        central = max(group, key=lambda i: centrality[i])
        members = [sentences[i] for i in group]
        chapters.append(
            Chapter(
                start=members[0].start,
                end=members[-1].end,
                title=_title(members, idf, language),
                summary=sentences[central].text,
            )
        )
    return chapters


def extractive_summary(request: SummaryRequest) -> SummaryDraft:
    """The summary in the transcript's own words, so in its language whatever was asked."""
    written = request.transcript_language or request.language
    note = language_note(request.language, written)
    sentences = timed_sentences(request.segments)
    if not sentences:
        return SummaryDraft(text="", language=written, note=note)
    language = text_search_language(request.transcript_language)
    sentence_terms = [terms(s.text, language) for s in sentences]
    idf = _idf(sentence_terms)
    centrality = _centrality(sentence_terms, idf)
    ranked = sorted(range(len(sentences)), key=lambda i: centrality[i], reverse=True)
    keep = max(1, min(7, round(len(sentences) / 8)))
    return SummaryDraft(
        text=" ".join(sentences[i].text for i in sorted(ranked[:keep])),
        key_points=[sentences[i].text for i in ranked[: min(5, len(sentences))]],
        chapters=_chapters(sentences, centrality, idf, language),
        language=written,
        note=note,
    )


def quoted_answer(request: AnswerRequest) -> AnswerDraft:
    """The passages retrieval found, quoted with their moments; its own words in the language of
    the quotes (the transcript's), or, when nothing matched, in the language asked for if it has it."""
    quoted: list[Excerpt] = [e for e in request.excerpts if e.relevance >= QUOTE_MIN_RELEVANCE][:MAX_QUOTES]
    if not quoted:
        written = wording_language(request.language)
        return AnswerDraft(text=words_in(written)["no_match"], citations=[], language=written)
    written = request.transcript_language or request.language
    lines = [f"{words_in(written)['from_the_video']}:"]
    lines += [f"[{clock(e.start)}–{clock(e.end)}] “{e.text}”" for e in quoted]
    return AnswerDraft(text="\n".join(lines), citations=[e.citation() for e in quoted], language=written)


def local_answer(request: AnswerRequest) -> AnswerDraft:
    wanted = whole_video_request(request.question)
    if wanted is None:
        draft = quoted_answer(request)
    else:
        draft = overview_answer(request.overview, wanted, request.transcript_language or request.language)
    notes = [language_note(request.language, draft.language), low_confidence_note(draft.citations)]
    return draft.model_copy(update={"note": " ".join(note for note in notes if note) or None})


class LocalModel(LanguageModel):
    name = "local"

    @property
    def model(self) -> str:
        return "local-extractive"

    async def summarize(self, request: SummaryRequest) -> SummaryDraft:
        return await asyncio.to_thread(extractive_summary, request)

    async def answer_stream(self, request: AnswerRequest) -> AsyncIterator[str | AnswerDraft]:
        draft = local_answer(request)
        yield draft.text
        yield draft
