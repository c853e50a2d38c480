"""The embedded store keeps every acknowledged write and refuses what MongoDB refuses."""

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta
from functools import reduce
from pathlib import Path

import pytest
from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, DocumentTooLarge, DuplicateKeyError, OperationFailure, WriteError

from service.clock import utc_now
from service.db.durable import StoreWriteFailed
from service.db.embedded import EmbeddedClient, EmbeddedStore
from service.text import TEXT_SEARCH_LANGUAGES, contains_phrase, fold, parse_text_query, terms, words

pytestmark = pytest.mark.embedded_only

BIG_TEXT = "x" * (6 * 1024 * 1024)


async def open_collection(directory: Path) -> tuple[EmbeddedClient, object]:
    store = EmbeddedStore(directory)
    await store.run(store.open)
    client = EmbeddedClient(store)
    return client, client["app"]["videos"]


OPEN: list[EmbeddedClient] = []


@pytest.fixture
async def videos(tmp_path: Path) -> AsyncIterator[object]:
    client, collection = await open_collection(tmp_path)
    OPEN.append(client)
    yield collection
    while OPEN:
        OPEN.pop().close()


async def reopened(tmp_path: Path) -> object:
    """The store as a restarted process finds it (the previous one is closed: one process at a time)."""
    while OPEN:
        OPEN.pop().close()
    client, collection = await open_collection(tmp_path)
    OPEN.append(client)
    return collection


async def test_a_second_process_cannot_open_a_store_in_use(tmp_path: Path, videos: object) -> None:
    with pytest.raises(RuntimeError, match="in use by another process"):
        await open_collection(tmp_path)


async def test_acknowledged_writes_survive_a_reopen(tmp_path: Path, videos: object) -> None:
    await videos.insert_many([{"_id": i, "n": i, "chat": []} for i in range(5)])
    await videos.update_one({"_id": 1}, {"$push": {"chat": {"q": "why?"}}})
    await videos.update_many({"n": {"$gte": 3}}, {"$set": {"big": True}})
    await videos.delete_one({"_id": 0})
    await videos.find_one_and_update({"n": 2}, {"$inc": {"n": 10}})
    await videos.replace_one({"_id": 4}, {"n": 40})

    again = await reopened(tmp_path)
    assert await again.find({}, {"_id": 1, "n": 1, "chat": 1, "big": 1}).sort("_id", 1).to_list(None) == [
        {"_id": 1, "n": 1, "chat": [{"q": "why?"}]},
        {"_id": 2, "n": 12, "chat": []},
        {"_id": 3, "n": 3, "chat": [], "big": True},
        {"_id": 4, "n": 40},
    ]


async def test_an_insert_over_16_mb_is_refused_and_not_kept(tmp_path: Path, videos: object) -> None:
    with pytest.raises(DocumentTooLarge):
        await videos.insert_one({"_id": "huge", "text": BIG_TEXT * 3})
    assert await videos.count_documents({}) == 0
    assert await (await reopened(tmp_path)).count_documents({}) == 0


async def test_an_update_past_16_mb_is_refused_and_rolled_back(tmp_path: Path, videos: object) -> None:
    await videos.insert_one({"_id": "v", "chat": [BIG_TEXT, BIG_TEXT]})
    with pytest.raises(WriteError) as refused:
        await videos.update_one({"_id": "v"}, {"$push": {"chat": BIG_TEXT}})
    assert refused.value.code == 17419
    assert len((await videos.find_one({"_id": "v"}))["chat"]) == 2
    assert len((await (await reopened(tmp_path)).find_one({"_id": "v"}))["chat"]) == 2


async def test_unique_sparse_index_is_enforced_and_nothing_kept(tmp_path: Path, videos: object) -> None:
    await videos.create_index([("legacy.id", 1)], unique=True, sparse=True)
    await videos.insert_one({"_id": 1, "legacy": {"id": 7}})
    await videos.insert_one({"_id": 2})
    await videos.insert_one({"_id": 3})
    with pytest.raises(DuplicateKeyError):
        await videos.insert_one({"_id": 4, "legacy": {"id": 7}})
    with pytest.raises(DuplicateKeyError):
        await videos.update_one({"_id": 2}, {"$set": {"legacy.id": 7}})
    again = await reopened(tmp_path)
    assert sorted(d["_id"] for d in await again.find({}).to_list(None)) == [1, 2, 3]
    assert await again.count_documents({"legacy.id": 7}) == 1


async def test_id_lookups_still_apply_the_rest_of_the_filter(videos: object) -> None:
    await videos.insert_one({"_id": 1, "status": "queued"})
    result = await videos.update_one({"_id": 1, "status": "processing"}, {"$set": {"status": "done"}})
    assert result.matched_count == 0
    assert await videos.find_one({"_id": {"$in": [1, 2]}, "status": "queued"}) == {"_id": 1, "status": "queued"}


async def test_bulk_write_upserts_are_kept_and_idempotent(tmp_path: Path, videos: object) -> None:
    await videos.create_index([("legacy.id", 1)], unique=True, sparse=True)

    def upserts() -> list[UpdateOne]:
        return [
            UpdateOne(
                {"legacy.id": n},
                {"$set": {"legacy": {"id": n}, "n": n * 10}, "$setOnInsert": {"made": True}},
                upsert=True,
            )
            for n in range(50)
        ]

    first = await videos.bulk_write(upserts(), ordered=False)
    assert (first.upserted_count, first.matched_count) == (50, 0)
    second = await videos.bulk_write(upserts(), ordered=False)
    assert (second.upserted_count, second.matched_count, second.modified_count) == (0, 50, 0)
    again = await reopened(tmp_path)
    assert await again.count_documents({}) == 50
    assert await again.find_one({"legacy.id": 49}, {"_id": 0}) == {"legacy": {"id": 49}, "n": 490, "made": True}


async def test_bulk_write_refuses_failing_operations_alone(tmp_path: Path, videos: object) -> None:
    await videos.create_index([("legacy.id", 1)], unique=True, sparse=True)
    await videos.insert_many([{"_id": n, "legacy": {"id": n}} for n in range(4)])
    operations = [
        UpdateOne({"legacy.id": 0}, {"$set": {"ok": True}}),
        UpdateOne({"legacy.id": 1}, {"$set": {"legacy.id": 2}}),
        UpdateOne({"legacy.id": 2}, {"$set": {"big": BIG_TEXT * 3}}),
        InsertOne({"_id": 9, "big": BIG_TEXT * 3}),
        UpdateOne({"legacy.id": 3}, {"$set": {"ok": True}}),
    ]
    with pytest.raises(BulkWriteError) as unordered:
        await videos.bulk_write(operations, ordered=False)
    assert [(e["index"], e["code"]) for e in unordered.value.details["writeErrors"]] == [
        (1, 11000),
        (2, 17419),
        (3, 10334),
    ]
    assert unordered.value.details["nModified"] == 2
    with pytest.raises(BulkWriteError) as ordered:
        await videos.bulk_write(
            [
                UpdateOne({"legacy.id": 1}, {"$set": {"legacy.id": 2}}),
                UpdateOne({"legacy.id": 1}, {"$set": {"late": 1}}),
            ]
        )
    assert ordered.value.details["nModified"] == 0
    again = await reopened(tmp_path)
    assert await again.find({}, {"_id": 0}).sort("legacy.id", 1).to_list(None) == [
        {"legacy": {"id": 0}, "ok": True},
        {"legacy": {"id": 1}},
        {"legacy": {"id": 2}},
        {"legacy": {"id": 3}, "ok": True},
    ]


async def test_unique_field_lookups_follow_changes_in_place(videos: object) -> None:
    await videos.create_index([("legacy.id", 1)], unique=True, sparse=True)
    await videos.insert_many([{"_id": 1, "legacy": {"id": 5}}, {"_id": 2, "legacy": [{"id": 6}]}, {"_id": 3}])
    assert [d["_id"] for d in await videos.find({"legacy.id": 6}).to_list(None)] == [2]
    await videos.update_one({"legacy.id": 5}, {"$set": {"legacy.id": 50}})
    assert await videos.find_one({"legacy.id": 5}) is None
    assert (await videos.find_one({"legacy.id": 50.0}))["_id"] == 1
    await videos.update_one({"_id": 3}, {"$set": {"legacy": {"id": 5}}})
    assert (await videos.find_one({"legacy.id": 5}))["_id"] == 3
    with pytest.raises(DuplicateKeyError):
        await videos.update_one({"_id": 1}, {"$set": {"legacy.id": 5}})
    await videos.delete_one({"legacy.id": 5})
    assert await videos.count_documents({"legacy.id": 5}) == 0
    assert await videos.count_documents({"legacy.id": "50"}) == 0


async def test_ttl_indexes_expire_documents_in_a_pass_as_mongodb_does(tmp_path: Path, videos: object) -> None:
    now = utc_now()
    await videos.create_index([("expires_at", 1)], expireAfterSeconds=60)
    await videos.insert_many(
        [
            {"_id": "old", "expires_at": now - timedelta(seconds=61)},
            {"_id": "fresh", "expires_at": now - timedelta(seconds=30)},
            {"_id": "earliest-old", "expires_at": [now + timedelta(hours=1), now - timedelta(hours=1)]},
            {"_id": "not-a-date", "expires_at": "yesterday"},
            {"_id": "no-field"},
        ]
    )
    assert await videos.count_documents({}) == 5, "until the pass, as on MongoDB (up to a minute late)"
    store = videos._embedded
    assert await store.run(store.expire_documents) == 2
    remaining = ["fresh", "not-a-date", "no-field"]
    assert [d["_id"] for d in await videos.find({}).sort("_id", 1).to_list(None)] == sorted(remaining)
    again = await reopened(tmp_path)
    assert sorted(d["_id"] for d in await again.find({}).to_list(None)) == sorted(remaining)


async def test_the_ttl_pass_runs_by_itself(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path, ttl_pass_seconds=0.05)
    await store.run(store.open)
    client = EmbeddedClient(store)
    OPEN.append(client)
    collection = client["app"]["throttle"]
    await collection.create_index([("expires_at", 1)], expireAfterSeconds=0)
    await collection.insert_one({"_id": "gone", "expires_at": utc_now()})
    async with asyncio.timeout(5):
        while await collection.count_documents({}):
            await asyncio.sleep(0.05)
    OPEN.pop().close()


# The text index


TEXT_WEIGHTS = {"filename": 3, "summary.text": 2, "transcript.text": 1}
TEXT_WORDS = "Café cafe coffee tea green door doors painted the and running runs ran espresso 12".split()


async def with_text_index(collection: object) -> None:
    await collection.create_index(
        [(field, "text") for field in TEXT_WEIGHTS], weights=TEXT_WEIGHTS, language_override="search_language"
    )


async def found(collection: object, search: str, **rest: object) -> list[object]:
    return [d["_id"] for d in await collection.find({"$text": {"$search": search}, **rest}).to_list(None)]


async def test_the_text_index_follows_inserts_updates_and_deletes(videos: object) -> None:
    await with_text_index(videos)
    await videos.insert_many([{"_id": 1, "transcript": {"text": "green tea"}}, {"_id": 2, "filename": "tea.mp4"}])
    assert await found(videos, "tea") == [2, 1], "the first query builds the index"
    await videos.insert_one({"_id": 3, "summary": {"text": "coffee and tea"}})
    assert await found(videos, "coffee") == [3]
    await videos.update_one({"_id": 1}, {"$set": {"transcript.text": "black coffee"}})
    assert await found(videos, "green") == []
    assert sorted(await found(videos, "coffee")) == [1, 3]
    await videos.update_one({"_id": 3}, {"$unset": {"summary": ""}})
    assert await found(videos, "coffee") == [1]
    await videos.replace_one({"_id": 2}, {"filename": "espresso.mp4"})
    assert await found(videos, "tea") == []
    await videos.delete_one({"_id": 1})
    assert await found(videos, "coffee") == []
    assert await found(videos, "espresso") == [2]


async def test_a_failed_commit_leaves_the_text_index_as_it_was(videos: object) -> None:
    await with_text_index(videos)
    await videos.insert_one({"_id": "kept", "transcript": {"text": "green tea"}})
    assert await found(videos, "tea") == ["kept"]
    connection = videos._embedded.file._connection
    connection.execute(f"PRAGMA max_page_count={connection.execute('PRAGMA page_count').fetchone()[0]}")

    with pytest.raises(StoreWriteFailed):
        await videos.update_one({"_id": "kept"}, {"$set": {"transcript.text": "coffee " + "x" * 20_000}})
    with pytest.raises(StoreWriteFailed):
        await videos.insert_one({"_id": "new", "transcript": {"text": "espresso " + "y" * 20_000}})
    assert await found(videos, "tea") == ["kept"]
    assert await found(videos, "coffee espresso") == []

    connection.execute("PRAGMA max_page_count=1073741823")
    await videos.update_one({"_id": "kept"}, {"$set": {"transcript.text": "coffee"}})
    assert await found(videos, "tea") == []
    assert await found(videos, "coffee") == ["kept"]


async def test_the_text_index_is_built_again_at_a_reopen(tmp_path: Path, videos: object) -> None:
    await with_text_index(videos)
    await videos.insert_many([{"_id": n, "transcript": {"text": "tea " * n}} for n in range(1, 4)])
    before = await videos.find({"$text": {"$search": "tea"}}, {"score": {"$meta": "textScore"}}).to_list(None)
    again = await reopened(tmp_path)
    assert await again.find({"$text": {"$search": "tea"}}, {"score": {"$meta": "textScore"}}).to_list(None) == before
    await again.delete_one({"_id": 3})
    assert await found(again, "tea") == [2, 1]


async def test_the_text_index_follows_its_drop_and_creation(videos: object) -> None:
    await with_text_index(videos)
    await videos.insert_one({"_id": 1, "filename": "tea.mp4", "transcript": {"text": "coffee"}})
    assert await found(videos, "tea") == [1]
    await videos.drop_index("filename_text_summary.text_text_transcript.text_text")
    with pytest.raises(OperationFailure) as refused:
        await found(videos, "tea")
    assert refused.value.code == 27
    await videos.create_index([("transcript.text", "text")])
    assert await found(videos, "tea") == []
    assert await found(videos, "coffee") == [1]
    await videos.drop()
    await with_text_index(videos)
    assert await found(videos, "coffee") == []


def reference_scores(documents: list[dict], search: str) -> dict[object, float]:
    """MongoDB's text score, computed on every document from its formula (the index's reference)."""
    query = parse_text_query(search)
    positive, negative = query.terms("english"), query.negated_terms("english")
    scores = {}
    for document in documents:
        language = TEXT_SEARCH_LANGUAGES[document.get("search_language", "english")]
        per_term: dict[str, float] = defaultdict(float)
        spoken = []
        for field, weight in TEXT_WEIGHTS.items():
            text = reduce(lambda value, part: (value or {}).get(part), field.split("."), document)
            if not isinstance(text, str):
                continue
            field_terms = terms(text, language)
            for term in dict.fromkeys(field_terms):
                count = field_terms.count(term)
                coefficient = 0.5 * count / len(field_terms) + 0.5
                boost = 1.1 if fold(text) == term else 1.0
                per_term[term] += weight * sum(1 / 2**n for n in range(count)) * coefficient * boost
            spoken.append(" ".join(words(text)))
        if any(term in per_term for term in negative):
            continue
        if not all(any(contains_phrase(text, phrase) for text in spoken) for phrase in query.phrases):
            continue
        if any(contains_phrase(text, phrase) for text in spoken for phrase in query.negated_phrases):
            continue
        score = sum(per_term.get(term, 0.0) for term in positive)
        if score > 0:
            scores[document["_id"]] = score
    return scores


def random_document(rng: random.Random, key: int) -> dict:
    def text(length: int) -> str:
        return " ".join(rng.choice(TEXT_WORDS) for _ in range(length))

    document: dict = {"_id": key, "group": rng.randint(0, 2), "filename": text(rng.randint(0, 2))}
    if rng.random() < 0.5:
        document["summary"] = {"text": text(rng.randint(1, 6))}
    if rng.random() < 0.9:
        document["transcript"] = {"text": text(rng.randint(0, 30))}
    if rng.random() < 0.2:
        document["search_language"] = rng.choice(["french", "none", "english"])
    return document


def random_search(rng: random.Random) -> str:
    parts = [rng.choice(TEXT_WORDS) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.3:
        parts.append(f'"{rng.choice(TEXT_WORDS)} {rng.choice(TEXT_WORDS)}"')
    if rng.random() < 0.3:
        parts.append(f"-{rng.choice(TEXT_WORDS)}")
    if rng.random() < 0.2:
        parts.append(f'-"{rng.choice(TEXT_WORDS)} {rng.choice(TEXT_WORDS)}"')
    return " ".join(parts)


async def random_write(rng: random.Random, collection: object, keys: int) -> None:
    key = rng.randrange(keys)
    replacement = random_document(rng, key)
    choice = rng.random()
    if choice < 0.3:
        await collection.replace_one({"_id": key}, replacement, upsert=True)
    elif choice < 0.5:
        await collection.update_one({"_id": key}, {"$unset": {"transcript": ""}})
    elif choice < 0.7:
        await collection.update_many({"group": key % 3}, {"$set": {"group": rng.randint(0, 2)}})
    else:
        await collection.delete_one({"_id": key})


async def test_text_results_and_scores_equal_the_formula_over_every_document(videos: object) -> None:
    rng = random.Random(12)
    await with_text_index(videos)
    await videos.insert_many([random_document(rng, key) for key in range(60)])
    for _ in range(40):
        for _ in range(rng.randint(0, 4)):
            await random_write(rng, videos, 70)
        search, group = random_search(rng), rng.randint(0, 2)
        skip, limit = rng.choice([(0, 0), (0, 5), (3, 4)])
        documents = await videos.find({"group": group}).to_list(None)
        expected = sorted(reference_scores(documents, search).items(), key=lambda item: (-item[1], item[0]))
        cursor = videos.find({"$text": {"$search": search}, "group": group}, {"score": {"$meta": "textScore"}})
        got = await cursor.sort([("score", {"$meta": "textScore"}), ("_id", 1)]).skip(skip).limit(limit).to_list(None)
        assert [(d["_id"], d["score"]) for d in got] == expected[skip : skip + limit if limit else None], search
