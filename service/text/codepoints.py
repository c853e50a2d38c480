"""What MongoDB's text index (version 3) does with each code point: where a word ends, its lower
case, its diacritics.

MongoDB generates three tables from the Unicode 8.0 character database (src/mongo/db/fts/unicode/):

- `gen_delimiter_list.py` (`codepointIsDelimiter`): a code point with one of the properties
  White_Space, Dash, Hyphen, Quotation_Mark, Terminal_Punctuation, Pattern_Syntax or STerm ends a
  word, except the ASCII apostrophe in English. `_` has none of them: `snake_case` is one word.
- `gen_casefold_map.py` (`codepointToLower`): lower case is Unicode's simple case folding (the C
  and S mappings of CaseFolding.txt, one code point to one), with I to ı and İ to i in Turkish.
- `gen_diacritic_map.py` (`codepointRemoveDiacritics`): a code point with the Diacritic property
  is dropped; another becomes its canonical decomposition less its diacritics, when that
  recomposes to a single code point (é to e, ø stays ø).

Here the same rules are asked of the `regex` module's Unicode properties and of Python's
`unicodedata`, which follow later Unicode versions than 8.0: the answers differ from MongoDB's
tables only for code points assigned since. Each code point's answer is worked out the first time
a text holds it and kept in a `str.translate` table, so a text is mapped in one pass.
"""

import unicodedata
from collections.abc import Callable
from functools import lru_cache

import regex

DELIMITER_PROPERTIES = (
    "White_Space",
    "Dash",
    "Hyphen",
    "Quotation_Mark",
    "Terminal_Punctuation",
    "Pattern_Syntax",
    "Sentence_Terminal",  # STerm
)
_DELIMITER = regex.compile("[" + "".join(rf"\p{{{name}}}" for name in DELIMITER_PROPERTIES) + "]")
_DIACRITIC = regex.compile(r"\p{Diacritic}")
KEPT_IN_ENGLISH_WORDS = "'"

WORD_BREAK = " "
"""What every delimiter becomes before a text is split; itself a delimiter, so never in a word."""

_TABLE_LIMIT = 65_536
"""The most code points a table keeps answers for; past it (a text made to hold every code point)
the answers are worked out again each time instead of growing the table without bound."""


class _PerCodePoint(dict[int, str]):
    """A `str.translate` table that works out a code point's replacement when first asked."""

    def __init__(self, rule: Callable[[str], str]) -> None:
        super().__init__()
        self._rule = rule

    def __missing__(self, code_point: int) -> str:
        replacement = self._rule(chr(code_point))
        if len(self) < _TABLE_LIMIT:
            self[code_point] = replacement
        return replacement


def is_delimiter(char: str, english: bool) -> bool:
    return not (english and char == KEPT_IN_ENGLISH_WORDS) and _DELIMITER.match(char) is not None


def _lower_char(char: str, turkish: bool) -> str:
    """Simple case folding: Python's full folding where it gives one code point (ς to σ), else
    its lower case where that is one code point (ẞ to ß), else the code point itself (ß, İ)."""
    if turkish and char in "Iİ":
        return "ı" if char == "I" else "i"
    folded = char.casefold()
    if len(folded) == 1:
        return folded
    lowered = char.lower()
    return lowered if len(lowered) == 1 else char


def _without_diacritics(char: str) -> str:
    if _DIACRITIC.match(char):
        return ""
    kept = "".join(part for part in unicodedata.normalize("NFD", char) if not _DIACRITIC.match(part))
    recomposed = unicodedata.normalize("NFC", kept)
    return recomposed if len(recomposed) == 1 else char


def _word_chars(english: bool, turkish: bool) -> _PerCodePoint:
    return _PerCodePoint(lambda char: WORD_BREAK if is_delimiter(char, english) else _lower_char(char, turkish))


_LOWER = {turkish: _PerCodePoint(lambda char, turkish=turkish: _lower_char(char, turkish)) for turkish in (False, True)}
_WORD_CHARS = {
    "english": _word_chars(english=True, turkish=False),
    "turkish": _word_chars(english=False, turkish=True),
    "other": _word_chars(english=False, turkish=False),
}


def _ascii_word_bytes(english: bool) -> bytes:
    """A `bytes.translate` table for UTF-8 text: ASCII delimiters become the word break and A to Z
    lower case; every other byte, those of multi-byte characters included, stays as it is."""
    table = bytearray(range(256))
    for code in range(128):
        if is_delimiter(chr(code), english):
            table[code] = ord(WORD_BREAK)
        elif chr(code).isupper():
            table[code] = ord(chr(code).lower())
    return bytes(table)


_ASCII_WORD_BYTES = {english: _ascii_word_bytes(english) for english in (False, True)}
_ASCII_WORD_CHARS = {english: _ascii_word_bytes(english)[:128].decode() for english in (False, True)}
"""The same for ASCII text as a `str.translate` table: shorter work for short texts."""
_NO_DIACRITICS = _PerCodePoint(_without_diacritics)
_ASCII_DIACRITICS = "".join(chr(code) for code in range(128) if _DIACRITIC.match(chr(code)))  # ^ and `


def lowered_words(text: str, language: str) -> list[str]:
    """The text's words, lower-cased (diacritics kept), cut where MongoDB's tokenizer cuts
    (fts_unicode_tokenizer.cpp, `UnicodeFTSTokenizer::moveNext`).

    Lower-casing first gives the same words: case mappings go from letters to letters, never to
    or from a delimiter. Most text is mostly ASCII, so the ASCII delimiters and capitals are dealt
    with in one pass over its UTF-8 bytes, and only the pieces that hold other characters go
    through the per-code-point table, each distinct piece once. Turkish, whose I lowers to ı (two
    bytes), goes through the table whole."""
    if language == "turkish":
        return _split(text.translate(_WORD_CHARS["turkish"]))
    english = language == "english"
    if text.isascii():
        return _split(text.translate(_ASCII_WORD_CHARS[english]))
    utf8 = text.encode(errors="surrogatepass").translate(_ASCII_WORD_BYTES[english])
    pieces = _split(utf8.decode(errors="surrogatepass"))
    found: list[str] = []
    for piece in pieces:
        if piece.isascii():
            found.append(piece)
        else:
            found.extend(_non_ascii_words(piece, english))
    return found


def _split(marked: str) -> list[str]:
    return list(filter(None, marked.split(WORD_BREAK)))


@lru_cache(maxsize=100_000)
def _non_ascii_words(piece: str, english: bool) -> tuple[str, ...]:
    return tuple(_split(piece.translate(_WORD_CHARS["english" if english else "other"])))


def lower(text: str, language: str) -> str:
    """Lower case as MongoDB's text index has it (`codepointToLower`)."""
    if text.isascii() and language != "turkish":
        return text.lower()
    return text.translate(_LOWER[language == "turkish"])


def strip_diacritics(text: str) -> str:
    """Diacritics removed as MongoDB's text index removes them (`codepointRemoveDiacritics`).
    Most ASCII text has none (only `^` and `` ` `` are) and is returned as it is."""
    if not text.isascii():
        return text.translate(_NO_DIACRITICS)
    if any(diacritic in text for diacritic in _ASCII_DIACRITICS):
        return text.translate(_NO_DIACRITICS)
    return text
