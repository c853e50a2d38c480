"""Files in GridFS (STORAGE=gridfs), through real servers and commands: memory flat in a file's
size, a worker that shares no folder with the API, media and thumbnails, moves between storages
cut short and finished, backups, migration. On the embedded store by default; the tests that do
not read its SQLite file run on a MongoDB server too, with --mongodb-url (tests/store.py)."""

import asyncio
import hashlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

import bson
import httpx
import pytest
import yaml

from service.config import Settings
from service.db.durable import DATABASE_NAME, StoreDamaged
from service.db.service import connect
from service.migration.service import MigrationOptions, run_migration
from service.storage.moves import move_files
from service.storage.schemas import StoredFile
from service.storage.service import open_storage
from service.videos.models import Video
from tests.conftest import SPEECH_VIDEO, finished, serving, sha256_of, upload
from tests.legacy_sqlite import CHAT, VIDEOS, build_legacy_db
from tests.media import write_raw_video
from tests.server import running_server
from tests.store import StoreDatabase

ROOT = Path(__file__).parent.parent
GRIDFS = {"STORAGE": "gridfs"}
DATABASE = "video_analyzer"


def cli(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`video-analyzer ARGS` as a process of its own, on the embedded store under `data_dir`."""
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=ROOT,
        env=_env(data_dir, env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _env(data_dir: Path, env: dict[str, str] | None) -> dict[str, str]:
    base = {name: value for name, value in os.environ.items() if name not in ("MONGODB_URL", "STORAGE", "UPLOAD_DIR")}
    return {**base, "DATA_DIR": str(data_dir), "WORKERS": "0", **(env or {})}


def files_under(folder: Path) -> list[Path]:
    """Every file under a storage folder, its hidden folders (uploads arriving, thumbnails) included."""
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def chunks_by_file(data_dir: Path, bucket: str = "fs") -> dict[str, int]:
    """How many chunks the store's file holds for each GridFS file id, read straight from SQLite."""
    with sqlite3.connect(f"{(data_dir / 'db' / DATABASE_NAME).resolve().as_uri()}?mode=ro", uri=True) as connection:
        row = connection.execute(
            "SELECT table_name FROM collections WHERE database = ? AND collection = ?", (DATABASE, f"{bucket}.chunks")
        ).fetchone()
        if row is None:
            return {}
        counts = connection.execute(f'SELECT files_id, count(*) FROM "{row[0]}" GROUP BY files_id').fetchall()
    return {bson.decode(files_id)["_id"]: count for files_id, count in counts}


def gridfs_settings(tmp_path: Path, store: StoreDatabase, **changes: object) -> Settings:
    return Settings(
        _env_file=None, data_dir=tmp_path / "data", workers=0, storage="gridfs", **store.settings, **changes
    )


@pytest.fixture
async def gridfs_client(tmp_path: Path, store: StoreDatabase) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(gridfs_settings(tmp_path, store, max_upload_mb=8)) as http:
        yield http


async def bucket_ids(name: str) -> list[str]:
    """The file ids of a GridFS bucket of the store Beanie is initialised on."""
    files = Video.get_motor_collection().database[f"{name}.files"]
    return [document["_id"] for document in await files.find({}, {"_id": 1}).to_list(None)]


# Memory


@pytest.fixture(scope="module")
def fifty_mb_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 50 MB of real video (lossless noise)."""
    return write_raw_video(tmp_path_factory.mktemp("big") / "fifty.mkv", frames=220)


@pytest.mark.embedded_only
def test_a_50_mb_file_goes_into_gridfs_and_back_in_flat_memory(tmp_path: Path, fifty_mb_video: Path) -> None:
    """Buffered whole, the file would add 50 MB to the server's peak at least; in chunks it adds what
    a few batches of chunks take (a local upload adds about 6 MB, this one 15-25)."""
    data = tmp_path / "data"
    size = fifty_mb_video.stat().st_size
    with running_server(data, env={**GRIDFS, "MAX_UPLOAD_MB": "100"}) as server:
        idle = server.memory_mb()["VmRSS"]
        server.reset_peak_memory()
        with fifty_mb_video.open("rb") as file:
            response = httpx.post(f"{server.base_url}/videos", files={"file": ("fifty.mkv", file)}, timeout=120)
        assert response.status_code == 202, response.text
        upload_growth = server.memory_mb()["VmHWM"] - idle
        video = response.json()

        server.reset_peak_memory()
        before_download = server.memory_mb()["VmRSS"]
        sha256 = hashlib.sha256()
        with httpx.stream("GET", f"{server.base_url}/videos/{video['id']}/media", timeout=120) as media:
            assert media.status_code == 200
            for piece in media.iter_bytes():
                sha256.update(piece)
        download_growth = server.memory_mb()["VmHWM"] - before_download
    print(f"\n50 MB through GridFS: peak RSS +{upload_growth:.1f} MB uploading, +{download_growth:.1f} MB downloading")
    assert video["file"]["size"] == size
    assert sha256.hexdigest() == video["file"]["sha256"] == sha256_of(fifty_mb_video)
    assert [facts["storage"] for facts in _documents(data).values()] == ["gridfs"]
    assert files_under(data / "uploads") == []
    assert sum(chunks_by_file(data).values()) == -(-size // (255 * 1024))
    assert upload_growth < 30, f"upload: peak RSS grew {upload_growth:.1f} MB"
    assert download_growth < 30, f"download: peak RSS grew {download_growth:.1f} MB"

    with running_server(data, env=GRIDFS) as restarted:
        reopened = restarted.memory_mb()["VmRSS"]
    assert reopened < idle + 25, f"{reopened:.0f} MB after opening a store with the file, {idle:.0f} MB before"


# Workers


def test_a_worker_with_an_empty_folder_processes_a_video_uploaded_to_gridfs(
    tmp_path: Path, store: StoreDatabase
) -> None:
    """The API node's and the worker node's folders are different and stay empty: the file goes
    from the API into GridFS, and the worker reads it from there. (The embedded store belongs to
    one process, so the two nodes run one after the other; on MongoDB they run side by side.)"""
    data, api_folder, worker_folder = tmp_path / "data", tmp_path / "api-files", tmp_path / "worker-files"
    with running_server(data, env={**GRIDFS, **store.environment, "UPLOAD_DIR": str(api_folder)}) as api:
        with SPEECH_VIDEO.open("rb") as file:
            response = httpx.post(f"{api.base_url}/videos", files={"file": ("speech.mp4", file)}, timeout=30)
        assert response.status_code == 202, response.text
        video_id = response.json()["id"]
        assert httpx.get(f"{api.base_url}/videos/{video_id}", timeout=10).json()["status"] == "queued"
    assert files_under(api_folder) == []

    worker_env = {**GRIDFS, **store.environment, "UPLOAD_DIR": str(worker_folder), "WORKERS": "1"}
    with running_server(data, env=worker_env) as worker:
        deadline = time.monotonic() + 180
        while (video := httpx.get(f"{worker.base_url}/videos/{video_id}", timeout=10).json())["status"] not in (
            "completed",
            "failed",
        ):
            assert time.monotonic() < deadline, video
            time.sleep(0.2)
    assert video["status"] == "completed", video["job"]
    assert "clara" in video["transcript"]["text"].lower()
    assert files_under(worker_folder) == []


async def test_a_gridfs_file_whose_chunks_are_gone_is_retried_like_a_missing_file(worker_settings: Settings) -> None:
    """A worker reading a file while `move-files` deletes it from GridFS (its document now names
    the other storage) finds its chunks gone: the video is retried, as when a local file is
    missing, not failed at once as undecodable media. Here its chunks are gone for good, so it
    fails once its attempts are spent, saying which chunk."""
    settings = worker_settings.model_copy(update={"storage": "gridfs", "workers": 0})
    async with serving(settings) as http:
        video_id = (await upload(http, SPEECH_VIDEO)).json()["id"]
    database = await connect(settings)
    try:
        key = (await Video.get(bson.ObjectId(video_id))).file.key
        files = database.handle["fs.files"]
        document = await files.find_one({"_id": key})
        await open_storage(settings, database).gridfs.delete(key)
        await files.insert_one(document)
    finally:
        database.close()
    async with serving(settings.model_copy(update={"workers": 1})) as http:
        video = await finished(http, video_id)
    assert video["status"] == "failed"
    assert video["job"]["attempts"] == settings.job_max_attempts
    assert "chunk" in video["job"]["error"] and "decoded" not in video["job"]["error"], video["job"]


# Media


async def test_media_ranges_and_the_thumbnail_come_from_gridfs(
    gridfs_client: httpx.AsyncClient, large_video: Path, tmp_path: Path
) -> None:
    content = large_video.read_bytes()
    size = len(content)
    video = (await upload(gridfs_client, large_video)).json()
    stored = (await Video.get(bson.ObjectId(video["id"]))).file
    key, url = stored.key, f"/videos/{video['id']}"
    assert stored.storage == "gridfs"
    assert await bucket_ids("fs") == [key]

    whole = await gridfs_client.get(f"{url}/media")
    assert whole.status_code == 200 and whole.content == content
    assert whole.headers["etag"] == f'"{video["file"]["sha256"]}"'
    for header, start, end in (
        ("bytes=0-0", 0, 1),
        ("bytes=1000-300000", 1000, 300001),  # across chunks of 255 KiB
        (f"bytes={size - 10}-", size - 10, size),
        ("bytes=-70000", size - 70000, size),
        (f"bytes=261119-{261120 * 2}", 261119, 261120 * 2 + 1),  # a chunk's last byte to the next's first
    ):
        part = await gridfs_client.get(f"{url}/media", headers={"Range": header})
        assert part.status_code == 206, header
        assert part.content == content[start:end], header
        assert part.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"
    past = await gridfs_client.get(f"{url}/media", headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
    head = await gridfs_client.head(f"{url}/media", headers={"Range": "bytes=5-9"})
    assert head.status_code == 206 and head.headers["content-length"] == "5" and head.content == b""

    thumbnail = await gridfs_client.get(f"{url}/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.content.startswith(b"\xff\xd8")
    assert await bucket_ids("thumbnails") == [key]
    again = await gridfs_client.get(f"{url}/thumbnail")
    assert again.content == thumbnail.content
    assert (await gridfs_client.get("/ready")).status_code == 200
    assert files_under(tmp_path / "data" / "uploads") == []

    assert (await gridfs_client.delete(url)).status_code == 204
    assert await bucket_ids("fs") == [] and await bucket_ids("thumbnails") == []


async def test_a_gridfs_file_gone_from_under_its_video_is_404(
    gridfs_client: httpx.AsyncClient, large_video: Path
) -> None:
    video = (await upload(gridfs_client, large_video)).json()
    database = Video.get_motor_collection().database
    await database["fs.files"].delete_one({"_id": (await Video.get(bson.ObjectId(video["id"]))).file.key})
    for route in ("media", "thumbnail"):
        response = await gridfs_client.get(f"/videos/{video['id']}/{route}")
        assert response.status_code == 404, route
        assert "not in storage" in response.json()["detail"]


# The store's own sweeps and checks


@pytest.mark.embedded_only
async def test_chunks_an_upload_cut_short_left_go_when_the_store_next_opens(
    tmp_path: Path, store: StoreDatabase
) -> None:
    settings = gridfs_settings(tmp_path, store)
    database = await connect(settings)
    store = database.client.store
    storage = open_storage(settings, database)
    await storage.gridfs.put("whole", b"kept")
    cut = [{"_id": bson.ObjectId(), "files_id": "cut", "n": n, "data": b"x" * 10} for n in range(3)]
    await store.run(store.add_chunks, DATABASE, "fs.chunks", cut)  # as an upload's first batch, then a crash
    database.close()
    assert chunks_by_file(settings.data_dir) == {"whole": 1, "cut": 3}

    database = await connect(settings)
    try:
        assert chunks_by_file(settings.data_dir) == {"whole": 1}
        assert await open_storage(settings, database).gridfs.stored("whole") is not None
    finally:
        database.close()


@pytest.mark.embedded_only
async def test_check_reports_chunks_an_upload_cut_short_left_and_damage_in_any_bucket(
    tmp_path: Path, store: StoreDatabase
) -> None:
    """What a SIGKILL during an upload into GridFS leaves (chunks, no files document) is named by
    `check`, run before anything opens the store again; and a damaged chunk of a thumbnail,
    which no document refers to, is damage that would refuse the store's next start."""
    settings = gridfs_settings(tmp_path, store)
    database = await connect(settings)
    embedded = database.client.store
    storage = open_storage(settings, database)
    await storage.gridfs.put("whole", b"kept")
    await storage.gridfs.keep_thumbnail("whole", b"a poster frame")
    cut = [{"_id": bson.ObjectId(), "files_id": "cut", "n": n, "data": b"x" * 10} for n in range(3)]
    await embedded.run(embedded.add_chunks, DATABASE, "fs.chunks", cut)
    database.close()

    checked = cli(settings.data_dir, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (warning,) = [line for line in checked.stdout.splitlines() if line.startswith("WARNING: GridFS bucket fs")]
    assert "chunks of 1 file" in warning and ": cut" in warning, checked.stdout

    with sqlite3.connect(settings.data_dir / "db" / DATABASE_NAME) as connection:
        (table,) = connection.execute(
            "SELECT table_name FROM collections WHERE collection = 'thumbnails.chunks'"
        ).fetchone()
        rowid, body = connection.execute(f'SELECT rowid, body FROM "{table}"').fetchone()
        damaged = bytearray(body)
        damaged[-3] ^= 0xFF
        connection.execute(f'UPDATE "{table}" SET body = ? WHERE rowid = ?', (bytes(damaged), rowid))
    checked = cli(settings.data_dir, "check")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "thumbnails.chunks: 1 damaged document" in checked.stdout, checked.stdout


@pytest.mark.embedded_only
async def test_a_damaged_chunk_is_reported_and_the_store_refuses_to_open(
    tmp_path: Path, store: StoreDatabase, large_video: Path
) -> None:
    settings = gridfs_settings(tmp_path, store)
    async with serving(settings) as http:
        assert (await upload(http, large_video)).status_code == 202
    (key,) = {facts["key"] for facts in (await stored_facts(settings.data_dir)).values()}
    with sqlite3.connect(settings.data_dir / "db" / DATABASE_NAME) as connection:
        (table,) = connection.execute("SELECT table_name FROM collections WHERE collection = 'fs.chunks'").fetchone()
        rowid, body = connection.execute(f'SELECT rowid, body FROM "{table}" ORDER BY n LIMIT 1 OFFSET 2').fetchone()
        damaged = bytearray(body)
        damaged[len(damaged) // 2] ^= 0xFF
        connection.execute(f'UPDATE "{table}" SET body = ? WHERE rowid = ?', (bytes(damaged), rowid))

    checked = cli(settings.data_dir, "check")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert f"file {key}" in checked.stdout and "damaged" in checked.stdout
    with pytest.raises(StoreDamaged, match="fs.chunks: 1 damaged document"):
        await connect(settings)


# Moving files between storages


@pytest.fixture(scope="module")
def movable_videos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Six real videos of about 9 MB each: a move takes long enough to be stopped part way."""
    folder = tmp_path_factory.mktemp("movable")
    return [write_raw_video(folder / f"v{index}.mkv", frames=40 + index) for index in range(6)]


def _kill_part_way(data: Path, target: str, moved: Callable[[], bool]) -> None:
    """Start `move-files --to TARGET`, and SIGKILL it once `moved()` says it is part way."""
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "move-files", "--to", target],
        cwd=ROOT,
        env=_env(data, None),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not moved():
            assert process.poll() is None, "the move ended before it could be stopped"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)


async def stored_facts(data: Path) -> dict[str, dict]:
    """Each video's `file` as stored, by video id, read from the (stopped) embedded store."""
    database = await connect(Settings(_env_file=None, data_dir=data))
    try:
        return {str(d["_id"]): d["file"] for d in await Video.get_motor_collection().find({}).to_list(None)}
    finally:
        database.close()


def _documents(data: Path) -> dict[str, dict]:
    return asyncio.run(stored_facts(data))


def _moved(output: str) -> int:
    match = re.search(r"^moved (\d+) file", output, re.MULTILINE)
    assert match, output
    return int(match.group(1))


def _assert_sound(data: Path) -> None:
    checked = cli(data, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.embedded_only
def test_move_files_to_gridfs_and_back_each_stopped_part_way_then_finished(
    tmp_path: Path, movable_videos: list[Path]
) -> None:
    data, uploads = tmp_path / "data", tmp_path / "data" / "uploads"
    with running_server(data, env={"MAX_UPLOAD_MB": "64"}) as server:
        for path in movable_videos:
            with path.open("rb") as file:
                response = httpx.post(f"{server.base_url}/videos", files={"file": (path.name, file)}, timeout=60)
            assert response.status_code == 202, response.text
    before = _documents(data)
    count = len(before)
    assert {facts["storage"] for facts in before.values()} == {"local"}

    _kill_part_way(data, "gridfs", lambda: 0 < len(files_under(uploads)) < count)
    _assert_sound(data)  # every document names a file that is there, whole
    finished = cli(data, "move-files", "--to", "gridfs")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert 0 < _moved(finished.stdout) < count, finished.stdout  # the stopped run had moved the rest
    in_gridfs = _documents(data)
    assert {facts["storage"] for facts in in_gridfs.values()} == {"gridfs"}
    assert {video_id: (f["key"], f["sha256"]) for video_id, f in in_gridfs.items()} == {
        video_id: (f["key"], f["sha256"]) for video_id, f in before.items()
    }
    assert files_under(uploads) == []
    assert set(chunks_by_file(data)) == {facts["key"] for facts in before.values()}  # no file twice, none left half
    _assert_sound(data)
    assert "WARNING" not in cli(data, "check").stdout

    _kill_part_way(data, "local", lambda: 0 < len(chunks_by_file(data)) < count)
    _assert_sound(data)
    back = cli(data, "move-files", "--to", "local")
    assert back.returncode == 0, back.stdout + back.stderr
    assert 0 < _moved(back.stdout) < count, back.stdout
    local = _documents(data)
    assert {facts["storage"] for facts in local.values()} == {"local"}
    assert {path.name: sha256_of(path) for path in files_under(uploads)} == {
        facts["key"]: facts["sha256"] for facts in before.values()
    }
    assert chunks_by_file(data) == {}
    checked = cli(data, "check")
    assert checked.returncode == 0 and "WARNING" not in checked.stdout, checked.stdout

    again = cli(data, "move-files", "--to", "local")
    assert (
        again.returncode == 0 and f"moved 0 file(s) (0 bytes) to local storage; {count} already there" in again.stdout
    )


async def test_a_move_finishes_what_a_stopped_one_left_and_leaves_a_file_unlike_its_document(
    settings: Settings, large_video: Path
) -> None:
    """Three states a stopped run can leave, made with the mover's own steps: a copy not yet
    switched to, a switch whose source was not yet deleted, and (damage) a file whose bytes are
    not what its document records, which must stay where it is."""
    async with serving(settings) as http:
        ids = [(await upload(http, large_video, f"{n}.mkv")).json()["id"] for n in range(3)]
    database = await connect(settings)
    try:
        copied, switched, damaged = [(await Video.get(bson.ObjectId(video_id))).file for video_id in ids]
        storage = open_storage(settings, database)
        for file in (copied, switched):
            with storage.local.path(file.key).open("rb") as source:
                await storage.gridfs.receive(source, file.key)
        await Video.get_motor_collection().update_one(
            {"_id": bson.ObjectId(ids[1])}, {"$set": {"file.storage": "gridfs"}}
        )
        storage.local.path(damaged.key).write_bytes(b"not what was uploaded")

        summary = await move_files(storage, "gridfs")
        assert (summary.moved, summary.already_there, summary.sources_removed) == (1, 1, 1), summary.render()
        assert len(summary.problems) == 1 and damaged.key in summary.problems[0]
        assert "left in local storage" in summary.problems[0]
        assert storage.local.keys() == [damaged.key]
        assert sorted(await storage.gridfs.list_keys()) == sorted([copied.key, switched.key])
        for file in (copied, switched):
            assert await storage.gridfs.stored(file.key) == StoredFile(size=file.size, sha256=file.sha256)
        assert (await Video.get(bson.ObjectId(ids[2]))).file.storage == "local"
    finally:
        database.close()


async def test_a_copy_that_cannot_be_read_back_is_a_problem_and_the_file_stays(
    settings: Settings, large_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy's chunks gone before it is read back, as when its video is deleted during the copy
    on MongoDB: reported, the copy deleted, the file left where it was, the run finished."""
    async with serving(settings) as http:
        video_id = (await upload(http, large_video)).json()["id"]
    database = await connect(settings)
    try:
        file = (await Video.get(bson.ObjectId(video_id))).file
        storage = open_storage(settings, database)
        receive = storage.gridfs.receive

        async def receive_then_lose_a_chunk(source: BinaryIO, key: str) -> StoredFile:
            received = await receive(source, key)
            files = database.handle["fs.files"]
            document = await files.find_one({"_id": key})
            await storage.gridfs.delete(key)
            await files.insert_one(document)  # its chunks gone, as deleted during the copy
            return received

        monkeypatch.setattr(storage.gridfs, "receive", receive_then_lose_a_chunk)
        summary = await move_files(storage, "gridfs")
        assert summary.moved == 0 and len(summary.problems) == 1, summary.render()
        assert file.key in summary.problems[0] and "could not be read back" in summary.problems[0]
        assert await storage.gridfs.list_keys() == [] and storage.local.keys() == [file.key]
        assert (await Video.get(bson.ObjectId(video_id))).file.storage == "local"
    finally:
        database.close()


# Backups and migration


@pytest.mark.embedded_only
def test_export_while_serving_from_gridfs_then_import_into_either_storage(tmp_path: Path) -> None:
    data, archive = tmp_path / "data", tmp_path / "backup.tar"
    with running_server(data, env=GRIDFS) as server:
        ids = []
        for name in ("one.mp4", "two.mp4"):
            with SPEECH_VIDEO.open("rb") as file:
                response = httpx.post(f"{server.base_url}/videos", files={"file": (name, file)}, timeout=30)
            ids.append(response.json()["id"])
        exported = cli(data, "export", str(archive))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    keys = {facts["key"] for facts in _documents(data).values()}
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert {name.removeprefix("files/") for name in names if name.startswith("files/")} == keys
        assert not [name for name in names if ".files" in name or ".chunks" in name]
        assert {hashlib.sha256(tar.extractfile(f"files/{key}").read()).hexdigest() for key in keys} == {
            sha256_of(SPEECH_VIDEO)
        }

    into_gridfs = tmp_path / "into-gridfs"
    first = cli(into_gridfs, "import", str(archive), env=GRIDFS)
    assert first.returncode == 0 and "files: 2 copied" in first.stdout, first.stdout + first.stderr
    assert {facts["storage"] for facts in _documents(into_gridfs).values()} == {"gridfs"}
    assert set(chunks_by_file(into_gridfs)) == keys and files_under(into_gridfs / "uploads") == []
    second = cli(into_gridfs, "import", str(archive), env=GRIDFS)
    assert "files: 0 copied, 2 already there" in second.stdout, second.stdout + second.stderr
    assert "videos" in second.stdout and second.stdout.split("videos", 1)[1].split()[:4] == ["0", "0", "2", "0"]
    _assert_sound(into_gridfs)
    with running_server(into_gridfs, env=GRIDFS) as restored:
        media = httpx.get(f"{restored.base_url}/videos/{ids[0]}/media", timeout=30)
    assert media.status_code == 200 and hashlib.sha256(media.content).hexdigest() == sha256_of(SPEECH_VIDEO)

    into_local = tmp_path / "into-local"
    local = cli(into_local, "import", str(archive))
    assert local.returncode == 0, local.stdout + local.stderr
    assert {facts["storage"] for facts in _documents(into_local).values()} == {"local"}
    assert {path.name for path in files_under(into_local / "uploads")} == keys
    assert chunks_by_file(into_local) == {}
    _assert_sound(into_local)


async def test_migrate_sqlite_copies_files_and_moved_texts_into_gridfs(tmp_path: Path, store: StoreDatabase) -> None:
    legacy_dir = tmp_path / "legacy"
    (legacy_dir / "uploads").mkdir(parents=True)
    shutil.copy(SPEECH_VIDEO, legacy_dir / "uploads" / "pending.mp4")
    long_text = "spoken words " * (17 * 1024 * 1024 // 13)
    long = {
        "id": 20,
        "filename": "long.mp4",
        "file_path": "z",
        "transcription": long_text,
        "summary": "long",
        "processing_status": "completed",
        "uploaded_at": "2023-12-31 23:00:00",
    }
    source = build_legacy_db(legacy_dir / "videos.db", "deployed", [*VIDEOS, long], CHAT)
    settings = gridfs_settings(tmp_path, store)
    assert (await run_migration(settings, MigrationOptions(source=source, copy_files=True))).ok
    assert files_under(settings.files_dir) == []
    async with serving(settings) as http:
        pending = await Video.find_one({"legacy.id": 2})
        assert pending.file.storage == "gridfs"
        media = await http.get(f"/videos/{pending.id}/media")
        assert media.status_code == 200 and media.content == SPEECH_VIDEO.read_bytes()
        moved = (await Video.find_one({"legacy.id": 20})).legacy["transcription_file"]
        assert moved["storage"] == "gridfs" and moved["key"] in await bucket_ids("fs")
        assert (await http.get("/video/20")).json()["transcription"] == long_text


# The production layout


def test_compose_runs_a_replica_set_and_nodes_that_share_nothing_but_mongodb() -> None:
    """docker-compose.yml as Compose reads it (no Docker runs here): MongoDB a one-node replica set
    its healthcheck initiates, MONGODB_URL naming that set, files in GridFS, and an API and
    workers with no volume between them, the workers free to scale (no fixed name, no host port)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    mongodb = services["mongodb"]
    assert mongodb["command"][:2] == ["--replSet", "rs0"]
    initiate = mongodb["healthcheck"]["test"][-1]
    assert "rs.initiate({_id: 'rs0', members: [{_id: 0, host: 'mongodb:27017'}]})" in initiate
    assert "isWritablePrimary" in initiate
    for name in ("api", "worker"):
        node = services[name]
        assert node["environment"]["MONGODB_URL"] == "mongodb://mongodb:27017/?replicaSet=rs0", name
        assert node["environment"]["STORAGE"] == "gridfs", name
        assert "volumes" not in node, name
        assert node["depends_on"]["mongodb"]["condition"] == "service_healthy", name
    assert services["api"]["environment"]["WORKERS"] == "0"
    assert services["worker"]["command"][:2] == ["video-analyzer", "worker"]
    assert not {"ports", "container_name"} & set(services["worker"])
