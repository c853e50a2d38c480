"""What the service asks of a language model, and what it gets back."""

from pydantic import BaseModel, Field

from service.text import TimedText
from service.videos.models import Chapter, ChatEntry, Citation, Segment


class Excerpt(BaseModel):
    """A transcript passage handed to a model, numbered so that an answer can cite it."""

    number: int
    start: float
    end: float
    text: str
    relevance: float = Field(ge=0, le=1, description="retrieval score relative to the best excerpt")

    @classmethod
    def of(cls, number: int, passage: TimedText, relevance: float) -> "Excerpt":
        return cls(number=number, start=passage.start, end=passage.end, text=passage.text, relevance=relevance)

    def citation(self) -> Citation:
        return Citation(start=self.start, end=self.end, text=self.text)


class SummaryRequest(BaseModel):
    title: str
    language: str | None
    segments: list[Segment]


class SummaryDraft(BaseModel):
    text: str
    key_points: list[str] = Field(default_factory=list)
    chapters: list[Chapter] = Field(default_factory=list)


class AnswerRequest(BaseModel):
    title: str
    question: str
    language: str | None
    excerpts: list[Excerpt]
    history: list[ChatEntry] = Field(default_factory=list)


class AnswerDraft(BaseModel):
    text: str
    citations: list[Citation]
