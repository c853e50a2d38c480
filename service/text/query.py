"""A `$search` string parsed as MongoDB parses it, and phrases matched as MongoDB matches them."""

import re
from collections.abc import Iterable
from dataclasses import dataclass

from service.text import fold, terms

_QUERY_TOKEN = re.compile(r'([\n\v\f\r ]*)([-"]|[^\n\v\f\r "-]+)')
"""src/mongo/db/fts/fts_query_parser.cpp, `FTSQueryParser::getType`: white space is only these
five characters (a tab is text); `-` and `"` are delimiters, one character each; the rest is text.
The first group is the white space before a token."""


@dataclass(frozen=True)
class TextQuery:
    """A `$search` string as MongoDB reads it (src/mongo/db/fts/fts_query_impl.cpp,
    `FTSQueryImpl::parse`): words match any, `"a phrase"` must appear and its words count as
    query words, `-word` and `-"a phrase"` exclude. A `-` negates only at the start or after
    white space, and a negation lasts until the next white space: `front-door` asks for both
    words, `-front-door` excludes both. Words and phrases are kept as written."""

    words: tuple[str, ...]
    phrases: tuple[str, ...]
    negated_words: tuple[str, ...]
    negated_phrases: tuple[str, ...]

    def terms(self, language: str) -> list[str]:
        """The positive index terms in the query's language, in the order MongoDB scans them and
        so adds up their scores: sorted (a `std::set`; src/mongo/db/exec/text.cpp,
        `TextStage::buildTextTree`)."""
        return sorted({found for word in self.words for found in terms(word, language)})

    def negated_terms(self, language: str) -> set[str]:
        return {found for word in self.negated_words for found in terms(word, language)}


def parse_text_query(search: str) -> TextQuery:
    positive: list[str] = []
    negated: list[str] = []
    phrases: list[str] = []
    negated_phrases: list[str] = []
    in_negation = in_phrase = False
    quote = 0
    for match in _QUERY_TOKEN.finditer(search):
        token, after_space = match.group(2), match.start() == 0 or bool(match.group(1))
        if token == "-":
            in_negation = in_negation or (after_space and not in_phrase)
        elif token == '"' and in_phrase:
            (negated_phrases if in_negation else phrases).append(search[quote + 1 : match.start(2)])
            in_phrase = False
        elif token == '"':
            in_phrase, quote = True, match.start(2)
            in_negation = in_negation and not after_space
        elif not (in_phrase and in_negation):
            in_negation = in_negation and not after_space
            (negated if in_negation else positive).append(token)
    return TextQuery(tuple(positive), tuple(phrases), tuple(negated), tuple(negated_phrases))


class FoldedTexts:
    """Texts as MongoDB's phrase matcher compares them (src/mongo/db/fts/fts_unicode_phrase_matcher.cpp
    and unicode/string.cpp, `String::substrMatch`): a phrase holds when it is a substring of one of
    them, both as they are written but for case and diacritics, so `"coffee shop"` is in "Coffee
    Shopping" and `"front door"` is not in "front-door" or "front,  door". Each text is folded once,
    however many phrases are asked."""

    def __init__(self, texts: Iterable[str], language: str = "english") -> None:
        self.language = language
        self._folded = [fold(text, language) for text in texts]

    def hold(self, phrase: str) -> bool:
        needle = fold(phrase, self.language)
        return any(needle in text for text in self._folded)
