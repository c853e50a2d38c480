"""Repetition loops: detected, and repaired by decoding their window again."""

import threading

import jiwer
import pytest
from faster_whisper.audio import decode_audio

from service.config import Settings
from service.processing.transcription import SAMPLE_RATE, Transcriber, is_loop
from service.videos.models import Segment, Transcript, TranscriptionOptions
from tests.conftest import SPEECH_VIDEO, normalized_words


@pytest.mark.parametrize(
    "text",
    [
        "Thank you. Thank you. Thank you. Thank you. Thank you. Thank you.",
        "and then we went to the and then we went to the and then we went to the and then we went to the",
        "so so so so so so so so so so so so so so so so so so so so so so",
    ],
)
def test_repetitions_are_loops(text: str) -> None:
    assert is_loop(text)


def test_the_fixture_speech_has_no_loop(speech_transcript: Transcript) -> None:
    assert not any(is_loop(segment.text) for segment in speech_transcript.segments)


def test_a_crafted_loop_is_decoded_again(speech_transcript: Transcript) -> None:
    """The first segments' window, as if the model had looped over it, comes back as the speech."""
    transcriber = Transcriber(Settings(_env_file=None))
    audio = decode_audio(str(SPEECH_VIDEO), sampling_rate=SAMPLE_RATE)
    spoken = speech_transcript.segments[:2]
    looping = Segment(start=spoken[0].start, end=spoken[-1].end, text="I'm going to " * 12)
    following = speech_transcript.segments[2]
    arguments = transcriber.decoding_arguments("en", TranscriptionOptions())
    repaired = transcriber.repair_loops(audio, [looping, following], arguments, 34.894, threading.Event())

    assert repaired[-1] == following
    window = repaired[:-1]
    assert window and not any(is_loop(segment.text) for segment in window)
    assert all(looping.start <= s.start <= s.end <= looping.end + 0.5 for s in window)
    expected = normalized_words(" ".join(segment.text for segment in spoken))
    assert jiwer.wer(expected, normalized_words(" ".join(s.text for s in window))) <= 0.2
