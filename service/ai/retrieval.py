"""Finding the transcript passages that bear on a question: BM25 over the transcript's sentences.

BM25+ rather than the classic Okapi form: Okapi's IDF turns negative for a word in more than half
of the passages, which in a short transcript (or a migrated one, a single passage) ranks the
passages that hold the question's words below those that do not.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass

from rank_bm25 import BM25Plus

from service.text import ENGLISH_STOP_WORDS, TimedText, stem, terms, text_search_language, timed_sentences
from service.videos.models import Segment, Video

QUESTION_NOISE = frozenset(
    stem(word) for word in "video clip recording speaker say said tell talk mention discuss explain describe".split()
)
"""Words that ask about the video itself rather than what is in it."""

MIN_COVERAGE = 0.34
"""A passage answers only if it holds at least this share of the question's weight (by IDF)."""


@dataclass(frozen=True)
class Match:
    passage: TimedText
    score: float


class TranscriptIndex:
    def __init__(self, segments: list[Segment], language: str | None) -> None:
        self.language = text_search_language(language)
        self.passages = timed_sentences(segments)
        corpus = [terms(p.text, self.language) for p in self.passages]
        self._terms = [set(passage_terms) for passage_terms in corpus]
        self._bm25 = BM25Plus(corpus) if any(corpus) else None

    def question_terms(self, question: str) -> list[str]:
        """The question's index terms, less words about the video itself and, whatever the
        transcript's language, English stop words (questions are often asked in English)."""
        return [
            term
            for term in terms(question, self.language)
            if term not in QUESTION_NOISE and term not in ENGLISH_STOP_WORDS
        ]

    def search(self, question: str, context: str = "", limit: int = 6) -> list[Match]:
        """Passages for the question, best first; [] when none holds enough of the question.

        When the question alone finds nothing, `context` (the previous question) joins the ranking,
        so a follow-up like "and when?" leans on what was asked before; the question's own words,
        if it has any, must still be in the best passage.
        """
        own = self.question_terms(question)
        matches = self._ranked(own, own, limit)
        if not matches and context:
            earlier = self.question_terms(context)
            matches = self._ranked(own + earlier, own or earlier, limit)
        return matches

    def _ranked(self, query: list[str], required: list[str], limit: int) -> list[Match]:
        if self._bm25 is None or not query:
            return []
        scores = self._bm25.get_scores(query)
        wanted = set(query)
        holding = [i for i in range(len(self.passages)) if self._terms[i] & wanted]
        ranked = sorted(holding, key=lambda i: scores[i], reverse=True)[:limit]
        if not ranked or self._coverage(required, ranked[0]) < MIN_COVERAGE:
            return []
        return [Match(self.passages[i], float(scores[i])) for i in ranked]

    def _coverage(self, question_terms: list[str], index: int) -> float:
        weights = {term: self._idf(term) for term in question_terms}
        present = sum(weight for term, weight in weights.items() if term in self._terms[index])
        return present / (sum(weights.values()) or 1.0)

    def _idf(self, term: str) -> float:
        known = self._bm25.idf
        return max(known.get(term, max(known.values(), default=1.0)), 0.01)


class IndexCache:
    """The last few videos' indexes: building one for an hour of speech takes longer than using it."""

    def __init__(self, size: int = 32) -> None:
        self._size = size
        self._indexes: OrderedDict[tuple[str, str], TranscriptIndex] = OrderedDict()
        self._lock = threading.Lock()

    def index_for(self, video: Video) -> TranscriptIndex:
        """Blocking on a cache miss: call it from a thread."""
        key = (str(video.id), str(video.processed_at))
        with self._lock:
            if key in self._indexes:
                self._indexes.move_to_end(key)
                return self._indexes[key]
        transcript = video.transcript
        segments = transcript.timed_segments(video.metadata.duration) if transcript else []
        index = TranscriptIndex(segments, transcript.language if transcript else None)
        with self._lock:
            self._indexes[key] = index
            while len(self._indexes) > self._size:
                self._indexes.popitem(last=False)
        return index
