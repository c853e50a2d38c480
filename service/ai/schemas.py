"""What the service asks of a language model, and what it gets back."""

from pydantic import BaseModel, Field

from service.ai.languages import LANGUAGE_PATTERN
from service.text import TimedText
from service.videos.models import Chapter, ChatEntry, Citation, Segment


class Excerpt(BaseModel):
    """A transcript passage handed to a model, numbered so that an answer can cite it."""

    number: int
    start: float
    end: float
    text: str
    relevance: float = Field(ge=0, le=1, description="retrieval score relative to the best excerpt")
    low_confidence: bool = False

    @classmethod
    def of(cls, number: int, passage: TimedText, relevance: float) -> "Excerpt":
        return cls(
            number=number,
            start=passage.start,
            end=passage.end,
            text=passage.text,
            relevance=relevance,
            low_confidence=passage.low_confidence,
        )

    def citation(self) -> Citation:
        return Citation(start=self.start, end=self.end, text=self.text, low_confidence=self.low_confidence)


class SummaryRequest(BaseModel):
    title: str
    language: str | None = Field(description="the language to write in; None: the transcript's")
    transcript_language: str | None
    segments: list[Segment]


class SummaryDraft(BaseModel):
    text: str
    key_points: list[str] = Field(default_factory=list)
    chapters: list[Chapter] = Field(default_factory=list)
    language: str | None = Field(default=None, description="the language it is written in, when the provider knows")
    note: str | None = None


class KeyPoint(BaseModel):
    text: str
    start: float | None = None
    end: float | None = None
    """Where the transcript says it, when the key point is one of its sentences."""
    low_confidence: bool = False


class Overview(BaseModel):
    """The video's stored summary, for requests about the whole video ("10 key points")."""

    text: str
    key_points: list[KeyPoint] = Field(default_factory=list)
    chapters: list[Chapter] = Field(default_factory=list)
    language: str | None = None


class AnswerRequest(BaseModel):
    title: str
    question: str
    language: str | None = Field(description="the language to answer in")
    transcript_language: str | None = None
    excerpts: list[Excerpt]
    history: list[ChatEntry] = Field(default_factory=list)
    overview: Overview | None = None


class AnswerDraft(BaseModel):
    text: str
    citations: list[Citation]
    language: str | None = Field(default=None, description="the language it is written in, when not the one asked")
    note: str | None = None


class SummarizeOptions(BaseModel):
    summary_language: str | None = Field(
        default=None,
        pattern=LANGUAGE_PATTERN,
        description="the language to write the summary in (kept with the video); default: the video's, else the transcript's",
    )
