"""CORS: pages from the origins in CORS_ORIGINS may call the API, errors included; others may not."""

import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from service.config import Settings
from service.videos.models import Transcript
from tests.conftest import SPEECH_VIDEO, insert_completed_video, serving
from tests.server import free_port, running_server
from tests.store import StoreDatabase

PAGE = "http://localhost:3000"
OTHER_PAGE = "http://localhost:4000"
SECRET = "c" * 48
MISSING = "0123456789abcdef01234567"


def cors_settings(tmp_path: Path, store: StoreDatabase, **overrides: object) -> Settings:
    values: dict[str, object] = {"workers": 0, "max_upload_mb": 8, "cors_origins": PAGE, **overrides}
    return Settings(_env_file=None, data_dir=tmp_path / "data", **store.settings, **values)


@pytest.fixture
async def page_client(tmp_path: Path, store: StoreDatabase) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(cors_settings(tmp_path, store)) as http:
        yield http


def preflight(method: str, origin: str = PAGE, headers: str | None = None) -> dict[str, str]:
    sent = {"Origin": origin, "Access-Control-Request-Method": method}
    return sent if headers is None else {**sent, "Access-Control-Request-Headers": headers}


def allows(response: httpx.Response, origin: str = PAGE) -> bool:
    return response.headers.get("access-control-allow-origin") == origin


def test_cors_origins_are_checked_at_start_up() -> None:
    assert Settings(_env_file=None).cors_origin_list == []
    spaced = Settings(_env_file=None, cors_origins=" http://LocalHost:3000 , https://app.example.com:8443,")
    assert spaced.cors_origin_list == ["http://localhost:3000", "https://app.example.com:8443"]
    assert Settings(_env_file=None, cors_origins="*").cors_origin_list == ["*"]
    for refused in ("http://localhost:3000/", "localhost:3000", "ftp://example.com", "http://a.example/page", "null"):
        with pytest.raises(ValidationError, match="is not an origin"):
            Settings(_env_file=None, cors_origins=refused)
    for refused in ("http://localhost:65536", "http://localhost:0", "http://localhost:03000", "http://localhost:"):
        with pytest.raises(ValidationError, match="is not an origin"):
            Settings(_env_file=None, cors_origins=refused)
    assert Settings(_env_file=None, cors_origins="http://localhost:443").cors_origin_list == ["http://localhost:443"]
    # A browser leaves its scheme's default port out of `Origin`, so an origin that names it never matches.
    for refused, written in (
        ("http://localhost:80", "http://localhost"),
        ("https://a.example:443", "https://a.example"),
    ):
        with pytest.raises(ValidationError, match=f"default port.*write {written}"):
            Settings(_env_file=None, cors_origins=refused)
    with pytest.raises(ValidationError, match="CORS_ORIGINS=\\* cannot be used with AUTH_ENABLED=true"):
        Settings(_env_file=None, cors_origins=f"{PAGE},*", auth_enabled=True, secret_key=SECRET)


def test_a_server_with_users_and_any_origin_refuses_to_start(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(free_port())]
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "AUTH_ENABLED": "true", "SECRET_KEY": SECRET}
    result = subprocess.run(command, env={**env, "CORS_ORIGINS": "*"}, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "CORS_ORIGINS=* cannot be used with AUTH_ENABLED=true" in result.stderr


async def test_preflights_are_answered_for_the_named_origin_only(page_client: httpx.AsyncClient) -> None:
    allowed = await page_client.options(
        "/videos", headers=preflight("POST", headers="authorization, content-type, x-api-key")
    )
    assert allowed.status_code == 200 and allows(allowed)
    assert {"DELETE", "PATCH", "POST", "PUT"} <= set(allowed.headers["access-control-allow-methods"].split(", "))
    allowed_headers = allowed.headers["access-control-allow-headers"].lower().split(", ")
    assert {"authorization", "x-api-key", "content-type", "range"} <= set(allowed_headers)
    assert "access-control-allow-credentials" not in allowed.headers
    media = await page_client.options(f"/videos/{MISSING}/media", headers=preflight("GET", headers="range"))
    assert media.status_code == 200 and allows(media)
    refusals = {
        "origin": preflight("POST", origin=OTHER_PAGE),
        "headers": preflight("POST", headers="x-unknown-header"),
        "method": preflight("TRACE"),
    }
    for what, headers in refusals.items():
        refused = await page_client.options("/videos", headers=headers)
        assert refused.status_code == 400, what
        assert refused.json() == {"detail": f"cross-origin request refused (see CORS_ORIGINS): disallowed {what}"}
    refused_origin = await page_client.options("/videos", headers=refusals["origin"])
    assert "access-control-allow-origin" not in refused_origin.headers


async def test_answers_carry_cors_headers_for_the_named_origin_only(page_client: httpx.AsyncClient) -> None:
    listed = await page_client.get("/videos", headers={"Origin": PAGE})
    assert listed.status_code == 200 and allows(listed)
    exposed = listed.headers["access-control-expose-headers"].lower().split(", ")
    assert {"content-range", "accept-ranges", "content-length", "retry-after"} <= set(exposed)
    assert "origin" in listed.headers["vary"].lower()
    other = await page_client.get("/videos", headers={"Origin": OTHER_PAGE})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers


async def test_errors_carry_cors_headers(page_client: httpx.AsyncClient) -> None:
    answers = [
        await page_client.get(f"/videos/{MISSING}", headers={"Origin": PAGE}),
        await page_client.get("/videos", params={"limit": 0}, headers={"Origin": PAGE}),
        await page_client.post("/ask-question/", content=b"{", headers={"Origin": PAGE, "content-type": "text/json"}),
        await page_client.get(f"/videos/{MISSING}/media", headers={"Origin": PAGE, "Range": "bytes=0-1"}),
        await page_client.post("/videos", content=b"x" * 100, headers={"Origin": PAGE, "content-length": "999999999"}),
    ]
    assert [answer.status_code for answer in answers] == [404, 422, 422, 404, 413]
    for answer in answers:
        assert allows(answer), answer.request.url
        assert answer.json()["detail"]


async def test_an_unauthenticated_page_sees_the_401(tmp_path: Path, store: StoreDatabase) -> None:
    settings = cors_settings(tmp_path, store, auth_enabled=True, secret_key=SECRET)
    async with serving(settings) as http:
        answer = await http.get("/videos", headers={"Origin": PAGE})
        assert answer.status_code == 401 and allows(answer)
        assert "www-authenticate" in answer.headers["access-control-expose-headers"].lower()
        assert (await http.options("/videos", headers=preflight("GET", headers="authorization"))).status_code == 200


async def test_the_old_pages_calls_with_an_origin_header(
    page_client: httpx.AsyncClient, speech_transcript: Transcript
) -> None:
    """What the old page calls, in its order: languages, upload, status, then a question about a
    processed video and its history."""
    origin = {"Origin": PAGE}
    languages = await page_client.get("/supported-languages/", headers=origin)
    assert languages.status_code == 200 and allows(languages)
    assert languages.json()["languages"]["en"]["enabled"] is True
    with SPEECH_VIDEO.open("rb") as file:
        uploaded = await page_client.post(
            "/upload-video/", params={"language": "en", "ui_language": "de"}, files={"file": file}, headers=origin
        )
    assert uploaded.status_code == 200 and allows(uploaded)
    status = await page_client.get(f"/video-status/{uploaded.json()['video_id']}", headers=origin)
    assert status.status_code == 200 and allows(status) and status.json()["ui_language"] == "de"
    processed = str((await insert_completed_video(speech_transcript)).id)
    asked = await page_client.post(
        "/ask-question/", json={"video_id": processed, "question": "Where does Clara live?"}, headers=origin
    )
    assert asked.status_code == 200 and allows(asked)
    history = await page_client.get(f"/chat-history/{processed}", headers=origin)
    assert allows(history) and history.json()[-1]["answer"] == asked.json()["answer"]
    for path in ("/videos/", f"/video/{processed}"):
        answer = await page_client.get(path, headers=origin)
        assert answer.status_code == 200 and allows(answer), path


async def test_without_cors_origins_there_is_no_cors(client: httpx.AsyncClient) -> None:
    answer = await client.get("/videos", headers={"Origin": PAGE})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers
    assert (await client.options("/videos", headers=preflight("GET"))).status_code == 405


def test_refusals_of_the_body_limits_carry_cors_headers_from_a_real_server(
    tmp_path: Path, store: StoreDatabase
) -> None:
    """The 413 and 408 that the body limits write themselves, before the application sees the
    request, reach the page too, and so does the 401 of a server with users on."""
    env = {**store.environment, "CORS_ORIGINS": PAGE, "MAX_UPLOAD_MB": "1", "BODY_IDLE_TIMEOUT_SECONDS": "0.5"}
    with running_server(tmp_path / "data", {**env, "AUTH_ENABLED": "true", "SECRET_KEY": SECRET}) as server:
        origin = {"Origin": PAGE}
        too_large = httpx.post(f"{server.base_url}/ask-question/", content=b"x" * 200_000, headers=origin)
        assert too_large.status_code == 413 and allows(too_large)
        unauthenticated = httpx.get(f"{server.base_url}/videos/{MISSING}/media", headers=origin)
        assert unauthenticated.status_code == 401 and allows(unauthenticated)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
            connection.sendall(
                b"POST /ask-question/ HTTP/1.1\r\nHost: x\r\nOrigin: " + PAGE.encode() + b"\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            answer = connection.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 408"), answer
        assert f"access-control-allow-origin: {PAGE}" in answer.lower()
