"""OpenAI's audio API shapes, as its SDKs read them."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.videos.schemas import Prompt

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
Granularity = Literal["word", "segment"]
API_PREFIX = "/v1"
MODEL_ALIAS = "whisper-1"
"""The name OpenAI's clients and tools send by default; it means the server's WHISPER_MODEL."""


class TranscriptionForm(BaseModel):
    """The form fields of POST /v1/audio/transcriptions and /translations beside `file`."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    prompt: Prompt = None
    response_format: ResponseFormat = "json"
    temperature: float | None = Field(default=None, ge=0, le=1)
    timestamp_granularities: list[Granularity] = Field(default_factory=lambda: ["segment"])


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    """Every error answer of the /v1 routes, in OpenAI's shape."""

    error: ErrorBody


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Usage(BaseModel):
    type: Literal["duration"] = "duration"
    seconds: float


class TextAnswer(BaseModel):
    text: str
    usage: Usage


class WordOut(BaseModel):
    word: str
    start: float
    end: float


class SegmentOut(BaseModel):
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int] = Field(description="always empty: the service does not keep token ids")
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class VerboseAnswer(BaseModel):
    task: Literal["transcribe", "translate"]
    language: str
    duration: float
    text: str
    segments: list[SegmentOut] | None = None
    words: list[WordOut] | None = None
    usage: Usage
