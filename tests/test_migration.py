"""The migration from the SQLite service: real SQLite files in, the real store and storage out."""

import errno
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from service.cli import main
from service.config import Settings
from service.db.service import connect
from service.migration.mapping import INLINE_TEXT_BYTES
from service.migration.schemas import MigrationSummary
from service.migration.service import MigrationError, MigrationOptions, run_migration
from service.processing import queue
from service.users.schemas import Registration
from service.users.service import register
from service.videos.models import Video
from tests.conftest import SPEECH_VIDEO, sha256_of
from tests.legacy_sqlite import CHAT, CHAT_ORDER, FORMS, ORPHAN_CHAT_IDS, VIDEOS, build_legacy_db
from tests.store import StoreDatabase, Stores

REPO = Path(__file__).resolve().parent.parent


async def migrate(settings: Settings, source: Path, **options: Any) -> MigrationSummary:
    return await run_migration(settings, MigrationOptions(source=source, **options))


async def stored(settings: Settings) -> list[dict[str, Any]]:
    """Every video document in the store, by legacy id."""
    database = await connect(settings)
    try:
        return await Video.get_motor_collection().find({}).sort("legacy.id", 1).to_list(None)
    finally:
        database.close()


def report_lines(path: Path, kind: str) -> list[dict[str, Any]]:
    return [line for line in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if line["kind"] == kind]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def stored_files(settings: Settings) -> dict[str, str]:
    return {path.name: sha256_of(path) for path in settings.files_dir.glob("*") if path.is_file()}


@pytest.fixture
def legacy_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "legacy"
    (folder / "uploads").mkdir(parents=True)
    return folder


@pytest.mark.parametrize("form", FORMS)
async def test_both_schema_forms_migrate_whole(settings: Settings, legacy_dir: Path, form: str) -> None:
    source = build_legacy_db(legacy_dir / "videos.db", form, VIDEOS, CHAT)
    summary = await migrate(settings, source, report=legacy_dir / "report.jsonl")

    assert summary.ok, summary.render()
    assert summary.schema_form == form
    assert (summary.videos.read, summary.videos.written) == (4, 4)
    assert (summary.chat_entries.read, summary.chat_entries.written, summary.chat_entries.reported) == (7, 7, 0)
    assert (summary.orphan_chat_rows.read, summary.orphan_chat_rows.reported) == (2, 2)
    assert summary.migrated_videos_in_store == 4
    documents = {document["legacy"]["id"]: document for document in await stored(settings)}
    assert sorted(documents) == [1, 2, 5, 9]
    for legacy_id, order in CHAT_ORDER.items():
        assert [entry["id"] for entry in documents[legacy_id]["chat"]] == [f"legacy-{n}" for n in order]
    deployed = form == "deployed"

    talk = documents[1]
    assert talk["filename"] == "talk.mp4"
    assert talk["status"] == "completed"
    assert talk["file"] is None
    assert talk["transcript"] == {
        "language": "ja" if deployed else None,
        "language_probability": None,
        "model": "legacy",
        "text": "Hello wörld — 日本語のテキスト",
        "segments": [],
    }
    assert talk["summary"]["text"] == "A short talk"
    assert talk["summary"]["language"] == ("en" if deployed else None)
    assert talk["uploaded_at"] == utc(2024, 3, 1, 9, 37, 0, 123000)
    assert talk["processed_at"] == (utc(2024, 3, 1, 9, 40) if deployed else None)
    assert talk["updated_at"] == utc(2024, 3, 1, 10, 0)
    assert talk["requested_language"] == ("ja" if deployed else "auto")
    assert talk["ui_language"] == talk["summary_language"] == ("en" if deployed else None)
    expected_legacy = {"id": 1, "file_path": "uploads/talk.mp4"}
    if deployed:
        expected_legacy.update(
            processing_status="completed",
            user_selected_language="ja",
            ui_language="en",
            transcription_method="azure_speech",
        )
    assert talk["legacy"] == expected_legacy
    chat = {entry["id"]: entry for entry in talk["chat"]}
    assert chat["legacy-1"]["question"] == "What is it about?"
    assert chat["legacy-1"]["answer"] == "A talk."
    assert chat["legacy-1"]["citations"] == []
    assert chat["legacy-1"]["language"] == ("en" if deployed else None)
    assert chat["legacy-1"]["created_at"] == utc(2024, 3, 1, 10, 0)
    assert chat["legacy-4"]["created_at"] == utc(2024, 3, 1, 9, 50, 0, 500000)
    assert chat["legacy-2"]["created_at"] == talk["uploaded_at"]
    assert chat["legacy-8"]["created_at"] == talk["uploaded_at"]

    pending = documents[2]
    assert pending["filename"] == "vidéo ünïcødé <1> 日本.mp4"
    assert pending["status"] == "failed"
    assert "without its video file" in pending["job"]["error"] and "--copy-files" in pending["job"]["error"]
    assert pending["transcript"] is None and pending["summary"] is None
    assert [entry["question"] for entry in pending["chat"]] == ["前に?", "Timed"]

    broken = documents[5]
    assert broken["status"] == "failed"
    if deployed:
        assert broken["job"]["error"] == "Azure quota exceeded"
        assert broken["uploaded_at"] == utc(2024, 3, 5, 8, 0)
    else:
        assert "without its video file" in broken["job"]["error"]
        assert broken["uploaded_at"] == datetime(1970, 1, 1, tzinfo=UTC)
    assert broken["legacy"]["uploaded_at"] is None

    untitled = documents[9]
    assert untitled["filename"] == "untitled"
    assert untitled["legacy"]["filename"] is None
    assert untitled["uploaded_at"] == utc(2024, 3, 9, 10, 0)
    assert untitled["transcript"]["text"] == ""
    assert untitled["status"] == ("failed" if deployed else "completed")
    assert untitled["ui_language"] is None and untitled["summary_language"] is None
    assert untitled["legacy"].get("ui_language") == ("Klingon" if deployed else None)
    assert documents[2]["ui_language"] == documents[2]["summary_language"] == ("ja" if deployed else None)

    report = legacy_dir / "report.jsonl"
    assert [line["chat"]["id"] for line in report_lines(report, "orphan_chat")] == ORPHAN_CHAT_IDS
    orphan = next(row for row in CHAT if row["id"] == 11)
    assert report_lines(report, "orphan_chat")[0]["chat"] == {
        k: v for k, v in orphan.items() if deployed or k != "language"
    }
    assert [(line["chat_id"], line["raw"]) for line in report_lines(report, "unreadable_time")] == [(8, "yesterday")]
    assert report_lines(report, "summary")[0]["videos"] == {"read": 4, "written": 4, "reported": 0}


async def test_a_second_run_changes_nothing(settings: Settings, legacy_dir: Path) -> None:
    shutil.copy(SPEECH_VIDEO, legacy_dir / "uploads" / "pending.mp4")
    source = build_legacy_db(legacy_dir / "videos.db", "deployed", VIDEOS, CHAT)
    first_summary = await migrate(settings, source, copy_files=True)
    first, first_files = await stored(settings), stored_files(settings)
    second_summary = await migrate(settings, source, copy_files=True)
    assert await stored(settings) == first
    assert stored_files(settings) == first_files
    assert second_summary.model_dump() == first_summary.model_dump()
    assert second_summary.ok
    await migrate(settings, source)
    assert await stored(settings) == first, "a run without --copy-files must keep the files copied before"


async def test_a_run_killed_mid_way_resumes_to_the_same_result(
    tmp_path: Path, legacy_dir: Path, store: StoreDatabase, stores: Stores
) -> None:
    videos = [
        {
            "id": n,
            "filename": f"v{n}.mp4",
            "file_path": f"uploads/v{n}.mp4",
            "transcription": f"words {n}",
            "summary": None,
            "processing_status": "pending",
            "uploaded_at": f"2024-01-0{n} 08:00:00",
        }
        for n in range(1, 7)
    ]
    chat = [
        {"id": n, "video_id": n % 6 + 1, "question": f"q{n}", "answer": f"a{n}", "timestamp": None, "language": "en"}
        for n in range(1, 13)
    ]
    source = build_legacy_db(legacy_dir / "videos.db", "deployed", videos, chat)
    for n in (1, 2, 4, 5, 6):
        shutil.copy(SPEECH_VIDEO, legacy_dir / "uploads" / f"v{n}.mp4")
    # Video 3 (the second batch) is a named pipe: copying it blocks until the test writes to it,
    # so the process is stopped for certain after the first batch and before the second is written.
    fifo = legacy_dir / "uploads" / "v3.mp4"
    os.mkfifo(fifo)
    data_dir = tmp_path / "data"
    command = [sys.executable, "-m", "service.cli", "migrate-sqlite", str(source), "--copy-files", "--batch-size", "2"]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, **store.environment, "DATA_DIR": str(data_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    writer = _open_when_read(fifo, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    os.close(writer)

    killed = Settings(_env_file=None, data_dir=data_dir, **store.settings)
    assert [document["legacy"]["id"] for document in await stored(killed)] == [1, 2]
    fifo.unlink()
    shutil.copy(SPEECH_VIDEO, fifo)
    resumed = subprocess.run(
        [sys.executable, "scripts/migrate_sqlite.py", str(source), "--copy-files", "--batch-size", "2"],
        cwd=REPO,
        env={**os.environ, **store.environment, "DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "OK: every row read is accounted for" in resumed.stdout

    with stores.database("clean") as clean_store:
        clean = Settings(_env_file=None, data_dir=tmp_path / "clean", **clean_store.settings)
        assert (await migrate(clean, source, copy_files=True, batch_size=2)).ok
        without_ids = [{k: v for k, v in d.items() if k != "_id"} for d in await stored(killed)]
        assert without_ids == [{k: v for k, v in d.items() if k != "_id"} for d in await stored(clean)]
    assert len(without_ids) == 6 and sum(len(d["chat"]) for d in without_ids) == 12
    assert all(d["status"] == "queued" for d in without_ids)
    assert stored_files(killed) == stored_files(clean)


def _open_when_read(fifo: Path, process: subprocess.Popen, timeout: float = 60.0) -> int:
    """Open the pipe's write end once the migration has opened it to read (it then waits for data)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the migration ended before reaching the pipe:\n{process.stdout.read().decode()}")
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            if error.errno != errno.ENXIO:
                raise
            time.sleep(0.02)
    process.kill()
    raise AssertionError("the migration never opened the pipe")


async def test_dry_run_writes_nothing(settings: Settings, legacy_dir: Path) -> None:
    shutil.copy(SPEECH_VIDEO, legacy_dir / "uploads" / "pending.mp4")
    source = build_legacy_db(legacy_dir / "videos.db", "deployed", VIDEOS, CHAT)
    summary = await migrate(settings, source, dry_run=True, copy_files=True)
    assert summary.ok and summary.dry_run
    assert (summary.videos.read, summary.videos.written) == (4, 4)
    assert (summary.chat_entries.written, summary.orphan_chat_rows.reported) == (7, 2)
    assert (summary.files_copied, summary.missing_files.reported) == (1, 3)
    assert summary.report is None
    assert not settings.data_dir.exists()
    assert "DRY RUN" in summary.render()


async def test_copy_files_copies_with_sha256_and_reports_missing(settings: Settings, legacy_dir: Path) -> None:
    shutil.copy(SPEECH_VIDEO, legacy_dir / "uploads" / "pending.mp4")
    (legacy_dir / "uploads" / "talk.mp4").write_text("not a video at all\n")
    source = build_legacy_db(legacy_dir / "videos.db", "deployed", VIDEOS, CHAT)
    report = legacy_dir / "report.jsonl"
    summary = await migrate(settings, source, copy_files=True, report=report)

    assert summary.ok, summary.render()
    assert summary.files_copied == 2
    assert (summary.missing_files.read, summary.missing_files.reported) == (2, 2)
    documents = {document["legacy"]["id"]: document for document in await stored(settings)}
    pending = documents[2]
    assert pending["status"] == "queued"
    assert pending["job"]["stage"] == "queued"
    assert pending["file"] == {
        "storage": "local",
        "key": "legacy2",
        "size": SPEECH_VIDEO.stat().st_size,
        "sha256": sha256_of(SPEECH_VIDEO),
        "content_type": "video/mp4",
    }
    assert pending["metadata"]["duration"] == pytest.approx(34.9, abs=0.2)
    assert sha256_of(settings.files_dir / "legacy2") == sha256_of(SPEECH_VIDEO)
    talk = documents[1]
    assert talk["status"] == "completed"
    assert talk["file"]["content_type"] is None
    assert talk["file"]["sha256"] == hashlib.sha256(b"not a video at all\n").hexdigest()
    assert documents[9]["status"] == "failed" and "no file_path was recorded" in documents[9]["job"]["error"]
    missing = {line["legacy_id"]: line for line in report_lines(report, "missing_file")}
    assert missing[5]["file_path"] == "/srv/old/uploads/broken.mov"
    assert missing[5]["reason"] == "No such file or directory"
    assert missing[9]["reason"] == "no file_path was recorded"

    database = await connect(settings)
    try:
        claimed = await queue.claim("test-worker", 60, settings.job_max_attempts)
        assert claimed is not None and claimed.legacy["id"] == 2
        assert await queue.claim("test-worker", 60, settings.job_max_attempts) is None
    finally:
        database.close()


async def test_a_document_over_16_mb_loses_nothing(settings: Settings, legacy_dir: Path) -> None:
    long_transcription = "naïve wörds " * (17 * 1024 * 1024 // 12)
    big_answer = "ä" * (2 * 1024 * 1024)
    videos = [
        {
            "id": 1,
            "filename": "long.mp4",
            "file_path": "x",
            "transcription": long_transcription,
            "summary": "s",
            "processing_status": "completed",
            "uploaded_at": "2024-01-01 00:00:00",
        },
        {
            "id": 2,
            "filename": "chatty.mp4",
            "file_path": "y",
            "transcription": "short",
            "summary": None,
            "processing_status": "completed",
            "uploaded_at": "2024-01-02 00:00:00",
        },
    ]
    chat = [
        {"id": 1, "video_id": 1, "question": "q", "answer": "a", "timestamp": "2024-01-01 01:00:00", "language": "en"}
    ] + [
        {
            "id": 10 + n,
            "video_id": 2,
            "question": f"q{n}",
            "answer": big_answer,
            "timestamp": f"2024-01-02 0{n}:00:00",
            "language": "en",
        }
        for n in range(5)
    ]
    source = build_legacy_db(legacy_dir / "videos.db", "deployed", videos, chat)
    report = legacy_dir / "report.jsonl"
    summary = await migrate(settings, source, report=report)

    assert summary.ok, summary.render()
    assert summary.texts_moved_to_storage == 1
    assert (summary.chat_entries.read, summary.chat_entries.written, summary.chat_entries.reported) == (6, 4, 2)
    long, chatty = await stored(settings)
    moved = long["legacy"]["transcription_file"]
    data = long_transcription.encode()
    assert moved == {"key": "legacy1transcription", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert (settings.files_dir / moved["key"]).read_bytes() == data
    assert long_transcription.startswith(long["transcript"]["text"])
    assert len(long["transcript"]["text"].encode()) <= INLINE_TEXT_BYTES
    assert [entry["id"] for entry in long["chat"]] == ["legacy-1"]
    assert [entry["id"] for entry in chatty["chat"]] == ["legacy-10", "legacy-11", "legacy-12"]
    left_out = report_lines(report, "chat_not_in_document")
    assert [(line["legacy_id"], line["chat"]["id"]) for line in left_out] == [(2, 13), (2, 14)]
    assert left_out[0]["chat"]["answer"] == big_answer
    assert report_lines(report, "text_moved_to_storage")[0]["key"] == "legacy1transcription"


def test_counts_that_disagree_exit_non_zero(
    tmp_path: Path, store: StoreDatabase, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "odd.db"
    connection = sqlite3.connect(source)
    connection.executescript(
        "CREATE TABLE videos (id PRIMARY KEY, filename, file_path, transcription, summary, uploaded_at);"
        "CREATE TABLE chat_history (id INTEGER PRIMARY KEY, video_id, question, answer, timestamp, rating);"
        "INSERT INTO videos VALUES ('abc', 'odd.mp4', NULL, 'text', NULL, NULL);"
        "INSERT INTO videos VALUES (7, 'fine.mp4', NULL, 'text', NULL, NULL);"
        "INSERT INTO videos VALUES (8, 'blob.mp4', NULL, X'00FF', NULL, NULL);"
        "INSERT INTO chat_history VALUES (1, 7, 'q', 'a', NULL, 5);"
        "INSERT INTO chat_history VALUES (2, 8, 'q', 'a', NULL, NULL);"
    )
    connection.commit()
    connection.close()
    store.set_in(monkeypatch)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(SystemExit) as exited:
        main(["migrate-sqlite", str(source)])
    assert exited.value.code == 1
    out = capsys.readouterr().out
    assert "PROBLEM: 2 of 3 videos were not written" in out and "FAILED" in out
    report = tmp_path / "data" / "migration-report.jsonl"
    blob, odd = report_lines(report, "video_not_written")  # integers sort before text
    assert odd["video"]["id"] == "abc" and "not an integer" in odd["error"]
    assert blob["video"]["transcription"] == {"base64": "AP8="} and "do not fit" in blob["error"]
    assert [line["chat"]["id"] for line in report_lines(report, "chat_not_in_document")] == [2]
    assert report_lines(report, "chat_values_not_migrated") == [
        {"kind": "chat_values_not_migrated", "legacy_id": 7, "chat_id": 1, "values": {"rating": 5}}
    ]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda path: None, "no such file"),
        (lambda path: path.write_text("just text, not a database\n" * 100), "is not a readable SQLite database"),
        (
            lambda path: sqlite3.connect(path).executescript("CREATE TABLE videos (id INTEGER PRIMARY KEY)"),
            "lacks the column(s) filename, file_path",
        ),
        (
            lambda path: sqlite3.connect(path).executescript(
                "CREATE TABLE videos (id INTEGER PRIMARY KEY, filename, file_path, transcription, summary, uploaded_at)"
            ),
            "no chat_history table",
        ),
    ],
    ids=["missing", "not-sqlite", "missing-columns", "missing-table"],
)
def test_bad_sources_are_clear_errors(
    tmp_path: Path,
    store: StoreDatabase,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    make: Any,
    message: str,
) -> None:
    source = tmp_path / "legacy.db"
    make(source)
    store.set_in(monkeypatch)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(SystemExit) as exited:
        main(["migrate-sqlite", str(source)])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


async def test_batch_size_must_be_positive(settings: Settings, legacy_dir: Path) -> None:
    source = build_legacy_db(legacy_dir / "videos.db", "documented", VIDEOS, CHAT)
    with pytest.raises(MigrationError, match="at least 1"):
        await migrate(settings, source, batch_size=0)


async def test_owner_gets_the_migrated_videos(settings: Settings, legacy_dir: Path) -> None:
    source = build_legacy_db(legacy_dir / "videos.db", "deployed", VIDEOS, CHAT)
    with pytest.raises(MigrationError, match="no user 'operator'"):
        await migrate(settings, source, owner="operator")
    database = await connect(settings)
    try:
        operator = await register(
            settings, Registration(username="operator", email="operator@example.com", password="operator-password")
        )
    finally:
        database.close()
    assert (await migrate(settings, source, owner="Operator")).ok
    documents = await stored(settings)
    assert documents and all(document["owner_id"] == operator.id for document in documents)
    assert not any(document["is_public"] for document in documents)
    assert (await migrate(settings, source)).ok
    assert all(document["owner_id"] == operator.id for document in await stored(settings))


async def test_migrated_transcripts_are_searched_in_their_own_language(settings: Settings, legacy_dir: Path) -> None:
    source = build_legacy_db(legacy_dir / "videos.db", "deployed", VIDEOS, CHAT)
    assert (await migrate(settings, source)).ok
    by_id = {document["legacy"]["id"]: document for document in await stored(settings)}
    japanese = by_id[1]
    assert japanese["transcript"]["language"] == "ja" and japanese["search_language"] == "none"
