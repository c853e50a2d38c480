"""Users, ownership and privacy with AUTH_ENABLED=true."""

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from beanie import PydanticObjectId
from pydantic import ValidationError

from service.clock import utc_now
from service.config import Settings
from service.db.embedded import EmbeddedStore
from service.users import security
from service.users.models import LoginThrottle, User
from service.users.schemas import Registration
from service.users.service import register
from service.videos.models import Transcript, Video
from tests.conftest import SPEECH_VIDEO, insert_completed_video, serving
from tests.server import free_port, running_server
from tests.store import StoreDatabase

SECRET = "s" * 48
PASSWORDS = {"admin": "admin-password-1", "alice": "alice-password-1", "bob": "bob-password-12"}


def auth_settings(tmp_path: Path, store: StoreDatabase, **overrides: object) -> Settings:
    values = {"auth_enabled": True, "secret_key": SECRET, "workers": 0, "login_max_failures": 3, **overrides}
    return Settings(_env_file=None, data_dir=tmp_path / "data", **store.settings, **values)


@dataclass
class World:
    http: httpx.AsyncClient
    settings: Settings
    tokens: dict[str, str]

    def as_(self, name: str | None) -> dict[str, str]:
        return {} if name is None else {"Authorization": f"Bearer {self.tokens[name]}"}


async def sign_in(http: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await http.post("/auth/token", data={"username": username, "password": password})


@pytest.fixture
def app_store() -> EmbeddedStore:
    """The embedded store the app under test opened (its Beanie models are bound to it)."""
    return LoginThrottle.get_motor_collection()._embedded


@pytest.fixture
async def world(tmp_path: Path, store: StoreDatabase) -> AsyncIterator[World]:
    settings = auth_settings(tmp_path, store)
    async with serving(settings) as http:
        await register(
            settings,
            Registration(username="admin", email="admin@example.com", password=PASSWORDS["admin"], is_admin=True),
        )
        tokens = {"admin": (await sign_in(http, "admin", PASSWORDS["admin"])).json()["access_token"]}
        for name in ("alice", "bob"):
            response = await http.post(
                "/auth/register",
                json={"username": name, "email": f"{name}@example.com", "password": PASSWORDS[name]},
                headers={"Authorization": f"Bearer {tokens['admin']}"},
            )
            assert response.status_code == 201, response.text
            tokens[name] = (await sign_in(http, name, PASSWORDS[name])).json()["access_token"]
        yield World(http, settings, tokens)


async def owned_video(name: str, transcript: Transcript, public: bool = False) -> str:
    video = await insert_completed_video(transcript, f"{name}-{'public' if public else 'private'}.mp4")
    owner = await User.find_one(User.username == name)
    await Video.get_motor_collection().update_one(
        {"_id": video.id}, {"$set": {"owner_id": owner.id, "is_public": public}}
    )
    return str(video.id)


MISSING = "0123456789abcdef01234567"

# For bob: his own private video, alice's private one, alice's public one, and one that does not exist.
ROUTES = [
    ("GET", "/videos/{id}", None, {"own": 200, "private": 404, "public": 200, "missing": 404}),
    ("PATCH", "/videos/{id}", {"filename": "renamed.mp4"}, {"own": 200, "private": 404, "public": 403, "missing": 404}),
    ("POST", "/videos/{id}/reprocess", None, {"own": 202, "private": 404, "public": 403, "missing": 404}),
    ("GET", "/videos/{id}/transcript?format=srt", None, {"own": 200, "private": 404, "public": 200, "missing": 404}),
    ("GET", "/videos/{id}/events", None, {"own": 200, "private": 404, "public": 200, "missing": 404}),
    (
        "POST",
        "/videos/{id}/chat",
        {"question": "Where does Clara live?"},
        {"own": 201, "private": 404, "public": 403, "missing": 404},
    ),
    ("GET", "/videos/{id}/chat", None, {"own": 200, "private": 404, "public": 200, "missing": 404}),
    ("POST", "/videos/{id}/summarize", None, {"own": 200, "private": 404, "public": 403, "missing": 404}),
    ("DELETE", "/videos/{id}", None, {"own": 204, "private": 404, "public": 403, "missing": 404}),
    ("GET", "/video/{id}", None, {"own": 200, "private": 404, "public": 200, "missing": 404}),
    ("GET", "/video-status/{id}", None, {"own": 200, "private": 404, "public": 200, "missing": 404}),
    ("GET", "/chat-history/{id}", None, {"own": 200, "private": 404, "public": 200, "missing": 404}),
    (
        "POST",
        "/ask-question/",
        {"video_id": "{id}", "question": "Where does Clara live?"},
        {"own": 200, "private": 404, "public": 403, "missing": 404},
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "expected"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
async def test_every_route_for_own_private_public_and_missing_videos(
    world: World, speech_transcript: Transcript, method: str, path: str, body: dict | None, expected: dict[str, int]
) -> None:
    videos = {
        "own": await owned_video("bob", speech_transcript),
        "private": await owned_video("alice", speech_transcript),
        "public": await owned_video("alice", speech_transcript, public=True),
        "missing": MISSING,
    }
    for case, video_id in videos.items():
        url = path.format(id=video_id)
        sent = None if body is None else {key: value.format(id=video_id) for key, value in body.items()}
        anonymous = await world.http.request(method, url, json=sent)
        assert anonymous.status_code == 401, (case, anonymous.text)
        response = await world.http.request(method, url, json=sent, headers=world.as_("bob"))
        assert response.status_code == expected[case], (case, response.text)
        if response.status_code in (403, 404):
            assert "detail" in response.json()
    sent = None if body is None else {key: value.format(id=videos["private"]) for key, value in body.items()}
    admin = await world.http.request(method, path.format(id=videos["private"]), json=sent, headers=world.as_("admin"))
    assert admin.status_code == expected["own"]


async def test_list_search_and_stats_never_show_another_users_private_video(
    world: World, speech_transcript: Transcript
) -> None:
    own = await owned_video("bob", speech_transcript)
    private = await owned_video("alice", speech_transcript)
    public = await owned_video("alice", speech_transcript, public=True)
    for name, expected in (("bob", {own, public}), ("alice", {private, public}), ("admin", {own, private, public})):
        listed = {v["id"] for v in (await world.http.get("/videos", headers=world.as_(name))).json()["items"]}
        found = {
            h["video"]["id"]
            for h in (await world.http.get("/search", params={"q": "Lisbon"}, headers=world.as_(name))).json()["items"]
        }
        stats = (await world.http.get("/stats", headers=world.as_(name))).json()
        legacy = {v["id"] for v in (await world.http.get("/videos/", headers=world.as_(name))).json()}
        assert listed == found == legacy == expected, name
        assert stats["total_videos"] == len(expected), name
    for path in ("/videos", "/videos/", "/search?q=Lisbon", "/stats"):
        assert (await world.http.get(path)).status_code == 401


async def test_uploads_belong_to_the_uploader_and_start_private(world: World) -> None:
    with SPEECH_VIDEO.open("rb") as file:
        uploaded = await world.http.post("/videos", files={"file": ("mine.mp4", file)}, headers=world.as_("alice"))
    assert uploaded.status_code == 202
    video = uploaded.json()
    alice = await User.find_one(User.username == "alice")
    assert video["owner_id"] == str(alice.id) and video["is_public"] is False
    assert (await world.http.get(f"/videos/{video['id']}", headers=world.as_("bob"))).status_code == 404
    made_public = await world.http.patch(f"/videos/{video['id']}", json={"is_public": True}, headers=world.as_("alice"))
    assert made_public.json()["is_public"] is True
    assert (await world.http.get(f"/videos/{video['id']}", headers=world.as_("bob"))).status_code == 200
    with SPEECH_VIDEO.open("rb") as file:
        assert (await world.http.post("/videos", files={"file": ("x.mp4", file)})).status_code == 401


async def test_health_needs_no_credentials(world: World) -> None:
    assert (await world.http.get("/health")).status_code == 200


async def test_me_and_api_keys(world: World) -> None:
    me = (await world.http.get("/auth/me", headers=world.as_("alice"))).json()
    assert me["username"] == "alice" and me["is_admin"] is False and "password" not in str(me)
    created = (await world.http.post("/auth/api-keys", json={"name": "script"}, headers=world.as_("alice"))).json()
    key = created["key"]
    assert key.startswith("va_") and key.startswith(created["prefix"])
    with_key = await world.http.get("/auth/me", headers={"X-API-Key": key})
    assert with_key.json()["username"] == "alice"
    listed = (await world.http.get("/auth/api-keys", headers=world.as_("alice"))).json()
    assert [k["id"] for k in listed] == [created["id"]] and key not in str(listed) and listed[0]["last_used_at"]
    assert (await world.http.delete(f"/auth/api-keys/{created['id']}", headers=world.as_("bob"))).status_code == 404
    assert (await world.http.delete(f"/auth/api-keys/{created['id']}", headers=world.as_("alice"))).status_code == 204
    assert (await world.http.get("/auth/me", headers={"X-API-Key": key})).status_code == 401


@pytest.mark.parametrize("kind", ["expired", "tampered", "other-secret", "garbage", "unknown-key"])
async def test_bad_credentials_are_401(world: World, kind: str) -> None:
    alice = await User.find_one(User.username == "alice")
    token = world.tokens["alice"]
    headers = {
        "expired": {"Authorization": f"Bearer {security.create_access_token(str(alice.id), 0, SECRET, minutes=-1)}"},
        "tampered": {"Authorization": f"Bearer {token[:-4]}{'AAAA' if not token.endswith('AAAA') else 'BBBB'}"},
        "other-secret": {"Authorization": f"Bearer {security.create_access_token(str(alice.id), 0, 'o' * 48, 5)}"},
        "garbage": {"Authorization": "Bearer not.a.token"},
        "unknown-key": {"X-API-Key": security.new_api_key()},
    }[kind]
    response = await world.http.get("/videos", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_deactivated_users_token_and_key_stop_working(world: World) -> None:
    key = (await world.http.post("/auth/api-keys", json={"name": "k"}, headers=world.as_("bob"))).json()["key"]
    await User.get_motor_collection().update_one({"username": "bob"}, {"$set": {"is_active": False}})
    assert (await world.http.get("/videos", headers=world.as_("bob"))).status_code == 401
    assert (await world.http.get("/videos", headers={"X-API-Key": key})).status_code == 401
    assert (await sign_in(world.http, "bob", PASSWORDS["bob"])).status_code == 401


async def test_repeated_failed_logins_are_slowed_down(world: World) -> None:
    for _ in range(3):
        assert (await sign_in(world.http, "alice", "wrong-password")).status_code == 401
    locked = await sign_in(world.http, "alice", "wrong-password")
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
    assert (await sign_in(world.http, "alice", PASSWORDS["alice"])).status_code == 429
    assert (await sign_in(world.http, "bob", PASSWORDS["bob"])).status_code == 200, (
        "another user from the same address still gets in"
    )


async def test_failures_from_one_address_across_usernames_are_slowed_down(world: World) -> None:
    for n in range(3 + 4):
        assert (await sign_in(world.http, f"nobody{n}", "wrong-password")).status_code == 401
    assert (await sign_in(world.http, "nobody-else", "wrong-password")).status_code == 429


async def test_registration(world: World, tmp_path: Path) -> None:
    body = {"username": "carol", "email": "carol@example.com", "password": "carol-password"}
    assert (await world.http.post("/auth/register", json=body)).status_code == 403
    assert (await world.http.post("/auth/register", json=body, headers=world.as_("bob"))).status_code == 403
    short = await world.http.post("/auth/register", json={**body, "password": "short"}, headers=world.as_("admin"))
    assert short.status_code == 422 and "10 characters" in short.json()["detail"]
    assert (await world.http.post("/auth/register", json=body, headers=world.as_("admin"))).status_code == 201
    again = await world.http.post("/auth/register", json={**body, "username": "carol2"}, headers=world.as_("admin"))
    assert again.status_code == 409
    assert (
        await world.http.post("/auth/register", json={**body, "username": "../x"}, headers=world.as_("admin"))
    ).status_code == 422


async def test_open_registration_lets_anyone_in_but_not_as_admin(tmp_path: Path, store: StoreDatabase) -> None:
    async with serving(auth_settings(tmp_path, store, allow_registration=True)) as http:
        body = {"username": "dave", "email": "dave@example.com", "password": "dave-password"}
        assert (await http.post("/auth/register", json=body)).status_code == 201
        admin = {"username": "eve", "email": "eve@example.com", "password": "eve-password1", "is_admin": True}
        assert (await http.post("/auth/register", json=admin)).status_code == 403


async def test_passwords_and_keys_never_reach_a_response_or_the_log(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    responses = [
        await sign_in(world.http, "alice", PASSWORDS["alice"]),
        await sign_in(world.http, "alice", "a-wrong-secret-guess"),
        await world.http.post(
            "/auth/register",
            json={"username": "frank", "email": "frank@example.com", "password": "frank-secret-pw"},
            headers=world.as_("admin"),
        ),
    ]
    created = await world.http.post("/auth/api-keys", json={"name": "ci"}, headers=world.as_("alice"))
    key = created.json()["key"]
    responses += [
        await world.http.get("/auth/api-keys", headers={"X-API-Key": key}),
        await world.http.get("/auth/me", headers={"X-API-Key": key}),
        await world.http.get("/videos", headers={"X-API-Key": key + "x"}),
    ]
    secrets = [*PASSWORDS.values(), "a-wrong-secret-guess", "frank-secret-pw", key, SECRET]
    for response in responses:
        assert not any(secret in response.text for secret in secrets), response.text
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "failed login" in logged
    assert not any(secret in logged for secret in secrets)


def test_auth_without_a_strong_secret_key_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY of at least 32 bytes"):
        Settings(_env_file=None, auth_enabled=True)
    with pytest.raises(ValidationError, match="SECRET_KEY of at least 32 bytes"):
        Settings(_env_file=None, auth_enabled=True, secret_key="short-but-secret")
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(free_port())]
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "AUTH_ENABLED": "true", "SECRET_KEY": "short-but-secret"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "SECRET_KEY of at least 32 bytes" in result.stderr
    assert "short-but-secret" not in result.stderr + result.stdout


def test_single_user_mode_on_a_public_address_warns_loudly(tmp_path: Path, store: StoreDatabase) -> None:
    with running_server(tmp_path / "data", store.environment) as loopback:
        assert "AUTH_ENABLED=false while listening" not in loopback.log()
    port = free_port()
    command = [sys.executable, "-m", "service.cli", "serve", "--host", "0.0.0.0", "--port", str(port)]
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path / "public"), "WORKERS": "0", **store.environment}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output = ""
        for line in process.stdout:
            output += line
            if "Uvicorn running" in line or "Application startup complete" in line:
                break
        assert "AUTH_ENABLED=false while listening on 0.0.0.0" in output
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.embedded_only
async def test_old_failures_are_forgotten(world: World, app_store: EmbeddedStore) -> None:
    """The embedded store's TTL pass, run now (MongoDB's runs once a minute, on its own)."""
    for _ in range(3):
        await sign_in(world.http, "alice", "wrong-password")
    assert (await sign_in(world.http, "alice", PASSWORDS["alice"])).status_code == 429
    an_hour_ago = utc_now() - timedelta(hours=1, seconds=1)
    await LoginThrottle.get_motor_collection().update_many({}, {"$set": {"expires_at": an_hour_ago}})
    assert await app_store.run(app_store.expire_documents) >= 1
    assert await LoginThrottle.get_motor_collection().count_documents({}) == 0
    assert (await sign_in(world.http, "alice", "wrong-password")).status_code == 401, "a fresh count, not a lock"
    assert (await sign_in(world.http, "alice", PASSWORDS["alice"])).status_code == 200


def test_fifty_concurrent_wrong_passwords_get_at_most_the_allowed_checks(tmp_path: Path, store: StoreDatabase) -> None:
    """A real server: the attempt is counted before the slow password check, so a burst cannot
    slip fifty checks past a limit of five."""
    data_dir = tmp_path / "data"
    env = {**store.environment, "AUTH_ENABLED": "true", "SECRET_KEY": SECRET, "LOGIN_MAX_FAILURES": "5"}
    create = [sys.executable, "-m", "service.cli", "create-user", "--username", "zoe", "--email", "z@example.com"]
    subprocess.run(
        [*create, "--password-stdin"],
        input="zoe-password-1\n",
        env={**os.environ, "DATA_DIR": str(data_dir), **env},
        check=True,
        capture_output=True,
        text=True,
    )
    with running_server(data_dir, env) as server:
        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(
                pool.map(
                    lambda n: (
                        httpx.post(
                            f"{server.base_url}/auth/token",
                            data={"username": "zoe", "password": f"guess-{n}"},
                            timeout=60,
                        ).status_code
                    ),
                    range(50),
                )
            )
        checked = server.log().count("failed login for 'zoe'")
        right = httpx.post(f"{server.base_url}/auth/token", data={"username": "zoe", "password": "zoe-password-1"})
    assert statuses.count(401) == checked <= 5
    assert statuses.count(429) == 50 - checked
    assert right.status_code == 429, "the account waits out its lock even for the right password"


async def test_a_username_no_account_can_have_is_refused_before_anything_is_stored(world: World) -> None:
    throttles = LoginThrottle.get_motor_collection()
    before = await throttles.find({}).to_list(None)
    for username in ("x" * 900_000, "a" * 41, "../etc", ""):
        response = await sign_in(world.http, username, "whatever-password")
        assert response.status_code in (401, 413, 422)  # 413: 900,000 characters are over MAX_JSON_BODY_KB
    assert await throttles.find({}).to_list(None) == before


async def test_only_a_password_login_creates_api_keys(world: World) -> None:
    key = (await world.http.post("/auth/api-keys", json={"name": "ci"}, headers=world.as_("alice"))).json()["key"]
    by_key = await world.http.post("/auth/api-keys", json={"name": "minted"}, headers={"X-API-Key": key})
    assert by_key.status_code == 403 and "password login" in by_key.json()["detail"]
    listed = (await world.http.get("/auth/api-keys", headers={"X-API-Key": key})).json()
    assert [k["name"] for k in listed] == ["ci"]


async def test_admins_deactivate_reactivate_and_reset_passwords(world: World) -> None:
    bob = (await world.http.get("/auth/me", headers=world.as_("bob"))).json()
    key = (await world.http.post("/auth/api-keys", json={"name": "k"}, headers=world.as_("bob"))).json()["key"]
    assert (await world.http.get("/auth/users", headers=world.as_("bob"))).status_code == 403
    assert (await world.http.post(f"/auth/users/{bob['id']}/deactivate", headers=world.as_("alice"))).status_code == 403
    names = [user["username"] for user in (await world.http.get("/auth/users", headers=world.as_("admin"))).json()]
    assert names == ["admin", "alice", "bob"]

    deactivated = await world.http.post(f"/auth/users/{bob['id']}/deactivate", headers=world.as_("admin"))
    assert deactivated.status_code == 200 and deactivated.json()["is_active"] is False
    for credentials in (world.as_("bob"), {"X-API-Key": key}):
        assert (await world.http.get("/auth/me", headers=credentials)).status_code == 401
    assert (await sign_in(world.http, "bob", PASSWORDS["bob"])).status_code == 401
    admin = (await world.http.get("/auth/me", headers=world.as_("admin"))).json()
    assert (
        await world.http.post(f"/auth/users/{admin['id']}/deactivate", headers=world.as_("admin"))
    ).status_code == 409
    assert (await world.http.post(f"/auth/users/{MISSING}/deactivate", headers=world.as_("admin"))).status_code == 404

    assert (await world.http.post(f"/auth/users/{bob['id']}/reactivate", headers=world.as_("admin"))).status_code == 200
    assert (await world.http.get("/auth/me", headers={"X-API-Key": key})).status_code == 401, "revoked for good"
    assert (await sign_in(world.http, "bob", PASSWORDS["bob"])).status_code == 200
    reset = {"new_password": "bob-new-password"}
    assert (
        await world.http.put(f"/auth/users/{bob['id']}/password", json=reset, headers=world.as_("admin"))
    ).status_code == 204
    assert (await world.http.get("/auth/me", headers=world.as_("bob"))).status_code == 401, "older tokens are revoked"
    assert (await sign_in(world.http, "bob", PASSWORDS["bob"])).status_code == 401
    assert (await sign_in(world.http, "bob", "bob-new-password")).status_code == 200
    short = await world.http.put(
        f"/auth/users/{bob['id']}/password", json={"new_password": "x"}, headers=world.as_("admin")
    )
    assert short.status_code == 422


async def test_users_change_their_own_password_and_older_tokens_stop_working(world: World) -> None:
    other_session = (await sign_in(world.http, "alice", PASSWORDS["alice"])).json()["access_token"]
    wrong = {"current_password": "not-it-at-all", "new_password": "alice-new-password"}
    assert (await world.http.put("/auth/me/password", json=wrong, headers=world.as_("alice"))).status_code == 401
    change = {"current_password": PASSWORDS["alice"], "new_password": "alice-new-password"}
    changed = await world.http.put("/auth/me/password", json=change, headers=world.as_("alice"))
    assert changed.status_code == 200
    fresh = {"Authorization": f"Bearer {changed.json()['access_token']}"}
    assert (await world.http.get("/auth/me", headers=fresh)).status_code == 200
    for old in (world.as_("alice"), {"Authorization": f"Bearer {other_session}"}):
        assert (await world.http.get("/auth/me", headers=old)).status_code == 401
    assert (await sign_in(world.http, "alice", "alice-new-password")).status_code == 200


def test_accounts_from_the_command_line(tmp_path: Path, store: StoreDatabase) -> None:
    service = {**store.environment, "AUTH_ENABLED": "true", "SECRET_KEY": SECRET}
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), **service}

    def cli(*args: str, password: str | None = None) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "service.cli", *args]
        return subprocess.run(command, input=password, env=env, capture_output=True, text=True, timeout=60)

    assert (
        cli(
            "create-user",
            "--username",
            "ops",
            "--email",
            "o@example.com",
            "--password-stdin",
            password="ops-password-1\n",
        ).returncode
        == 0
    )
    assert "deactivated" in cli("deactivate-user", "ops").stdout
    assert "reactivated" in cli("reactivate-user", "OPS").stdout
    assert cli("reset-password", "ops", "--password-stdin", password="ops-password-2\n").returncode == 0
    missing = cli("deactivate-user", "nobody")
    assert missing.returncode != 0 and "no user named 'nobody'" in missing.stderr
    assert "needs at least" in cli("reset-password", "ops", "--password-stdin", password="short\n").stderr

    with running_server(tmp_path / "data", service) as server:
        token = httpx.post(f"{server.base_url}/auth/token", data={"username": "ops", "password": "ops-password-2"})
        assert token.status_code == 200


async def test_a_refused_address_spends_no_usernames_checks(world: World) -> None:
    for n in range(3 + 4):
        await sign_in(world.http, f"ghost{n}", "wrong-password")
    for _ in range(5):
        assert (await sign_in(world.http, "alice", "wrong-password")).status_code == 429
    assert await LoginThrottle.get_motor_collection().find_one({"_id": "user:alice"}) is None


async def test_deactivation_revokes_tokens_and_keys_for_good(world: World) -> None:
    alice = (await world.http.get("/auth/me", headers=world.as_("alice"))).json()
    key = (await world.http.post("/auth/api-keys", json={"name": "k"}, headers=world.as_("alice"))).json()["key"]
    await world.http.post(f"/auth/users/{alice['id']}/deactivate", headers=world.as_("admin"))
    await world.http.post(f"/auth/users/{alice['id']}/reactivate", headers=world.as_("admin"))
    assert (await world.http.get("/auth/me", headers=world.as_("alice"))).status_code == 401
    assert (await world.http.get("/auth/me", headers={"X-API-Key": key})).status_code == 401
    assert (await sign_in(world.http, "alice", PASSWORDS["alice"])).status_code == 200


async def test_administering_accounts_needs_a_password_login_not_an_api_key(world: World) -> None:
    key = (await world.http.post("/auth/api-keys", json={"name": "k"}, headers=world.as_("admin"))).json()["key"]
    bob = (await world.http.get("/auth/me", headers=world.as_("bob"))).json()
    by_key = {"X-API-Key": key}
    shadow = {"username": "shadow", "email": "s@example.com", "password": "shadow-password", "is_admin": True}
    assert (await world.http.post("/auth/register", json=shadow, headers=by_key)).status_code == 403
    reset = {"new_password": "taken-over-password"}
    assert (await world.http.put(f"/auth/users/{bob['id']}/password", json=reset, headers=by_key)).status_code == 403
    assert (await world.http.post(f"/auth/users/{bob['id']}/deactivate", headers=by_key)).status_code == 403
    assert (await world.http.get("/auth/users", headers=by_key)).status_code == 403


async def test_two_admins_deactivating_each_other_leave_one_active(world: World) -> None:
    second = {"username": "admin2", "email": "admin2@example.com", "password": "admin2-password", "is_admin": True}
    assert (await world.http.post("/auth/register", json=second, headers=world.as_("admin"))).status_code == 201
    token = (await sign_in(world.http, "admin2", "admin2-password")).json()["access_token"]
    ids = {
        name: (await world.http.get("/auth/me", headers=h)).json()["id"]
        for name, h in (("admin", world.as_("admin")), ("admin2", {"Authorization": f"Bearer {token}"}))
    }
    answers = await asyncio.gather(
        world.http.post(f"/auth/users/{ids['admin2']}/deactivate", headers=world.as_("admin")),
        world.http.post(f"/auth/users/{ids['admin']}/deactivate", headers={"Authorization": f"Bearer {token}"}),
    )
    assert {answer.status_code for answer in answers} <= {200, 401, 409}
    assert await User.get_motor_collection().count_documents({"is_admin": True, "is_active": True}) >= 1


async def test_an_event_stream_ends_when_its_credentials_are_revoked(
    world: World, speech_transcript: Transcript
) -> None:
    """With no workers the video stays queued, so only the revocation can end the stream."""
    video_id = await owned_video("alice", speech_transcript)
    await Video.get_motor_collection().update_one({"_id": PydanticObjectId(video_id)}, {"$set": {"status": "queued"}})
    alice = (await world.http.get("/auth/me", headers=world.as_("alice"))).json()
    stream = asyncio.create_task(world.http.get(f"/videos/{video_id}/events", headers=world.as_("alice")))
    await asyncio.sleep(0.3)
    await world.http.post(f"/auth/users/{alice['id']}/deactivate", headers=world.as_("admin"))
    async with asyncio.timeout(15):
        response = await stream
    assert response.status_code == 200 and '"status":"queued"' in response.text


async def test_an_event_stream_ends_when_the_video_turns_private(world: World, speech_transcript: Transcript) -> None:
    video_id = await owned_video("alice", speech_transcript, public=True)
    await Video.get_motor_collection().update_one({"_id": PydanticObjectId(video_id)}, {"$set": {"status": "queued"}})
    stream = asyncio.create_task(world.http.get(f"/videos/{video_id}/events", headers=world.as_("bob")))
    await asyncio.sleep(0.3)
    private = await world.http.patch(f"/videos/{video_id}", json={"is_public": False}, headers=world.as_("alice"))
    assert private.status_code == 200
    async with asyncio.timeout(5):
        assert (await stream).status_code == 200
