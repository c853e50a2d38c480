"""A transcript as plain text, SubRip (SRT) and WebVTT."""

from service.processing.subtitles import MAX_LINE_COUNT, MAX_LINE_WIDTH, Cue, cues
from service.videos.models import Transcript


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(max(seconds, 0.0) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cue_text(cue: Cue) -> str:
    """Cue text may not hold a blank line (it would end the cue) or, in WebVTT, the arrow."""
    lines = [line.replace("-->", "->").strip() for line in cue.lines]
    return "\n".join(line for line in lines if line) or "…"


def to_txt(transcript: Transcript) -> str:
    """A line a segment; the text alone where there are no segments (a transcript migrated from the old service)."""
    if transcript.untimed:
        return transcript.text.strip() + "\n"
    return "".join(f"{segment.text}\n" for segment in transcript.segments)


def _numbered(transcript: Transcript, separator: str, max_line_width: int, max_line_count: int) -> str:
    return "\n".join(
        f"{number}\n{_timestamp(cue.start, separator)} --> {_timestamp(cue.end, separator)}\n{_cue_text(cue)}\n"
        for number, cue in enumerate(cues(transcript, max_line_width, max_line_count), start=1)
    )


def to_srt(transcript: Transcript, max_line_width: int = MAX_LINE_WIDTH, max_line_count: int = MAX_LINE_COUNT) -> str:
    return _numbered(transcript, ",", max_line_width, max_line_count)


def to_vtt(transcript: Transcript, max_line_width: int = MAX_LINE_WIDTH, max_line_count: int = MAX_LINE_COUNT) -> str:
    return "WEBVTT\n\n" + _numbered(transcript, ".", max_line_width, max_line_count)
