"""`$text` for the embedded store, with MongoDB's documented semantics (mongomock has none).

A text index's fields, weights, default language and language override are kept from its
creation. A document's score follows MongoDB's text index version 2+ scoring: for each field,
each term's repeated occurrences count 1, 1/2, 1/4, ... scaled by (0.5 * count / tokens + 0.5)
and by the field's weight, plus 10% when the term is the whole field; a query's score is the sum
over its positive terms. Words match any; phrases must all appear; negated words and phrases
exclude. Case and diacritics are folded (text index version 3).
"""

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pymongo.errors import OperationFailure, WriteError

from service.text import (
    NO_LANGUAGE,
    TEXT_SEARCH_LANGUAGES,
    contains_phrase,
    fold,
    is_stop_word,
    parse_text_query,
    stem,
    words,
)

WHOLE_FIELD_BOOST = 1.1


@dataclass(frozen=True)
class TextIndexSpec:
    weights: dict[str, int]
    default_language: str
    language_override: str

    @classmethod
    def from_index(cls, keys: Iterable[tuple[str, Any]], options: dict[str, Any]) -> "TextIndexSpec":
        weights = {field: 1 for field, kind in keys if kind == "text"}
        weights.update(options.get("weights") or {})
        return cls(
            weights=weights,
            default_language=options.get("default_language", "english"),
            language_override=options.get("language_override", "language"),
        )


def _language(value: Any) -> str:
    if not isinstance(value, str):
        raise WriteError("found language override field in document with non-string type", code=17261)
    if value.lower() not in TEXT_SEARCH_LANGUAGES:
        raise WriteError(f"language override unsupported: {value}", code=17262)
    return TEXT_SEARCH_LANGUAGES[value.lower()]


def _values(document: Any, path: list[str]) -> Iterator[Any]:
    """Every value at a dotted path, through arrays, as MongoDB indexes them."""
    if isinstance(document, list):
        for item in document:
            yield from _values(item, path)
        return
    if not path:
        yield document
        return
    if isinstance(document, dict) and path[0] in document:
        yield from _values(document[path[0]], path[1:])


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _subdocuments_on_paths(document: dict[str, Any], spec: TextIndexSpec) -> Iterator[dict[str, Any]]:
    yield document
    for field in spec.weights:
        parts = field.split(".")
        for depth in range(1, len(parts)):
            for value in _values(document, parts[:depth]):
                if isinstance(value, dict):
                    yield value


def check_languages(document: dict[str, Any], spec: TextIndexSpec) -> None:
    """Refuse, as MongoDB does, a language override value text search does not support (17262)."""
    for subdocument in _subdocuments_on_paths(document, spec):
        if spec.language_override in subdocument:
            _language(subdocument[spec.language_override])


def _score_field(text: str, weight: int, language: str, scores: dict[str, float]) -> None:
    counts: dict[str, int] = defaultdict(int)
    frequencies: dict[str, float] = defaultdict(float)
    tokens = 0
    for word in words(text):
        if is_stop_word(word, language):
            continue
        term = stem(word, language)
        frequencies[term] += 1 / 2 ** counts[term]
        counts[term] += 1
        tokens += 1
    whole = fold(text)
    for term, count in counts.items():
        coefficient = 0.5 * count / tokens + 0.5
        boost = WHOLE_FIELD_BOOST if whole == term else 1.0
        scores[term] += weight * frequencies[term] * coefficient * boost


@dataclass(frozen=True)
class _IndexedDocument:
    fingerprint: tuple
    scores: dict[str, float]
    texts: tuple[str, ...]  # each indexed string as its words joined by spaces, for phrases


class TextSearcher:
    """Scores documents against `$text` queries, keeping each document's terms until its text changes."""

    def __init__(self, spec: TextIndexSpec) -> None:
        self.spec = spec
        self._indexed: dict[Any, _IndexedDocument] = {}

    def _fields(self, document: dict[str, Any]) -> list[tuple[str, int]]:
        return [
            (text, weight)
            for field, weight in self.spec.weights.items()
            for value in _values(document, field.split("."))
            for text in _strings(value)
        ]

    def _document_language(self, document: dict[str, Any]) -> str:
        if self.spec.language_override in document:
            return _language(document[self.spec.language_override])
        return TEXT_SEARCH_LANGUAGES.get(self.spec.default_language, NO_LANGUAGE)

    def _index(self, document: dict[str, Any]) -> _IndexedDocument:
        fields = self._fields(document)
        language = self._document_language(document)
        fingerprint = (language, *((hash(text), weight) for text, weight in fields))
        cached = self._indexed.get(document["_id"])
        if cached is not None and cached.fingerprint == fingerprint:
            return cached
        scores: dict[str, float] = defaultdict(float)
        for text, weight in fields:
            _score_field(text, weight, language, scores)
        indexed = _IndexedDocument(fingerprint, dict(scores), tuple(" ".join(words(text)) for text, _ in fields))
        self._indexed[document["_id"]] = indexed
        return indexed

    def scores(self, text_filter: dict[str, Any], documents: Iterable[dict[str, Any]]) -> dict[Any, float]:
        """The `_id` and score of every document the `$text` filter matches."""
        if not isinstance(text_filter, dict) or not isinstance(text_filter.get("$search"), str):
            raise OperationFailure("$text needs a string $search", code=2)
        query = parse_text_query(text_filter["$search"])
        language = TEXT_SEARCH_LANGUAGES.get(str(text_filter.get("$language", self.spec.default_language)).lower())
        if language is None:
            raise OperationFailure(f"language override unsupported: {text_filter['$language']}", code=17262)
        positive, negative = query.terms(language), query.negated_terms(language)
        matches: dict[Any, float] = {}
        seen = set()
        for document in documents:
            seen.add(document["_id"])
            indexed = self._index(document)
            if not positive or any(term in indexed.scores for term in negative):
                continue
            if not all(any(contains_phrase(t, p) for t in indexed.texts) for p in query.phrases):
                continue
            if any(contains_phrase(t, p) for t in indexed.texts for p in query.negated_phrases):
                continue
            score = sum(indexed.scores.get(term, 0.0) for term in positive)
            if score > 0:
                matches[document["_id"]] = score
        self._forget_missing(seen)
        return matches

    def _forget_missing(self, seen: set[Any]) -> None:
        """Drop what is kept for deleted documents, once the kept set is twice what was seen."""
        if len(self._indexed) > 2 * len(seen) + 100:
            self._indexed = {key: value for key, value in self._indexed.items() if key in seen}
