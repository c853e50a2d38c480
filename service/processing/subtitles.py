"""Subtitle cues by broadcast rules, built from word timings.

A cue holds at most `max_line_count` lines of at most `max_line_width` characters, and stays on
screen from 1 to 7 seconds; cues follow each other without overlapping, even where the model timed
its segments over each other. Cues break where the model ended a segment once they are long enough
to read, and otherwise where the next word would not fit. A transcript without word timings gets
them spread over each segment by characters, which keeps the same rules. Chinese and Japanese,
written without spaces, break between characters.
"""

import re
from dataclasses import dataclass

from service.videos.models import Segment, Transcript

MAX_LINE_WIDTH = 42
MAX_LINE_COUNT = 2
MIN_CUE_SECONDS = 1.0
MAX_CUE_SECONDS = 7.0
TIMESTAMP_STEP = 0.001
"""SRT and WebVTT count milliseconds: the least a cue can start after the one before it."""
UNSPACED_SCRIPTS = "\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
"""Han, kana and CJK punctuation: scripts written without spaces, where a line may break anywhere."""
UNSPACED_CHARACTER = re.compile(f"[{UNSPACED_SCRIPTS}]")
UNITS = re.compile(f"[{UNSPACED_SCRIPTS}]|[^\\s{UNSPACED_SCRIPTS}]+")
"""A character of those scripts alone, or a run of any other characters up to a space."""


@dataclass(frozen=True)
class TimedWord:
    start: float
    end: float
    text: str
    ends_segment: bool
    joined: bool = False
    """Written right after the word before it, without a space (a character of Chinese, say)."""


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: list[str]


def cues(
    transcript: Transcript, max_line_width: int = MAX_LINE_WIDTH, max_line_count: int = MAX_LINE_COUNT
) -> list[Cue]:
    groups = _group(_timed_words(transcript.segments), max_line_width, max_line_count)
    starts = _following_starts([group[0].start for group in groups])
    built: list[Cue] = []
    for index, group in enumerate(groups):
        following = starts[index + 1] if index + 1 < len(groups) else None
        end = _shown_until(starts[index], group[-1].end, following)
        built.append(Cue(starts[index], end, _lines(group, max_line_width)))
    return built


def _following_starts(starts: list[float]) -> list[float]:
    """Each start at least a millisecond after the one before, whatever order the model timed them in."""
    ordered: list[float] = []
    for start in starts:
        ordered.append(start if not ordered else max(start, ordered[-1] + TIMESTAMP_STEP))
    return ordered


def _timed_words(segments: list[Segment]) -> list[TimedWord]:
    words: list[TimedWord] = []
    for segment in segments:
        timed = _whole_words(segment) or _spread(segment.text, segment.start, segment.end)
        words.extend(
            TimedWord(start, end, text, ends_segment=number == len(timed) - 1, joined=joined and number > 0)
            for number, (start, end, text, joined) in enumerate(timed)
        )
    return words


TimedUnit = tuple[float, float, str, bool]
"""start, end, text, and whether it follows the unit before it without a space."""


def _whole_words(segment: Segment) -> list[TimedUnit]:
    """The segment's timed words; a piece the model wrote without a leading space (`'clock` after
    ` o`) belongs to the word before it, and a line must not break between them, unless either is
    written without spaces (Chinese, Japanese), where each character stands alone."""
    whole: list[TimedUnit] = []
    for word in segment.words or []:
        if not word.word.strip():
            continue
        units = _spread(word.word, word.start, word.end)
        first_start, first_end, first_text, _ = units[0]
        if whole and not word.word[0].isspace():
            before_start, _, before_text, before_joined = whole[-1]
            if not (UNSPACED_CHARACTER.match(first_text) or UNSPACED_CHARACTER.match(before_text[-1])):
                whole[-1] = (before_start, first_end, before_text + first_text, before_joined)
                units = units[1:]
            else:
                units[0] = (first_start, first_end, first_text, True)
        whole.extend(units)
    return whole


def _spread(text: str, start: float, end: float) -> list[TimedUnit]:
    """The words of a text timed from `start` to `end`, each given a share of the time by its length."""
    matches = list(UNITS.finditer(text))
    total = sum(len(match.group()) for match in matches)
    span = end - start
    spread: list[TimedUnit] = []
    elapsed = 0
    for match in matches:
        unit_start = start + span * elapsed / total
        elapsed += len(match.group())
        joined = match.start() > 0 and not text[match.start() - 1].isspace()
        spread.append((unit_start, start + span * elapsed / total, match.group(), joined))
    return spread


def _group(words: list[TimedWord], width: int, line_count: int) -> list[list[TimedWord]]:
    groups: list[list[TimedWord]] = []
    current: list[TimedWord] = []
    for word in words:
        if current and not _fits(current + [word], width, line_count):
            groups.append(current)
            current = []
        current.append(word)
        if word.ends_segment and word.end - current[0].start >= MIN_CUE_SECONDS:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def _fits(words: list[TimedWord], width: int, line_count: int) -> bool:
    return len(_lines(words, width)) <= line_count and words[-1].end - words[0].start <= MAX_CUE_SECONDS


def _line(words: list[TimedWord]) -> str:
    return "".join(word.text if number == 0 or word.joined else " " + word.text for number, word in enumerate(words))


class _LineLengths:
    """The length of any run of the words as one line, in constant time (cues are built word by word)."""

    def __init__(self, words: list[TimedWord]) -> None:
        self.characters = [0]
        self.spaces = [0]
        for number, word in enumerate(words):
            self.characters.append(self.characters[-1] + len(word.text))
            self.spaces.append(self.spaces[-1] + (number > 0 and not word.joined))

    def of(self, start: int, stop: int) -> int:
        return self.characters[stop] - self.characters[start] + self.spaces[stop] - self.spaces[start + 1]


def _lines(words: list[TimedWord], width: int) -> list[str]:
    """The words in lines of at most `width` (a longer word alone on its line); two lines are
    balanced, as subtitles are, rather than a full first line over a short second one."""
    lengths = _LineLengths(words)
    breaks = [0]
    for index in range(1, len(words)):
        if lengths.of(breaks[-1], index + 1) > width:
            breaks.append(index)
    if len(breaks) == 2:
        longest, index = min((max(lengths.of(0, i), lengths.of(i, len(words))), i) for i in range(1, len(words)))
        if longest <= width:
            breaks = [0, index]
    return [_line(words[start:stop]) for start, stop in zip(breaks, [*breaks[1:], len(words)], strict=True)]


def _shown_until(start: float, spoken_until: float, next_start: float | None) -> float:
    """At least MIN_CUE_SECONDS on screen unless the next cue starts sooner, at most MAX_CUE_SECONDS."""
    end = min(max(spoken_until, start + MIN_CUE_SECONDS), start + MAX_CUE_SECONDS)
    if next_start is not None:
        end = min(end, next_start)
    return round(end, 3)
