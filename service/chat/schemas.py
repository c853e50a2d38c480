from pydantic import BaseModel, Field, field_validator

from service.ai.languages import LANGUAGE_PATTERN, normalized
from service.videos.models import ChatEntry

MAX_QUESTION_CHARS = 2000


class ChatQuestion(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    language: str | None = Field(
        default=None,
        pattern=LANGUAGE_PATTERN,
        description="the language to answer in; default: the video's summary language, else the transcript's",
    )

    @field_validator("question")
    @classmethod
    def _not_blank(cls, question: str) -> str:
        if not question.strip():
            raise ValueError("the question is blank")
        return question.strip()

    @field_validator("language")
    @classmethod
    def _normalized(cls, language: str | None) -> str | None:
        return normalized(language) if language else None


class ChatPage(BaseModel):
    items: list[ChatEntry]
    next_cursor: str | None
