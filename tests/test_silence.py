"""Text over silence or noise: the speech fixture with noise spliced in at test time."""

import threading
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from service.config import Settings
from service.processing.transcription import SAMPLE_RATE, Transcriber, TranscriptionResult
from service.videos.models import TranscriptionOptions
from tests.conftest import SPEECH_VIDEO
from tests.media import write_wav

SPOKEN_SECONDS = 12.0
"""The fixture's first two sentences end here; the noise starts after them."""
NOISE_SECONDS = 30.0


def quiet_noise(seconds: float) -> np.ndarray:
    """Faint white noise: no speech, and enough for tiny.en to write a sentence over it."""
    return np.random.default_rng(1).normal(0, 0.01, int(seconds * SAMPLE_RATE)).astype(np.float32)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return decode_audio(str(SPEECH_VIDEO), sampling_rate=SAMPLE_RATE)


@pytest.fixture(scope="module")
def speech_then_noise(speech: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    samples = np.concatenate([speech[: int(SPOKEN_SECONDS * SAMPLE_RATE)], quiet_noise(NOISE_SECONDS)])
    return write_wav(tmp_path_factory.mktemp("media") / "speech_then_noise.wav", samples)


def transcribed(path: Path, settings: Settings, seconds: float = SPOKEN_SECONDS + NOISE_SECONDS) -> TranscriptionResult:
    return Transcriber(settings).transcribe(
        path, "en", TranscriptionOptions(), seconds, lambda _: None, threading.Event()
    )


def test_the_crafted_noise_makes_the_model_write_text_over_it(speech_then_noise: Path) -> None:
    """Without silence skipping, the model writes a sentence where there is only noise: the input
    the next test relies on is a real hallucination."""
    settings = Settings(_env_file=None, whisper_hallucination_silence_seconds=0)
    segments = transcribed(speech_then_noise, settings).transcript.segments
    assert any(segment.start >= SPOKEN_SECONDS for segment in segments), segments


def test_no_text_is_written_over_noise(speech_then_noise: Path) -> None:
    """By default the silence after the speech is skipped: the speech is kept, nothing follows it,
    and the word timings computed for the skipping are not stored (they were not asked for)."""
    transcript = transcribed(speech_then_noise, Settings(_env_file=None)).transcript
    assert "Clara Jensen" in transcript.text
    assert "rain" in transcript.text
    assert all(segment.end <= SPOKEN_SECONDS + 0.5 for segment in transcript.segments), transcript.segments
    assert all(segment.words is None for segment in transcript.segments)


def test_speech_after_a_long_silence_starts_where_it_resumes(speech: np.ndarray, tmp_path: Path) -> None:
    """The sentence after 20 s of noise is timed where it is spoken, not where the model's window began."""
    cut = int(SPOKEN_SECONDS * SAMPLE_RATE)
    samples = np.concatenate([speech[:cut], quiet_noise(20.0), speech[cut:]])
    path = write_wav(tmp_path / "noise_inside.wav", samples)
    result = transcribed(path, Settings(_env_file=None), len(samples) / SAMPLE_RATE)
    resumed = next(segment for segment in result.transcript.segments if "pancakes" in segment.text)
    assert resumed.start >= SPOKEN_SECONDS + 20.0 - 1.0, result.transcript.segments
    assert not any(SPOKEN_SECONDS + 0.5 < segment.start < resumed.start for segment in result.transcript.segments)
