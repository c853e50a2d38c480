"""The videos API through httpx against the app on the store under test."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pymongo.errors import WriteError

from service.config import Settings
from service.main import create_app
from service.videos.models import Video
from tests.conftest import NO_AUDIO_VIDEO, SPEECH_VIDEO, sha256_of, upload
from tests.store import StoreDatabase


def stored_files(settings: Settings) -> list[Path]:
    return sorted(p for p in settings.files_dir.rglob("*") if p.is_file())


async def test_health_names_the_store_in_use(client: httpx.AsyncClient, store: StoreDatabase) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == store.kind


async def test_upload_queues_the_video_with_its_media_metadata(client: httpx.AsyncClient) -> None:
    response = await upload(client, SPEECH_VIDEO, language="en")
    assert response.status_code == 202
    video = response.json()
    assert video["status"] == "queued"
    assert len(video["id"]) == 24
    assert video["filename"] == "speech.mp4"
    assert video["file"] == {
        "size": SPEECH_VIDEO.stat().st_size,
        "sha256": sha256_of(SPEECH_VIDEO),
        "content_type": "video/mp4",
    }
    metadata = video["metadata"]
    assert metadata["duration"] == pytest.approx(34.9, abs=0.2)
    assert metadata["has_audio"] is True
    assert metadata["video"] == {"codec": "h264", "width": 160, "height": 120, "fps": 5.0}
    assert metadata["audio"] == {"codec": "aac", "sample_rate": 16000, "channels": 1}
    assert "mp4" in metadata["format"]
    assert metadata["bit_rate"] > 0


async def test_upload_of_a_video_without_audio_records_it(client: httpx.AsyncClient) -> None:
    response = await upload(client, NO_AUDIO_VIDEO)
    assert response.status_code == 202
    assert response.json()["metadata"]["has_audio"] is False
    assert response.json()["metadata"]["audio"] is None


async def test_upload_larger_than_a_chunk_keeps_size_and_sha256(
    client: httpx.AsyncClient, settings: Settings, large_video: Path
) -> None:
    assert large_video.stat().st_size > 2 * 1024 * 1024
    response = await upload(client, large_video)
    assert response.status_code == 202
    assert response.json()["file"]["size"] == large_video.stat().st_size
    assert response.json()["file"]["sha256"] == sha256_of(large_video)
    [stored] = stored_files(settings)
    assert sha256_of(stored) == sha256_of(large_video)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_upload_above_the_limit_is_413_and_leaves_nothing(
    client: httpx.AsyncClient, settings: Settings, large_video: Path, chunked: bool
) -> None:
    settings.max_upload_mb = 1
    boundary = "limit-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mkv"\r\n'
        "Content-Type: video/x-matroska\r\n\r\n"
    ).encode()
    body = head + large_video.read_bytes() + f"\r\n--{boundary}--\r\n".encode()

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = await client.post(
        "/videos",
        content=stream() if chunked else body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert stored_files(settings) == []
    assert (await client.get("/videos")).json()["items"] == []


async def test_text_file_named_mp4_is_415(client: httpx.AsyncClient, settings: Settings, tmp_path: Path) -> None:
    fake = tmp_path / "movie.mp4"
    fake.write_text("this is not a video\n" * 200)
    response = await upload(client, fake)
    assert response.status_code == 415
    assert stored_files(settings) == []


async def test_empty_file_is_415(client: httpx.AsyncClient, settings: Settings, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    response = await upload(client, empty)
    assert response.status_code == 415
    assert "empty" in response.json()["detail"]
    assert stored_files(settings) == []


async def test_truncated_mp4_is_415(client: httpx.AsyncClient, settings: Settings, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(SPEECH_VIDEO.read_bytes()[: SPEECH_VIDEO.stat().st_size // 2])
    response = await upload(client, truncated)
    assert response.status_code == 415
    assert stored_files(settings) == []


async def test_path_traversal_filename_is_display_text_only(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await upload(client, SPEECH_VIDEO, filename="../../etc/passwd")
    assert response.status_code == 202
    assert response.json()["filename"] == "../../etc/passwd"
    [stored] = stored_files(settings)
    assert stored.parent == settings.files_dir
    assert stored.name.isalnum()
    assert "passwd" not in stored.name


async def test_odd_unicode_filename_is_kept_as_display_text(client: httpx.AsyncClient) -> None:
    name = "vidéo ünïcødé <1> \\; rm -rf $(x) 日本.mp4"
    response = await upload(client, SPEECH_VIDEO, filename=name)
    assert response.status_code == 202
    assert response.json()["filename"] == name


async def test_missing_file_field_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/videos", data={"language": "en"}, files={"other": ("x.txt", b"abc")})
    assert response.status_code == 422
    assert "file" in response.json()["detail"]


async def test_body_that_is_not_multipart_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/videos", json={"file": "x"})
    assert response.status_code == 422


async def test_unknown_language_is_422_and_leaves_nothing(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await upload(client, SPEECH_VIDEO, language="klingon")
    assert response.status_code == 422
    assert "Whisper language code" in response.json()["detail"] and "klingon" not in response.json()["detail"]
    assert stored_files(settings) == []


async def test_list_is_newest_first_with_cursor_pages(client: httpx.AsyncClient) -> None:
    ids = [(await upload(client, SPEECH_VIDEO, filename=f"v{i}.mp4")).json()["id"] for i in range(5)]
    first = (await client.get("/videos", params={"limit": 2})).json()
    second = (await client.get("/videos", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    third = (await client.get("/videos", params={"limit": 2, "cursor": second["next_cursor"]})).json()
    listed = [item["id"] for page in (first, second, third) for item in page["items"]]
    assert listed == list(reversed(ids))
    assert third["next_cursor"] is None
    assert "segments" not in (first["items"][0]["transcript"] or {})
    assert "chat" not in first["items"][0]


async def test_list_filters_by_status(client: httpx.AsyncClient) -> None:
    await upload(client, SPEECH_VIDEO)
    assert len((await client.get("/videos", params={"status": "queued"})).json()["items"]) == 1
    assert (await client.get("/videos", params={"status": "completed"})).json()["items"] == []


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "many"}, {"status": "exploded"}, {"cursor": "not-a-cursor"}],
)
async def test_list_rejects_bad_parameters_with_422(client: httpx.AsyncClient, params: dict) -> None:
    response = await client.get("/videos", params=params)
    assert response.status_code == 422
    assert "detail" in response.json()


async def test_get_returns_the_video(client: httpx.AsyncClient) -> None:
    created = (await upload(client, SPEECH_VIDEO)).json()
    response = await client.get(f"/videos/{created['id']}")
    assert response.status_code == 200
    assert response.json()["id"] == created["id"]
    assert response.json()["metadata"] == created["metadata"]


@pytest.mark.parametrize("video_id", ["0123456789abcdef01234567", "not-an-id", "123", "zzzzzzzzzzzzzzzzzzzzzzzz"])
async def test_get_unknown_or_malformed_id_is_404(client: httpx.AsyncClient, video_id: str) -> None:
    response = await client.get(f"/videos/{video_id}")
    assert response.status_code == 404
    assert "detail" in response.json()


async def test_delete_removes_document_and_file(client: httpx.AsyncClient, settings: Settings) -> None:
    created = (await upload(client, SPEECH_VIDEO)).json()
    assert len(stored_files(settings)) == 1
    response = await client.delete(f"/videos/{created['id']}")
    assert response.status_code == 204
    assert stored_files(settings) == []
    assert (await client.get(f"/videos/{created['id']}")).status_code == 404


@pytest.mark.parametrize("video_id", ["0123456789abcdef01234567", "../etc"])
async def test_delete_unknown_id_is_404(client: httpx.AsyncClient, video_id: str) -> None:
    assert (await client.delete(f"/videos/{video_id}")).status_code == 404


async def test_a_video_without_a_stored_file_is_listed_shown_and_deleted(client: httpx.AsyncClient) -> None:
    video = Video(filename="migrated.mp4", file=None, status="completed")
    await video.insert()
    shown = await client.get(f"/videos/{video.id}")
    assert shown.status_code == 200
    assert shown.json()["file"] is None
    assert [item["file"] for item in (await client.get("/videos")).json()["items"]] == [None]
    reprocess = await client.post(f"/videos/{video.id}/reprocess")
    assert reprocess.status_code == 409
    assert "no stored file" in reprocess.json()["detail"]
    assert (await client.delete(f"/videos/{video.id}")).status_code == 204
    assert (await client.get(f"/videos/{video.id}")).status_code == 404


@pytest.mark.parametrize(
    "message, status",
    [("object to insert too large. size in bytes: 16777300, max size: 16777216", 507), ("bad value", 500)],
)
async def test_mongodbs_code_2_for_an_insert_past_16_mb_is_507(settings: Settings, message: str, status: int) -> None:
    """MongoDB refuses such an insert with code 2 (BadValue), a code it gives other refusals too."""
    app = create_app(settings)

    @app.post("/refused")
    async def refused() -> None:
        raise WriteError(message, code=2, details={"index": 0, "code": 2, "errmsg": message})

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.post("/refused")
    assert response.status_code == status
    assert "detail" in response.json()
