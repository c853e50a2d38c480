"""Text analysis shared by text search, matching moments and transcript retrieval.

It follows what MongoDB's text index does, so that the embedded store, the search service and
the answer retrieval agree on what a word is: case and diacritics are folded, words split on
anything that is not a letter or a digit, stop words of the language dropped, and the rest
reduced with the Snowball stemmer of that language.
"""

import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import Stemmer

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

# MongoDB's own list for English text indexes (src/mongo/db/fts/stop_words_english.txt).
ENGLISH_STOP_WORDS = frozenset(
    """a about above after again against all am an and any are aren't as at be because been before
    being below between both but by can can't cannot could couldn't did didn't do does doesn't doing
    don't down during each few for from further had hadn't has hasn't have haven't having he he'd
    he'll he's her here here's hers herself him himself his how how's i i'd i'll i'm i've if in into
    is isn't it it's its itself let's me more most mustn't my myself no nor not of off on once only
    or other ought our ours ourselves out over own same shan't she she'd she'll she's should
    shouldn't so some such than that that's the their theirs them themselves then there there's
    these they they'd they'll they're they've this those through to too under until up very was
    wasn't we we'd we'll we're we've were weren't what what's when when's where where's which while
    who who's whom why why's with won't would wouldn't you you'd you'll you're you've your yours
    yourself yourselves""".split()
)

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*", re.UNICODE)
_ASCII_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z0-9]+)*")
"""`_WORD` on ASCII text, where it matches the same and runs faster."""
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


def fold(text: str) -> str:
    """Lower case without diacritics: `Ünïcødé` becomes `unicode`."""
    if text.isascii():
        return text.lower()  # the same, without decomposing every character
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def words(text: str) -> list[str]:
    folded = fold(text)
    return (_ASCII_WORD if folded.isascii() else _WORD).findall(folded)


_STEMMERS = threading.local()


def _stemmer(language: str) -> Stemmer.Stemmer:
    """This thread's stemmer for a language.

    A Snowball stemmer keeps per-call state, so one shared between threads (the store's, the
    workers', the event loop's) gives wrong stems and crashes; each thread gets its own. PyStemmer
    is Snowball's C library (libstemmer, as MongoDB links), about 60 times faster here than the
    pure-Python snowballstemmer, with the same stems. Its own cache is off: `stem` caches."""
    stemmers: dict[str, Stemmer.Stemmer] = _STEMMERS.__dict__.setdefault("by_language", {})
    if language not in stemmers:
        stemmers[language] = Stemmer.Stemmer(language, 0)
    return stemmers[language]


@lru_cache(maxsize=200_000)
def stem(word: str, language: str = "english") -> str:
    if language == NO_LANGUAGE:
        return word
    return _stemmer(language).stemWord(word)


def stop_words(language: str) -> frozenset[str]:
    return ENGLISH_STOP_WORDS if language == "english" else frozenset()


def is_stop_word(word: str, language: str = "english") -> bool:
    return word in stop_words(language)


def terms(text: str, language: str = "english") -> list[str]:
    """The index terms of a text: its words less stop words, stemmed."""
    return [stem(word, language) for word in words(text) if not is_stop_word(word, language)]


def distinct_terms(text_words: list[str], language: str = "english") -> set[str]:
    """The index terms among a text's words, each distinct word stemmed once."""
    return {stem(word, language) for word in set(text_words).difference(stop_words(language))}


@dataclass(frozen=True)
class TimedText:
    start: float
    end: float
    text: str


def timed_sentences(segments: list[Segment]) -> list[TimedText]:
    """The transcript cut into sentences, each with the time span it was spoken in.

    Whisper cuts segments by time, not by sentence, so a sentence may begin in one segment and
    end in the next; its times are interpolated by character position within each segment.
    """
    pieces: list[tuple[str, float, float]] = []
    for segment in segments:
        parts = [part for part in _SENTENCE_END.split(segment.text.strip()) if part]
        total = sum(len(part) for part in parts) or 1
        position = 0
        for part in parts:
            start = segment.start + (segment.end - segment.start) * position / total
            position += len(part)
            end = segment.start + (segment.end - segment.start) * position / total
            pieces.append((part, start, end))
    sentences: list[TimedText] = []
    buffer: list[tuple[str, float, float]] = []
    for piece in pieces:
        buffer.append(piece)
        if piece[0].rstrip().endswith((".", "!", "?", "。", "！", "？")):
            sentences.append(_joined(buffer))
            buffer = []
    if buffer:
        sentences.append(_joined(buffer))
    return sentences


def _joined(pieces: list[tuple[str, float, float]]) -> TimedText:
    return TimedText(
        start=round(pieces[0][1], 3),
        end=round(pieces[-1][2], 3),
        text=" ".join(text.strip() for text, _, _ in pieces),
    )


@dataclass(frozen=True)
class TextQuery:
    """A MongoDB `$search` string, parsed as MongoDB does: words match any, `"a phrase"` must
    appear, `-word` and `-"a phrase"` exclude. Words and phrases are folded, not yet stemmed."""

    words: tuple[str, ...]
    phrases: tuple[str, ...]
    negated_words: tuple[str, ...]
    negated_phrases: tuple[str, ...]

    def terms(self, language: str) -> list[str]:
        """The positive index terms (phrases' words included) in the query's language."""
        found = [term for text in (*self.words, *self.phrases) for term in terms(text, language)]
        return list(dict.fromkeys(found))

    def negated_terms(self, language: str) -> set[str]:
        return {term for word in self.negated_words for term in terms(word, language)}


_QUERY_PART = re.compile(r'(-?)"([^"]*)"?|(\S+)')


def parse_text_query(search: str) -> TextQuery:
    positive: list[str] = []
    phrases: list[str] = []
    negative: list[str] = []
    negative_phrases: list[str] = []
    for negation, phrase, token in _QUERY_PART.findall(search):
        if token:
            negated = token.startswith("-")
            (negative if negated else positive).extend(words(token.lstrip("-")))
        elif words(phrase):
            (negative_phrases if negation else phrases).append(" ".join(words(phrase)))
    return TextQuery(tuple(positive), tuple(phrases), tuple(negative), tuple(negative_phrases))


def contains_phrase(word_text: str, phrase: str) -> bool:
    """Whether a text, as its words joined by single spaces, holds the phrase's words in a row."""
    return f" {phrase} " in f" {word_text} "
