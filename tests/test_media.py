"""A video's file with HTTP Range, its thumbnail, and media tokens, with users off and on."""

import io
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import av
import httpx
import pytest

from service.config import Settings
from service.users import security
from service.users.models import User
from service.users.schemas import Registration
from service.users.service import register
from service.videos.models import Video
from tests.conftest import SPEECH_VIDEO, serving, upload
from tests.media import write_raw_video, write_tone
from tests.server import running_server
from tests.store import StoreDatabase

SECRET = "m" * 48
MISSING = "0123456789abcdef01234567"


def stored_thumbnails(settings: Settings) -> list[Path]:
    folder = settings.files_dir / ".thumbnails"
    return sorted(folder.iterdir()) if folder.is_dir() else []


async def uploaded(http: httpx.AsyncClient, path: Path, headers: dict[str, str] | None = None) -> str:
    response = await upload(http, path, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def image_size(jpeg: bytes) -> tuple[int, int]:
    """The size of the picture in a JPEG, as PyAV decodes it (it must decode)."""
    with av.open(io.BytesIO(jpeg)) as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


# Range, with users off.


async def test_ranges_answer_exactly_those_bytes_of_the_file(client: httpx.AsyncClient, large_video: Path) -> None:
    video_id = await uploaded(client, large_video)
    content = large_video.read_bytes()
    size = len(content)
    whole = await client.get(f"/videos/{video_id}/media")
    assert whole.status_code == 200
    assert whole.content == content
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/x-matroska"
    assert int(whole.headers["content-length"]) == size
    cases = {
        "bytes=0-0": (0, 0),
        "bytes=100-700000": (100, 700000),  # across several chunks of the read
        "bytes=1000000-": (1000000, size - 1),
        "bytes=-500": (size - 500, size - 1),
        f"bytes=-{size * 10}": (0, size - 1),
        "bytes=10-99999999999999999999999999999": (10, size - 1),
        "BYTES=5-9": (5, 9),
        f"bytes={size - 1}-{size - 1}": (size - 1, size - 1),
    }
    for header, (first, last) in cases.items():
        response = await client.get(f"/videos/{video_id}/media", headers={"Range": header})
        assert response.status_code == 206, header
        assert response.content == content[first : last + 1], header
        assert response.headers["content-range"] == f"bytes {first}-{last}/{size}", header
        assert int(response.headers["content-length"]) == last - first + 1, header
        assert response.headers["content-type"] == "video/x-matroska", header


async def test_a_range_past_the_end_is_416_with_the_size(client: httpx.AsyncClient) -> None:
    video_id = await uploaded(client, SPEECH_VIDEO)
    size = SPEECH_VIDEO.stat().st_size
    for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 10}", "bytes=-0", f"bytes={'9' * 40}-"):
        response = await client.get(f"/videos/{video_id}/media", headers={"Range": header})
        assert response.status_code == 416, header
        assert response.headers["content-range"] == f"bytes */{size}", header
        assert str(size) in response.json()["detail"], header


async def test_ranges_the_service_does_not_act_on_get_the_whole_file(client: httpx.AsyncClient) -> None:
    video_id = await uploaded(client, SPEECH_VIDEO)
    content = SPEECH_VIDEO.read_bytes()
    malformed = ("items=0-10", "bytes=5-1", "bytes=0-1,5-6", "bytes=abc", "bytes=-", "bytes=0x10-", b"bytes=\xb2-\xb3")
    for header in malformed:
        response = await client.get(f"/videos/{video_id}/media", headers={"Range": header})
        assert response.status_code == 200, header
        assert response.content == content, header
    etag = response.headers["etag"]
    stale = await client.get(f"/videos/{video_id}/media", headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == content
    current = await client.get(f"/videos/{video_id}/media", headers={"Range": "bytes=0-9", "If-Range": etag})
    assert current.status_code == 206 and current.content == content[:10]


async def test_head_answers_the_headers_alone(client: httpx.AsyncClient) -> None:
    video_id = await uploaded(client, SPEECH_VIDEO)
    size = SPEECH_VIDEO.stat().st_size
    whole = await client.head(f"/videos/{video_id}/media")
    assert whole.status_code == 200 and whole.content == b""
    assert int(whole.headers["content-length"]) == size and whole.headers["accept-ranges"] == "bytes"
    part = await client.head(f"/videos/{video_id}/media", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == b""
    assert part.headers["content-range"] == f"bytes 10-19/{size}" and part.headers["content-length"] == "10"
    assert (await client.head(f"/videos/{MISSING}/media")).status_code == 404


async def test_media_of_an_unknown_video_or_a_missing_file_is_404(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    for video_id in (MISSING, "not-an-id", "%00"):
        for route in ("media", "thumbnail", "media-token"):
            method = "POST" if route == "media-token" else "GET"
            response = await client.request(method, f"/videos/{video_id}/{route}")
            assert response.status_code == 404, (video_id, route)
    without_file = Video(filename="migrated.mp4")
    await without_file.insert()
    for route in ("media", "thumbnail"):
        response = await client.get(f"/videos/{without_file.id}/{route}")
        assert response.status_code == 404 and "no stored file" in response.json()["detail"]
    video_id = await uploaded(client, SPEECH_VIDEO)
    key = (await Video.get(video_id)).file.key
    (settings.files_dir / key).unlink()
    for route in ("media", "thumbnail"):
        response = await client.get(f"/videos/{video_id}/{route}")
        assert response.status_code == 404 and "not in storage" in response.json()["detail"]


async def test_media_through_a_real_server_streams_and_survives_clients_that_leave(
    tmp_path: Path, store: StoreDatabase, large_video: Path
) -> None:
    """uvicorn, not the test transport: ranges, HEAD, and downloads cut off part way, whose files
    must be closed (the server's open descriptors come back to where they were)."""
    content = large_video.read_bytes()
    with running_server(tmp_path / "data", store.environment) as server:
        with large_video.open("rb") as file:
            video_id = httpx.post(f"{server.base_url}/videos", files={"file": file}, timeout=30).json()["id"]
        url = f"{server.base_url}/videos/{video_id}/media"
        assert httpx.get(url, timeout=30).content == content
        part = httpx.get(url, headers={"Range": "bytes=300000-"}, timeout=30)
        assert part.status_code == 206 and part.content == content[300000:]
        head = httpx.head(url, headers={"Range": "bytes=0-99"}, timeout=30)
        assert head.status_code == 206 and head.headers["content-length"] == "100" and head.content == b""
        descriptors = len(os.listdir(f"/proc/{server.process.pid}/fd"))
        for _ in range(20):
            with httpx.stream("GET", url, timeout=30) as response:
                next(response.iter_raw(64 * 1024))
        assert httpx.get(url, headers={"Range": "bytes=-10"}, timeout=30).content == content[-10:]
        assert len(os.listdir(f"/proc/{server.process.pid}/fd")) <= descriptors + 2


# Thumbnails.


async def test_a_thumbnail_is_a_jpeg_of_the_video_kept_and_deleted_with_it(
    client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    wide = write_raw_video(tmp_path / "wide.mkv", frames=3, width=640, height=360)
    expected = {SPEECH_VIDEO: (160, 120), wide: (320, 180)}
    for path, size in expected.items():
        video_id = await uploaded(client, path)
        first = await client.get(f"/videos/{video_id}/thumbnail")
        assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
        assert image_size(first.content) == size
        key = (await Video.get(video_id)).file.key
        kept = settings.files_dir / ".thumbnails" / f"{key}.jpg"
        assert kept.read_bytes() == first.content
        made_at = kept.stat().st_mtime_ns
        again = await client.get(f"/videos/{video_id}/thumbnail")
        assert again.content == first.content and kept.stat().st_mtime_ns == made_at
        assert (await client.delete(f"/videos/{video_id}")).status_code == 204
        assert not kept.exists()
    assert stored_thumbnails(settings) == []


async def test_an_audio_file_has_no_thumbnail(client: httpx.AsyncClient, settings: Settings, tmp_path: Path) -> None:
    video_id = await uploaded(client, write_tone(tmp_path / "tone.wav"))
    response = await client.get(f"/videos/{video_id}/thumbnail")
    assert response.status_code == 404 and "audio only" in response.json()["detail"]
    assert stored_thumbnails(settings) == []
    media = await client.get(f"/videos/{video_id}/media", headers={"Range": "bytes=0-3"})
    assert media.status_code == 206 and media.content == b"RIFF" and media.headers["content-type"] == "audio/wav"


async def test_a_file_whose_frames_do_not_decode_has_no_thumbnail(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    video_id = await uploaded(client, SPEECH_VIDEO)
    (settings.files_dir / (await Video.get(video_id)).file.key).write_bytes(b"\0" * 4096)  # damaged on disk
    response = await client.get(f"/videos/{video_id}/thumbnail")
    assert response.status_code == 404 and "could be decoded" in response.json()["detail"]
    assert stored_thumbnails(settings) == []


async def test_thumbnails_left_by_a_deleted_file_go_at_the_next_start(settings: Settings) -> None:
    async with serving(settings) as http:
        video_id = await uploaded(http, SPEECH_VIDEO)
        assert (await http.get(f"/videos/{video_id}/thumbnail")).status_code == 200
        key = (await Video.get(video_id)).file.key
    (settings.files_dir / key).unlink()  # as if the file went while its thumbnail was being made
    assert len(stored_thumbnails(settings)) == 1
    async with serving(settings):
        assert stored_thumbnails(settings) == []


# Media tokens and privacy, with users on.


@dataclass
class Users:
    http: httpx.AsyncClient
    settings: Settings
    tokens: dict[str, str]

    def as_(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    async def media_token(self, name: str, video_id: str) -> str:
        response = await self.http.post(f"/videos/{video_id}/media-token", headers=self.as_(name))
        assert response.status_code == 200, response.text
        return response.json()["token"]


@pytest.fixture
async def users(tmp_path: Path, store: StoreDatabase) -> AsyncIterator[Users]:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        workers=0,
        max_upload_mb=8,
        auth_enabled=True,
        secret_key=SECRET,
        **store.settings,
    )
    async with serving(settings) as http:
        tokens = {}
        for name in ("alice", "bob"):
            registration = Registration(username=name, email=f"{name}@example.com", password=f"{name}-password-1")
            user = await register(settings, registration)
            tokens[name] = security.create_access_token(str(user.id), user.token_version, SECRET, 5)
        yield Users(http, settings, tokens)


async def test_a_media_token_opens_that_videos_media_and_nothing_else(users: Users) -> None:
    video_id = await uploaded(users.http, SPEECH_VIDEO, users.as_("alice"))
    other_id = await uploaded(users.http, SPEECH_VIDEO, users.as_("alice"))
    issued = await users.http.post(f"/videos/{video_id}/media-token", headers=users.as_("alice"))
    assert issued.status_code == 200 and set(issued.json()) == {"token", "expires_at"}
    token = issued.json()["token"]
    part = await users.http.get(f"/videos/{video_id}/media", params={"token": token}, headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == SPEECH_VIDEO.read_bytes()[:10]
    thumbnail = await users.http.get(f"/videos/{video_id}/thumbnail", params={"token": token})
    assert thumbnail.status_code == 200 and image_size(thumbnail.content) == (160, 120)
    spelled = await users.http.get(f"/videos/{video_id.upper()}/media", params={"token": token})
    assert spelled.status_code == 200  # the same video, its id in capitals as every other route reads it
    refused = {
        "another video": users.http.get(f"/videos/{other_id}/media", params={"token": token}),
        "as a bearer token": users.http.get(f"/videos/{video_id}", headers={"Authorization": f"Bearer {token}"}),
        "as a bearer token for media": users.http.get(
            f"/videos/{video_id}/media", headers={"Authorization": f"Bearer {token}"}
        ),
        "to make more tokens": users.http.post(
            f"/videos/{video_id}/media-token", headers={"Authorization": f"Bearer {token}"}
        ),
        "an access token as a media token": users.http.get(
            f"/videos/{video_id}/media", params={"token": users.tokens["alice"]}
        ),
        "tampered": users.http.get(f"/videos/{video_id}/media", params={"token": token[:-3] + "AAA"}),
        "garbage": users.http.get(f"/videos/{video_id}/thumbnail", params={"token": "not-a-token"}),
        "no credentials": users.http.get(f"/videos/{video_id}/media"),
    }
    for case, request in refused.items():
        response = await request
        assert response.status_code == 401, (case, response.text)
        assert response.json()["detail"], case


async def test_expired_and_revoked_media_tokens_stop_working(users: Users) -> None:
    video_id = await uploaded(users.http, SPEECH_VIDEO, users.as_("alice"))
    alice = await User.find_one(User.username == "alice")
    expired = security.create_media_token(str(alice.id), alice.token_version, video_id, SECRET, minutes=-1).token
    response = await users.http.get(f"/videos/{video_id}/media", params={"token": expired})
    assert response.status_code == 401 and "expired" in response.json()["detail"]
    token = await users.media_token("alice", video_id)
    assert (await users.http.get(f"/videos/{video_id}/media", params={"token": token})).status_code == 200
    users_collection = User.get_motor_collection()
    await users_collection.update_one({"_id": alice.id}, {"$inc": {"token_version": 1}})  # a password change
    assert (await users.http.get(f"/videos/{video_id}/media", params={"token": token})).status_code == 401
    alice = await User.get(alice.id)
    fresh = security.create_media_token(str(alice.id), alice.token_version, video_id, SECRET, minutes=5).token
    assert (await users.http.get(f"/videos/{video_id}/thumbnail", params={"token": fresh})).status_code == 200
    await users_collection.update_one({"_id": alice.id}, {"$set": {"is_active": False}})
    assert (await users.http.get(f"/videos/{video_id}/thumbnail", params={"token": fresh})).status_code == 401


async def test_media_follows_the_videos_privacy(users: Users) -> None:
    private = await uploaded(users.http, SPEECH_VIDEO, users.as_("alice"))
    public = await uploaded(users.http, SPEECH_VIDEO, users.as_("alice"))
    await users.http.patch(f"/videos/{public}", json={"is_public": True}, headers=users.as_("alice"))
    for route in ("media", "thumbnail"):
        assert (await users.http.get(f"/videos/{private}/{route}", headers=users.as_("bob"))).status_code == 404
        assert (await users.http.get(f"/videos/{public}/{route}", headers=users.as_("bob"))).status_code == 200
        assert (await users.http.get(f"/videos/{private}/{route}", headers=users.as_("alice"))).status_code == 200
    assert (await users.http.post(f"/videos/{private}/media-token", headers=users.as_("bob"))).status_code == 404
    bobs_token = await users.media_token("bob", public)
    assert (await users.http.get(f"/videos/{public}/media", params={"token": bobs_token})).status_code == 200
    await users.http.patch(f"/videos/{public}", json={"is_public": False}, headers=users.as_("alice"))
    assert (await users.http.get(f"/videos/{public}/media", params={"token": bobs_token})).status_code == 404


async def test_without_users_the_token_route_answers_and_media_needs_nothing(client: httpx.AsyncClient) -> None:
    video_id = await uploaded(client, SPEECH_VIDEO)
    issued = await client.post(f"/videos/{video_id}/media-token")
    assert issued.status_code == 200 and issued.json()["token"] and issued.json()["expires_at"]
    for token in (issued.json()["token"], "anything"):
        assert (await client.get(f"/videos/{video_id}/media", params={"token": token})).status_code == 200
    assert (await client.get(f"/videos/{video_id}/thumbnail")).status_code == 200


def test_media_tokens_stay_out_of_the_access_log(tmp_path: Path, store: StoreDatabase) -> None:
    """However the client spells the parameter's name: the service decodes `%74oken` to `token`
    and reads the token, so the log must not show it either."""
    env = {**store.environment, "AUTH_ENABLED": "true", "SECRET_KEY": SECRET}
    token = "secret-looking-media-token-value"
    spellings = ("token", "%74oken", "tok%65n", "%74%6F%6B%65%6E")
    with running_server(tmp_path / "data", env) as server:
        for name in spellings:
            response = httpx.get(f"{server.base_url}/videos/{MISSING}/media?x=1&{name}={token}", timeout=10)
            assert response.status_code == 401
            assert response.json()["detail"].startswith("the media token is invalid")  # the token was read
        response = httpx.get(f"{server.base_url}/videos/{MISSING}/media", params={"token": token, "x": "1"})
        assert response.status_code == 401
        server.stop()
        log = server.log()
    assert f"/videos/{MISSING}/media?token=[hidden]&x=1" in log
    for name in spellings:
        assert f"/videos/{MISSING}/media?x=1&{name}=[hidden] " in log
    assert token not in log
