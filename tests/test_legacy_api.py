"""The SQLite service's routes, against migrated videos and against videos uploaded to this service."""

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from faster_whisper import WhisperModel

from service.config import Settings
from service.migration.service import MigrationOptions, run_migration
from service.processing.transcription import WHISPER_LANGUAGES, model_location, transcription_languages
from service.storage.service import LocalStorage
from service.videos.models import Video
from tests.conftest import SPEECH_VIDEO, serving, sha256_of
from tests.legacy_sqlite import CHAT, VIDEOS, build_legacy_db
from tests.store import StoreDatabase

LONG_TRANSCRIPTION = "spoken words " * (17 * 1024 * 1024 // 13)


@pytest.fixture
async def migrated(settings: Settings, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app over a store the legacy history (plus one video too big for its document) was migrated into."""
    legacy_dir = tmp_path / "legacy"
    (legacy_dir / "uploads").mkdir(parents=True)
    shutil.copy(SPEECH_VIDEO, legacy_dir / "uploads" / "pending.mp4")
    long = {
        "id": 20,
        "filename": "long.mp4",
        "file_path": "z",
        "transcription": LONG_TRANSCRIPTION,
        "summary": "long",
        "processing_status": "completed",
        "uploaded_at": "2023-12-31 23:00:00",
    }
    source = build_legacy_db(legacy_dir / "videos.db", "deployed", [*VIDEOS, long], CHAT)
    assert (await run_migration(settings, MigrationOptions(source=source, copy_files=True))).ok
    async with serving(settings) as http:
        yield http


async def test_video_by_legacy_id_has_the_old_fields(migrated: httpx.AsyncClient) -> None:
    response = await migrated.get("/video/1")
    assert response.status_code == 200
    assert response.json() == {
        "id": 1,
        "filename": "talk.mp4",
        "file_path": "uploads/talk.mp4",
        "transcription": "Hello wörld — 日本語のテキスト",
        "summary": "A short talk",
        "processing_status": "completed",
        "error_message": None,
        "uploaded_at": "2024-03-01T09:37:00.123000",
        "processed_at": "2024-03-01T09:40:00",
        "detected_language": "ja",
        "user_selected_language": "ja",
        "ui_language": "en",
        "transcription_method": "azure_speech",
    }


async def test_a_migrated_video_answers_by_its_new_id_too(migrated: httpx.AsyncClient) -> None:
    new = next(
        item
        for item in (await migrated.get("/videos", params={"limit": 100})).json()["items"]
        if item["filename"] == "talk.mp4"
    )
    assert (await migrated.get(f"/video/{new['id']}")).json() == (await migrated.get("/video/1")).json()
    assert new["file"] is None


async def test_status_and_error_in_the_old_shape(migrated: httpx.AsyncClient) -> None:
    failed = (await migrated.get("/video-status/5")).json()
    assert failed == {
        "video_id": 5,
        "filename": "broken.mov",
        "processing_status": "failed",
        "error_message": "Azure quota exceeded",
        "detected_language": None,
        "ui_language": "en",
        "transcription_method": None,
        "transcription": None,
        "summary": None,
    }
    queued = (await migrated.get("/video-status/2")).json()
    assert queued["processing_status"] == "pending"
    assert queued["ui_language"] == "ja"


async def test_chat_history_in_conversation_order(migrated: httpx.AsyncClient) -> None:
    response = await migrated.get("/chat-history/1")
    assert response.status_code == 200
    rows = response.json()
    assert [row["id"] for row in rows] == [4, 1, 2, 7, 8]
    assert rows[0] == {
        "id": 4,
        "video_id": 1,
        "question": "Earliest?",
        "answer": "First.",
        "timestamp": "2024-03-01T09:50:00.500000",
        "language": None,
    }
    assert (await migrated.get("/chat-history/9")).json() == []


async def test_list_with_slash_is_the_old_list_and_without_the_new(migrated: httpx.AsyncClient) -> None:
    old = await migrated.get("/videos/")
    new = await migrated.get("/videos")
    assert old.status_code == new.status_code == 200
    assert isinstance(old.json(), list) and "items" in new.json()
    assert [video["id"] for video in old.json()] == [9, 5, 2, 1, 20]
    assert old.json()[2] == {
        "id": 2,
        "filename": "vidéo ünïcødé <1> 日本.mp4",
        "summary": None,
        "uploaded_at": "2024-03-02T10:00:00",
        "detected_language": None,
        "ui_language": "ja",
        "processing_status": "pending",
    }


async def test_a_transcription_moved_to_storage_comes_back_whole(migrated: httpx.AsyncClient) -> None:
    video = (await migrated.get("/video/20")).json()
    assert video["transcription"] == LONG_TRANSCRIPTION
    assert len((await migrated.get("/video-status/20")).json()["transcription"]) == len(LONG_TRANSCRIPTION)


@pytest.mark.parametrize(
    "path",
    [
        "/video/999",
        "/video/abc",
        "/video/-1",
        "/video-status/3",
        "/chat-history/3",
        "/chat-history/99999999999999999999",
        "/video/0123456789abcdef01234567",
    ],
)
async def test_unknown_ids_are_404_with_detail(migrated: httpx.AsyncClient, path: str) -> None:
    response = await migrated.get(path)
    assert response.status_code == 404
    assert "no video" in response.json()["detail"]


async def test_new_api_tolerates_migrated_videos_without_a_file(
    migrated: httpx.AsyncClient, settings: Settings
) -> None:
    items = (await migrated.get("/videos", params={"limit": 100})).json()["items"]
    by_name = {item["filename"]: item for item in items}
    talk, pending = by_name["talk.mp4"], by_name["vidéo ünïcødé <1> 日本.mp4"]
    assert pending["file"]["sha256"] == sha256_of(SPEECH_VIDEO)
    full = (await migrated.get(f"/videos/{talk['id']}")).json()
    assert full["transcript"]["text"] == "Hello wörld — 日本語のテキスト"
    reprocess = await migrated.post(f"/videos/{talk['id']}/reprocess")
    assert reprocess.status_code == 409 and "no stored file" in reprocess.json()["detail"]
    assert (await migrated.delete(f"/videos/{talk['id']}")).status_code == 204
    assert (await migrated.get("/video/1")).status_code == 404
    assert (await migrated.delete(f"/videos/{pending['id']}")).status_code == 204
    assert not (settings.files_dir / "legacy2").exists()


async def test_legacy_routes_on_a_newly_uploaded_video(client: httpx.AsyncClient) -> None:
    with SPEECH_VIDEO.open("rb") as file:
        response = await client.post(
            "/upload-video/", params={"language": "en", "ui_language": "ja"}, files={"file": ("new.mp4", file)}
        )
    assert response.status_code == 200
    uploaded = response.json()
    video_id = uploaded["video_id"]
    assert len(video_id) == 24
    assert uploaded == {
        "message": "Video uploaded successfully. Processing started in background.",
        "video_id": video_id,
        "filename": "new.mp4",
        "processing_status": "pending",
        "language": "en",
        "ui_language": "ja",
    }
    video = (await client.get(f"/video/{video_id}")).json()
    assert video["id"] == video_id
    assert video["processing_status"] == "pending"
    assert video["user_selected_language"] == "en"
    assert video["file_path"] is None and video["transcription"] is None
    status = (await client.get(f"/video-status/{video_id}")).json()
    assert status["processing_status"] == "pending" and status["ui_language"] == "ja"
    assert video["ui_language"] == "ja"
    assert (await client.get(f"/chat-history/{video_id}")).json() == []
    assert [(item["id"], item["ui_language"]) for item in (await client.get("/videos/")).json()] == [(video_id, "ja")]
    assert (await Video.get(video_id)).ui_language == "ja"


async def test_the_upload_ui_language_defaults_to_english_and_must_be_a_listed_code(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    with SPEECH_VIDEO.open("rb") as file:
        uploaded = (await client.post("/upload-video/", files={"file": ("new.mp4", file)})).json()
    assert uploaded["ui_language"] == "en"
    assert (await client.get(f"/video-status/{uploaded['video_id']}")).json()["ui_language"] == "en"
    with SPEECH_VIDEO.open("rb") as file:
        upper = await client.post("/upload-video/", params={"ui_language": " FR "}, files={"file": ("fr.mp4", file)})
    assert upper.json()["ui_language"] == "fr"
    for refused in ("xx", "english", "en-US", "a" * 5000):
        with SPEECH_VIDEO.open("rb") as file:
            response = await client.post(
                "/upload-video/", params={"ui_language": refused}, files={"file": ("x.mp4", file)}
            )
        assert response.status_code == 422, refused
        assert "ui_language" in response.json()["detail"]
    assert len((await client.get("/videos/")).json()) == 2
    assert len(LocalStorage(settings.files_dir).keys()) == 2


async def test_supported_languages_lists_what_the_bundled_english_model_transcribes(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/supported-languages/")
    assert response.status_code == 200
    answer = response.json()
    assert answer["default"] == "en"
    assert set(answer["languages"]) == set(WHISPER_LANGUAGES)
    assert answer["languages"]["en"] == {"name": "English", "native_name": "English", "flag": "🇺🇸", "enabled": True}
    assert answer["languages"]["ja"] == {"name": "Japanese", "native_name": "日本語", "flag": "🇯🇵", "enabled": False}
    assert answer["languages"]["jw"]["name"] == "Javanese"
    assert answer["languages"]["es"]["native_name"] == "Español"
    assert [code for code, language in answer["languages"].items() if language["enabled"]] == ["en"]
    assert all(language["name"] and language["native_name"] for language in answer["languages"].values())
    bundled = WhisperModel(model_location(Settings(_env_file=None).whisper_model), device="cpu", compute_type="int8")
    assert bundled.supported_languages == ["en"], "the rule agrees with faster-whisper's own"


async def test_a_multilingual_model_enables_every_language(tmp_path: Path, store: StoreDatabase) -> None:
    """A model folder as CTranslate2 writes it, judged by its vocabulary's size (51,865 tokens)."""
    folder = tmp_path / "whisper-small"
    folder.mkdir()
    (folder / "vocabulary.json").write_text(json.dumps([f"token{n}" for n in range(51_865)]))
    settings = Settings(
        _env_file=None, data_dir=tmp_path / "data", workers=0, whisper_model=str(folder), **store.settings
    )
    async with serving(settings) as http:
        languages = (await http.get("/supported-languages/")).json()["languages"]
    assert all(language["enabled"] for language in languages.values())
    for name, english_only in (("small.en", True), ("large-v3", False), ("bundled:tiny.en", True)):
        assert (transcription_languages(name) == ("en",)) is english_only, name


async def test_legacy_upload_refuses_what_the_new_upload_refuses(client: httpx.AsyncClient, tmp_path: Path) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video\n" * 100)
    with fake.open("rb") as file:
        assert (await client.post("/upload-video/", files={"file": ("fake.mp4", file)})).status_code == 415
    with SPEECH_VIDEO.open("rb") as file:
        response = await client.post("/upload-video/", params={"language": "klingon"}, files={"file": ("x.mp4", file)})
    assert response.status_code == 422


async def test_ask_question_answers_in_the_old_chat_row_shape(migrated: httpx.AsyncClient) -> None:
    response = await migrated.post(
        "/ask-question/", json={"video_id": 1, "question": "What does it say about the wörld?"}
    )
    assert response.status_code == 200
    row = response.json()
    assert set(row) == {"id", "video_id", "question", "answer", "timestamp", "language"}
    assert row["video_id"] == 1 and row["question"] == "What does it say about the wörld?"
    assert "Hello wörld" in row["answer"]
    history = (await migrated.get("/chat-history/1")).json()
    assert history[-1]["answer"] == row["answer"] and history[-1]["id"] == row["id"]
    new = (await migrated.get("/video/1")).json()
    assert new["id"] == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"video_id": 999, "question": "Anything?"}, 404),
        ({"video_id": "0123456789abcdef01234567", "question": "Anything?"}, 404),
        ({"video_id": 1, "question": ""}, 422),
        ({"question": "no video"}, 422),
    ],
)
async def test_ask_question_refuses_bad_input(migrated: httpx.AsyncClient, body: dict, status: int) -> None:
    response = await migrated.post("/ask-question/", json=body)
    assert response.status_code == status
    assert "detail" in response.json()


async def test_ask_question_about_a_video_not_processed_yet_is_409(client: httpx.AsyncClient) -> None:
    with SPEECH_VIDEO.open("rb") as file:
        uploaded = (await client.post("/upload-video/", files={"file": ("new.mp4", file)})).json()
    response = await client.post("/ask-question/", json={"video_id": uploaded["video_id"], "question": "Where?"})
    assert response.status_code == 409
    assert "pending" in response.json()["detail"] or "queued" in response.json()["detail"]
