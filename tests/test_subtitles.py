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
from service.videos.models import Segment, Transcript, TranscriptionOptions, Word
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


def parsed_srt(transcript: Transcript, width: int = 42, count: int = 2) -> list[tuple[float, float, str]]:
    return [
        (c.start.total_seconds(), c.end.total_seconds(), c.content) for c in srt.parse(to_srt(transcript, width, count))
    ]


def test_cues_never_overlap_when_the_model_timed_segments_over_each_other() -> None:
    """Whisper's segments (and their words) may overlap by a little, or start before the one
    before them ended; the cues still follow each other."""
    transcript = Transcript(
        text="one two three four five six seven eight",
        segments=[
            Segment(start=0.0, end=5.0, text=" one two three four five"),
            Segment(start=3.0, end=8.0, text=" six seven eight"),
            Segment(start=2.5, end=9.0, text=" nine ten"),
        ],
    )
    parsed = parsed_srt(transcript)
    assert_broadcast_rules(parsed, 42, 2, "one two three four five six seven eight nine ten")
    assert [start for start, _, _ in parsed] == sorted(start for start, _, _ in parsed)


def test_text_without_spaces_is_cut_into_lines_too() -> None:
    """Chinese and Japanese write no spaces between words: a line breaks between characters."""
    sentence = "我叫克拉拉我住在里斯本我们公司明年三月将推出新款猎鹰手机天气预报说将会下三天雨"
    words = [
        Word(start=index * 0.25, end=index * 0.25 + 0.25, word=character, probability=1.0)
        for index, character in enumerate(sentence)
    ]
    for segment in (
        Segment(start=0.0, end=10.0, text=sentence),
        Segment(start=0.0, end=10.0, text=sentence, words=words),
    ):
        parsed = parsed_srt(Transcript(text=sentence, segments=[segment]), width=16)
        assert len(parsed) > 1
        for _, _, text in parsed:
            assert all(len(line) <= 16 for line in text.split("\n")), text
        assert "".join(text.replace("\n", "") for _, _, text in parsed) == sentence


async def test_a_transcript_without_timings_is_served_as_text_and_refused_as_subtitles(
    client: httpx.AsyncClient,
) -> None:
    """A video migrated from the old service has its transcript's text alone."""
    text = "Clara lives by the sea. She bakes pancakes on Sundays."
    video = await insert_completed_video(Transcript(language="en", model="legacy", text=text))
    as_text = await client.get(f"/videos/{video.id}/transcript", params={"format": "txt"})
    assert as_text.status_code == 200 and as_text.text == text + "\n"
    for format in ("srt", "vtt"):
        refused = await client.get(f"/videos/{video.id}/transcript", params={"format": format})
        assert refused.status_code == 409
        assert "reprocess" in refused.json()["detail"]
