"""Recognizing a question that asks for the whole video rather than about something in it.

"10 key points", "create 10 Q&A", "detailed summary": the quick actions of the old service's page,
and what people type the same way. Retrieval finds no passage for them (they name nothing the
video says), so they are answered from the stored summary instead. A question is one of them only
when every other word in it is a filler word ("give me", "of this video"): "what are the main
points about the weather?" asks about the weather and stays an ordinary question. English only.
"""

import re
from dataclasses import dataclass
from typing import Literal

from service.text import words

MAX_COUNT = 50
"""The most items a request may ask for ("100 key points" gets this many at most)."""

WholeVideoKind = Literal["questions", "key_points", "chapters", "summary"]

_KINDS: list[tuple[WholeVideoKind, re.Pattern[str]]] = [
    (
        "questions",
        re.compile(
            r"\bq\s*(?:&|and|n)\s*a'?s?\b|\bquestions?\s*(?:&|and)\s*answers?\b|\bquiz(?:zes)?\b"
            r"|\bflash\s*cards?\b|\bfaqs?\b|\bquestions?\b"
        ),
    ),
    (
        "key_points",
        re.compile(
            r"\b(?:key|main|important|major)\s+(?:points?|ideas?|takeaways?|facts?)\b|\btakeaways?\b"
            r"|\bhighlights?\b|\bbullet\s*points?\b|\bpoints?\b"
        ),
    ),
    ("chapters", re.compile(r"\bchapters?\b|\bsections?\b|\boutline\b|\btable\s+of\s+contents\b|\btimeline\b")),
    (
        "summary",
        re.compile(
            r"\bsummar(?:y|ies|ise|ize|ised|ized)\b|\boverview\b|\btl\s*;?\s*dr\b|\brecap\b|\bgist\b"
            r"|\bwhat\s*(?:is|'s)\s+(?:this|the|it)\s+(?:video\s+)?about\b"
        ),
    ),
]
_NUMBER = re.compile(r"\b(\d+)\b")
"""Any count, however long (a question is at most 2,000 characters): past MAX_COUNT it is MAX_COUNT."""
_NUMBER_WORDS = {
    word: value
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
}
_DETAILED = frozenset("detailed detail details full complete long longer thorough comprehensive depth".split())
_FILLER = frozenset(
    """a an the this that these those its it it's of for from in on about with to by as at and or
    me us i we you please pls can could would will you'll give make create generate write list show
    provide produce prepare draft build tell need want let get do does
    video video's clip recording talk lecture meeting movie film whole entire content contents all
    short brief quick concise simple some few more most main key important top best
    what are is was were here there based up out now set new numbered
    detailed detail details full complete long longer thorough comprehensive in depth""".split()
)


@dataclass(frozen=True)
class WholeVideoRequest:
    kind: WholeVideoKind
    count: int | None
    """How many items were asked for ("10 key points"); None when no number was given."""
    detailed: bool


def whole_video_request(question: str) -> WholeVideoRequest | None:
    """What the question asks of the whole video, or None when it asks about something in it."""
    text = question.lower()
    for kind, pattern in _KINDS:
        if pattern.search(text):
            rest = pattern.sub(" ", text)
            count = _count(rest)
            rest = _NUMBER.sub(" ", rest)
            leftover = [word for word in words(rest) if word not in _FILLER and word not in _NUMBER_WORDS]
            if leftover:
                return None
            return WholeVideoRequest(kind, count, detailed=any(word in _DETAILED for word in words(text)))
    return None


def _count(text: str) -> int | None:
    found = _NUMBER.search(text)
    if found:
        value = int(found.group(1))
    else:
        value = next((_NUMBER_WORDS[word] for word in words(text) if word in _NUMBER_WORDS), 0)
    return min(value, MAX_COUNT) if value > 0 else None
