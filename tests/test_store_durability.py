"""The embedded store on SQLite: what it acknowledged is there; what is damaged is reported, never dropped."""

import shutil
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import bson
import pytest

from service.db.durable import DATABASE_NAME, WAL_LIMIT_BYTES, StoreDamaged, StoreWriteFailed, read_snapshot
from service.db.embedded import EmbeddedClient, EmbeddedStore

pytestmark = pytest.mark.embedded_only

FIXTURES = Path(__file__).parent / "fixtures"
OLD_FORMAT_STORE = FIXTURES / "store_v1"


class OpenStore:
    """An embedded store opened in this process, as `serve` opens it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.store = EmbeddedStore(directory)
        self.count = self.store.open()
        self.client = EmbeddedClient(self.store)

    @property
    def videos(self) -> object:
        return self.client["app"]["videos"]

    def crash_image(self, target: Path) -> Path:
        """The files as a crash would leave them now: the database and its WAL, not checkpointed."""
        target.mkdir(parents=True)
        for path in self.directory.iterdir():
            if path.name.startswith(DATABASE_NAME):
                shutil.copy2(path, target / path.name)
        return target

    def close(self) -> None:
        self.store.close()


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[OpenStore]:
    store = OpenStore(tmp_path / "db")
    yield store
    store.close()


def documents_of(directory: Path) -> dict:
    """Every document a fresh open loads, by collection and `_id` (StoreDamaged if it refuses)."""
    store = EmbeddedStore(directory)
    store.open()
    try:
        return {
            (database, name): {
                key: bson.encode(doc) for key, doc in store.collection(database, name)._store._documents.items()
            }
            for database in store.mongo.list_database_names()
            for name in store.mongo[database].list_collection_names()
        }
    finally:
        store.close()


async def fill(videos: object, count: int) -> None:
    for index in range(count):
        await videos.insert_one({"_id": index, "text": f"document {index} " * 40, "chat": []})
        await videos.update_one({"_id": index}, {"$push": {"chat": {"q": f"question {index}"}}})


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x55
    path.write_bytes(bytes(data))


# A full disk


async def test_a_commit_on_a_full_disk_keeps_nothing_and_the_store_recovers(tmp_path: Path, opened: OpenStore) -> None:
    """SQLite's own SQLITE_FULL, reached by capping the file's pages (`max_page_count`)."""
    await opened.videos.insert_one({"_id": "kept", "chat": []})
    connection = opened.store.file._connection
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.execute(f"PRAGMA max_page_count={pages}")

    with pytest.raises(StoreWriteFailed) as refused:
        await opened.videos.update_one({"_id": "kept"}, {"$push": {"chat": {"answer": "x" * 20_000}}})
    assert refused.value.disk_full
    with pytest.raises(StoreWriteFailed):
        await opened.videos.insert_one({"_id": "new", "text": "y" * 20_000})

    assert await opened.videos.find_one({"_id": "kept"}) == {"_id": "kept", "chat": []}
    assert await opened.videos.find_one({"_id": "new"}) is None

    connection.execute("PRAGMA max_page_count=1073741823")
    await opened.videos.insert_one({"_id": "after", "text": "room again"})
    opened.close()
    assert set(documents_of(tmp_path / "db")[("app", "videos")]) == {"kept", "after"}


# Damage


async def test_a_changed_byte_in_a_document_refuses_the_start_and_names_it(tmp_path: Path, opened: OpenStore) -> None:
    await fill(opened.videos, 5)
    opened.close()
    database = sqlite3.connect(tmp_path / "db" / DATABASE_NAME)
    table = database.execute("SELECT table_name FROM collections WHERE collection = 'videos'").fetchone()[0]
    body = bytearray(database.execute(f"SELECT body FROM {table} WHERE rowid = 3").fetchone()[0])
    body[len(body) // 2] ^= 0x01
    database.execute(f"UPDATE {table} SET body = ? WHERE rowid = 3", (bytes(body),))
    database.commit()
    database.close()

    with pytest.raises(StoreDamaged) as refused:
        documents_of(tmp_path / "db")
    message = str(refused.value)
    assert "collection app.videos: 1 damaged document(s): 2" in message
    assert str(tmp_path / "db" / DATABASE_NAME) in message
    assert "video-analyzer check" in message and "video-analyzer import" in message


async def test_changed_bytes_in_the_database_file_never_open_with_less(tmp_path: Path, opened: OpenStore) -> None:
    await fill(opened.videos, 60)
    opened.close()
    pristine = documents_of(tmp_path / "db")
    database_file = tmp_path / "db" / DATABASE_NAME
    size = database_file.stat().st_size
    outcomes = []
    for position in range(1, 16):
        trial = tmp_path / f"trial-{position}"
        shutil.copytree(tmp_path / "db", trial, ignore=shutil.ignore_patterns("LOCK"))
        flip_byte(trial / DATABASE_NAME, size * position // 16)
        try:
            assert documents_of(trial) == pristine
            outcomes.append("intact")
        except StoreDamaged as refused:
            assert str(trial / DATABASE_NAME) in str(refused)
            outcomes.append("refused")
    assert "refused" in outcomes, outcomes


async def test_changed_bytes_in_the_wal_never_open_with_less(tmp_path: Path, opened: OpenStore) -> None:
    await fill(opened.videos, 30)
    image = opened.crash_image(tmp_path / "crashed")
    opened.close()
    wal = image / f"{DATABASE_NAME}-wal"
    assert wal.stat().st_size > 100_000
    pristine = documents_of(shutil.copytree(image, tmp_path / "pristine"))
    assert len(pristine[("app", "videos")]) == 30
    size = wal.stat().st_size
    outcomes = []
    for offset in [10, 40, *(size * position // 12 for position in range(1, 12))]:
        trial = shutil.copytree(image, tmp_path / f"trial-{offset}")
        flip_byte(trial / wal.name, offset)
        try:
            assert documents_of(trial) == pristine
            outcomes.append("intact")
        except StoreDamaged as refused:
            assert str(trial / wal.name) in str(refused)
            outcomes.append("refused")
    assert outcomes.count("refused") >= 10, outcomes


async def test_a_transaction_cut_short_by_a_crash_is_not_damage(tmp_path: Path, opened: OpenStore) -> None:
    await fill(opened.videos, 10)
    image = opened.crash_image(tmp_path / "crashed")
    opened.close()
    wal = image / f"{DATABASE_NAME}-wal"
    with wal.open("r+b") as file:
        file.truncate(wal.stat().st_size - 1000)
    loaded = documents_of(image)
    assert len(loaded[("app", "videos")]) == 10


# The store in the format before SQLite


async def test_a_store_in_the_old_format_converts_with_every_document(tmp_path: Path) -> None:
    directory = shutil.copytree(OLD_FORMAT_STORE, tmp_path / "db")
    store = OpenStore(directory)
    try:
        videos = store.client["video_analyzer"]["videos"]
        by_name = {video["filename"]: video async for video in videos.find({})}
        assert sorted(by_name) == ["old.mp4", "später ☃.mkv", "standup.mp4"]
        standup = by_name["standup.mp4"]
        assert [entry["id"] for entry in standup["chat"]] == [f"c{i:03d}" for i in range(25)]
        assert len(standup["transcript"]["segments"]) == 12
        assert by_name["später ☃.mkv"]["job"]["attempts"] == 1
        assert by_name["old.mp4"]["legacy"]["id"] == 7
        assert await store.client["video_analyzer"]["users"].find_one({"username": "ada"}) is not None
        assert await store.client["video_analyzer"]["api_keys"].count_documents({}) == 1
        assert await store.client["video_analyzer"]["login_throttle"].count_documents({}) == 1
        assert store.count == 6
    finally:
        store.close()
    assert sorted(path.name for path in directory.iterdir() if "bson" in path.name) == [
        "journal.bson.converted",
        "snapshot.bson.converted",
    ]
    assert sum(len(documents) for documents in documents_of(directory).values()) == 6


async def test_an_old_journal_with_a_changed_byte_is_refused_not_cut(tmp_path: Path) -> None:
    directory = shutil.copytree(OLD_FORMAT_STORE, tmp_path / "db")
    flip_byte(directory / "journal.bson", 20)
    with pytest.raises(StoreDamaged, match="journal.bson: the record at byte 0 fails its checksum"):
        EmbeddedStore(directory).open()
    assert not (directory / DATABASE_NAME).exists()
    assert (directory / "journal.bson").exists()


async def test_an_old_journal_cut_short_by_a_crash_converts_what_was_acknowledged(tmp_path: Path) -> None:
    directory = shutil.copytree(OLD_FORMAT_STORE, tmp_path / "db")
    with open(directory / "journal.bson", "ab") as journal:
        journal.write(b"\x40\x00\x00\x00\x12\x34half a record")
    store = OpenStore(directory)
    store.close()
    assert store.count == 6


async def test_checkpoints_keep_the_wal_bounded_and_a_clean_close_leaves_one_file(
    tmp_path: Path, opened: OpenStore
) -> None:
    largest_wal = 0
    for index in range(96):
        await opened.videos.insert_one({"_id": index, "blob": bytes([index]) * 1024 * 1024})
        largest_wal = max(largest_wal, (tmp_path / "db" / f"{DATABASE_NAME}-wal").stat().st_size)
    assert largest_wal < WAL_LIMIT_BYTES + 2 * 1024 * 1024
    opened.close()
    assert sorted(path.name for path in (tmp_path / "db").iterdir()) == ["LOCK", DATABASE_NAME]
    assert len(documents_of(tmp_path / "db")[("app", "videos")]) == 96


def old_journal_records(directory: Path) -> list[int]:
    """The byte offsets of the old journal's records."""
    data, offsets, offset = (directory / "journal.bson").read_bytes(), [], 0
    while offset < len(data):
        offsets.append(offset)
        offset += 8 + int.from_bytes(data[offset : offset + 4], "little")
    return offsets


@pytest.mark.parametrize("length_byte", [1, 3])
async def test_an_old_journal_record_with_a_changed_length_is_refused(tmp_path: Path, length_byte: int) -> None:
    directory = shutil.copytree(OLD_FORMAT_STORE, tmp_path / "db")
    assert len(old_journal_records(directory)) == 2
    flip_byte(directory / "journal.bson", length_byte)
    with pytest.raises(StoreDamaged, match="the record at byte 0 has a damaged length|fails its checksum") as refused:
        EmbeddedStore(directory).open()
    assert "Restore DATA_DIR/db from a backup" in str(refused.value)
    assert not (directory / DATABASE_NAME).exists() and (directory / "journal.bson").exists()


async def test_zeros_after_the_old_journal_are_a_crash_not_damage(tmp_path: Path) -> None:
    directory = shutil.copytree(OLD_FORMAT_STORE, tmp_path / "db")
    with open(directory / "journal.bson", "ab") as journal:
        journal.write(b"\0" * 20)
    store = OpenStore(directory)
    store.close()
    assert store.count == 6


async def test_a_zero_length_record_inside_the_old_journal_is_damage(tmp_path: Path) -> None:
    directory = shutil.copytree(OLD_FORMAT_STORE, tmp_path / "db")
    with open(directory / "journal.bson", "ab") as journal:
        journal.write(b"\0" * 8 + (directory / "journal.bson").read_bytes()[:100])
    with pytest.raises(StoreDamaged, match="is not a BSON document|fails its checksum"):
        EmbeddedStore(directory).open()


async def test_old_files_written_after_a_conversion_refuse_the_start_and_stay(tmp_path: Path) -> None:
    directory = shutil.copytree(OLD_FORMAT_STORE, tmp_path / "db")
    OpenStore(directory).close()
    late_journal = (OLD_FORMAT_STORE / "journal.bson").read_bytes()
    (directory / "journal.bson").write_bytes(late_journal)
    with pytest.raises(StoreDamaged, match="sit beside a store converted earlier"):
        EmbeddedStore(directory).open()
    assert (directory / "journal.bson").read_bytes() == late_journal
    assert (directory / "journal.bson.converted").read_bytes() == late_journal


async def test_a_damaged_index_definition_refuses_the_start(tmp_path: Path, opened: OpenStore) -> None:
    await opened.videos.create_index([("n", 1)], name="by_n", unique=True)
    opened.close()
    database = sqlite3.connect(tmp_path / "db" / DATABASE_NAME)
    definition = bytearray(database.execute("SELECT definition FROM indexes WHERE name = 'by_n'").fetchone()[0])
    definition[-3] ^= 0x01
    database.execute("UPDATE indexes SET definition = ? WHERE name = 'by_n'", (bytes(definition),))
    database.commit()
    database.close()
    with pytest.raises(StoreDamaged, match="collection app.videos: the definition of index 'by_n' is damaged"):
        documents_of(tmp_path / "db")


async def test_a_long_reader_never_makes_a_write_wait(tmp_path: Path, opened: OpenStore) -> None:
    """An export or check holds one read transaction; past the WAL limit, the writer's own
    checkpoint must give up at once rather than wait for that reader on the store's only thread."""
    slowest = 0.0
    with read_snapshot(tmp_path / "db", check_wal=False) as snapshot:
        assert snapshot.collections() == []
        for index in range(48):
            began = time.perf_counter()
            await opened.videos.insert_one({"_id": index, "blob": bytes([index]) * 1024 * 1024})
            slowest = max(slowest, time.perf_counter() - began)
    assert (tmp_path / "db" / f"{DATABASE_NAME}-wal").stat().st_size > WAL_LIMIT_BYTES
    assert slowest < 1.0, slowest
    opened.close()
    assert len(documents_of(tmp_path / "db")[("app", "videos")]) == 48
