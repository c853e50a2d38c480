"""`video-analyzer export`, `import` and `check`, run as the commands they are, on real stores and files."""

import gzip
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import bson
import httpx
import pytest
from bson import json_util

from service.backup import export, restore
from service.config import Settings
from service.db.durable import DATABASE_NAME, read_snapshot
from service.db.service import connect
from service.db.snapshot import has_snapshot_reads
from service.videos.models import Video
from tests.conftest import SPEECH_VIDEO, serving, sha256_of, upload
from tests.server import ServerProcess, running_server
from tests.store import StoreDatabase

ROOT = Path(__file__).parent.parent
CANONICAL = json_util.CANONICAL_JSON_OPTIONS


def cli(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`video-analyzer ARGS` as a process of its own, on the embedded store under `data_dir`."""
    return subprocess.run(
        _command(*args), cwd=ROOT, env=_env(data_dir), input=stdin, capture_output=True, text=True, timeout=120
    )


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "service.cli", *args]


def _env(data_dir: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != "MONGODB_URL"}
    env.update(DATA_DIR=str(data_dir), WORKERS="0")
    return env


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


@pytest.mark.embedded_only
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


def test_a_video_deleted_while_exporting_is_left_out_whole(
    tmp_path: Path, store: StoreDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleted after the snapshot and before its file is copied: the document is in the snapshot,
    its file is gone. The archive leaves the video out, as the store now has it, and says so."""
    data, archive = tmp_path / "data", tmp_path / "backup.tar"
    with running_server(data, store.environment) as server:
        kept, deleted = upload_over_http(server, "kept.mp4"), upload_over_http(server, "deleted.mp4")
        copy_files = export._add_files

        def delete_then_copy_files(*args: object) -> dict[str, set[str]]:
            assert httpx.delete(f"{server.base_url}/videos/{deleted}", timeout=10).status_code == 204
            return copy_files(*args)

        monkeypatch.setattr(export, "_add_files", delete_then_copy_files)
        summary = export.run_export(Settings(_env_file=None, data_dir=data, **store.settings), archive, salvage=False)
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


def _gzipped(source: Path, target: Path) -> None:
    target.write_bytes(gzip.compress(source.read_bytes(), compresslevel=1))


# Hostile archives: sound in form, their manifest vouching for every member, their content not.


def _member_facts(data: bytes) -> dict[str, Any]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _resealed(change: Callable[[str, bytes], list[tuple[str, bytes]]]) -> Callable[[Path, Path], None]:
    """The archive with its members changed by `change` and a manifest made anew to match them."""

    def reseal(source: Path, target: Path) -> None:
        with tarfile.open(source) as old:
            manifest = json.load(old.extractfile("manifest.json"))
            members = [
                changed
                for info in old
                if info.name != "manifest.json"
                for changed in change(info.name, old.extractfile(info).read())
            ]
        manifest["members"] = {name: _member_facts(data) for name, data in members}
        manifest["collections"] = [
            {"name": unquote(name[len("collections/") : -len(".jsonl")]), "member": name, "count": data.count(b"\n")}
            for name, data in members
            if name.startswith("collections/")
        ]
        manifest["files"] = [
            {"key": name[len("files/") :], "member": name} for name, data in members if name.startswith("files/")
        ]
        with tarfile.open(target, "w") as new:
            for name, data in [*members, ("manifest.json", json.dumps(manifest).encode())]:
                _add(new, name, data)

    return reseal


def _video_edited(edit: Callable[[dict], None]) -> Callable[[Path, Path], None]:
    """The archive with its one video (as JSON) changed by `edit`."""

    def change(name: str, data: bytes) -> list[tuple[str, bytes]]:
        if name != "collections/videos.jsonl":
            return [(name, data)]
        video = json.loads(data)
        edit(video)
        return [(name, json.dumps(video).encode() + b"\n")]

    return _resealed(change)


def _setting(field: str, value: object) -> Callable[[dict], None]:
    return lambda video: video.update({field: value})


def _with_collection(quoted_name: str) -> Callable[[Path, Path], None]:
    def change(member: str, data: bytes) -> list[tuple[str, bytes]]:
        extra = (f"collections/{quoted_name}.jsonl", b'{"_id": {"$numberInt": "1"}}\n')
        return [(member, data), extra] if member == "collections/videos.jsonl" else [(member, data)]

    return _resealed(change)


def _with_stray_file(name: str, data: bytes) -> list[tuple[str, bytes]]:
    return (
        [("files/0123456789abcdef", b"a file no document refers to"), (name, data)]
        if name.startswith("files/")
        else [(name, data)]
    )


def _with_other_file_bytes(name: str, data: bytes) -> list[tuple[str, bytes]]:
    return [(name, b"other bytes" if name.startswith("files/") else data)]


@pytest.mark.embedded_only
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
        (_gzipped, "gzip-compressed: import reads only the uncompressed tar export writes"),
        (
            _video_edited(_setting("_id", "not-an-objectid")),
            "collection videos, line 1: does not match the Video model: _id",
        ),
        (
            _video_edited(_setting("status", "exploded")),
            "collection videos, line 1: does not match the Video model: status",
        ),
        (_video_edited(_setting("$where", "1")), "collection videos, line 1: field '$where': a name starting with '$'"),
        (_video_edited(lambda video: video["metadata"].update({"$set": 1})), "field 'metadata.$set'"),
        (_video_edited(_setting("a\x00b", 1)), "holding NUL"),
        (_video_edited(_setting("_id", [1, 2])), "collection videos, line 1: _id is list, not an ObjectId"),
        (_video_edited(_setting("_id", {"$regularExpression": {"pattern": ".*", "options": ""}})), "_id is Regex"),
        (_with_collection("%24cmd"), "member collections/%24cmd.jsonl is not a collection the service has"),
        (_with_collection("system.indexes"), "collections/system.indexes.jsonl is not a collection the service has"),
        (_with_collection("a..b"), "collections/a..b.jsonl is not a collection the service has"),
        (_resealed(_with_stray_file), "file 0123456789abcdef: no document in the archive refers to it"),
        (_resealed(_with_other_file_bytes), "11 bytes with sha256"),
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
        "gzip",
        "id-not-an-objectid",
        "not-the-model",
        "dollar-field",
        "nested-dollar-field",
        "nul-in-field-name",
        "array-id",
        "regex-id",
        "dollar-collection",
        "system-collection",
        "dotted-collection",
        "file-nothing-refers-to",
        "file-not-as-recorded",
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


def _tree(directory: Path) -> dict[str, str]:
    """Every file under `directory`, by relative path, with its sha256."""
    return {str(path.relative_to(directory)): sha256_of(path) for path in directory.rglob("*") if path.is_file()}


def _refused_alone(result: subprocess.CompletedProcess[str], says: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr.strip()
    assert says in message and "\n" not in message and "Traceback" not in message


@pytest.mark.embedded_only
@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar writes the sparse member (tarfile cannot)")
def test_a_sparse_member_is_refused(tmp_path: Path, sound_archive: Path) -> None:
    """A sparse member holds its zeros in no blocks: 64 MiB here, gigabytes as easily."""
    tree = tmp_path / "tree"
    with tarfile.open(sound_archive) as tar:
        tar.extractall(tree, filter="data")
    holes = tree / "files" / "0123456789abcdef"
    with holes.open("wb") as file:
        file.truncate(64 * 2**20)
    manifest = json.loads((tree / "manifest.json").read_text())
    manifest["members"]["files/0123456789abcdef"] = _member_facts(holes.read_bytes())
    manifest["files"].append({"key": "0123456789abcdef", "member": "files/0123456789abcdef"})
    (tree / "manifest.json").write_text(json.dumps(manifest))
    archive = tmp_path / "sparse.tar"
    members = [*sorted(tree.glob("files/*")), *sorted(tree.glob("collections/*")), tree / "manifest.json"]
    names = [str(path.relative_to(tree)) for path in members]
    subprocess.run(["tar", "--sparse", "-cf", archive, "-C", tree, *names], check=True)
    with tarfile.open(archive) as tar:
        assert tar.getmember("files/0123456789abcdef").issparse(), "this tar wrote no sparse member"
    data = tmp_path / "data"
    _refused_alone(cli(data, "import", str(archive)), "member 'files/0123456789abcdef' is a sparse file")
    assert not data.exists()


@pytest.mark.embedded_only
def test_an_oversized_line_is_refused_in_little_memory(tmp_path: Path, sound_archive: Path) -> None:
    """A 100 MB line is refused once 64 MB of it are read, never held whole."""

    def oversized(name: str, data: bytes) -> list[tuple[str, bytes]]:
        return [(name, b"a" * (100 * 2**20) if name == "collections/videos.jsonl" else data)]

    archive, data = tmp_path / "long.tar", tmp_path / "data"
    _resealed(oversized)(sound_archive, archive)
    result, peak_kib = _with_peak_rss(data, "import", str(archive))
    _refused_alone(result, "member collections/videos.jsonl: line 1 is longer than 64 MB")
    assert peak_kib < 200 * 1024, f"peak RSS {peak_kib // 1024} MB"
    assert not data.exists()


_MEASURING = """
import os, sys
pid = os.fork()
if not pid:
    os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
_, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""
"""Runs argv[2:] in a child and writes its peak RSS (KiB) to argv[1]."""


def _with_peak_rss(data_dir: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """`cli`, and the peak RSS of its process in KiB. Linux carries a process's high-water mark
    across fork and exec, so the command runs as the child of a small process that measures it:
    a child of the test process would report the test's own peak."""
    peak = data_dir.with_name("peak-rss")
    command = [sys.executable, "-c", _MEASURING, str(peak), *_command(*args)[1:]]
    result = subprocess.run(command, cwd=ROOT, env=_env(data_dir), capture_output=True, text=True, timeout=120)
    return result, int(peak.read_text())


@pytest.mark.embedded_only
def test_a_stored_file_with_other_bytes_is_never_replaced(tmp_path: Path, sound_archive: Path) -> None:
    """An archive holding other bytes under a key storage already has, and a new video pointing at
    them, would replace the existing video's file."""
    data = tmp_path / "data"
    assert cli(data, "import", str(sound_archive)).returncode == 0
    (video,) = (json_util.loads(line) for line in stored_documents(data)["videos"].values())

    other_bytes = b"other bytes"
    other_file = dict(video["file"], **_member_facts(other_bytes))
    other_video = canonical(dict(video, _id=bson.ObjectId(), file=other_file)).encode() + b"\n"

    def clash(name: str, contents: bytes) -> list[tuple[str, bytes]]:
        if name.startswith("files/"):
            return [(name, other_bytes)]
        return [(name, other_video if name == "collections/videos.jsonl" else contents)]

    archive = tmp_path / "clash.tar"
    _resealed(clash)(sound_archive, archive)
    before = _tree(data)
    result = cli(data, "import", str(archive))
    _refused_alone(result, f"file {video['file']['key']}: storage already holds")
    assert _tree(data) == before
    assert cli(data, "check").returncode == 0


async def test_an_unexpected_error_while_writing_stops_without_a_traceback(
    settings: Settings, sound_archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object) -> None:
        raise KeyError("nIndex")

    monkeypatch.setattr(restore._Import, "_upsert", broken)
    with pytest.raises(restore.ImportStopped, match=r"unexpected error \(KeyError: 'nIndex'\); what was written stays"):
        await restore.run_import(settings, sound_archive)


@pytest.mark.embedded_only
def test_export_without_a_store_says_so(tmp_path: Path) -> None:
    result = cli(tmp_path / "data", "export", str(tmp_path / "backup.tar"))
    assert result.returncode == 2 and "no embedded store" in result.stderr
    assert list(tmp_path.iterdir()) == []


# Check


@pytest.mark.embedded_only
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


@pytest.mark.embedded_only
async def test_check_names_a_document_whose_bson_changed(settings: Settings, stopped_store: list[dict]) -> None:
    assert cli(settings.data_dir, "check").returncode == 0
    damaged, sound = stopped_store
    _change_body_byte(settings.data_dir, damaged["id"])
    result = cli(settings.data_dir, "check")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"1 damaged document(s): {damaged['id']}" in result.stdout
    assert not any(sound["id"] in line for line in result.stdout.splitlines() if line.startswith("DAMAGED"))


@pytest.mark.embedded_only
async def test_check_names_a_file_whose_content_changed(settings: Settings, stopped_store: list[dict]) -> None:
    key = json_util.loads(stored_documents(settings.data_dir)["videos"][stopped_store[1]["id"]])["file"]["key"]
    path = settings.files_dir / key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    result = cli(settings.data_dir, "check")
    assert result.returncode == 1
    assert f"DAMAGED: file {key} (videos {stopped_store[1]['id']}): sha256" in result.stdout


@pytest.mark.embedded_only
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


@pytest.mark.embedded_only
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


@pytest.mark.embedded_only
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


@pytest.mark.embedded_only
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


@pytest.mark.embedded_only
async def test_export_salvage_leaves_out_a_file_that_changed_so_the_archive_imports(
    tmp_path: Path, settings: Settings, stopped_store: list[dict]
) -> None:
    changed, sound = stopped_store
    key = json_util.loads(stored_documents(settings.data_dir)["videos"][changed["id"]])["file"]["key"]
    path = settings.files_dir / key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    archive = tmp_path / "intact.tar"

    salvaged = cli(settings.data_dir, "export", "--salvage", str(archive))
    assert salvaged.returncode == 1
    assert f"LEFT OUT: file {key} (videos {changed['id']}): sha256" in salvaged.stdout
    assert archived_documents(archive)["videos"].keys() == {changed["id"], sound["id"]}

    recovered = tmp_path / "recovered"
    assert cli(recovered, "import", str(archive)).returncode == 0
    assert stored_documents(recovered)["videos"].keys() == {changed["id"], sound["id"]}
    assert not (recovered / "uploads" / key).exists()


@pytest.mark.embedded_only
async def test_check_reports_a_damaged_index_definition_once(settings: Settings, stopped_store: list[dict]) -> None:
    account = ("create-user", "--username", "ops", "--email", "o@example.com", "--password-stdin")
    assert cli(settings.data_dir, *account, stdin="ops-password-1\n").returncode == 0
    database = sqlite3.connect(settings.data_dir / "db" / DATABASE_NAME)
    definition = bytearray(database.execute("SELECT definition FROM indexes WHERE name = 'queue'").fetchone()[0])
    definition[-3] ^= 0x01
    database.execute("UPDATE indexes SET definition = ? WHERE name = 'queue'", (bytes(definition),))
    database.commit()
    database.close()
    result = cli(settings.data_dir, "check")
    assert result.returncode == 1
    assert result.stdout.count("the definition of index 'queue' is damaged") == 1, result.stdout
