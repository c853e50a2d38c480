"""`$text` for the embedded store, with MongoDB's semantics (mongomock has none).

A text index's fields, weights, default language and language override are kept from its
creation. A document's score follows MongoDB's text index version 2+ scoring
(src/mongo/db/fts/fts_spec.cpp, `FTSSpec::_scoreStringV2`): for each string, each term's repeated
occurrences count 1, 1/2, 1/4, ... scaled by (0.5 * count / terms + 0.5) and by the field's weight,
plus 10% when the term is the whole string; a query's score is the sum over its positive terms.
Words match any; phrases must all appear; negated words and phrases exclude
(src/mongo/db/fts/fts_matcher.cpp, `FTSMatcher::matches`). Words are cut, stop words dropped,
stems taken and diacritics stripped as text index version 3 does it (service/text).

The index maps each term to the documents holding it, so that a query reads only those.
"""

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pymongo.errors import OperationFailure, WriteError

from service.text import NO_LANGUAGE, TEXT_SEARCH_LANGUAGES, term, words
from service.text.query import FoldedTexts, TextQuery, parse_text_query

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


def _term_counts(text: str, language: str) -> dict[str, int]:
    """How often each term occurs: each distinct word is looked at once."""
    counts: dict[str, int] = defaultdict(int)
    for word, count in Counter(words(text, language)).items():
        found = term(word, language)
        if found is not None:
            counts[found] += count
    return counts


def _is_whole_string(text: str, found: str) -> bool:
    """MongoDB's test for the 10% boost: the string's bytes equal the term's but for ASCII case
    (`raw.size() == term.length() && raw.equalCaseInsensitive(term)`), so "Cake" has it for
    "cake" and "Café" not for "cafe". Only a string of one term can pass it."""
    return len(text) == len(found) and text.encode().lower() == found.encode().lower()


@lru_cache(maxsize=4096)
def _repeated(count: int) -> float:
    """A term's `count` occurrences, counting 1, 1/2, 1/4, ...: added in that order, as MongoDB does."""
    total = 0.0
    for occurrence in range(count):
        total += 1 / 2**occurrence
    return total


def _score_field(text: str, weight: int, language: str, scores: dict[str, float]) -> None:
    counts = _term_counts(text, language)
    tokens = sum(counts.values())
    for found, count in counts.items():
        coefficient = 0.5 * count / tokens + 0.5
        boost = WHOLE_FIELD_BOOST if len(counts) == 1 and _is_whole_string(text, found) else 1.0
        scores[found] += weight * _repeated(count) * coefficient * boost


@dataclass(frozen=True)
class _IndexedDocument:
    key: Any
    fingerprint: tuple
    terms: tuple[str, ...]
    texts: tuple[str, ...]  # each indexed string as stored, for phrases
    language: str


@dataclass(frozen=True)
class TextMatches:
    """The documents a `$text` filter's words select (a positive term, no negated one), with
    their scores. Its phrases are checked one document at a time, on the documents a page needs."""

    scores: dict[int, float]  # by document number
    query: TextQuery
    numbers: dict[Any, int]
    indexed: dict[int, _IndexedDocument]

    def ranked(self) -> Iterator[tuple[Any, float]]:
        """Each document's key and score, best first, equal scores in the collection's order; none
        whose terms are only in fields of weight 0 (as MongoDB, which refuses such weights anyway)."""
        numbers = sorted(self.scores)
        numbers.sort(key=self.scores.__getitem__, reverse=True)
        for number in numbers:
            score = self.scores[number]
            if score <= 0:
                return
            yield self.indexed[number].key, score

    def holds_phrases(self, key: Any) -> bool:
        """Whether each positive phrase is in one of the document's strings, and no negated one
        in any, matched in the document's language (Turkish folds I to ı)."""
        if not (self.query.phrases or self.query.negated_phrases):
            return True
        indexed = self.indexed[self.numbers[key]]
        texts = FoldedTexts(indexed.texts, indexed.language)
        return all(map(texts.hold, self.query.phrases)) and not any(map(texts.hold, self.query.negated_phrases))


class TextSearcher:
    """A collection's text index: for each term, the documents holding it with their score.

    The store builds it from every document at the first `$text` query, then refreshes the
    documents each committed write changed (`refresh`), so that a query reads only the documents
    holding one of its terms. Documents are numbered in the collection's order (a new one comes
    last, a changed one keeps its number): the postings are keyed by number, cheaper to hash than
    an ObjectId, and numbers order equal scores as the collection does."""

    def __init__(self, spec: TextIndexSpec) -> None:
        self.spec = spec
        self._built = False
        self._numbers: dict[Any, int] = {}
        self._indexed: dict[int, _IndexedDocument] = {}
        self._postings: dict[str, dict[int, float]] = {}
        self._next_number = 0

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

    def build(self, documents: Mapping[Any, dict[str, Any]]) -> None:
        """Index every document (nothing is kept if one has a language text search refuses)."""
        try:
            for key, document in documents.items():
                self._add(key, document)
        except BaseException:
            self._numbers, self._indexed, self._postings = {}, {}, {}
            raise
        self._built = True

    def refresh(self, keys: Iterable[Any], documents: Mapping[Any, dict[str, Any]]) -> None:
        """Follow a committed write: index again the documents it changed (nothing to do before the build)."""
        if not self._built:
            return
        for key in keys:
            document = documents.get(key)
            number = self._numbers.get(key)
            if number is not None:
                if document is not None and self._indexed[number].fingerprint == self._fingerprint(document):
                    continue
                self._remove(number)
            if document is None:
                self._numbers.pop(key, None)
            else:
                self._add(key, document)

    def _fingerprint(self, document: dict[str, Any]) -> tuple:
        return (self._document_language(document), *((hash(text), weight) for text, weight in self._fields(document)))

    def _add(self, key: Any, document: dict[str, Any]) -> None:
        fields = self._fields(document)
        language = self._document_language(document)
        scores: dict[str, float] = defaultdict(float)
        for text, weight in fields:
            _score_field(text, weight, language, scores)
        number = self._numbers.get(key)
        if number is None:
            number = self._numbers[key] = self._next_number
            self._next_number += 1
        for held, score in scores.items():
            self._postings.setdefault(held, {})[number] = score
        fingerprint = (language, *((hash(text), weight) for text, weight in fields))
        texts = tuple(text for text, _ in fields)
        self._indexed[number] = _IndexedDocument(key, fingerprint, tuple(scores), texts, language)

    def _remove(self, number: int) -> None:
        for held in self._indexed.pop(number).terms:
            holding = self._postings[held]
            del holding[number]
            if not holding:
                del self._postings[held]

    @property
    def built(self) -> bool:
        return self._built

    def matches(self, text_filter: dict[str, Any]) -> TextMatches:
        """The documents holding one of the `$text` filter's positive terms and none of its negated
        ones, with their scores (once `build` has run)."""
        if not isinstance(text_filter, dict) or not isinstance(text_filter.get("$search"), str):
            raise OperationFailure("$text needs a string $search", code=2)
        query = parse_text_query(text_filter["$search"])
        language = TEXT_SEARCH_LANGUAGES.get(str(text_filter.get("$language", self.spec.default_language)).lower())
        if language is None:
            raise OperationFailure(f"language override unsupported: {text_filter['$language']}", code=17262)
        return TextMatches(self._scores(query, language), query, self._numbers, self._indexed)

    def _scores(self, query: TextQuery, language: str) -> dict[int, float]:
        """Each positive term's score summed in the order MongoDB adds them (`TextQuery.terms`; the
        first term's copied as it is: 0.0 + score is that score), less the documents holding a
        negated term (src/mongo/db/exec/text_or.cpp)."""
        postings = [self._postings.get(wanted, {}) for wanted in query.terms(language)]
        scores = dict(postings[0]) if postings else {}
        for holding in postings[1:]:
            for number, score in holding.items():
                scores[number] = scores.get(number, 0.0) + score
        for unwanted in query.negated_terms(language):
            for number in self._postings.get(unwanted, ()):
                scores.pop(number, None)
        return scores
