"""Text analysis shared by text search, matching moments and transcript retrieval.

It is MongoDB's text index version 3 (src/mongo/db/fts/fts_unicode_tokenizer.cpp,
`UnicodeFTSTokenizer::moveNext`), so that the embedded store, the search service and the answer
retrieval agree with MongoDB on what a word is: words are cut at Unicode delimiters (codepoints.py;
the apostrophe stays inside English words), lower-cased, dropped when they are stop words of the
language (checked with their diacritics, as MongoDB checks them), stemmed with the Snowball stemmer
of the language, and only then stripped of diacritics: French "mangées" stems to "mang" before it
loses its accent (stripped first, it would stem to "mange").
"""

import re
import threading
from dataclasses import dataclass
from functools import cache, lru_cache

import Stemmer
import stop_words as stop_word_lists

from service.text.codepoints import lower, lowered_words, strip_diacritics
from service.videos.models import Segment

NO_LANGUAGE = "none"

TEXT_SEARCH_LANGUAGES = {
    "danish": "danish", "da": "danish",
    "dutch": "dutch", "nl": "dutch",
    "english": "english", "en": "english",
    "finnish": "finnish", "fi": "finnish",
    "french": "french", "fr": "french",
    "german": "german", "de": "german",
    "hungarian": "hungarian", "hu": "hungarian",
    "italian": "italian", "it": "italian",
    "norwegian": "norwegian", "nb": "norwegian",
    "portuguese": "portuguese", "pt": "portuguese",
    "romanian": "romanian", "ro": "romanian",
    "russian": "russian", "ru": "russian",
    "spanish": "spanish", "es": "spanish",
    "swedish": "swedish", "sv": "swedish",
    "turkish": "turkish", "tr": "turkish",
    NO_LANGUAGE: NO_LANGUAGE,
}  # fmt: skip
"""The languages MongoDB text search supports, by name and by ISO 639-1 code."""

WITHOUT_STOP_WORDS = frozenset({"romanian", NO_LANGUAGE})
"""MongoDB ships no stop-word list for these (src/mongo/db/fts/stop_words_*.txt), so none is used,
although the stop-words package has one for Romanian."""

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""Python joins a valid pair into one character: a surrogate left in a str has no partner."""


def encodable(text: str) -> str:
    """The text with each lone surrogate (JSON can escape one: `"\\ud800"`) as U+FFFD, so that it
    can be written as UTF-8, which no store can do with the surrogate."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def text_search_language(language: str | None) -> str:
    """The MongoDB text-search language for a transcript language; `none` when unsupported."""
    return TEXT_SEARCH_LANGUAGES.get((language or "").lower(), NO_LANGUAGE)


@cache
def stop_words(language: str) -> frozenset[str]:
    """The language's stop words, from the stop-words package: its 2018 lists, the closest to
    MongoDB's that a package ships (README, "Search", says where they differ)."""
    if language in WITHOUT_STOP_WORDS:
        return frozenset()
    return frozenset(word for word in stop_word_lists.get_stop_words(language) if word)


ENGLISH_STOP_WORDS = stop_words("english")


def words(text: str, language: str = "english") -> list[str]:
    """The text's words as MongoDB's tokenizer cuts them, lower-cased, diacritics kept."""
    return lowered_words(text, language)


def fold(text: str, language: str = "english") -> str:
    """Lower case without diacritics, as MongoDB compares phrases (`caseFoldAndStripDiacritics`)."""
    return strip_diacritics(lower(text, language))


_STEMMERS = threading.local()


def _stemmer(language: str) -> Stemmer.Stemmer:
    """This thread's stemmer for a language.

    A Snowball stemmer keeps per-call state, so one shared between threads (the store's, the
    workers', the event loop's) gives wrong stems and crashes; each thread gets its own. PyStemmer
    is Snowball's C library (libstemmer, as MongoDB links), about 60 times faster here than the
    pure-Python snowballstemmer, with the same stems. Its own cache is off: `term` caches."""
    stemmers: dict[str, Stemmer.Stemmer] = _STEMMERS.__dict__.setdefault("by_language", {})
    if language not in stemmers:
        stemmers[language] = Stemmer.Stemmer(language, 0)
    return stemmers[language]


def stem(word: str, language: str = "english") -> str:
    if language == NO_LANGUAGE:
        return word
    return _stemmer(language).stemWord(word)


def is_stop_word(word: str, language: str = "english") -> bool:
    """Whether a lower-cased word (diacritics kept) is one of the language's stop words."""
    return word in stop_words(language)


@lru_cache(maxsize=200_000)
def term(word: str, language: str = "english") -> str | None:
    """A lower-cased word's index term, in MongoDB's order: the stop-word check, the stem, then
    the diacritics stripped; None for a stop word."""
    if is_stop_word(word, language):
        return None
    return strip_diacritics(stem(word, language))


def terms(text: str, language: str = "english") -> list[str]:
    """The index terms of a text: its words less stop words, stemmed, without diacritics."""
    found = (term(word, language) for word in words(text, language))
    return [found_term for found_term in found if found_term is not None]


def distinct_terms(text_words: list[str], language: str = "english") -> set[str]:
    """The index terms among a text's words, each distinct word looked at once."""
    found = (term(word, language) for word in set(text_words))
    return {found_term for found_term in found if found_term is not None}


@dataclass(frozen=True)
class TimedText:
    start: float
    end: float
    text: str
    low_confidence: bool = False
    """Some of it comes from a segment the speech recognizer was unsure of."""


def timed_sentences(segments: list[Segment]) -> list[TimedText]:
    """The transcript cut into sentences, each with the time span it was spoken in.

    Whisper cuts segments by time, not by sentence, so a sentence may begin in one segment and
    end in the next; its times are interpolated by character position within each segment.
    """
    pieces: list[TimedText] = []
    for segment in segments:
        parts = [part for part in _SENTENCE_END.split(segment.text.strip()) if part]
        total = sum(len(part) for part in parts) or 1
        position = 0
        for part in parts:
            start = segment.start + (segment.end - segment.start) * position / total
            position += len(part)
            end = segment.start + (segment.end - segment.start) * position / total
            pieces.append(TimedText(start, end, part, segment.low_confidence))
    sentences: list[TimedText] = []
    buffer: list[TimedText] = []
    for piece in pieces:
        buffer.append(piece)
        if piece.text.rstrip().endswith((".", "!", "?", "。", "！", "？")):
            sentences.append(_joined(buffer))
            buffer = []
    if buffer:
        sentences.append(_joined(buffer))
    return sentences


def _joined(pieces: list[TimedText]) -> TimedText:
    return TimedText(
        start=round(pieces[0].start, 3),
        end=round(pieces[-1].end, 3),
        text=" ".join(piece.text.strip() for piece in pieces),
        low_confidence=any(piece.low_confidence for piece in pieces),
    )
