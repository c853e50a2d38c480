"""The languages summaries and answers are asked for: codes as clients send them, names as models read them."""

import re
from functools import cache

from babel import Locale, UnknownLocaleError
from faster_whisper.tokenizer import _LANGUAGE_CODES as WHISPER_LANGUAGES

from service.errors import InvalidInput

LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$"
"""A language tag as clients send one: `ja`, `pt-BR`, `zh_CN`."""
_LANGUAGE = re.compile(LANGUAGE_PATTERN)

LANGUAGE_NAMES = {
    "en": "English", "es": "Spanish", "fr": "French", "de": "German", "it": "Italian", "pt": "Portuguese",
    "nl": "Dutch", "ja": "Japanese", "zh": "Chinese", "ko": "Korean", "ru": "Russian", "ar": "Arabic",
    "hi": "Hindi", "pl": "Polish", "tr": "Turkish", "sv": "Swedish", "da": "Danish", "fi": "Finnish",
    "no": "Norwegian", "cs": "Czech", "el": "Greek", "he": "Hebrew", "id": "Indonesian", "th": "Thai",
    "uk": "Ukrainian", "vi": "Vietnamese", "hu": "Hungarian", "ro": "Romanian",
}  # fmt: skip


def primary(code: str | None) -> str | None:
    """The language without its region: `pt-BR` and `pt_br` are both `pt`."""
    return re.split(r"[-_]", code, maxsplit=1)[0].lower() if code else None


def language_name(code: str | None) -> str:
    """The English name a model is asked to write in (`Japanese` for `ja`); the code itself when unknown."""
    if not code:
        return "the language of the transcript"
    return LANGUAGE_NAMES.get(primary(code) or "", code)


def same_language(first: str | None, second: str | None) -> bool:
    return primary(first) == primary(second)


def output_language(raw: str | None, field: str) -> str | None:
    """A client's choice of language for summaries and answers, normalized (`pt_BR` to `pt-br`);
    None when not given; 422 for anything that is not a language tag."""
    if raw is None or not raw.strip():
        return None
    code = raw.strip()
    if not _LANGUAGE.fullmatch(code):
        raise InvalidInput(f"{field} must be a language code such as 'en', 'ja' or 'pt-BR'")
    return normalized(code)


def normalized(code: str) -> str:
    """One spelling of a language tag: `pt_BR` and `PT-br` are both `pt-br`."""
    return code.replace("_", "-").lower()


def known_ui_language(raw: object) -> str | None:
    """`raw` as a Whisper language code (trimmed, lower case), the codes the old service's
    `ui_language` took and `GET /supported-languages/` lists; None when it is not one."""
    if not isinstance(raw, str):
        return None
    code = raw.strip().lower()
    return code if code in WHISPER_LANGUAGES else None


@cache
def cldr_english_name(code: str) -> str | None:
    """The language's English name in the Unicode CLDR (Babel): `Japanese` for `ja`; None when
    CLDR has none. The first call for a code reads Babel's locale data: call it on a thread."""
    try:
        return Locale.parse(code.replace("-", "_")).get_language_name("en")
    except (ValueError, UnknownLocaleError):
        return None
