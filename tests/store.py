"""The store the suite runs on, as a pytest plugin: the embedded store by default, or a MongoDB
server given with `--mongodb-url`, where every test gets a database of its own, dropped after it.

Tests reach their store through the `store` fixture: `store.settings` for a service in the test's
process, `store.environment` for a `video-analyzer` process. Tests about the embedded store itself
are marked `embedded_only` and skipped on a server."""

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from service.config import Settings

EMBEDDED_ONLY = "embedded_only"
SERVER_SELECTION_TIMEOUT_MS = 2000
"""How long the run waits for the server before it stops: a server that is up answers in milliseconds."""
SOCKET_TIMEOUT_MS = 30_000
"""For dropping a test's database."""
DEFAULT_DATABASE = Settings.model_fields["mongodb_db"].default
MAX_DATABASE_NAME_BYTES = 63
"""MongoDB's limit is 64 bytes with the terminating zero."""
UNSAFE_IN_DATABASE_NAMES = re.compile(r"[^a-z0-9_]+")
"""MongoDB refuses `/\\. "$*<>:|?` in a name, and names that differ only in case (code 13297)."""


class MongoClientLike(Protocol):
    def drop_database(self, name: str) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class StoreDatabase:
    """Where one test keeps its documents: on the embedded store, under the test's DATA_DIR; on a
    server, in the database `name`."""

    mongodb_url: str | None = field(repr=False)  # it may hold a password
    name: str

    @property
    def kind(self) -> str:
        """As `GET /health` names it."""
        return "embedded" if self.mongodb_url is None else "mongodb"

    @property
    def settings(self) -> dict[str, Any]:
        """Values for `Settings(...)` in this process. An explicit None keeps a MONGODB_URL in the
        environment from taking the embedded run elsewhere."""
        return {"mongodb_url": self.mongodb_url, "mongodb_db": self.name}

    @property
    def environment(self) -> dict[str, str]:
        """The same settings for a `video-analyzer` process (an empty MONGODB_URL is unset)."""
        return {"MONGODB_URL": self.mongodb_url or "", "MONGODB_DB": self.name}

    def set_in(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """For a `video-analyzer` command run in this process: it reads its settings from the environment."""
        for name, value in self.environment.items():
            monkeypatch.setenv(name, value)


class EmbeddedStores:
    """The default: each test's embedded store lives in its own tmp_path, so there is nothing to drop."""

    def header(self) -> str:
        return "store: embedded (a store of its own in each test's tmp_path; --mongodb-url URL runs on a server)"

    @contextmanager
    def database(self, label: str) -> Iterator[StoreDatabase]:
        yield StoreDatabase(None, DEFAULT_DATABASE)

    def close(self) -> None:
        pass


class MongoDBServer:
    """A MongoDB server shared by the whole run through one client, which drops each test's database."""

    def __init__(self, url: str, client: MongoClientLike, version: str) -> None:
        self.url = url
        self.client = client
        self.version = version

    @classmethod
    def reach(cls, url: str) -> "MongoDBServer":
        """The server at `url`, once it has answered; pytest.UsageError naming the URL when it does
        not answer within SERVER_SELECTION_TIMEOUT_MS or the URL is not one."""
        try:
            client: MongoClient = MongoClient(
                url,
                serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS,
                connectTimeoutMS=SERVER_SELECTION_TIMEOUT_MS,
                socketTimeoutMS=SOCKET_TIMEOUT_MS,
            )
        except (PyMongoError, ValueError) as error:  # ValueError: a port that is not a number
            raise pytest.UsageError(f"--mongodb-url {redacted(url)}: {error}") from error
        try:
            version = client.server_info()["version"]
        except PyMongoError as error:
            client.close()
            cause = str(error).partition(", Timeout: ")[0]  # the rest is pymongo's topology dump
            raise pytest.UsageError(
                f"--mongodb-url {redacted(url)}: no MongoDB server answered within "
                f"{SERVER_SELECTION_TIMEOUT_MS / 1000:g} s ({cause})"
            ) from error
        return cls(url, client, version)

    def header(self) -> str:
        return (
            f"store: MongoDB {self.version} at {redacted(self.url)} (a database of its own for each test, "
            f"dropped after it; tests marked {EMBEDDED_ONLY} are skipped)"
        )

    @contextmanager
    def database(self, label: str) -> Iterator[StoreDatabase]:
        name = unique_database_name(label)
        try:
            yield StoreDatabase(self.url, name)
        finally:
            self.client.drop_database(name)

    def close(self) -> None:
        self.client.close()


def unique_database_name(label: str) -> str:
    """`test_` and the label made safe for MongoDB, cut to fit, then random hex: readable in the
    server's list while a run is on, and never the name of another test's database."""
    suffix = "_" + secrets.token_hex(6)
    readable = "test_" + UNSAFE_IN_DATABASE_NAMES.sub("_", label.lower()).strip("_")
    return readable[: MAX_DATABASE_NAME_BYTES - len(suffix)] + suffix


def redacted(url: str) -> str:
    """The URL without its password, fit for a log."""
    return re.sub(r"(?<=://)([^:@/]*):[^@/]*@", r"\1:***@", url)


Stores = EmbeddedStores | MongoDBServer
STORES = pytest.StashKey[Stores]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--mongodb-url",
        metavar="URL",
        default=None,
        help="run the store and API tests against the MongoDB server at URL (a database per test, "
        f"dropped after it; tests marked {EMBEDDED_ONLY} are skipped). Default: the embedded store.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{EMBEDDED_ONLY}: about the embedded store itself (its files, locking, recovery); not run on MongoDB",
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    """Before anything is collected, so that an unreachable server stops the run with one message."""
    url = session.config.getoption("--mongodb-url")
    session.config.stash[STORES] = EmbeddedStores() if url is None else MongoDBServer.reach(url)


def pytest_unconfigure(config: pytest.Config) -> None:
    if STORES in config.stash:
        config.stash[STORES].close()


def pytest_report_header(config: pytest.Config) -> str:
    return config.stash[STORES].header()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if isinstance(config.stash[STORES], EmbeddedStores):
        return
    skip = pytest.mark.skip(reason="about the embedded store itself; it runs without --mongodb-url")
    for item in items:
        if item.get_closest_marker(EMBEDDED_ONLY):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def stores(request: pytest.FixtureRequest) -> Stores:
    """The run's stores, for a fixture wider than one test (`stores.database(label)`)."""
    return request.config.stash[STORES]


@pytest.fixture
def store(stores: Stores, request: pytest.FixtureRequest) -> Iterator[StoreDatabase]:
    """This test's store."""
    with stores.database(request.node.name) as database:
        yield database
