"""What the running app shares with its request handlers: settings, the store, file storage."""

from dataclasses import dataclass

from fastapi import Request

from service.ai.providers.base import LanguageModel
from service.ai.retrieval import IndexCache
from service.config import Settings
from service.db.service import Database
from service.storage.service import Storage


@dataclass
class AppContext:
    settings: Settings
    database: Database
    storage: Storage
    language_model: LanguageModel
    transcript_indexes: IndexCache


def get_context(request: Request) -> AppContext:
    return request.app.state.context
