"""The one small interface every summary and answer provider implements."""

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import ClassVar

from service.ai.schemas import AnswerDraft, AnswerRequest, SummaryDraft, SummaryRequest
from service.config import Settings


class LanguageModel(ABC):
    """Summaries and grounded answers. Subclasses name themselves and are found by that name."""

    name: ClassVar[str]
    registry: ClassVar[dict[str, type["LanguageModel"]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        LanguageModel.registry[cls.name] = cls

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    @abstractmethod
    def model(self) -> str:
        """The model name recorded with each summary and answer."""

    @abstractmethod
    async def summarize(self, request: SummaryRequest) -> SummaryDraft: ...

    @abstractmethod
    def answer_stream(self, request: AnswerRequest) -> AsyncIterator[str | AnswerDraft]:
        """Text deltas as they come, then the finished AnswerDraft last."""

    async def answer(self, request: AnswerRequest) -> AnswerDraft:
        async with aclosing(self.answer_stream(request)) as items:
            async for item in items:
                if isinstance(item, AnswerDraft):
                    return item
        raise RuntimeError(f"{self.name} ended its answer without a result")

    async def close(self) -> None:  # noqa: B027 - most providers hold nothing to release
        """Release what the provider holds (network clients)."""
