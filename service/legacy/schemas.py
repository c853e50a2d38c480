"""The SQLite service's response shapes, field for field, so its JSON clients keep working.

Times are shown as that service showed them: ISO 8601 in UTC without a zone (`2024-11-05T10:30:00`).
`id` and `video_id` are the legacy integer id of a migrated video, else the new 24-hex id.
"""

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, PlainSerializer

from service.chat.schemas import ChatQuestion


def _naive_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat()


LegacyTime = Annotated[datetime, PlainSerializer(_naive_utc, return_type=str)]
LegacyId = int | str
LegacyStatus = Literal["pending", "processing", "completed", "failed"]


class LegacyVideoListItem(BaseModel):
    id: LegacyId
    filename: str
    summary: str | None
    uploaded_at: LegacyTime
    detected_language: str | None
    ui_language: str | None
    processing_status: LegacyStatus


class LegacyVideo(LegacyVideoListItem):
    file_path: str | None
    transcription: str | None
    error_message: str | None
    processed_at: LegacyTime | None
    user_selected_language: str | None
    transcription_method: str | None


class LegacyVideoStatus(BaseModel):
    video_id: LegacyId
    filename: str
    processing_status: LegacyStatus
    error_message: str | None
    detected_language: str | None
    ui_language: str | None
    transcription_method: str | None
    transcription: str | None
    summary: str | None


class LegacyChatRow(BaseModel):
    id: LegacyId
    video_id: LegacyId
    question: str
    answer: str
    timestamp: LegacyTime
    language: str | None


class LegacyQuestion(ChatQuestion):
    """The new chat's question, validated by the same rules, with the video it is about."""

    video_id: LegacyId


class LegacyUpload(BaseModel):
    message: str
    video_id: LegacyId
    filename: str
    processing_status: LegacyStatus
    language: str
    ui_language: str


class LegacyLanguage(BaseModel):
    name: str = Field(description="the language's name in English")
    native_name: str = Field(description="the language's name in itself")
    flag: str = Field(description="the flag emoji of the region where the language is most spoken (decoration)")
    enabled: bool = Field(description="whether the configured Whisper model transcribes it")


class LegacyLanguages(BaseModel):
    languages: dict[str, LegacyLanguage] = Field(description="every Whisper language, by its code")
    default: str
