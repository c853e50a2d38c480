"""Subtitle cues by broadcast rules, built from word timings.

A cue holds at most `max_line_count` lines of at most `max_line_width` characters, and stays on
screen from 1 to 7 seconds. Cues break where the model ended a segment once they are long enough
to read, and otherwise where the next word would not fit. A transcript without word timings gets
them spread over each segment by characters, which keeps the same rules.
"""

import textwrap
from dataclasses import dataclass

from service.videos.models import Segment, Transcript

MAX_LINE_WIDTH = 42
MAX_LINE_COUNT = 2
MIN_CUE_SECONDS = 1.0
MAX_CUE_SECONDS = 7.0


@dataclass(frozen=True)
class TimedWord:
    start: float
    end: float
    text: str
    ends_segment: bool


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: list[str]


def cues(
    transcript: Transcript, max_line_width: int = MAX_LINE_WIDTH, max_line_count: int = MAX_LINE_COUNT
) -> list[Cue]:
    groups = _group(_timed_words(transcript.segments), max_line_width, max_line_count)
    built: list[Cue] = []
    for index, group in enumerate(groups):
        start = group[0].start
        following = groups[index + 1][0].start if index + 1 < len(groups) else None
        end = _shown_until(start, group[-1].end, following)
        built.append(Cue(start, end, _lines(" ".join(word.text for word in group), max_line_width)))
    return built


def _timed_words(segments: list[Segment]) -> list[TimedWord]:
    words: list[TimedWord] = []
    for segment in segments:
        timed = _whole_words(segment)
        if not timed:
            timed = _spread(segment)
        words.extend(
            TimedWord(start, end, text, ends_segment=number == len(timed) - 1)
            for number, (start, end, text) in enumerate(timed)
        )
    return words


def _whole_words(segment: Segment) -> list[tuple[float, float, str]]:
    """The segment's timed words; a piece the model wrote without a leading space (`'clock` after
    ` o`) belongs to the word before it, and a line must not break between them."""
    whole: list[tuple[float, float, str]] = []
    for word in segment.words or []:
        if not word.word.strip():
            continue
        if whole and not word.word[0].isspace():
            start, _, text = whole[-1]
            whole[-1] = (start, word.end, text + word.word.strip())
        else:
            whole.append((word.start, word.end, word.word.strip()))
    return whole


def _spread(segment: Segment) -> list[tuple[float, float, str]]:
    """Words of a segment without word timings, each given a share of its time by its length."""
    texts = segment.text.split()
    total = sum(len(text) for text in texts)
    span = segment.end - segment.start
    spread: list[tuple[float, float, str]] = []
    elapsed = 0
    for text in texts:
        start = segment.start + span * elapsed / total
        elapsed += len(text)
        spread.append((start, segment.start + span * elapsed / total, text))
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
    text = " ".join(word.text for word in words)
    return len(_lines(text, width)) <= line_count and words[-1].end - words[0].start <= MAX_CUE_SECONDS


def _lines(text: str, width: int) -> list[str]:
    """The text in lines of at most `width` (a longer word alone on its line); two lines are
    balanced, as subtitles are, rather than a full first line over a short second one."""
    lines = textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)
    if len(lines) != 2:
        return lines
    words = text.split()
    splits = [(" ".join(words[:i]), " ".join(words[i:])) for i in range(1, len(words))]
    fitting = [pair for pair in splits if max(len(pair[0]), len(pair[1])) <= width]
    return list(min(fitting, key=lambda pair: max(len(pair[0]), len(pair[1])))) if fitting else lines


def _shown_until(start: float, spoken_until: float, next_start: float | None) -> float:
    """At least MIN_CUE_SECONDS on screen unless the next cue starts sooner, at most MAX_CUE_SECONDS."""
    end = min(max(spoken_until, start + MIN_CUE_SECONDS), start + MAX_CUE_SECONDS)
    if next_start is not None:
        end = min(end, max(next_start, spoken_until))
    return round(end, 3)
