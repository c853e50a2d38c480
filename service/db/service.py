"""connect(settings): real MongoDB through Motor, or the embedded store, with Beanie initialised."""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pymongo
from beanie import init_beanie
from mongomock_motor import AsyncMongoMockClient
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo.errors import PyMongoError

from service.config import Settings
from service.db.durable import StoreWriteFailed
from service.db.embedded import EmbeddedClient, EmbeddedStore
from service.db.indexes import create_missing_indexes
from service.db.models import DOCUMENT_MODELS

logger = logging.getLogger(__name__)


class StoreUnreachable(Exception):
    """The store did not answer a probe in time, or answered that it cannot serve."""


@asynccontextmanager
async def store_deadline(seconds: float) -> AsyncIterator[None]:
    """A deadline for the store calls made inside the block (TimeoutError or a PyMongoError past it):
    pymongo's client-side operation timeout, which Motor carries into the threads it runs pymongo on,
    so that nothing is left waiting on the network; and an asyncio timeout for the embedded store,
    whose one thread may be busy with another operation."""
    with pymongo.timeout(seconds):
        async with asyncio.timeout(seconds):
            yield


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

    async def ping(self, timeout: float, *reads: Callable[[], Awaitable[Any]]) -> None:
        """Whether the store answers, within `timeout` seconds; StoreUnreachable when it does not.

        MongoDB must answer a ping. The embedded store must be open, its thread free to answer,
        and its file's write lock free to take (another program holding it refuses every write).
        Then each of `reads` (GridFS's, say) must answer within the same time."""
        try:
            async with store_deadline(timeout):
                if isinstance(self.client, EmbeddedClient):
                    await self.client.store.run(self.client.store.check_writable)
                else:
                    await self.client.admin.command("ping")
                for read in reads:
                    await read()
        except TimeoutError:
            raise StoreUnreachable(f"did not answer within {timeout:g} s") from None
        except PyMongoError as error:
            if error.timeout:
                raise StoreUnreachable(f"did not answer within {timeout:g} s") from error
            raise StoreUnreachable(f"failed the ping ({error.__class__.__name__})") from error
        except StoreWriteFailed as error:
            raise StoreUnreachable(f"cannot take a write now ({error.__cause__})") from error
        except RuntimeError as error:  # closed: its thread and its file are gone
            raise StoreUnreachable("is closed") from error


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
