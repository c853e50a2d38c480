from pydantic import BaseModel, Field, field_validator

from service.videos.models import ChatEntry

MAX_QUESTION_CHARS = 2000
LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$"


class ChatQuestion(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    language: str | None = Field(default=None, pattern=LANGUAGE_PATTERN)

    @field_validator("question")
    @classmethod
    def _not_blank(cls, question: str) -> str:
        if not question.strip():
            raise ValueError("the question is blank")
        return question.strip()


class ChatPage(BaseModel):
    items: list[ChatEntry]
    next_cursor: str | None
