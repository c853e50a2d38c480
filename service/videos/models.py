"""The Video document: one MongoDB document per video, embedding everything about it."""

from datetime import datetime
from typing import Any, Literal

import pymongo
from beanie import Document, PydanticObjectId
from pydantic import BaseModel, Field
from pymongo import IndexModel

from service.clock import utc_now
from service.webhooks.models import WebhookEvent

VideoStatus = Literal["queued", "processing", "completed", "failed", "cancelled"]
"""`cancelled`: POST /videos/{id}/cancel stopped it; POST /videos/{id}/reprocess queues it again."""
TranscriptionTask = Literal["transcribe", "translate"]

TEXT_SEARCH_LANGUAGE_FIELD = "search_language"
"""The text index reads its language from this field of ours, never from `transcript.language`
or `chat.language`: MongoDB rejects a write whose language field holds a value text search does
not support (`ja`, for one)."""
TEXT_SEARCH_DEFAULT_LANGUAGE = "english"
"""The text index's language for a query that names none (every `/search`), and for a document
without `search_language`."""


LEGACY_FILE_SUFFIX = "_file"
"""`legacy.<column>_file`: the facts of a text the SQLite migration moved out of a document too
large, kept as a stored file (key, size, sha256, and storage; none: local)."""


class FileInfo(BaseModel):
    storage: Literal["local", "gridfs"] = "local"
    """Where the file is (`service/storage/`); documents written before GridFS have none: local."""
    key: str
    size: int
    sha256: str
    content_type: str | None = None


class VideoStreamInfo(BaseModel):
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None


class AudioStreamInfo(BaseModel):
    codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None


class MediaMetadata(BaseModel):
    duration: float | None = None
    format: str | None = None
    size: int | None = None
    bit_rate: int | None = None
    has_audio: bool = False
    video: VideoStreamInfo | None = None
    audio: AudioStreamInfo | None = None


class Job(BaseModel):
    stage: str | None = None
    progress: float = 0.0
    attempts: int = 0
    lease_until: datetime | None = None
    worker: str | None = None
    error: str | None = None
    note: str | None = None
    queued_at: datetime | None = None
    next_attempt_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Word(BaseModel):
    start: float
    end: float
    word: str
    probability: float | None = None


class Segment(BaseModel):
    start: float
    end: float
    text: str
    words: list[Word] | None = None
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None
    temperature: float | None = None
    """The decoding temperature that produced the segment (above 0: a fallback was needed)."""
    low_confidence: bool = False
    """The model was unsure of this segment: a low average log-probability, or likely no speech."""


class TranscriptionOptions(BaseModel):
    """What one upload asked of transcription; None: the server's setting."""

    task: TranscriptionTask = "transcribe"
    prompt: str | None = None
    """An initial prompt: names, terms or hot words the speech is likely to contain."""
    word_timestamps: bool | None = None
    vad: bool | None = None
    temperature: float | None = None
    """A fixed decoding temperature; None: 0, falling back to higher ones when a window fails."""


class Transcript(BaseModel):
    language: str | None = None
    language_probability: float | None = None
    model: str | None = None
    text: str = ""
    segments: list[Segment] = Field(default_factory=list)

    @property
    def untimed(self) -> bool:
        """A text without segments: a transcript migrated from the SQLite service."""
        return not self.segments and bool(self.text.strip())

    def timed_segments(self, duration: float | None) -> list[Segment]:
        """The segments; for an untimed text, one segment spanning the whole video, so that it can
        still be summarized and questioned."""
        if not self.untimed:
            return self.segments
        return [Segment(start=0.0, end=duration or 0.0, text=self.text)]


class Chapter(BaseModel):
    start: float
    end: float
    title: str
    summary: str = ""


class Summary(BaseModel):
    text: str = ""
    key_points: list[str] = Field(default_factory=list)
    chapters: list[Chapter] = Field(default_factory=list)
    model: str | None = None
    language: str | None = None
    note: str | None = None
    """Why it is not what was asked: written in the transcript's language by a provider that cannot translate."""
    error: str | None = None


class Citation(BaseModel):
    start: float
    end: float
    text: str
    low_confidence: bool = Field(
        default=False,
        description="the passage comes from speech the recognizer was unsure of (a low-confidence segment): "
        "it may be misheard",
    )


class ChatEntry(BaseModel):
    id: str
    question: str
    answer: str
    citations: list[Citation] = Field(default_factory=list)
    model: str | None = None
    language: str | None = None
    note: str | None = None
    """Why the answer is not in the language asked for (a provider that cannot translate), and
    that it quotes speech the recognizer was unsure of (the `local` provider)."""
    created_at: datetime = Field(default_factory=utc_now)


class Video(Document):
    filename: str
    file: FileInfo | None = None
    """None: no stored file; a video migrated from the SQLite service without its file has none."""
    owner_id: PydanticObjectId | None = None
    is_public: bool = False
    status: VideoStatus = "queued"
    job: Job = Field(default_factory=Job)
    metadata: MediaMetadata = Field(default_factory=MediaMetadata)
    transcript: Transcript | None = None
    summary: Summary | None = None
    chat: list[ChatEntry] = Field(default_factory=list)
    legacy: dict[str, Any] | None = None
    requested_language: str = "auto"
    """The spoken language Whisper is told (`auto`: it detects it)."""
    options: TranscriptionOptions = Field(default_factory=TranscriptionOptions)
    summary_language: str | None = None
    """The language summaries and, by default, answers are written in; None: the transcript's."""
    ui_language: str | None = None
    """The old page's interface language at upload (`ui_language` of POST /upload-video/); None when not given."""
    search_language: str = TEXT_SEARCH_DEFAULT_LANGUAGE
    webhook_outbox: list[WebhookEvent] = Field(default_factory=list)
    """Events raised with a state change and not yet handed to their deliveries (service/webhooks/)."""
    uploaded_at: datetime = Field(default_factory=utc_now)
    processed_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utc_now)

    class Settings:
        name = "videos"
        indexes = [
            IndexModel([("uploaded_at", pymongo.DESCENDING), ("_id", pymongo.DESCENDING)], name="uploaded_at"),
            IndexModel([("status", pymongo.ASCENDING), ("job.lease_until", pymongo.ASCENDING)], name="queue"),
            IndexModel([("owner_id", pymongo.ASCENDING), ("uploaded_at", pymongo.DESCENDING)], name="owner"),
            IndexModel([("filename", pymongo.ASCENDING)], name="filename"),
            IndexModel([("file.sha256", pymongo.ASCENDING)], name="sha256"),
            IndexModel([("legacy.id", pymongo.ASCENDING)], name="legacy_id", unique=True, sparse=True),
            IndexModel([("webhook_outbox.at", pymongo.ASCENDING)], name="webhook_outbox"),
            IndexModel(
                [("filename", pymongo.TEXT), ("summary.text", pymongo.TEXT), ("transcript.text", pymongo.TEXT)],
                name="search",
                weights={"filename": 3, "summary.text": 2, "transcript.text": 1},
                default_language=TEXT_SEARCH_DEFAULT_LANGUAGE,
                language_override=TEXT_SEARCH_LANGUAGE_FIELD,
            ),
        ]


def stored_file_fields(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Where a video document (as stored) records stored files, as (dotted path, facts): its
    `file`, and the texts the SQLite migration moved out of it (`legacy.<column>_file`)."""
    found = []
    file = document.get("file")
    if isinstance(file, dict):
        found.append(("file", file))
    legacy = document.get("legacy")
    if isinstance(legacy, dict):
        found.extend(
            (f"legacy.{name}", value)
            for name, value in legacy.items()
            if name.endswith(LEGACY_FILE_SUFFIX) and isinstance(value, dict)
        )
    return found
