"""Where long audio is cut into parts decoded at once, and how the parts' timings meet at a cut:
speech with short pauses or none at all, built from the speech fixture at test time."""

import threading
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from service.config import Settings
from service.processing.transcription import ENERGY_FRAME_SAMPLES, SAMPLE_RATE, Transcriber, speech_only
from service.videos.models import TranscriptionOptions
from tests.conftest import SPEECH_VIDEO
from tests.media import write_wav

SPEECH_LOUDNESS = 0.01
"""A 20 ms frame of the fixture louder than this (root mean square) is speech; quieter, a pause."""
LONG_SECONDS = 62.0
"""Just long enough for two parts of at least 30 s each."""


def loudness(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples))))


def with_pauses_of(speech: np.ndarray, seconds: float) -> np.ndarray:
    """The speech with every pause shortened to at most `seconds` (none left for 0)."""
    frames = speech[: len(speech) // ENERGY_FRAME_SAMPLES * ENERGY_FRAME_SAMPLES].reshape(-1, ENERGY_FRAME_SAMPLES)
    kept_quiet = int(seconds * SAMPLE_RATE) // ENERGY_FRAME_SAMPLES
    kept: list[np.ndarray] = []
    quiet_run = 0
    for frame in frames:
        quiet_run = 0 if loudness(frame) > SPEECH_LOUDNESS else quiet_run + 1
        if quiet_run <= kept_quiet:
            kept.append(frame)
    return np.concatenate(kept)


def repeated_for(samples: np.ndarray, seconds: float) -> np.ndarray:
    length = int(seconds * SAMPLE_RATE)
    return np.tile(samples, length // len(samples) + 1)[:length]


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return decode_audio(str(SPEECH_VIDEO), sampling_rate=SAMPLE_RATE)


def test_a_cut_lands_in_a_short_pause(speech: np.ndarray) -> None:
    """Pauses of a quarter second between words and sentences, as in fast speech: the cut falls
    in one of them, not in a word."""
    audio = repeated_for(with_pauses_of(speech, 0.25), LONG_SECONDS)
    parts = Transcriber(Settings(_env_file=None, whisper_parallel_parts=2)).parts(audio)
    assert len(parts) == 2
    cut = parts[0][1]
    fiftieth = SAMPLE_RATE // 50
    print(f"cut at {cut / SAMPLE_RATE:.2f} s")
    assert loudness(audio[cut - fiftieth : cut + fiftieth]) < SPEECH_LOUDNESS


def test_no_timing_crosses_a_cut_in_speech(speech: np.ndarray, tmp_path: Path) -> None:
    """Speech without a single pause under faint noise: the cut falls in a word. Each part was
    decoded from its own samples, so nothing of the part before the cut is timed after it, and the
    transcript's segments and words follow each other across it."""
    noise = np.random.default_rng(1).normal(0, 0.05, int(LONG_SECONDS * SAMPLE_RATE)).astype(np.float32)
    audio = repeated_for(with_pauses_of(speech, 0), LONG_SECONDS) + noise
    path = write_wav(tmp_path / "no_pauses.wav", audio)
    transcriber = Transcriber(Settings(_env_file=None, whisper_parallel_parts=2))
    cut = transcriber.parts(decode_audio(str(path), sampling_rate=SAMPLE_RATE))[0][1] / SAMPLE_RATE
    result = transcriber.transcribe(
        path, "en", TranscriptionOptions(word_timestamps=True), None, lambda _: None, threading.Event()
    )

    segments = result.transcript.segments
    words = [word for segment in segments for word in segment.words or []]
    print(f"cut at {cut:.2f} s; around it:", [(w.word, w.start, w.end) for w in words if abs(w.start - cut) < 2])
    assert all(segment.end <= cut for segment in segments if segment.start < cut)
    assert all(word.end <= cut for word in words if word.start < cut)
    assert all(segment.start >= cut for segment in segments if segment.end > cut)
    assert segments[-1].end <= LONG_SECONDS


def test_the_language_is_detected_on_speech_not_on_a_long_intro() -> None:
    """Detection reads the first windows it is given: after 60 s of faint noise, those must be the
    speech. (tiny.en is English-only and detects nothing, so what detection would read is checked.)"""
    speech = decode_audio(str(SPEECH_VIDEO))
    noise = np.random.default_rng(7).normal(0, 0.001, 60 * SAMPLE_RATE).astype(np.float32)
    read = speech_only(np.concatenate([noise, speech]))
    assert len(read) < len(speech) + 5 * SAMPLE_RATE
    assert loudness(read[: 5 * SAMPLE_RATE]) > SPEECH_LOUDNESS  # speech from the first seconds on
    silence = np.zeros(70 * SAMPLE_RATE, dtype=np.float32)
    assert speech_only(silence) is silence  # nothing to keep: detection reads it all, as before
