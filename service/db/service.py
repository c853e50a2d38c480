"""connect(settings): real MongoDB through Motor, or the embedded store, with Beanie initialised."""

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from beanie import init_beanie
from mongomock_motor import AsyncMongoMockClient
from motor.motor_asyncio import AsyncIOMotorClient

from service.config import Settings
from service.db.embedded import EmbeddedClient, EmbeddedStore
from service.db.indexes import create_missing_indexes
from service.db.models import DOCUMENT_MODELS

logger = logging.getLogger(__name__)


@dataclass
class Database:
    """The one client of this process, and which kind of store it talks to."""

    client: Any
    name: str
    kind: str

    @property
    def handle(self) -> Any:
        return self.client[self.name]

    def close(self) -> None:
        self.client.close()


def client_options(settings: Settings) -> dict[str, Any]:
    """The MongoDB client options of every client this service makes (Motor's, and PyMongo's for snapshots)."""
    return {
        "tz_aware": True,
        "maxPoolSize": settings.mongodb_max_pool_size,
        "minPoolSize": settings.mongodb_min_pool_size,
        "connectTimeoutMS": settings.mongodb_connect_timeout_ms,
        "serverSelectionTimeoutMS": settings.mongodb_server_selection_timeout_ms,
        "socketTimeoutMS": settings.mongodb_socket_timeout_ms,
    }


def _motor_client(settings: Settings) -> AsyncIOMotorClient:
    return AsyncIOMotorClient(settings.mongodb_url, **client_options(settings))


async def _embedded_client(settings: Settings) -> EmbeddedClient:
    store = EmbeddedStore(settings.embedded_dir, settings.embedded_ttl_pass_seconds)
    loaded = await asyncio.to_thread(store.open)
    logger.info(
        "store: embedded (mongomock-motor on SQLite) at %s, %d documents loaded and verified",
        store.directory.resolve(),
        loaded,
    )
    return EmbeddedClient(store)


async def connect(settings: Settings, create_indexes: bool = True) -> Database:
    """Open the store named by the settings and create every missing index (a changed one is
    logged: see `create_missing_indexes`)."""
    if settings.uses_embedded_store:
        database = Database(await _embedded_client(settings), settings.mongodb_db, "embedded")
    else:
        client = _motor_client(settings)
        await client.admin.command("ping")
        logger.info("store: MongoDB at %s, database %s", client.address, settings.mongodb_db)
        database = Database(client, settings.mongodb_db, "mongodb")
    await init_beanie(database=database.handle, document_models=DOCUMENT_MODELS, skip_indexes=True)
    if create_indexes:
        await create_missing_indexes(database.handle, DOCUMENT_MODELS)
    return database


async def connect_scratch() -> Database:
    """A throwaway in-memory store with Beanie initialised, that never touches the disk: for work
    that must build documents but write nothing (a dry run)."""
    client = AsyncMongoMockClient(tz_aware=True)
    database = Database(client, "scratch", "scratch")
    await init_beanie(database=database.handle, document_models=DOCUMENT_MODELS)
    return database
