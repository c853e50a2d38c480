"""Subtitles by broadcast rules on the speech fixture: line width, line count, time on screen."""

import io
import threading

import httpx
import pytest
import srt
import webvtt

from service.config import Settings
from service.processing.formats import to_srt, to_vtt
from service.processing.subtitles import MAX_CUE_SECONDS, MIN_CUE_SECONDS, cues
from service.processing.transcription import Transcriber
from service.videos.models import Transcript, TranscriptionOptions
from tests.conftest import SPEECH_VIDEO, insert_completed_video


@pytest.fixture(scope="module")
def word_timed_transcript() -> Transcript:
    options = TranscriptionOptions(word_timestamps=True)
    transcriber = Transcriber(Settings(_env_file=None))
    return transcriber.transcribe(SPEECH_VIDEO, "en", options, 34.894, lambda _: None, threading.Event()).transcript


def assert_broadcast_rules(parsed: list[tuple[float, float, str]], width: int, count: int, spoken: str) -> None:
    assert parsed
    for index, (start, end, text) in enumerate(parsed):
        lines = text.split("\n")
        assert len(lines) <= count, text
        for line in lines:
            assert len(line) <= width or " " not in line, line
        assert end - start <= MAX_CUE_SECONDS + 0.001
        following = parsed[index + 1][0] if index + 1 < len(parsed) else None
        assert end - start >= MIN_CUE_SECONDS - 0.001 or (following is not None and end >= following - 0.001)
        if following is not None:
            assert end <= following + 0.001
    assert " ".join(text.replace("\n", " ") for _, _, text in parsed).split() == spoken.split()


@pytest.mark.parametrize(("width", "count"), [(42, 2), (20, 1), (32, 3)])
def test_cues_from_word_timings_keep_the_rules(word_timed_transcript: Transcript, width: int, count: int) -> None:
    assert all(segment.words for segment in word_timed_transcript.segments)
    parsed = [
        (cue.start.total_seconds(), cue.end.total_seconds(), cue.content)
        for cue in srt.parse(to_srt(word_timed_transcript, width, count))
    ]
    assert_broadcast_rules(parsed, width, count, word_timed_transcript.text)
    if width == 42:
        assert any("\n" in text for _, _, text in parsed), "two-line cues are used where they fit"


def test_cues_without_word_timings_keep_the_rules(speech_transcript: Transcript) -> None:
    assert not any(segment.words for segment in speech_transcript.segments)
    captions = webvtt.from_buffer(io.StringIO(to_vtt(speech_transcript)))
    parsed = [(caption.start_in_seconds, caption.end_in_seconds, caption.text) for caption in captions]
    assert_broadcast_rules(parsed, 42, 2, speech_transcript.text)


def test_two_lines_are_balanced(word_timed_transcript: Transcript) -> None:
    for cue in cues(word_timed_transcript):
        if len(cue.lines) == 2:
            assert (
                abs(len(cue.lines[0]) - len(cue.lines[1])) <= max(len(word) for word in " ".join(cue.lines).split()) + 1
            )


async def test_the_transcript_route_takes_the_layout(
    client: httpx.AsyncClient, word_timed_transcript: Transcript
) -> None:
    video = await insert_completed_video(word_timed_transcript)
    response = await client.get(
        f"/videos/{video.id}/transcript", params={"format": "srt", "max_line_width": 20, "max_line_count": 1}
    )
    assert response.status_code == 200
    parsed = [(c.start.total_seconds(), c.end.total_seconds(), c.content) for c in srt.parse(response.text)]
    assert_broadcast_rules(parsed, 20, 1, word_timed_transcript.text)

    refused = await client.get(f"/videos/{video.id}/transcript", params={"format": "vtt", "max_line_width": 3})
    assert refused.status_code == 422
    assert "max_line_width" in refused.json()["detail"]
