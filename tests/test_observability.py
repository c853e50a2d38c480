"""Request ids, structured logs, readiness and Prometheus metrics."""

import asyncio
import io
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
import uvicorn
from motor.motor_asyncio import AsyncIOMotorClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from service.cli import main as cli_main
from service.config import Settings
from service.db.durable import DATABASE_NAME
from service.db.service import Database, StoreUnreachable, connect
from service.main import create_app
from service.observability.logs import log_handler
from service.observability.worker_server import serve_worker_metrics
from service.processing import queue
from service.users.schemas import Registration
from service.users.service import register
from service.videos.models import Transcript, Video
from tests.conftest import SPEECH_VIDEO, finished, insert_completed_video, serving, upload
from tests.openai_server import Reply, fake_openai_server
from tests.server import free_port, running_server, silent_peer
from tests.store import StoreDatabase

SECRET = "s" * 48
MISSING_VIDEO = "0123456789abcdef01234567"
FAMILIES = {
    "video_analyzer_http_requests": "counter",
    "video_analyzer_http_request_duration_seconds": "histogram",
    "video_analyzer_queue_depth": "gauge",
    "video_analyzer_queue_processing": "gauge",
    "video_analyzer_queue_oldest_age_seconds": "gauge",
    "video_analyzer_store_up": "gauge",
    "video_analyzer_transcription_seconds": "histogram",
    "video_analyzer_transcription_real_time_factor": "histogram",
    "video_analyzer_language_model_seconds": "histogram",
    "video_analyzer_language_model_failures": "counter",
    "video_analyzer_webhook_deliveries": "counter",
    "video_analyzer_webhook_deliveries_abandoned": "counter",
    "process_resident_memory_bytes": "gauge",
}


class Metrics:
    """One scrape, parsed by prometheus_client's own text parser."""

    def __init__(self, text: str) -> None:
        self.families = {family.name: family for family in text_string_to_metric_families(text)}

    def samples(self, name: str) -> list[Sample]:
        return [sample for family in self.families.values() for sample in family.samples if sample.name == name]

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 for a labelled series not yet created."""
        found = [sample.value for sample in self.samples(name) if sample.labels == labels]
        return found[0] if found else 0.0

    def moved_since(self, before: "Metrics", name: str, **labels: str) -> float:
        return self.value(name, **labels) - before.value(name, **labels)


async def scrape(http: httpx.AsyncClient, **headers: str) -> Metrics:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return Metrics(response.text)


# Metrics


async def test_metrics_families_and_request_counts_by_route_template(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    for name, kind in FAMILIES.items():
        assert before.families[name].type == kind, name
    for _ in range(3):
        assert (await client.get(f"/videos/{MISSING_VIDEO}")).status_code == 404
    assert (await client.request("BREW", "/videos")).status_code == 405
    assert (await client.get("/no/such/path")).status_code == 404
    after = await scrape(client)
    moved = partial(after.moved_since, before)
    template = {"method": "GET", "route": "/videos/{video_id}"}
    assert moved("video_analyzer_http_requests_total", **template, status="404") == 3
    assert moved("video_analyzer_http_request_duration_seconds_count", **template) == 3
    assert moved("video_analyzer_http_request_duration_seconds_sum", **template) > 0
    assert moved("video_analyzer_http_requests_total", method="OTHER", route="/videos", status="405") == 1
    assert moved("video_analyzer_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert moved("video_analyzer_http_requests_total", method="GET", route="/metrics", status="200") == 1
    labels = {
        value for sample in after.samples("video_analyzer_http_requests_total") for value in sample.labels.values()
    }
    assert MISSING_VIDEO not in str(labels) and "/no/such/path" not in labels and "BREW" not in labels


async def test_files_under_a_mount_count_under_its_prefix(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    assert (await client.get("/web/app.css")).status_code == 200
    assert (await client.get("/web/no-such-file.css")).status_code == 404
    after = await scrape(client)
    assert (
        after.moved_since(before, "video_analyzer_http_requests_total", method="GET", route="/web/{path}", status="200")
        == 1
    )
    assert (
        after.moved_since(before, "video_analyzer_http_requests_total", method="GET", route="/web/{path}", status="404")
        == 1
    )


async def test_openmetrics_when_the_scraper_asks_for_it(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert response.text.endswith("# EOF\n")


@pytest.mark.parametrize(
    "accept", ["application/openmetrics-text;version=abc", "application/openmetrics-text; version=1.x.0"]
)
async def test_a_malformed_accept_header_gets_the_prometheus_text(client: httpx.AsyncClient, accept: str) -> None:
    """A version the library cannot compare made it raise, and the scrape a 500."""
    metrics = await scrape(client, Accept=accept)
    assert "video_analyzer_http_requests" in metrics.families


async def test_queue_gauges_move_with_uploads_and_claims(client: httpx.AsyncClient) -> None:
    empty = await scrape(client)
    assert empty.value("video_analyzer_store_up") == 1
    assert empty.value("video_analyzer_queue_depth") == 0
    assert empty.value("video_analyzer_queue_oldest_age_seconds") == 0
    first = (await upload(client, SPEECH_VIDEO)).json()["id"]
    await asyncio.sleep(0.5)
    await upload(client, SPEECH_VIDEO)
    two = await scrape(client)
    assert two.value("video_analyzer_queue_depth") == 2
    assert 0.5 <= two.value("video_analyzer_queue_oldest_age_seconds") < 30
    assert two.value("video_analyzer_queue_processing") == 0
    claimed = await queue.claim("test-worker", 60, 3)
    assert claimed is not None and str(claimed.id) == first
    one = await scrape(client)
    assert one.value("video_analyzer_queue_depth") == 1
    assert one.value("video_analyzer_queue_processing") == 1
    assert (
        one.value("video_analyzer_queue_oldest_age_seconds")
        < two.value("video_analyzer_queue_oldest_age_seconds") - 0.3
    )
    assert (await client.delete(f"/videos/{first}")).status_code == 204
    assert (await scrape(client)).value("video_analyzer_queue_processing") == 0


async def test_transcription_and_language_model_metrics_move_with_the_work(settings: Settings) -> None:
    settings.workers = 1
    async with serving(settings) as http:
        before = await scrape(http)
        video_id = (await upload(http, SPEECH_VIDEO, language="en")).json()["id"]
        video = await finished(http, video_id)
        assert video["status"] == "completed"
        asked = await http.post(f"/videos/{video_id}/chat", json={"question": "Where does Clara live?"})
        assert asked.status_code == 201
        streamed = await http.post(f"/videos/{video_id}/chat?stream=true", json={"question": "What launches?"})
        assert "event: entry" in streamed.text
        after = await scrape(http)
    moved = partial(after.moved_since, before)
    seconds = moved("video_analyzer_transcription_seconds_sum")
    assert moved("video_analyzer_transcription_seconds_count") == 1
    assert moved("video_analyzer_transcription_real_time_factor_count") == 1
    assert moved("video_analyzer_transcription_real_time_factor_sum") == pytest.approx(
        seconds / video["metadata"]["duration"], rel=1e-6
    )
    assert moved("video_analyzer_language_model_seconds_count", provider="local", operation="summary") == 1
    assert moved("video_analyzer_language_model_seconds_count", provider="local", operation="answer") == 2


async def test_language_model_failures_are_counted_by_error(
    tmp_path: Path, store: StoreDatabase, speech_transcript: Transcript
) -> None:
    with fake_openai_server() as fake:
        settings = Settings(
            _env_file=None,
            data_dir=tmp_path / "data",
            workers=0,
            openai_base_url=fake.base_url,
            llm_max_retries=0,
            **store.settings,
        )
        async with serving(settings) as http:
            video = await insert_completed_video(speech_transcript)
            before = await scrape(http)
            fake.script(Reply("status", status=500), Reply("status", status=500), Reply("content", "In Lisbon [1]."))
            question = {"question": "Where does Clara live?"}
            assert (await http.post(f"/videos/{video.id}/chat", json=question)).status_code == 502
            streamed = await http.post(f"/videos/{video.id}/chat?stream=true", json=question)
            assert streamed.text.startswith("event: error")
            assert (await http.post(f"/videos/{video.id}/chat", json=question)).status_code == 201
            after = await scrape(http)
    moved = partial(after.moved_since, before)
    answer = {"provider": "openai", "operation": "answer"}
    assert moved("video_analyzer_language_model_failures_total", **answer, error="ProviderFailed") == 2
    assert moved("video_analyzer_language_model_seconds_count", **answer) == 3


@pytest.mark.embedded_only
async def test_a_scrape_without_the_store_still_answers(settings: Settings) -> None:
    """The store's outage shows in the metrics instead of failing them."""
    async with serving(settings) as http:
        Video.get_motor_collection()._embedded.close()
        metrics = await scrape(http)
    assert metrics.value("video_analyzer_store_up") == 0
    assert "video_analyzer_queue_depth" not in metrics.families
    assert metrics.families["video_analyzer_http_requests"].samples


async def test_worker_metrics_server_reads_the_queue_from_the_store(client: httpx.AsyncClient) -> None:
    """The worker's metrics server (uvicorn on the event loop, as `video-analyzer worker` runs it)
    on loopback: the queue read from the store; an Accept header prometheus_client cannot parse
    gets the Prometheus text, as at the API's /metrics; /health answers."""
    server = await serve_worker_metrics(Settings(_env_file=None, ready_timeout_seconds=2.0), "127.0.0.1", 0)
    try:
        await upload(client, SPEECH_VIDEO)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as peer:
            response = await peer.get("/metrics")
            odd_accept = await peer.get("/metrics", headers={"accept": "application/openmetrics-text;version=abc"})
            openmetrics = await peer.get("/metrics", headers={"accept": "application/openmetrics-text;version=1.0.0"})
            health = await peer.get("/health")
    finally:
        await server.stop()
    assert response.status_code == 200
    metrics = Metrics(response.text)
    assert metrics.value("video_analyzer_queue_depth") == 1
    assert metrics.families["video_analyzer_transcription_seconds"].type == "histogram"
    assert metrics.families["process_resident_memory_bytes"].samples
    assert odd_accept.status_code == 200 and odd_accept.headers["content-type"].startswith("text/plain")
    assert Metrics(odd_accept.text).value("video_analyzer_queue_depth") == 1
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_a_worker_process_serves_its_metrics_on_the_metrics_port(tmp_path: Path) -> None:
    """`video-analyzer worker --metrics-port`, waiting on a MongoDB that does not answer: the
    metrics are served from the start, saying the store is not up, even to an Accept header that
    prometheus_client cannot parse, with nothing but JSON log lines on the way (LOG_FORMAT=json);
    a second worker asking for the same port stops at once, saying why."""
    port = free_port()
    command = [sys.executable, "-m", "service.cli", "worker", "--metrics-port", str(port)]
    with silent_peer() as mongodb:
        environment = {
            **os.environ,
            "DATA_DIR": str(tmp_path / "data"),
            "MONGODB_URL": f"mongodb://127.0.0.1:{mongodb}/?directConnection=true",
            "MONGODB_SERVER_SELECTION_TIMEOUT_MS": "120000",
            "READY_TIMEOUT_SECONDS": "0.5",
            "LOG_FORMAT": "json",
        }
        worker = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            metrics = Metrics(_scrape_when_served(f"http://127.0.0.1:{port}/metrics", worker))
            odd_accept = httpx.get(
                f"http://127.0.0.1:{port}/metrics",
                headers={"accept": "application/openmetrics-text;version=abc"},
                timeout=10,
            )
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
            second = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)
            worker.terminate()
            output, _ = worker.communicate(timeout=30)
        finally:
            worker.kill()
            worker.wait(timeout=30)
    assert metrics.value("video_analyzer_store_up") == 0
    assert metrics.families["video_analyzer_transcription_real_time_factor"].type == "histogram"
    assert metrics.value("process_resident_memory_bytes") > 0
    assert odd_accept.status_code == 200
    assert Metrics(odd_accept.text).value("video_analyzer_store_up") == 0
    assert health.status_code == 200 and health.json()["status"] == "ok"
    lines = output.decode().splitlines()
    assert lines and all(json.loads(line)["message"] for line in lines), output.decode()
    assert second.returncode == 1
    assert f"video-analyzer worker: cannot serve metrics on 127.0.0.1:{port}" in second.stderr


def _scrape_when_served(url: str, process: subprocess.Popen, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        try:
            return httpx.get(url, timeout=5).raise_for_status().text
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"nothing served at {url}")


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_worker_metrics_port_must_be_a_port(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        cli_main(["worker", "--metrics-port", port])
    assert exit.value.code == 2
    assert "--metrics-port" in capsys.readouterr().err


# Metrics with users on


@asynccontextmanager
async def users_on(
    tmp_path: Path, store: StoreDatabase, **overrides: object
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, dict]]]:
    """The app with users on, an admin and a user; the credentials each can send."""
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        workers=0,
        auth_enabled=True,
        secret_key=SECRET,
        **store.settings,
        **overrides,
    )
    async with serving(settings) as http:
        credentials: dict[str, dict] = {"anonymous": {}}
        for name, is_admin in (("admin", True), ("alice", False)):
            password = f"{name}-password-1"
            registration = Registration(
                username=name, email=f"{name}@example.com", password=password, is_admin=is_admin
            )
            await register(settings, registration)
            token = (await http.post("/auth/token", data={"username": name, "password": password})).json()
            credentials[name] = {"Authorization": f"Bearer {token['access_token']}"}
        key = await http.post("/auth/api-keys", json={"name": "prometheus"}, headers=credentials["admin"])
        credentials["admin key"] = {"X-API-Key": key.json()["key"]}
        yield http, credentials


async def test_metrics_are_an_admins_with_users_on(tmp_path: Path, store: StoreDatabase) -> None:
    async with users_on(tmp_path, store) as (http, credentials):
        answers = {who: (await http.get("/metrics", headers=sent)).status_code for who, sent in credentials.items()}
        ready = await http.get("/ready")
    assert answers == {"anonymous": 401, "alice": 403, "admin": 200, "admin key": 200}
    assert ready.status_code == 200


async def test_metrics_public_lets_anyone_scrape(tmp_path: Path, store: StoreDatabase) -> None:
    async with users_on(tmp_path, store, metrics_public=True) as (http, credentials):
        assert (await http.get("/metrics")).status_code == 200
        assert (await http.get("/metrics", headers=credentials["alice"])).status_code == 200
        assert (await http.get(f"/videos/{MISSING_VIDEO}")).status_code == 401


# Request ids


@pytest.mark.parametrize(
    "sent, kept",
    [
        ("4bf92f3577b34da6a3ce929d0e0e4736", True),
        ("Root-1.5f84c7a1:trace_7", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("two words", False),
        ("line\\nbreak", False),
        ("", False),
        ("é", False),
    ],
)
async def test_a_sane_request_id_is_kept_any_other_replaced(client: httpx.AsyncClient, sent: str, kept: bool) -> None:
    answered = (await client.get("/health", headers={"X-Request-ID": sent.encode()})).headers["x-request-id"]
    if kept:
        assert answered == sent
    else:
        assert re.fullmatch("[0-9a-f]{32}", answered)


async def test_every_answer_carries_its_request_id(client: httpx.AsyncClient) -> None:
    answers = [
        await client.get("/health"),
        await client.get(f"/videos/{MISSING_VIDEO}"),
        await client.get("/videos", params={"limit": 0}),
        await client.post("/auth/token", content=b"x" * 65 * 1024),
        await client.get("/no/such/path"),
    ]
    assert [answer.status_code for answer in answers] == [200, 404, 422, 413, 404]
    ids = [answer.headers["x-request-id"] for answer in answers]
    assert len(set(ids)) == len(ids)


async def test_a_page_from_another_origin_may_send_and_read_the_request_id(
    tmp_path: Path, store: StoreDatabase
) -> None:
    origin = "http://localhost:3000"
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", workers=0, cors_origins=origin, **store.settings)
    async with serving(settings) as http:
        preflight = await http.options(
            "/health",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "x-request-id",
            },
        )
        answer = await http.get("/health", headers={"Origin": origin, "X-Request-ID": "from-the-page"})
    assert preflight.status_code == 200
    assert "x-request-id" in preflight.headers["access-control-allow-headers"].lower()
    assert answer.headers["x-request-id"] == "from-the-page"
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()


@contextmanager
def captured_log(log_format: str) -> Iterator[io.StringIO]:
    """The process's log lines in LOG_FORMAT while the block runs, through the service's own handler."""
    stream = io.StringIO()
    handler = log_handler(log_format, stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_log_lines_of_a_request_carry_its_id(client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(viewer: object) -> None:
        raise RuntimeError("a bug in stats")

    monkeypatch.setattr("service.stats.router.compute_stats", broken)
    with captured_log("text") as text:
        answer = await client.get("/stats", headers={"X-Request-ID": "text-format-1"})
    assert answer.status_code == 500
    assert "error id text-format-1" in answer.json()["detail"]
    line = next(line for line in text.getvalue().splitlines() if "GET /stats failed" in line)
    assert " ERROR service.main [request=text-format-1]: GET /stats failed" in line
    assert "RuntimeError: a bug in stats" in text.getvalue()


@contextmanager
def uvicorn_logs_to_the_root() -> Iterator[None]:
    """uvicorn's loggers as `video-analyzer serve` leaves them (no handlers of their own, passing
    every line to the root's), whatever an earlier uvicorn.Config in this process made of them."""
    loggers = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    saved = [(logger.handlers, logger.propagate, logger.level, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.handlers, logger.propagate, logger.level, logger.disabled = [], True, logging.NOTSET, False
    try:
        yield
    finally:
        for logger, (handlers, propagate, level, disabled) in zip(loggers, saved, strict=True):
            logger.handlers, logger.propagate, logger.level, logger.disabled = handlers, propagate, level, disabled


async def test_an_unexpected_exception_is_logged_under_its_error_id(settings: Settings) -> None:
    """Through a real uvicorn server: the handler's line, the access line and uvicorn's own
    exception line, written after the app has returned, all carry the id the 500 names."""
    app = create_app(settings)

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("a bug")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    with uvicorn_logs_to_the_root(), captured_log("json") as log:
        serving_task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"http://127.0.0.1:{port}/broken")
        server.should_exit = True
        await serving_task
    error_id = answer.headers["x-request-id"]
    assert answer.status_code == 500
    assert answer.json() == {
        "detail": f"internal error (error id {error_id}); the service log has the details under that id"
    }
    lines = [line for line in json_lines(log.getvalue()) if line["request_id"] == error_id]
    assert [line["logger"] for line in lines] == ["service.main", "uvicorn.access", "uvicorn.error"]
    assert all("RuntimeError: a bug" in line["exception"] for line in lines if line["level"] == "ERROR")


def json_lines(log: str) -> list[dict]:
    """Every line of a JSON log, each of which must be one JSON object."""
    return [json.loads(line) for line in log.splitlines()]


def test_json_log_of_a_real_server_names_requests_videos_and_errors(tmp_path: Path, store: StoreDatabase) -> None:
    """A real server with LOG_FORMAT=json and a worker: every line is a JSON object; a request's
    lines (uvicorn's access line included) carry its id; the worker's carry the video's; and a 500's
    error id finds its exception in the log."""
    data_dir = tmp_path / "data"
    with running_server(data_dir, env={**store.environment, "LOG_FORMAT": "json", "WORKERS": "1"}) as server:
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            with SPEECH_VIDEO.open("rb") as file:
                uploaded = http.post("/videos", files={"file": file}, data={"language": "en"})
            assert uploaded.status_code == 202
            video_id = uploaded.json()["id"]
            upload_id = uploaded.headers["x-request-id"]
            deadline = time.monotonic() + 120
            while http.get(f"/videos/{video_id}").json()["status"] != "completed":
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.2)
            incoming = data_dir / "uploads" / ".incoming"
            incoming.rmdir()
            incoming.write_text("not a folder: the next upload cannot be received")
            with SPEECH_VIDEO.open("rb") as file:
                failed = http.post("/videos", files={"file": file}, headers={"X-Request-ID": "upload-that-fails"})
        lines = json_lines(server.log())
    assert failed.status_code == 500
    detail = failed.json()["detail"]
    error_id = detail.split("error id ")[1].split(")")[0]
    assert error_id == "upload-that-fails" == failed.headers["x-request-id"]
    assert "NotADirectoryError" not in detail

    assert all({"time", "level", "logger", "message", "request_id"} <= line.keys() for line in lines)
    of_upload = [line for line in lines if line["request_id"] == upload_id]
    assert any(line["logger"] == "uvicorn.access" and "POST /videos" in line["message"] for line in of_upload)
    of_video = [line["message"] for line in lines if line.get("video_id") == video_id]
    assert any("processing video" in message for message in of_video)
    assert any("completed" in message for message in of_video)
    assert all(line["request_id"] is None for line in lines if line.get("video_id"))

    of_error = [line for line in lines if line["request_id"] == error_id]
    logged = [line for line in of_error if line["level"] == "ERROR" and "POST /videos failed" in line["message"]]
    assert len(logged) == 1 and "NotADirectoryError" in logged[0]["exception"]
    assert any(line["logger"] == "uvicorn.access" and '" 500' in line["message"] for line in of_error)
    tracebacks = [line for line in lines if "NotADirectoryError" in line.get("exception", "")]
    assert all(line["request_id"] == error_id for line in tracebacks)


# Readiness


async def test_ready_when_the_store_answers(client: httpx.AsyncClient, store: StoreDatabase) -> None:
    answer = await client.get("/ready")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "database": store.kind}


@pytest.mark.embedded_only
def test_ready_is_503_while_another_program_holds_the_stores_write_lock(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir) as server:
        assert httpx.get(f"{server.base_url}/ready").status_code == 200
        other = sqlite3.connect(data_dir / "db" / DATABASE_NAME, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            held = httpx.get(f"{server.base_url}/ready")
            health = httpx.get(f"{server.base_url}/health")
            other.execute("ROLLBACK")
        finally:
            other.close()
        released = httpx.get(f"{server.base_url}/ready")
    assert held.status_code == 503
    assert held.json() == {"detail": "not ready: the embedded store cannot take a write now (database is locked)"}
    assert health.status_code == 200
    assert released.status_code == 200


@pytest.mark.parametrize("peer", ["closed port", "silent peer"])
async def test_mongodb_that_does_not_answer_is_unreachable_within_the_timeout(peer: str) -> None:
    with silent_peer() as silent:
        port = silent if peer == "silent peer" else free_port()
        database = Database(AsyncIOMotorClient(f"mongodb://127.0.0.1:{port}/?directConnection=true"), "db", "mongodb")
        started = time.monotonic()
        try:
            with pytest.raises(StoreUnreachable, match=r"^did not answer within 0\.5 s$"):
                await database.ping(0.5)
        finally:
            database.close()
    assert time.monotonic() - started < 2.0


@pytest.mark.embedded_only
async def test_a_closed_embedded_store_is_not_ready(settings: Settings) -> None:
    async with serving(settings) as http:
        Video.get_motor_collection()._embedded.close()
        answer = await http.get("/ready")
    assert answer.status_code == 503
    assert answer.json() == {"detail": "not ready: the embedded store is closed"}


@pytest.mark.embedded_only
async def test_an_embedded_store_busy_past_the_timeout_is_unreachable(settings: Settings) -> None:
    """Its one thread, held by a long operation, does not answer in time; then it does again."""
    database = await connect(settings)
    try:
        holding = threading.Event()

        def hold_the_thread() -> None:
            holding.set()
            time.sleep(1.0)

        busy = asyncio.ensure_future(database.client.store.run(hold_the_thread))
        await asyncio.to_thread(holding.wait, 10)
        with pytest.raises(StoreUnreachable, match=r"^did not answer within 0\.2 s$"):
            await database.ping(0.2)
        await busy
        await database.ping(0.2)
    finally:
        database.close()
