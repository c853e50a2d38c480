"""Webhooks: events of real processing, signed by the Standard Webhooks specification and verified
by an independent implementation in a real receiver on loopback; retries, refusals, restarts,
users kept apart, and the delivery log."""

import asyncio
import base64
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest
from beanie import PydanticObjectId
from prometheus_client import REGISTRY

from service.ai.providers.local import LocalModel
from service.ai.retrieval import IndexCache
from service.clock import utc_now
from service.config import Settings
from service.context import AppContext
from service.db.service import connect
from service.http.retry_after import retry_after_seconds
from service.processing import queue
from service.storage.service import LocalStorage
from service.users.schemas import Registration
from service.users.service import register, set_active
from service.videos.models import Job, Video
from service.videos.service import delete_video
from service.webhooks import events
from service.webhooks.delivery import Dispatcher, relay
from service.webhooks.models import WebhookDelivery, WebhookSubscription
from service.webhooks.service import MAX_SUBSCRIPTIONS
from tests.conftest import (
    NO_AUDIO_VIDEO,
    SHORT_TRANSCRIPT,
    SPEECH_VIDEO,
    finished,
    insert_completed_video,
    serving,
    upload,
)
from tests.server import ServerProcess, free_port, running_server, silent_peer
from tests.store import StoreDatabase
from tests.webhook_receiver import Receiver, webhook_receiver

GLOBAL_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"""The secret of the specification's own example: 24 bytes."""


def webhook_settings(data_dir: Path, store: StoreDatabase, **changes: object) -> Settings:
    """On the store under test: one worker; receivers on loopback (WEBHOOK_ALLOW_PRIVATE); retries
    within a fraction of a second."""
    defaults: dict[str, object] = {
        "workers": 1,
        "max_upload_mb": 8,
        "webhook_allow_private": True,
        "webhook_retry_base_seconds": 0.05,
        "webhook_retry_max_seconds": 0.2,
    }
    return Settings(_env_file=None, data_dir=data_dir, **store.settings, **{**defaults, **changes})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    with webhook_receiver() as running:
        yield running


async def subscribe(
    http: httpx.AsyncClient,
    receiver: Receiver,
    path: str = "/",
    host: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
    **fields: object,
) -> dict:
    """A subscription to `receiver` at `path`, whose secret the receiver then verifies with."""
    answer = await http.post("/webhooks", json={"url": receiver.url(path, host), **fields}, headers=headers)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    receiver.secrets[path] = created["secret"]
    return created


async def test_processing_events_arrive_signed_for_the_receiver_to_verify(
    tmp_path: Path, store: StoreDatabase, receiver: Receiver
) -> None:
    settings = webhook_settings(tmp_path, store, webhook_url=receiver.url("/global"), webhook_secret=GLOBAL_SECRET)
    receiver.secrets["/global"] = GLOBAL_SECRET
    async with serving(settings) as http:
        subscription = await subscribe(http, receiver, "/mine")
        video = (await upload(http, SPEECH_VIDEO, language="en")).json()
        assert (await finished(http, video["id"]))["status"] == "completed"
        # Deliveries go out side by side, so they need not arrive in the events' order (nor is it promised).
        mine = {request.message["type"]: request for request in await receiver.wait_for(2, "/mine")}
        everyone = {request.message["type"]: request for request in await receiver.wait_for(2, "/global")}
    for request in [*mine.values(), *everyone.values()]:
        assert request.verified, request.headers
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-signature"].startswith("v1,")
    assert set(mine) == set(everyone) == {"video.completed", "summary.completed"}
    completed = mine["video.completed"].message
    assert completed["data"] == {
        "id": video["id"],
        "filename": "speech.mp4",
        "status": "completed",
        "duration": pytest.approx(34.9, abs=0.1),
        "language": "en",
        "processed_at": completed["timestamp"],
    }
    assert completed["timestamp"].endswith("Z")
    assert mine["summary.completed"].message["data"]["id"] == video["id"]
    assert {kind: request.webhook_id for kind, request in mine.items()} == {
        kind: request.webhook_id for kind, request in everyone.items()
    }
    assert mine["video.completed"].webhook_id != mine["summary.completed"].webhook_id
    assert subscription["event_types"] == ["video.completed", "video.failed", "summary.completed"]


def outcomes() -> dict[str, float]:
    """This process's delivery attempts so far, by outcome."""
    return {
        outcome: REGISTRY.get_sample_value("video_analyzer_webhook_deliveries_total", {"outcome": outcome}) or 0.0
        for outcome in ("delivered", "rejected", "unreachable", "refused")
    }


async def delivery_log(
    http: httpx.AsyncClient, subscription_id: str, until: str = "delivered", headers: dict[str, str] | None = None
) -> list[dict]:
    """The subscription's deliveries once every one of them is `until`."""
    async with asyncio.timeout(30):
        while True:
            answer = await http.get(f"/webhooks/{subscription_id}/deliveries", headers=headers)
            assert answer.status_code == 200, answer.text
            items = answer.json()["items"]
            if items and all(item["status"] == until for item in items):
                return items
            await asyncio.sleep(0.05)


async def test_a_receiver_that_fails_twice_gets_the_event_on_the_third_try(
    tmp_path: Path, store: StoreDatabase, receiver: Receiver
) -> None:
    receiver.script(500, 500)
    before = outcomes()
    async with serving(webhook_settings(tmp_path, store)) as http:
        subscription = await subscribe(http, receiver, event_types=["video.completed"])
        video = (await upload(http, NO_AUDIO_VIDEO)).json()
        tries = await receiver.wait_for(3)
        [delivery] = await delivery_log(http, subscription["id"])
        await asyncio.sleep(0.5)
    assert len(receiver.received) == 3, "nothing more once delivered"
    assert [request.answered for request in tries] == [500, 500, 200]
    assert all(request.verified for request in tries)
    assert {request.webhook_id for request in tries} == {delivery["webhook_id"]}
    assert {request.body for request in tries} == {tries[0].body}
    assert tries[0].message == delivery["payload"]
    assert delivery["payload"]["type"] == "video.completed"
    assert delivery["payload"]["data"]["id"] == video["id"]
    assert delivery["attempts"] == 3
    assert [attempt["status_code"] for attempt in delivery["last_attempts"]] == [500, 500, 200]
    assert [attempt["error"] for attempt in delivery["last_attempts"]] == [
        "the receiver answered 500",
        "the receiver answered 500",
        None,
    ]
    assert delivery["delivered_at"] is not None and delivery["next_attempt_at"] is None
    after = outcomes()
    assert after["delivered"] - before["delivered"] == 1
    assert after["rejected"] - before["rejected"] == 2


async def test_a_receiver_too_slow_or_not_listening_is_tried_again(
    tmp_path: Path, store: StoreDatabase, receiver: Receiver
) -> None:
    """A receiver that answers after WEBHOOK_TIMEOUT_SECONDS has failed that attempt (and gets the
    event again, with the same id); one with nothing listening stays pending with the reason."""
    receiver.delays.append(3.0)
    settings = webhook_settings(tmp_path, store, webhook_timeout_seconds=0.5)
    async with serving(settings) as http:
        slow = await subscribe(http, receiver, "/slow", event_types=["video.completed"])
        closed = (
            await http.post(
                "/webhooks", json={"url": f"http://127.0.0.1:{free_port()}/", "event_types": ["video.completed"]}
            )
        ).json()
        await upload(http, NO_AUDIO_VIDEO)
        [delivery] = await delivery_log(http, slow["id"])
        async with asyncio.timeout(30):
            while (
                not (unreachable := (await http.get(f"/webhooks/{closed['id']}/deliveries")).json()["items"])[0][
                    "attempts"
                ]
                >= 2
            ):
                await asyncio.sleep(0.05)
        arrivals = await receiver.wait_for(2)
    timed_out, taken = delivery["last_attempts"]
    assert timed_out["status_code"] is None
    assert timed_out["error"] == "no answer within 0.5 s (WEBHOOK_TIMEOUT_SECONDS)"
    assert 0.5 <= timed_out["seconds"] < 1.5
    assert taken["status_code"] == 200
    assert {request.webhook_id for request in arrivals} == {delivery["webhook_id"]}
    [pending] = unreachable
    assert pending["status"] == "pending"
    assert pending["last_attempts"][0]["error"].startswith("ConnectError: ")


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://127.0.0.1:8080/hook", "127.0.0.1 is a loopback address"),
        ("http://localhost/hook", "the host localhost resolves to 127.0.0.1, a loopback address"),
        ("http://[::1]/hook", "::1 is a loopback address"),
        ("https://10.1.2.3/hook", "10.1.2.3 is a private address"),
        ("http://192.168.1.20/hook", "192.168.1.20 is a private address"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
        ("http://[fe80::1]/hook", "fe80::1 is a link-local address"),
        ("http://[::ffff:10.0.0.1]/hook", "::ffff:10.0.0.1 is a private address (it carries 10.0.0.1)"),
        ("http://0.0.0.0/hook", "0.0.0.0 is the unspecified address"),
        ("http://100.64.0.1/hook", "100.64.0.1 is an address not routed on the internet"),
        ("http://224.0.0.1/hook", "224.0.0.1 is a multicast address"),
        ("http://no-such-host.invalid/hook", "the host no-such-host.invalid does not resolve"),
    ],
)
async def test_a_subscription_to_an_address_that_is_not_public_is_refused(
    tmp_path: Path, store: StoreDatabase, url: str, refused: str
) -> None:
    async with serving(webhook_settings(tmp_path, store, workers=0, webhook_allow_private=False)) as http:
        answer = await http.post("/webhooks", json={"url": url})
        assert answer.status_code == 422, answer.text
        assert refused in answer.json()["detail"]
        assert answer.json()["detail"].startswith("url: ")
        assert (await http.get("/webhooks")).json() == {"items": [], "next_cursor": None}


async def test_an_address_that_turned_private_is_refused_at_delivery(
    tmp_path: Path, store: StoreDatabase, receiver: Receiver
) -> None:
    """Subscribed while private addresses were allowed; once they are not, the receiver's name is
    resolved and checked again at each attempt, and nothing is sent to where it points."""
    async with serving(webhook_settings(tmp_path, store, workers=0)) as http:
        subscription = await subscribe(http, receiver, host="localhost")
    before = outcomes()
    async with serving(webhook_settings(tmp_path, store, webhook_allow_private=False)) as http:
        video = (await upload(http, NO_AUDIO_VIDEO)).json()
        await finished(http, video["id"])
        async with asyncio.timeout(30):
            while True:
                items = (await http.get(f"/webhooks/{subscription['id']}/deliveries")).json()["items"]
                if items and all(len(item["last_attempts"]) >= 2 for item in items):
                    break
                await asyncio.sleep(0.05)
    assert receiver.received == []
    for item in items:
        assert item["status"] == "pending"
        assert item["last_attempts"][0]["status_code"] is None
        assert item["last_attempts"][0]["error"] == (
            "refused: the host localhost resolves to 127.0.0.1, a loopback address; "
            "webhooks go to public addresses only"
        )
    assert outcomes()["refused"] - before["refused"] >= 2 * len(items)


async def test_a_restart_between_the_event_and_its_delivery_still_delivers(
    tmp_path: Path, store: StoreDatabase, receiver: Receiver
) -> None:
    """The receiver is down (503) when the video completes; the server is killed (SIGKILL) with the
    delivery pending, and the restarted server delivers it, with the same webhook-id."""
    receiver.script(*[503] * 10_000)
    receiver.secrets["/"] = GLOBAL_SECRET
    environment = {
        **store.environment,
        "WORKERS": "1",
        "WEBHOOK_URL": receiver.url(),
        "WEBHOOK_SECRET": GLOBAL_SECRET,
        "WEBHOOK_ALLOW_PRIVATE": "true",
        "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
        "WEBHOOK_RETRY_MAX_SECONDS": "0.5",
        "WEBHOOK_TIMEOUT_SECONDS": "2",  # a lease (this and 30 s) that a kill mid-attempt leaves runs out within the wait
    }
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, environment)
    try:
        with NO_AUDIO_VIDEO.open("rb") as file:
            video = httpx.post(f"{server.base_url}/videos", files={"file": ("clip.mp4", file)}).json()
        [refused] = await receiver.wait_for(1)
    finally:
        server.kill()
    receiver.statuses.clear()
    with running_server(data_dir, environment) as restarted:
        async with asyncio.timeout(60):
            while not any(
                request.answered == 200 and request.webhook_id == refused.webhook_id for request in receiver.received
            ):
                await asyncio.sleep(0.05)
        assert httpx.get(f"{restarted.base_url}/videos/{video['id']}").json()["status"] == "completed"
    delivered = [request for request in receiver.received if request.answered == 200]
    same_event = [request for request in delivered if request.webhook_id == refused.webhook_id]
    assert len(same_event) == 1 and same_event[0].verified
    assert same_event[0].body == refused.body
    assert same_event[0].message["data"]["id"] == video["id"]


async def test_each_user_gets_the_events_of_their_own_videos_only(
    tmp_path: Path, store: StoreDatabase, receiver: Receiver
) -> None:
    settings = webhook_settings(tmp_path, store, auth_enabled=True, secret_key="s" * 48)
    async with serving(settings) as http:
        alice, bob = await users(http, settings, "alice", "bob")
        alices = await subscribe(http, receiver, "/alice", headers=alice)
        bobs = await subscribe(http, receiver, "/bob", headers=bob)
        video = (await upload(http, NO_AUDIO_VIDEO, headers=alice)).json()
        await receiver.wait_for(1, "/alice")
        await http.patch(f"/videos/{video['id']}", json={"is_public": True}, headers=alice)
        await asyncio.sleep(0.5)
        assert receiver.at("/bob") == []
        for method, path in (
            ("GET", f"/webhooks/{alices['id']}"),
            ("GET", f"/webhooks/{alices['id']}/deliveries"),
            ("DELETE", f"/webhooks/{alices['id']}"),
        ):
            answer = await http.request(method, path, headers=bob)
            assert answer.status_code == 404, (method, path)
            assert answer.json() == {"detail": f"no webhook subscription with id {alices['id']!r}"}
        assert [item["id"] for item in (await http.get("/webhooks", headers=bob)).json()["items"]] == [bobs["id"]]
        assert [item["id"] for item in (await http.get("/webhooks", headers=alice)).json()["items"]] == [alices["id"]]
        assert (await http.get("/webhooks")).status_code == 401
        logged = await delivery_log(http, alices["id"], headers=alice)
        assert {item["payload"]["data"]["id"] for item in logged} == {video["id"]}
        assert (await http.get(f"/webhooks/{bobs['id']}/deliveries", headers=bob)).json()["items"] == []
        assert (await http.delete(f"/webhooks/{alices['id']}", headers=alice)).status_code == 204
        assert (await http.get(f"/webhooks/{alices['id']}", headers=alice)).status_code == 404
    assert all(request.verified for request in receiver.received)


async def users(http: httpx.AsyncClient, settings: Settings, *names: str) -> list[dict[str, str]]:
    """Accounts with these names, each as the headers that sign its requests."""
    signed_in = []
    for name in names:
        password = f"{name}-password-1"
        await register(settings, Registration(username=name, email=f"{name}@example.com", password=password))
        signed_in.append(await sign_in(http, name))
    return signed_in


async def sign_in(http: httpx.AsyncClient, name: str) -> dict[str, str]:
    """A fresh access token of the user `users` made, as headers."""
    token = (await http.post("/auth/token", data={"username": name, "password": f"{name}-password-1"})).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


async def test_failed_videos_raise_video_failed(tmp_path: Path, store: StoreDatabase, receiver: Receiver) -> None:
    """A job failing for good, and one whose worker died on its last attempt, each raise `video.failed`."""
    async with serving(webhook_settings(tmp_path, store, workers=0)) as http:
        await subscribe(http, receiver, event_types=["video.failed"])
        undecodable = Video(filename="broken.mp4", job=Job(stage="queued", queued_at=utc_now()))
        await undecodable.insert()
        claimed = await queue.claim("test-worker", 60, 3)
        assert claimed is not None and claimed.id == undecodable.id
        assert await queue.fail(claimed, "test-worker", "no audio could be decoded", 3, 0, permanent=True)
        abandoned = Video(
            filename="lost.mp4",
            status="processing",
            job=Job(stage="transcribing", attempts=3, worker="gone", lease_until=utc_now() - timedelta(seconds=1)),
        )
        await abandoned.insert()
        assert await queue.claim("test-worker", 60, 3) is None
        arrived = await receiver.wait_for(2)
    by_video = {request.message["data"]["id"]: request.message for request in arrived}
    assert by_video[str(undecodable.id)]["data"] == {
        "id": str(undecodable.id),
        "filename": "broken.mp4",
        "status": "failed",
        "error": "no audio could be decoded",
        "attempts": 1,
    }
    lost = by_video[str(abandoned.id)]
    assert lost["type"] == "video.failed"
    assert lost["data"]["error"].startswith("the worker processing it died 3 times")
    assert all(request.verified for request in arrived)


async def test_an_event_raised_just_before_its_video_is_deleted_is_still_delivered(
    tmp_path: Path, store: StoreDatabase, receiver: Receiver
) -> None:
    """The event is still in the video's outbox (no dispatcher has run) when the video is deleted:
    the deletion hands it to its delivery first, and a dispatcher started later sends it."""
    settings = webhook_settings(tmp_path, store, workers=0)
    async with serving(settings) as http:
        subscription = await subscribe(http, receiver, event_types=["video.failed"])
    database = await connect(settings)
    try:
        video = Video(filename="short-lived.mp4", job=Job(stage="queued", queued_at=utc_now()))
        await video.insert()
        claimed = await queue.claim("test-worker", 60, 3)
        assert await queue.fail(claimed, "test-worker", "unreadable", 3, 0, permanent=True)
        assert len((await Video.get(video.id)).webhook_outbox) == 1
        context = AppContext(settings, database, LocalStorage(settings.files_dir), LocalModel(settings), IndexCache())
        await delete_video(context, str(video.id), None)
        assert await Video.get(video.id) is None
    finally:
        database.close()
    async with serving(settings) as http:
        [request] = await receiver.wait_for(1)
        [delivery] = await delivery_log(http, subscription["id"])
    assert request.verified
    assert request.message["data"]["id"] == str(video.id)
    assert request.webhook_id == delivery["webhook_id"]


async def test_the_delivery_log_pages_and_filters(tmp_path: Path, store: StoreDatabase, receiver: Receiver) -> None:
    receiver.script(200, 200, 200, 400)
    async with serving(webhook_settings(tmp_path, store, workers=0, webhook_retry_base_seconds=60)) as http:
        subscription = await subscribe(http, receiver, event_types=["video.failed"])
        for number in range(4):
            await Video(filename=f"{number}.mp4", job=Job(stage="queued", queued_at=utc_now())).insert()
            claimed = await queue.claim("test-worker", 60, 3)
            await queue.fail(claimed, "test-worker", f"failure {number}", 3, 0, permanent=True)
            await receiver.wait_for(number + 1)
        log = f"/webhooks/{subscription['id']}/deliveries"
        async with asyncio.timeout(10):
            while (await http.get(log, params={"status": "pending"})).json()["items"] == []:
                await asyncio.sleep(0.05)
        pages, cursor = [], None
        while True:
            page = (await http.get(log, params={"limit": 1, **({"cursor": cursor} if cursor else {})})).json()
            pages.append(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        delivered = (await http.get(log, params={"status": "delivered"})).json()["items"]
        pending = (await http.get(log, params={"status": "pending"})).json()["items"]
        bad_cursor = await http.get(log, params={"cursor": "not-a-cursor"})
        bad_status = await http.get(log, params={"status": "lost"})
        unknown = await http.get("/webhooks/0123456789abcdef01234567/deliveries")
        malformed = await http.get("/webhooks/nope/deliveries")
    assert [len(page) for page in pages] == [1, 1, 1, 1]
    newest_first = [page[0]["payload"]["data"]["error"] for page in pages]
    assert newest_first == ["failure 3", "failure 2", "failure 1", "failure 0"]
    assert [item["payload"]["data"]["error"] for item in delivered] == ["failure 2", "failure 1", "failure 0"]
    [gone] = pending
    assert gone["payload"]["data"]["error"] == "failure 3"
    assert gone["last_attempts"] == [
        {
            "at": gone["last_attempts"][0]["at"],
            "status_code": 400,
            "error": "the receiver answered 400",
            "seconds": gone["last_attempts"][0]["seconds"],
            "retry_after": None,
        }
    ]
    assert gone["next_attempt_at"] is not None
    assert bad_cursor.status_code == 422 and bad_cursor.json() == {"detail": "cursor is not one this service returned"}
    assert bad_status.status_code == 422
    assert unknown.status_code == 404 and malformed.status_code == 404


async def test_a_given_secret_signs_and_no_answer_shows_it_again(
    tmp_path: Path, store: StoreDatabase, receiver: Receiver
) -> None:
    async with serving(webhook_settings(tmp_path, store, workers=0)) as http:
        created = await http.post(
            "/webhooks",
            json={
                "url": receiver.url(),
                "secret": GLOBAL_SECRET,
                "event_types": ["video.failed", "video.failed"],
                "description": "ops",
            },
        )
        listed = (await http.get("/webhooks")).json()["items"]
        one = (await http.get(f"/webhooks/{created.json()['id']}")).json()
        receiver.secrets["/"] = GLOBAL_SECRET
        await Video(filename="x.mp4", job=Job(stage="queued", queued_at=utc_now())).insert()
        claimed = await queue.claim("test-worker", 60, 3)
        await queue.fail(claimed, "test-worker", "unreadable", 3, 0, permanent=True)
        [request] = await receiver.wait_for(1)
    assert created.status_code == 201
    assert created.json()["secret"] == GLOBAL_SECRET
    assert created.json()["event_types"] == ["video.failed"]
    assert request.verified
    assert listed == [one]
    assert "secret" not in one and one["description"] == "ops"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"url": "ftp://example.com/hook"}, "url: a webhook URL is http:// or https:// with a host"),
        ({"url": "https://user:pass@example.com/hook"}, "url: a webhook URL carries no user name or password"),
        ({"url": "https://example.com/hook#part"}, "url: a webhook URL has no #fragment"),
        ({"url": "https://" + "a" * 2050}, "url: String should have at most 2048 characters"),
        ({"url": "https://93.184.215.14:99999/"}, "url: a webhook URL's port is 1 to 65535"),
        ({"url": "https://93.184.215.14:4294967297/"}, "url: a webhook URL's port is 1 to 65535"),
        ({"url": "https://93.184.215.14:0/"}, "url: a webhook URL's port is 1 to 65535"),
        (
            {"url": "https://93.184.215.14/", "secret": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
            "a webhook secret starts with 'whsec_'",
        ),
        ({"url": "https://93.184.215.14/", "secret": "whsec_c2hvcnQ="}, "a webhook secret holds 24 to 64 bytes, not 5"),
        (
            {"url": "https://93.184.215.14/", "secret": "whsec_not base64!"},
            "a webhook secret is 'whsec_' and standard base64",
        ),
        ({"url": "https://93.184.215.14/", "event_types": []}, "event_types: List should have at least 1 item"),
        ({"url": "https://93.184.215.14/", "event_types": ["video.deleted"]}, "event_types.0: Input should be"),
    ],
)
async def test_a_subscription_that_cannot_work_is_refused_before_anything_is_stored(
    client: httpx.AsyncClient, body: dict, detail: str
) -> None:
    answer = await client.post("/webhooks", json=body)
    assert answer.status_code == 422
    assert detail in answer.json()["detail"]
    assert (await client.get("/webhooks")).json()["items"] == []


async def test_a_public_address_is_accepted_without_sending_anything(client: httpx.AsyncClient) -> None:
    answer = await client.post("/webhooks", json={"url": "https://93.184.215.14/hooks/video"})
    assert answer.status_code == 201
    assert answer.json()["secret"].startswith("whsec_")
    assert len(base64.b64decode(answer.json()["secret"].removeprefix("whsec_"))) == 32


async def test_two_nodes_never_claim_the_same_attempt_and_a_lost_lease_is_claimed_again(
    tmp_path: Path, store: StoreDatabase
) -> None:
    settings = webhook_settings(
        tmp_path, store, workers=0, webhook_url="https://93.184.215.14/", webhook_secret=GLOBAL_SECRET
    )
    database = await connect(settings)
    try:
        for number in range(12):
            await Video(filename=f"{number}.mp4", job=Job(stage="queued", queued_at=utc_now())).insert()
            claimed = await queue.claim("test-worker", 60, 3)
            await queue.fail(claimed, "test-worker", "unreadable", 3, 0, permanent=True)
        assert await relay(settings, {}) == 12
        nodes = [Dispatcher(settings), Dispatcher(settings)]
        nodes[1].name = "another-node:webhooks"
        claims = await asyncio.gather(*(node.claim() for _ in range(10) for node in nodes))
        held = [delivery for delivery in claims if delivery is not None]
        assert len(held) == 12 and len({delivery.id for delivery in held}) == 12
        assert {delivery.leased_by for delivery in held} == {node.name for node in nodes}
        assert all(delivery.attempts == 1 for delivery in held)
        collection = WebhookDelivery.get_motor_collection()
        await collection.update_one(
            {"_id": held[0].id}, {"$set": {"next_attempt_at": utc_now() - timedelta(seconds=1)}}
        )
        taken_over = await nodes[1].claim()
        assert taken_over is not None and taken_over.id == held[0].id
        assert (taken_over.attempts, taken_over.leased_by) == (2, nodes[1].name)
        assert await nodes[0].claim() is None
    finally:
        database.close()


def unsaved_delivery(created: datetime) -> WebhookDelivery:
    """A delivery as the dispatcher plans its retries, with no store (model_construct: Beanie
    refuses to build a document before a store is connected)."""
    return WebhookDelivery.model_construct(message_id="msg_1", type="video.completed", body="{}", created_at=created)


def test_retries_back_off_exponentially_with_jitter_until_the_window_ends() -> None:
    settings = Settings(_env_file=None, webhook_retry_base_seconds=5, webhook_retry_max_seconds=3600)
    dispatcher = Dispatcher(settings)
    created = utc_now()
    delivery = unsaved_delivery(created)
    for attempts, backoff in ((1, 5), (2, 10), (3, 20), (8, 640), (11, 3600), (500, 3600)):
        delivery.attempts = attempts
        delays = [(dispatcher.retry_at(delivery, created) - created).total_seconds() for _ in range(200)]
        assert backoff / 2 <= min(delays) and max(delays) <= backoff
        assert max(delays) - min(delays) > backoff / 4, "jittered"
    window_end = created + timedelta(hours=24)
    assert dispatcher.retry_at(delivery, window_end - timedelta(seconds=10)) == window_end
    assert dispatcher.retry_at(delivery, window_end) is None


async def test_summarizing_again_raises_summary_completed(
    tmp_path: Path, store: StoreDatabase, receiver: Receiver
) -> None:
    async with serving(webhook_settings(tmp_path, store, workers=0)) as http:
        await subscribe(http, receiver, event_types=["summary.completed"])
        video = await insert_completed_video(SHORT_TRANSCRIPT)
        answer = await http.post(f"/videos/{video.id}/summarize")
        [request] = await receiver.wait_for(1)
    assert answer.status_code == 200
    assert request.verified
    assert request.message["type"] == "summary.completed"
    assert request.message["data"] == {
        "id": str(video.id),
        "filename": "speech.mp4",
        "model": "local-extractive",
        "language": "en",
    }


async def test_a_stop_that_meets_a_wake_up_still_stops(tmp_path: Path, store: StoreDatabase) -> None:
    """An event raised just as the service stops wakes the dispatcher in the same turn as the stop
    cancels it; the stop must win."""
    database = await connect(webhook_settings(tmp_path, store, workers=0))
    try:
        dispatcher = Dispatcher(webhook_settings(tmp_path, store, workers=0))
        dispatcher.start()
        await asyncio.sleep(0.5)  # past its first round, waiting to be woken
        events.announce(PydanticObjectId())
        async with asyncio.timeout(10):
            await dispatcher.stop()
    finally:
        database.close()


async def test_a_delivery_still_failing_when_its_retry_window_ends_is_given_up(
    tmp_path: Path, store: StoreDatabase, receiver: Receiver
) -> None:
    receiver.script(*[500] * 10_000)
    before = REGISTRY.get_sample_value("video_analyzer_webhook_deliveries_abandoned_total") or 0.0
    settings = webhook_settings(tmp_path, store, webhook_retry_hours=2 / 3600)  # a window of two seconds
    async with serving(settings) as http:
        subscription = await subscribe(http, receiver, event_types=["video.completed"])
        await upload(http, NO_AUDIO_VIDEO)
        [delivery] = await delivery_log(http, subscription["id"], until="failed")
        tried = len(receiver.received)
        await asyncio.sleep(0.5)
        assert len(receiver.received) == tried, "nothing is sent once it is given up"
    assert delivery["next_attempt_at"] is None and delivery["delivered_at"] is None
    assert delivery["attempts"] == tried >= 2
    window_end = datetime.fromisoformat(delivery["created_at"]) + timedelta(seconds=2)
    assert datetime.fromisoformat(delivery["last_attempts"][-1]["at"]) >= window_end - timedelta(milliseconds=1)
    assert REGISTRY.get_sample_value("video_analyzer_webhook_deliveries_abandoned_total") - before == 1


async def test_an_attempt_that_fails_in_an_unforeseen_way_is_logged_and_retried_with_backoff(
    tmp_path: Path, store: StoreDatabase
) -> None:
    """A subscription an earlier version accepted, to a port no socket can take: the connection
    fails with an OverflowError, which is no network error. The attempt still counts, is in the
    delivery log, and is retried with backoff, rather than left claimed to come round every lease
    forever, unlogged and never given up."""
    settings = webhook_settings(tmp_path, store, workers=0, webhook_retry_base_seconds=60, webhook_retry_max_seconds=60)
    database = await connect(settings)
    try:
        subscription = WebhookSubscription(
            url="http://127.0.0.1:99999/", secret=GLOBAL_SECRET, event_types=["video.completed"]
        )
        await subscription.insert()
        created = utc_now()
        delivery = WebhookDelivery(
            message_id="msg_1",
            subscription_id=subscription.id,
            type="video.completed",
            body="{}",
            created_at=created,
            next_attempt_at=created,
        )
        await delivery.insert()
        before = outcomes()
        dispatcher = Dispatcher(settings)
        dispatcher.start()
        try:
            async with asyncio.timeout(10):
                while not (tried := await WebhookDelivery.get(delivery.id)).last_attempts:
                    await asyncio.sleep(0.05)
        finally:
            await dispatcher.stop()
    finally:
        database.close()
    [attempt] = tried.last_attempts
    assert attempt.status_code is None and attempt.error is not None and attempt.error.startswith("OverflowError: ")
    assert (tried.status, tried.attempts, tried.leased_by) == ("pending", 1, None)
    assert tried.next_attempt_at is not None
    assert timedelta(seconds=29) <= tried.next_attempt_at - attempt.at <= timedelta(seconds=61)
    assert outcomes()["unreachable"] - before["unreachable"] == 1


async def all_subscriptions(http: httpx.AsyncClient) -> list[dict]:
    found: list[dict] = []
    cursor: str | None = None
    while True:
        page = (await http.get("/webhooks", params={"limit": 100, **({"cursor": cursor} if cursor else {})})).json()
        found += page["items"]
        if (cursor := page["next_cursor"]) is None:
            return found


async def test_concurrent_subscriptions_never_pass_the_limit(client: httpx.AsyncClient) -> None:
    """Sixty at once: the limit's worth are created and kept, the others are 409 and leave nothing."""
    answers = await asyncio.gather(
        *(client.post("/webhooks", json={"url": f"https://93.184.215.14/{number}"}) for number in range(60))
    )
    assert {answer.status_code for answer in answers} == {201, 409}
    created = {answer.json()["id"] for answer in answers if answer.status_code == 201}
    assert created == {subscription["id"] for subscription in await all_subscriptions(client)}
    assert len(created) == MAX_SUBSCRIPTIONS
    assert (await client.post("/webhooks", json={"url": "https://93.184.215.14/one-more"})).status_code == 409


async def test_one_users_receivers_that_never_answer_do_not_hold_back_another_users(
    tmp_path: Path, store: StoreDatabase, receiver: Receiver
) -> None:
    """A user whose receivers hang until the timeout, with many deliveries due before another
    user's one: once WEBHOOK_USER_CONCURRENCY attempts are theirs, the other user's delivery is
    claimed first, so it goes out at once rather than after round upon round of timeouts; and
    then the slots left go to the hanging ones again, none idle while work is due."""
    settings = webhook_settings(
        tmp_path, store, workers=0, webhook_timeout_seconds=3, webhook_concurrency=4, webhook_user_concurrency=2
    )
    database = await connect(settings)
    try:
        with silent_peer() as silent:
            hanging_owner = PydanticObjectId()
            hanging = [
                WebhookSubscription(
                    owner_id=hanging_owner,
                    url=f"http://127.0.0.1:{silent}/{number}",
                    secret=GLOBAL_SECRET,
                    event_types=["video.completed"],
                )
                for number in range(12)
            ]
            for subscription in hanging:
                await subscription.insert()
            answering = WebhookSubscription(
                owner_id=PydanticObjectId(), url=receiver.url(), secret=GLOBAL_SECRET, event_types=["video.completed"]
            )
            await answering.insert()
            receiver.secrets["/"] = GLOBAL_SECRET
            earlier = utc_now() - timedelta(seconds=1)
            for number, subscription in enumerate([*hanging, answering]):
                at = earlier + timedelta(milliseconds=number)
                await WebhookDelivery(
                    message_id=f"msg_{number}",
                    subscription_id=subscription.id,
                    owner_id=subscription.owner_id,
                    type="video.completed",
                    body="{}",
                    created_at=at,
                    next_attempt_at=at,
                ).insert()
            dispatcher = Dispatcher(settings)
            started = time.time()
            dispatcher.start()
            try:
                [request] = await receiver.wait_for(1, timeout=60)
                async with asyncio.timeout(10):
                    while len(await WebhookDelivery.find({"leased_by": {"$ne": None}}).to_list()) < 4:
                        await asyncio.sleep(0.05)
                held = await WebhookDelivery.find({"leased_by": {"$ne": None}}).to_list()
            finally:
                await dispatcher.stop()
    finally:
        database.close()
    assert request.verified and request.webhook_id == "msg_12"
    assert request.arrived - started < settings.webhook_timeout_seconds
    assert len(held) == settings.webhook_concurrency
    assert {delivery.owner_id for delivery in held} == {hanging_owner}


async def test_a_resolver_that_never_answers_holds_up_no_other_work(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Subscriptions on a domain whose name servers never answer: each lookup keeps a thread until
    the system resolver gives up, long after the request's own timeout. They must not take the
    threads every other request runs its blocking work on (an upload's file writes here)."""
    answer = threading.Event()
    system_resolver = socket.getaddrinfo

    def resolver(host: str, *args: object, **kwargs: object) -> object:
        if host.endswith(".unanswered.example"):
            answer.wait(60)
        return system_resolver(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    hanging = [
        asyncio.create_task(client.post("/webhooks", json={"url": f"https://hook{number}.unanswered.example/"}))
        for number in range(40)
    ]
    try:
        await asyncio.sleep(0.5)
        async with asyncio.timeout(20):
            uploaded = await upload(client, SPEECH_VIDEO)
    finally:
        answer.set()
        refused = await asyncio.gather(*hanging)
    assert uploaded.status_code == 202
    assert {answer.status_code for answer in refused} == {422}


async def fail_a_video(name: str, owner_id: str | None = None) -> Video:
    """A video (of `owner_id`'s) whose job fails for good: one `video.failed` event."""
    owner = None if owner_id is None else PydanticObjectId(owner_id)
    video = Video(filename=name, owner_id=owner, job=Job(stage="queued", queued_at=utc_now()))
    await video.insert()
    claimed = await queue.claim("test-worker", 60, 3)
    assert claimed is not None and claimed.id == video.id
    assert await queue.fail(claimed, "test-worker", f"{name} is unreadable", 3, 0, permanent=True)
    return video


async def test_a_receiver_answering_410_gone_disables_its_subscription_until_its_owner_enables_it(
    tmp_path: Path, store: StoreDatabase, receiver: Receiver
) -> None:
    """By the Standard Webhooks recommendation: 410 Gone says the receiver wants no more. The
    subscription is disabled (shown, with when and why), its other pending delivery ends as `gone`
    without another attempt, new events make no delivery; its owner enables it again, and only
    the owner can."""
    receiver.script(500, 410)
    settings = webhook_settings(
        tmp_path, store, workers=0, auth_enabled=True, secret_key="s" * 48, webhook_retry_base_seconds=60
    )
    async with serving(settings) as http:
        alice, bob = await users(http, settings, "alice", "bob")
        subscription = await subscribe(http, receiver, headers=alice, event_types=["video.failed"])
        alices_id = (await http.get("/auth/me", headers=alice)).json()["id"]
        await fail_a_video("first.mp4", alices_id)
        await receiver.wait_for(1)
        await fail_a_video("second.mp4", alices_id)
        await receiver.wait_for(2)
        log = await delivery_log(http, subscription["id"], until="gone", headers=alice)
        shown = (await http.get(f"/webhooks/{subscription['id']}", headers=alice)).json()
        await fail_a_video("while-disabled.mp4", alices_id)
        await asyncio.sleep(0.5)
        assert len(receiver.received) == 2, "nothing is sent to a disabled subscription"
        assert len((await http.get(f"/webhooks/{subscription['id']}/deliveries", headers=alice)).json()["items"]) == 2
        bobs_try = await http.patch(f"/webhooks/{subscription['id']}", json={"enabled": True}, headers=bob)
        not_a_flag = await http.patch(f"/webhooks/{subscription['id']}", json={"enabled": "yes please"}, headers=alice)
        enabled = await http.patch(f"/webhooks/{subscription['id']}", json={"enabled": True}, headers=alice)
        await fail_a_video("after.mp4", alices_id)
        [*_, after] = await receiver.wait_for(3)
    assert [request.answered for request in receiver.received] == [500, 410, 200]
    assert shown["enabled"] is False
    assert shown["disabled_reason"] == "the receiver answered 410 Gone"
    assert datetime.fromisoformat(shown["disabled_at"]) >= datetime.fromisoformat(subscription["created_at"])
    by_file = {item["payload"]["data"]["filename"]: item for item in log}
    assert by_file["second.mp4"]["attempts"] == 1
    assert by_file["second.mp4"]["last_attempts"][0]["status_code"] == 410
    assert by_file["first.mp4"]["attempts"] == 1, "no attempt after the 410"
    assert by_file["first.mp4"]["next_attempt_at"] is None
    assert by_file["first.mp4"]["reason"] == "the receiver answered 410 Gone"
    assert bobs_try.status_code == 404
    assert not_a_flag.status_code == 422
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["enabled"] is True
    assert enabled.json()["disabled_at"] is None and enabled.json()["disabled_reason"] is None
    assert after.verified and after.message["data"]["filename"] == "after.mp4"


async def test_a_410_from_the_operators_webhook_url_is_a_failure_retried_and_warned_of(
    tmp_path: Path, store: StoreDatabase, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script(410)
    receiver.secrets["/global"] = GLOBAL_SECRET
    settings = webhook_settings(
        tmp_path, store, workers=0, webhook_url=receiver.url("/global"), webhook_secret=GLOBAL_SECRET
    )
    with caplog.at_level(logging.WARNING, logger="service.webhooks.delivery"):
        async with serving(settings) as http:
            await fail_a_video("broken.mp4")
            gone, taken = await receiver.wait_for(2)
            assert (await http.get("/webhooks")).json()["items"] == []
    assert (gone.answered, taken.answered) == (410, 200)
    assert gone.webhook_id == taken.webhook_id and taken.verified
    warned = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("WEBHOOK_URL answered 410 Gone" in message for message in warned), warned


async def test_a_receiver_asking_to_wait_with_retry_after_is_not_tried_again_sooner(
    tmp_path: Path, store: StoreDatabase, receiver: Receiver
) -> None:
    """429 with Retry-After in seconds, then 503 with it as an HTTP date: each next attempt comes
    no earlier than asked, though the backoff alone would retry within a fraction of a second."""
    receiver.script(429, 503)
    asked_until = time.time() + 3
    receiver.answer_headers += [{"retry-after": "1"}, {"retry-after": formatdate(asked_until, usegmt=True)}]
    async with serving(webhook_settings(tmp_path, store, workers=0)) as http:
        subscription = await subscribe(http, receiver, event_types=["video.failed"])
        await fail_a_video("broken.mp4")
        throttled, unavailable, taken = await receiver.wait_for(3)
        [delivery] = await delivery_log(http, subscription["id"])
    assert [request.answered for request in (throttled, unavailable, taken)] == [429, 503, 200]
    assert unavailable.arrived - throttled.arrived >= 1.0
    assert taken.arrived >= int(asked_until), "an HTTP date has whole seconds"
    assert [attempt["retry_after"] for attempt in delivery["last_attempts"]][0] == 1.0
    assert 0 < delivery["last_attempts"][1]["retry_after"] <= 3.0
    assert delivery["last_attempts"][2]["retry_after"] is None


def test_retry_after_sets_the_next_attempt_within_the_retry_window() -> None:
    settings = Settings(_env_file=None, webhook_retry_base_seconds=5, webhook_retry_max_seconds=3600)
    dispatcher = Dispatcher(settings)
    created = utc_now()
    delivery = unsaved_delivery(created)
    delivery.attempts = 1
    asked = [(dispatcher.retry_at(delivery, created, 120.0) - created).total_seconds() for _ in range(50)]
    assert set(asked) == {120.0}, "later than the backoff: as asked"
    sooner = [(dispatcher.retry_at(delivery, created, 1.0) - created).total_seconds() for _ in range(50)]
    assert 2.5 <= min(sooner) and max(sooner) <= 5, "sooner than the backoff: the backoff"
    window_end = created + timedelta(hours=24)
    assert dispatcher.retry_at(delivery, created, 7 * 24 * 3600.0) == window_end


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("-5", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        (None, None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("1e999", None),
        ("Wed, 21 Oct 2015 07:28:00", None),
    ],
)
def test_a_retry_after_header_is_read_as_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds


def test_a_retry_after_date_ahead_is_the_seconds_until_it() -> None:
    ahead = retry_after_seconds(formatdate(time.time() + 60, usegmt=True))
    assert ahead is not None and 58 <= ahead <= 60


async def test_a_deactivated_users_subscriptions_receive_nothing_until_the_user_is_active_again(
    tmp_path: Path, store: StoreDatabase, receiver: Receiver
) -> None:
    """Events of a deactivated user's videos are skipped, with the reason in the log; the user
    reactivated, new events flow again. Another user's deliveries go on meanwhile."""
    settings = webhook_settings(tmp_path, store, workers=0, auth_enabled=True, secret_key="s" * 48)
    async with serving(settings) as http:
        alice, bob = await users(http, settings, "alice", "bob")
        alices = await subscribe(http, receiver, "/alice", headers=alice, event_types=["video.failed"])
        await subscribe(http, receiver, "/bob", headers=bob, event_types=["video.failed"])
        alices_id = (await http.get("/auth/me", headers=alice)).json()["id"]
        bobs_id = (await http.get("/auth/me", headers=bob)).json()["id"]
        await set_active(None, alices_id, active=False)
        await fail_a_video("while-away.mp4", alices_id)
        await fail_a_video("bobs.mp4", bobs_id)
        await receiver.wait_for(1, "/bob")
        await set_active(None, alices_id, active=True)
        alice = await sign_in(http, "alice")
        [skipped] = await delivery_log(http, alices["id"], until="skipped", headers=alice)
        await fail_a_video("back.mp4", alices_id)
        [arrived] = await receiver.wait_for(1, "/alice")
    assert [request.message["data"]["filename"] for request in receiver.at("/alice")] == ["back.mp4"]
    assert arrived.verified
    assert skipped["payload"]["data"]["filename"] == "while-away.mp4"
    assert skipped["reason"] == "its owner's account is deactivated"
    assert (skipped["attempts"], skipped["last_attempts"], skipped["next_attempt_at"]) == (0, [], None)


async def test_an_owner_pausing_a_subscription_ends_its_pending_deliveries_as_skipped(
    tmp_path: Path, store: StoreDatabase, receiver: Receiver
) -> None:
    receiver.script(500)
    async with serving(webhook_settings(tmp_path, store, workers=0, webhook_retry_base_seconds=60)) as http:
        subscription = await subscribe(http, receiver, event_types=["video.failed"])
        await fail_a_video("first.mp4")
        await receiver.wait_for(1)
        paused = await http.patch(f"/webhooks/{subscription['id']}", json={"enabled": False})
        again = await http.patch(f"/webhooks/{subscription['id']}", json={"enabled": False})
        [skipped] = await delivery_log(http, subscription["id"], until="skipped")
        await fail_a_video("while-paused.mp4")
        await asyncio.sleep(0.5)
        logged = (await http.get(f"/webhooks/{subscription['id']}/deliveries")).json()["items"]
    assert len(receiver.received) == 1
    assert paused.status_code == 200
    assert paused.json()["enabled"] is False and paused.json()["disabled_by"] == "owner"
    assert again.json()["disabled_at"] == paused.json()["disabled_at"], "pausing twice changes nothing"
    assert (skipped["reason"], skipped["attempts"], skipped["next_attempt_at"]) == ("disabled by its owner", 1, None)
    assert [item["id"] for item in logged] == [skipped["id"]], "no delivery for an event while paused"
