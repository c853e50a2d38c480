"""What the API shows of a video: the full view, and the lighter list item."""

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from service.videos.models import (
    Job,
    MediaMetadata,
    Summary,
    Transcript,
    TranscriptionOptions,
    TranscriptionTask,
    Video,
    VideoStatus,
)

MAX_FILENAME_LENGTH = 255
MAX_PROMPT_CHARS = 800
"""Whisper reads at most 224 prompt tokens; 800 characters is about that much English."""
WHISPER_CONTROL_TOKEN = re.compile(r"<\|(?:[a-z_]+|\d+\.\d+)\|>")
"""The shape of Whisper's own tokens (<|endoftext|>, <|en|>, <|notimestamps|>, <|0.00|>, ...). Its
tokenizer reads them in a prompt as the tokens themselves, not as text: a prompt holding them
steers the decoding (<|startoftranscript|><|notimestamps|> turned the speech fixture into other
words; <|0.00|> repeated dropped most of it)."""


def _without_control_tokens(prompt: str | None) -> str | None:
    found = WHISPER_CONTROL_TOKEN.search(prompt or "")
    if found:
        raise ValueError(f"holds {found.group()}, one of Whisper's control tokens; write names and terms as plain text")
    return prompt


Prompt = Annotated[str | None, Field(max_length=MAX_PROMPT_CHARS), AfterValidator(_without_control_tokens)]
"""An initial prompt for Whisper: names, terms, hot words."""


class UploadOptions(BaseModel):
    """The transcription options of an upload's form, beside `file` and `language`."""

    model_config = ConfigDict(extra="ignore")

    task: TranscriptionTask = "transcribe"
    prompt: Prompt = None
    word_timestamps: bool | None = None
    vad: bool | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)

    def options(self) -> TranscriptionOptions:
        return TranscriptionOptions(**self.model_dump())


class FileOut(BaseModel):
    size: int
    sha256: str
    content_type: str | None


class TranscriptOverview(BaseModel):
    language: str | None
    language_probability: float | None
    model: str | None
    text: str


class VideoListItem(BaseModel):
    id: str
    filename: str
    file: FileOut | None = Field(description="null when no file is stored (a video migrated without its file)")
    owner_id: str | None
    is_public: bool
    status: VideoStatus
    job: Job
    options: TranscriptionOptions
    metadata: MediaMetadata
    transcript: TranscriptOverview | None
    summary: Summary | None
    summary_language: str | None = Field(
        description="the language asked for summaries and answers; null: the transcript's"
    )
    uploaded_at: datetime
    processed_at: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, video: Video) -> "VideoListItem":
        return cls(**_common_fields(video), transcript=_overview(video.transcript))


class VideoOut(VideoListItem):
    transcript: Transcript | None  # type: ignore[assignment]

    @classmethod
    def of(cls, video: Video) -> "VideoOut":
        return cls(**_common_fields(video), transcript=video.transcript)


class VideoPatch(BaseModel):
    is_public: bool | None = None
    filename: str | None = Field(default=None, min_length=1, max_length=MAX_FILENAME_LENGTH)


class VideoPage(BaseModel):
    items: list[VideoListItem]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


def _overview(transcript: Transcript | None) -> TranscriptOverview | None:
    if transcript is None:
        return None
    return TranscriptOverview(
        language=transcript.language,
        language_probability=transcript.language_probability,
        model=transcript.model,
        text=transcript.text,
    )


def _common_fields(video: Video) -> dict:
    return {
        "id": str(video.id),
        "filename": video.filename,
        "file": None
        if video.file is None
        else FileOut(size=video.file.size, sha256=video.file.sha256, content_type=video.file.content_type),
        "owner_id": None if video.owner_id is None else str(video.owner_id),
        "is_public": video.is_public,
        "status": video.status,
        "job": video.job,
        "options": video.options,
        "metadata": video.metadata,
        "summary": video.summary,
        "summary_language": video.summary_language,
        "uploaded_at": video.uploaded_at,
        "processed_at": video.processed_at,
        "updated_at": video.updated_at,
    }
