"""`video-analyzer export`, `import` and `check`, run as the commands they are, on real stores and files."""

import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import bson
import httpx
import pytest
from bson import json_util

from service.backup import export
from service.config import Settings
from service.db.durable import DATABASE_NAME, read_snapshot
from service.db.service import connect
from service.db.snapshot import has_snapshot_reads
from service.videos.models import Video
from tests.conftest import SPEECH_VIDEO, serving, sha256_of, upload
from tests.server import ServerProcess, running_server

ROOT = Path(__file__).parent.parent
CANONICAL = json_util.CANONICAL_JSON_OPTIONS


def cli(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`video-analyzer ARGS` as a process of its own, on the embedded store under `data_dir`."""
    env = {name: value for name, value in os.environ.items() if name != "MONGODB_URL"}
    env.update(DATA_DIR=str(data_dir), WORKERS="0")
    command = [sys.executable, "-m", "service.cli", *args]
    return subprocess.run(command, cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=120)


def canonical(document: dict) -> str:
    return json_util.dumps(document, json_options=CANONICAL)


def stored_documents(data_dir: Path) -> dict[str, dict[str, str]]:
    """Every document of a stopped store, as canonical JSON, by collection and `_id`."""
    with read_snapshot(data_dir / "db", check_wal=True) as snapshot:
        assert not snapshot.damage, snapshot.damage.report()
        return {
            collection: {str(doc["_id"]): canonical(doc) for doc in snapshot.documents(database, collection)}
            for database, collection in snapshot.collections()
        }


def stored_files(data_dir: Path) -> dict[str, str]:
    return {path.name: sha256_of(path) for path in (data_dir / "uploads").iterdir() if path.is_file()}


def archived_documents(path: Path) -> dict[str, dict[str, str]]:
    """Every document of an archive as canonical JSON; each line must round-trip through json_util."""
    found: dict[str, dict[str, str]] = {}
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        for entry in manifest["collections"]:
            lines = tar.extractfile(entry["member"]).read().decode().splitlines()
            assert len(lines) == entry["count"]
            documents = found.setdefault(entry["name"], {})
            for line in lines:
                document = json_util.loads(line)
                assert canonical(document) == line
                documents[str(document["_id"])] = line
    return found


def upload_over_http(server: ServerProcess, filename: str) -> str:
    with SPEECH_VIDEO.open("rb") as file:
        response = httpx.post(f"{server.base_url}/videos", files={"file": (filename, file)}, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()["id"]


class PatchingThread(threading.Thread):
    """Renames a video over HTTP again and again, until stopped: writes while a command runs."""

    def __init__(self, base_url: str, video_id: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{base_url}/videos/{video_id}"
        self.done = 0
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self.halt.is_set():
                response = http.patch(self.url, json={"filename": f"renamed-{self.done + 1}.mp4"})
                if response.status_code != 200:
                    self.failures.append(response.text)
                self.done += 1

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 30
        while self.done < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=30)


# Export and import


def test_export_while_serving_then_import_twice(tmp_path: Path) -> None:
    data, copy, archive = tmp_path / "data", tmp_path / "copy", tmp_path / "backup.tar"
    created = cli(
        data,
        "create-user",
        "--username",
        "ada",
        "--email",
        "ada@example.com",
        "--password-stdin",
        stdin="ada-password-1\n",
    )
    assert created.returncode == 0, created.stderr
    with running_server(data) as server:
        ids = [upload_over_http(server, name) for name in ("one.mp4", "two.mp4")]
        writer = PatchingThread(server.base_url, ids[0])
        writer.start()
        try:
            writer.wait_for(3)
            before = writer.done
            exported = cli(data, "export", str(archive))
            during = writer.done - before
            refused = cli(data, "import", str(archive))
        finally:
            writer.stop()
    assert not writer.failures
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert during > 0, "the service was not written to while the export ran"
    assert "snapshot read" in exported.stdout and "OK:" in exported.stdout
    assert refused.returncode == 2 and "in use by another process" in refused.stderr

    archived = archived_documents(archive)
    assert set(archived["videos"]) == set(ids) and len(archived["users"]) == 1
    renamed = json_util.loads(archived["videos"][ids[0]])["filename"]
    assert renamed.startswith("renamed-")  # one state the writes went through, whole
    assert stored_documents(data)["videos"][ids[1]] == archived["videos"][ids[1]]

    first = cli(copy, "import", str(archive))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "files: 2 copied, 0 already there" in first.stdout
    imported = stored_documents(copy)
    assert imported == archived
    assert stored_files(copy) == stored_files(data)
    for document in imported["videos"].values():
        facts = json_util.loads(document)["file"]
        assert sha256_of(copy / "uploads" / facts["key"]) == facts["sha256"]
    mtimes = {path.name: path.stat().st_mtime_ns for path in (copy / "uploads").iterdir() if path.is_file()}

    second = cli(copy, "import", str(archive))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "files: 0 copied, 2 already there" in second.stdout
    assert _row(second.stdout, "videos") == ["0", "0", "2", "0"] and _row(second.stdout, "users") == [
        "0",
        "0",
        "1",
        "0",
    ]
    assert stored_documents(copy) == archived
    assert {path.name: path.stat().st_mtime_ns for path in (copy / "uploads").iterdir() if path.is_file()} == mtimes

    with running_server(copy) as restored:
        listed = httpx.get(f"{restored.base_url}/videos", timeout=10).json()["items"]
        video = httpx.get(f"{restored.base_url}/videos/{ids[1]}", timeout=10).json()
    assert {item["id"] for item in listed} == set(ids)
    assert video["file"]["sha256"] == sha256_of(SPEECH_VIDEO)


def _row(output: str, collection: str) -> list[str]:
    """inserted, replaced, unchanged, refused for a collection in import's table."""
    line = next(line for line in output.splitlines() if line.startswith(collection + " "))
    return line.split()[1:]


def test_a_video_deleted_while_exporting_is_left_out_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deleted after the snapshot and before its file is copied: the document is in the snapshot,
    its file is gone. The archive leaves the video out, as the store now has it, and says so."""
    data, archive = tmp_path / "data", tmp_path / "backup.tar"
    with running_server(data) as server:
        kept, deleted = upload_over_http(server, "kept.mp4"), upload_over_http(server, "deleted.mp4")
        copy_files = export._add_files

        def delete_then_copy_files(*args: object) -> dict[str, set[str]]:
            assert httpx.delete(f"{server.base_url}/videos/{deleted}", timeout=10).status_code == 204
            return copy_files(*args)

        monkeypatch.setattr(export, "_add_files", delete_then_copy_files)
        summary = export.run_export(Settings(_env_file=None, data_dir=data), archive, salvage=False)
    assert summary.ok and summary.written, summary.render()
    assert f"videos {deleted} was deleted while the export ran" in summary.render()
    assert archived_documents(archive)["videos"].keys() == {kept}
    with tarfile.open(archive) as tar:
        assert len([name for name in tar.getnames() if name.startswith("files/")]) == 1


@pytest.fixture(scope="module")
def sound_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("sound")
    data = directory / "data"
    with running_server(data) as server:
        upload_over_http(server, "talk.mp4")
    path = directory / "sound.tar"
    assert cli(data, "export", str(path)).returncode == 0
    return path


def _rewritten(source: Path, target: Path, change: Callable[[str, bytes], list[tuple[str, bytes]]]) -> None:
    """A copy of the archive with each member replaced by what `change` makes of it."""
    with tarfile.open(source) as old, tarfile.open(target, "w") as new:
        for info in old:
            for name, data in change(info.name, old.extractfile(info).read()):
                _add(new, name, data)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _flip_byte_in(prefix: str) -> Callable[[Path, Path], None]:
    def damage(source: Path, target: Path) -> None:
        data = bytearray(source.read_bytes())
        with tarfile.open(source) as tar:
            info = next(info for info in tar if info.name.startswith(prefix))
        data[info.offset_data + info.size // 2] ^= 0x01
        target.write_bytes(bytes(data))

    return damage


def _without_files(source: Path, target: Path) -> None:
    _rewritten(source, target, lambda name, data: [] if name.startswith("files/") else [(name, data)])


def _with_member(extra: str) -> Callable[[Path, Path], None]:
    def damage(source: Path, target: Path) -> None:
        def change(name: str, data: bytes) -> list[tuple[str, bytes]]:
            return [(extra, b"surprise"), (name, data)] if name == "manifest.json" else [(name, data)]

        _rewritten(source, target, change)

    return damage


def _foreign_tar(source: Path, target: Path) -> None:
    with tarfile.open(target, "w") as tar:
        _add(tar, "notes/hello.txt", b"hello")


def _foreign_manifest(source: Path, target: Path) -> None:
    with tarfile.open(target, "w") as tar:
        _add(tar, "manifest.json", json.dumps({"format": "someone-elses-backup", "version": 1}).encode())


def _not_a_tar(source: Path, target: Path) -> None:
    target.write_bytes(os.urandom(4096))


def _cut_short(source: Path, target: Path) -> None:
    target.write_bytes(source.read_bytes()[: source.stat().st_size // 2])


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (_flip_byte_in("collections/"), "member collections/videos.jsonl is damaged"),
        (_flip_byte_in("files/"), "is damaged: its size or sha256 differs"),
        (_without_files, "is missing"),
        (_with_member("files/extra"), "member files/extra is not in the manifest"),
        (_with_member("../escape"), "unsafe path"),
        (_with_member("/etc/absolute"), "unsafe path"),
        (_foreign_tar, "no manifest.json"),
        (_foreign_manifest, "not a video-analyzer-archive"),
        (_not_a_tar, "not a tar archive"),
        (_cut_short, "cut short"),
    ],
    ids=[
        "flipped-collection-byte",
        "flipped-file-byte",
        "missing-member",
        "member-not-in-manifest",
        "dot-dot-path",
        "absolute-path",
        "foreign-tar",
        "foreign-manifest",
        "not-a-tar",
        "cut-short",
    ],
)
def test_a_damaged_or_foreign_archive_is_refused_and_nothing_written(
    tmp_path: Path, sound_archive: Path, damage: Callable[[Path, Path], None], says: str
) -> None:
    bad = tmp_path / "bad.tar"
    damage(sound_archive, bad)
    data = tmp_path / "data"
    result = cli(data, "import", str(bad))
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr.strip()
    assert says in message and "\n" not in message and "Traceback" not in message
    assert not data.exists()


def test_export_without_a_store_says_so(tmp_path: Path) -> None:
    result = cli(tmp_path / "data", "export", str(tmp_path / "backup.tar"))
    assert result.returncode == 2 and "no embedded store" in result.stderr
    assert list(tmp_path.iterdir()) == []


# Check


def test_check_while_serving_and_after_a_crash(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data)
    video_id = upload_over_http(server, "talk.mp4")
    writer = PatchingThread(server.base_url, video_id)
    writer.start()
    try:
        writer.wait_for(3)
        serving = cli(data, "check")
    finally:
        writer.stop()
    stray = data / "uploads" / "0123456789abcdef"
    stray.write_bytes(b"a file no document refers to")
    server.kill()
    crashed = cli(data, "check")

    assert serving.returncode == 0, serving.stdout + serving.stderr
    assert (
        "served by another process" in serving.stdout and "1 documents checked against their models" in serving.stdout
    )
    assert "files: 1 checked" in serving.stdout
    assert crashed.returncode == 0, crashed.stdout + crashed.stderr
    assert "(not in use)" in crashed.stdout
    assert f"WARNING: file {stray}: no document refers to it" in crashed.stdout


@pytest.fixture
async def stopped_store(settings: Settings) -> list[dict]:
    """Two uploaded videos in a store no process has open."""
    async with serving(settings) as http:
        videos = [(await upload(http, SPEECH_VIDEO, name)).json() for name in ("one.mp4", "two.mp4")]
    return videos


def _change_body_byte(data_dir: Path, video_id: str) -> None:
    """Change one byte inside a video row's BSON, leaving its CRC as it was."""
    connection = sqlite3.connect(data_dir / "db" / DATABASE_NAME)
    (table,) = connection.execute("SELECT table_name FROM collections WHERE collection = 'videos'").fetchone()
    key = bson.encode({"_id": bson.ObjectId(video_id)})
    (body,) = connection.execute(f'SELECT body FROM "{table}" WHERE id = ?', (key,)).fetchone()
    changed = body.replace(b"one.mp4", b"onE.mp4")
    assert changed != body
    connection.execute(f'UPDATE "{table}" SET body = ? WHERE id = ?', (changed, key))
    connection.commit()
    connection.close()


async def test_check_names_a_document_whose_bson_changed(settings: Settings, stopped_store: list[dict]) -> None:
    assert cli(settings.data_dir, "check").returncode == 0
    damaged, sound = stopped_store
    _change_body_byte(settings.data_dir, damaged["id"])
    result = cli(settings.data_dir, "check")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"1 damaged document(s): {damaged['id']}" in result.stdout
    assert not any(sound["id"] in line for line in result.stdout.splitlines() if line.startswith("DAMAGED"))


async def test_check_names_a_file_whose_content_changed(settings: Settings, stopped_store: list[dict]) -> None:
    key = json_util.loads(stored_documents(settings.data_dir)["videos"][stopped_store[1]["id"]])["file"]["key"]
    path = settings.files_dir / key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    result = cli(settings.data_dir, "check")
    assert result.returncode == 1
    assert f"DAMAGED: file {key} (videos {stopped_store[1]['id']}): sha256" in result.stdout


async def test_a_missing_file_is_damage_to_check_and_export(
    tmp_path: Path, settings: Settings, stopped_store: list[dict]
) -> None:
    video_id = stopped_store[0]["id"]
    key = json_util.loads(stored_documents(settings.data_dir)["videos"][video_id])["file"]["key"]
    (settings.files_dir / key).unlink()
    checked = cli(settings.data_dir, "check")
    exported = cli(settings.data_dir, "export", str(tmp_path / "backup.tar"))
    assert checked.returncode == 1 and f"DAMAGED: file {key} (videos {video_id}): missing" in checked.stdout
    assert exported.returncode == 1 and f"PROBLEM: file {key} (videos {video_id}): missing" in exported.stdout
    assert not (tmp_path / "backup.tar").exists()


async def test_check_reports_a_document_that_does_not_match_its_model(
    settings: Settings, stopped_store: list[dict]
) -> None:
    database = await connect(settings)
    await Video.get_motor_collection().update_one(
        {"_id": bson.ObjectId(stopped_store[0]["id"])}, {"$set": {"status": "exploded"}}
    )
    database.close()
    result = cli(settings.data_dir, "check")
    assert result.returncode == 1
    assert f"document {stopped_store[0]['id']}: does not match the Video model: status" in result.stdout


async def test_check_reports_an_unreadable_sqlite_file_as_damage(settings: Settings, stopped_store: list[dict]) -> None:
    path = settings.embedded_dir / DATABASE_NAME
    data = bytearray(path.read_bytes())
    data[4096 : 4096 + 200] = b"\xff" * 200  # the page after the schema: SQLite cannot read the store's tables
    path.write_bytes(bytes(data))
    result = cli(settings.data_dir, "check")
    assert result.returncode == 1
    assert "SQLite cannot" in result.stdout and "malformed" in result.stdout
    assert "Traceback" not in result.stderr


# Salvage


async def test_export_salvage_keeps_every_intact_document(
    tmp_path: Path, settings: Settings, stopped_store: list[dict]
) -> None:
    damaged, sound = stopped_store
    _change_body_byte(settings.data_dir, damaged["id"])
    archive = tmp_path / "intact.tar"

    refused = cli(settings.data_dir, "export", str(archive))
    assert refused.returncode == 1 and damaged["id"] in refused.stdout and "FAILED" in refused.stdout
    assert not archive.exists() and not list(tmp_path.glob(".intact.tar.*"))

    salvaged = cli(settings.data_dir, "export", "--salvage", str(archive))
    assert salvaged.returncode == 1
    assert f"LEFT OUT: video_analyzer.videos: 1 damaged document(s): {damaged['id']}" in salvaged.stdout
    assert archived_documents(archive)["videos"].keys() == {sound["id"]}

    recovered = tmp_path / "recovered"
    assert cli(recovered, "import", str(archive)).returncode == 0
    assert stored_documents(recovered)["videos"].keys() == {sound["id"]}
    assert cli(recovered, "check").returncode == 0


# MongoDB (no server runs here: what decides between a snapshot session and collection by collection)


class _Admin:
    def __init__(self, hello: dict) -> None:
        self.hello = hello

    def command(self, name: str) -> dict:
        assert name == "hello"
        return self.hello


class _Client:
    def __init__(self, hello: dict) -> None:
        self.admin = _Admin(hello)


@pytest.mark.parametrize(
    ("hello", "snapshot"),
    [
        ({"isWritablePrimary": True, "setName": "rs0", "maxWireVersion": 25}, True),  # replica set, 8.0
        ({"isWritablePrimary": True, "msg": "isdbgrid", "maxWireVersion": 21}, True),  # mongos, 7.0
        ({"isWritablePrimary": True, "maxWireVersion": 25}, False),  # standalone: no snapshot reads
        ({"isWritablePrimary": True, "setName": "rs0", "maxWireVersion": 9}, False),  # 4.4: none outside transactions
    ],
    ids=["replica-set", "sharded", "standalone", "mongodb-4.4"],
)
def test_snapshot_sessions_only_where_mongodb_has_snapshot_reads(hello: dict, snapshot: bool) -> None:
    assert has_snapshot_reads(_Client(hello)) is snapshot
