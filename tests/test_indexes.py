"""Indexes: the declared ones pinned, MongoDB's refusals (which the embedded store makes too), and rebuilding."""

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from pymongo.errors import OperationFailure

from service.cli import main
from service.config import Settings
from service.db.index_command import run_indexes
from service.db.indexes import IndexSpec, declared_indexes, index_states
from service.db.models import DOCUMENT_MODELS
from service.db.service import Database, connect
from tests.store import StoreDatabase

TEXT_OPTIONS = {"default_language": "english", "language_override": "language", "textIndexVersion": 3}

PINNED = [
    ("videos", "uploaded_at", (("uploaded_at", -1), ("_id", -1)), {}),
    ("videos", "queue", (("status", 1), ("job.lease_until", 1)), {}),
    ("videos", "owner", (("owner_id", 1), ("uploaded_at", -1)), {}),
    ("videos", "filename", (("filename", 1),), {}),
    ("videos", "sha256", (("file.sha256", 1),), {}),
    ("videos", "legacy_id", (("legacy.id", 1),), {"unique": True, "sparse": True}),
    ("videos", "webhook_outbox", (("webhook_outbox.at", 1),), {}),
    (
        "videos",
        "search",
        (("_fts", "text"), ("_ftsx", 1)),
        {
            "weights": {"filename": 3, "summary.text": 2, "transcript.text": 1},
            "default_language": "english",
            "language_override": "search_language",
            "textIndexVersion": 3,
        },
    ),
    ("users", "username_1", (("username", 1),), {"unique": True}),
    ("users", "email_1", (("email", 1),), {"unique": True}),
    ("api_keys", "key_hash_1", (("key_hash", 1),), {"unique": True}),
    ("api_keys", "by_user", (("user_id", 1), ("created_at", 1)), {}),
    ("login_throttle", "expires", (("expires_at", 1),), {"expireAfterSeconds": 0}),
    ("webhooks", "by_owner", (("owner_id", 1), ("_id", -1)), {}),
    ("webhook_deliveries", "one_per_receiver", (("message_id", 1), ("subscription_id", 1)), {"unique": True}),
    ("webhook_deliveries", "due", (("status", 1), ("next_attempt_at", 1)), {}),
    ("webhook_deliveries", "log", (("subscription_id", 1), ("_id", -1)), {}),
    ("webhook_deliveries", "expires", (("expires_at", 1),), {"expireAfterSeconds": 0}),
]


def test_the_declared_indexes_are_pinned() -> None:
    """Changing an index is deliberate: MongoDB refuses a changed index under an existing name,
    so a deployment needs `video-analyzer indexes --apply` after the upgrade (see README)."""
    declared = [
        (collection, spec.name, spec.key, spec.options)
        for collection, models in declared_indexes(DOCUMENT_MODELS).items()
        for spec in map(IndexSpec.of_model, models)
    ]
    assert declared == PINNED


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    database = await connect(settings)
    yield database
    database.close()


async def test_start_up_builds_every_declared_index(database: Database) -> None:
    states = await index_states(database.handle, DOCUMENT_MODELS)
    assert {(state.collection, state.name, state.state) for state in states} == {
        (collection, name, "same") for collection, name, _, _ in PINNED
    }


async def refused(operation: object) -> tuple[int, str]:
    with pytest.raises(OperationFailure) as error:
        await operation
    return error.value.code, error.value.details["errmsg"]


async def test_a_second_text_index_is_refused_as_mongodb_does(database: Database) -> None:
    notes = database.handle["notes"]
    assert await notes.create_index([("title", "text")]) == "title_text"
    assert await notes.create_index([("title", "text")], default_language="english") == "title_text"
    code, message = await refused(notes.create_index([("body", "text")]))
    assert code == 85 and "different name" in message  # the same key pattern {_fts, _ftsx}
    code, message = await refused(notes.create_index([("kind", 1), ("body", "text")]))
    assert (code, message) == (67, 'only one text index per collection allowed, found existing text index "title_text"')
    code, _ = await refused(notes.create_index([("title", "text")], name="title_text", weights={"title": 2}))
    assert code == 85


async def test_an_existing_name_with_other_keys_or_options_is_refused(database: Database) -> None:
    notes = database.handle["notes"]
    await notes.create_index([("a", 1)], name="by_a")
    assert (await refused(notes.create_index([("b", 1)], name="by_a")))[0] == 86
    assert (await refused(notes.create_index([("a", 1)], name="by_a", unique=True)))[0] == 86
    assert (await refused(notes.create_index([("a", 1)], name="by_a", expireAfterSeconds=5)))[0] == 85
    assert (await refused(notes.create_index([("a", 1)], name="other")))[0] == 85
    assert await notes.create_index([("a", 1)], name="by_a") == "by_a"
    assert await notes.create_index([("a", -1)], name="by_a_down") == "by_a_down"
    assert set(await notes.index_information()) == {"_id_", "by_a", "by_a_down"}


async def change_the_search_index(settings: Settings) -> None:
    """What an upgrade that changes an index meets: the store has the older definition."""
    database = await connect(settings)
    videos = database.handle["videos"]
    await videos.drop_index("search")
    await videos.create_index([("filename", "text")], name="search", language_override="search_language")
    await videos.drop_index("filename")
    database.close()


async def test_a_changed_index_is_logged_at_start_up_and_rebuilt_by_apply(
    settings: Settings,
    store: StoreDatabase,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    await change_the_search_index(settings)
    with caplog.at_level(logging.ERROR, logger="service.db.indexes"):
        database = await connect(settings)  # starts: the service runs on the existing index
    [logged] = [record.getMessage() for record in caplog.records]
    assert "videos.search differs" in logged and "video-analyzer indexes --apply" in logged
    states = {state.name: state.state for state in await index_states(database.handle, DOCUMENT_MODELS)}
    assert states["search"] == "changed" and states["filename"] == "same"  # a missing one is built
    database.close()

    store.set_in(monkeypatch)
    monkeypatch.setenv("DATA_DIR", str(settings.data_dir))
    with pytest.raises(SystemExit) as exit_code:
        await asyncio.to_thread(main, ["indexes"])
    assert exit_code.value.code == 1
    assert "videos.search: changed" in capsys.readouterr().out

    report = await run_indexes(settings, apply=True)
    assert report.ok and all(state.state == "same" for state in report.states)
    await asyncio.to_thread(main, ["indexes"])
    assert "every declared index exists as declared" in capsys.readouterr().out


async def test_a_renamed_index_takes_the_place_of_the_one_it_replaces(settings: Settings) -> None:
    database = await connect(settings)
    videos = database.handle["videos"]
    await videos.drop_index("sha256")
    await videos.create_index([("file.sha256", 1)], name="old_sha256")
    database.close()
    report = await run_indexes(settings, apply=False)
    [changed] = [state for state in report.states if state.state != "same"]
    assert (changed.name, changed.existing.name) == ("sha256", "old_sha256")
    assert (await run_indexes(settings, apply=True)).ok
