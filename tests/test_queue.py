"""The job queue in MongoDB: atomic claims, leases that run out, results only from the lease holder."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from beanie import PydanticObjectId

from service.ai.providers.local import LocalModel
from service.clock import utc_now
from service.config import Settings
from service.db.service import connect
from service.processing import queue
from service.processing.transcription import Transcriber, TranscriptionResult
from service.processing.worker import Worker
from service.storage.service import LocalStorage
from service.videos.models import FileInfo, Job, MediaMetadata, Transcript, Video
from tests.conftest import NO_AUDIO_VIDEO, SPEECH_VIDEO, serving
from tests.server import ServerProcess, running_server
from tests.store import StoreDatabase

T = TypeVar("T")


class RecordingWorker(Worker):
    """A real worker that also notes each video it transcribed."""

    def __init__(self, *args: object, processed: list[str]) -> None:
        super().__init__(*args)
        self.processed = processed

    async def _transcribe(self, video: Video, *args: object) -> TranscriptionResult:
        self.processed.append(str(video.id))
        await asyncio.sleep(0.01)
        return await super()._transcribe(video, *args)


@pytest.fixture
async def queue_store(tmp_path: Path, store: StoreDatabase) -> AsyncIterator[tuple[Settings, LocalStorage]]:
    settings = Settings(
        _env_file=None, data_dir=tmp_path / "data", job_lease_seconds=0.5, worker_poll_seconds=0.01, **store.settings
    )
    database = await connect(settings)
    storage = LocalStorage(settings.files_dir)
    storage.prepare()
    yield settings, storage
    database.close()


async def queued_silent_videos(storage: LocalStorage, count: int) -> list[str]:
    ids = []
    for index in range(count):
        key = storage.new_key()
        storage.path(key).write_bytes(NO_AUDIO_VIDEO.read_bytes())
        video = Video(
            filename=f"v{index}.mp4",
            file=FileInfo(key=key, size=1, sha256="0"),
            metadata=MediaMetadata(duration=3.0, has_audio=False),
            job=Job(stage="queued", queued_at=utc_now()),
        )
        await video.insert()
        ids.append(str(video.id))
    return ids


async def test_two_workers_racing_process_each_video_exactly_once(queue_store: tuple[Settings, LocalStorage]) -> None:
    settings, storage = queue_store
    ids = await queued_silent_videos(storage, 10)
    processed: list[str] = []
    transcriber = Transcriber(settings)
    workers = [
        RecordingWorker(settings, storage, transcriber, LocalModel(settings), f"racer-{n}", processed=processed)
        for n in range(2)
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(worker.run(stop)) for worker in workers]
    async with asyncio.timeout(30):
        while await Video.find(Video.status == "completed").count() < 10:
            await asyncio.sleep(0.02)
    stop.set()
    await asyncio.gather(*tasks)
    assert sorted(processed) == sorted(ids)
    for video in await Video.find_all().to_list():
        assert video.job.attempts == 1
        assert video.job.worker in {"racer-0", "racer-1"}


async def test_an_expired_lease_is_claimed_again_and_the_old_owner_cannot_write(
    queue_store: tuple[Settings, LocalStorage],
) -> None:
    settings, storage = queue_store
    [video_id] = await queued_silent_videos(storage, 1)
    stalled = await queue.claim("stalled-worker", lease_seconds=0.3, max_attempts=3)
    assert stalled is not None and str(stalled.id) == video_id
    assert await queue.claim("eager-worker", lease_seconds=0.3, max_attempts=3) is None

    await asyncio.sleep(0.4)
    processed: list[str] = []
    survivor = RecordingWorker(
        settings, storage, Transcriber(settings), LocalModel(settings), "survivor", processed=processed
    )
    assert await survivor.run_once()
    assert processed == [video_id]

    late = await queue.store_transcript(stalled.id, "stalled-worker", Transcript(text="stale"), None)
    assert late is False
    assert await queue.heartbeat(stalled.id, "stalled-worker", 10, 0.5) is False
    video = await Video.get(stalled.id)
    assert video.status == "completed"
    assert video.job.worker == "survivor"
    assert video.job.attempts == 2
    assert video.transcript.text == ""


async def expire_lease(video_id: PydanticObjectId) -> None:
    """What a worker's death leaves behind once its lease has run out: no fail, no release."""
    past = utc_now() - timedelta(seconds=1)
    await Video.get_motor_collection().update_one({"_id": video_id}, {"$set": {"job.lease_until": past}})


async def test_a_job_whose_worker_dies_max_attempts_times_fails(
    queue_store: tuple[Settings, LocalStorage], caplog: pytest.LogCaptureFixture
) -> None:
    _, storage = queue_store
    [video_id] = await queued_silent_videos(storage, 1)
    for attempt in (1, 2, 3):
        claimed = await queue.claim(f"doomed-{attempt}", lease_seconds=60, max_attempts=3)
        assert claimed is not None and str(claimed.id) == video_id
        assert claimed.job.attempts == attempt
        await expire_lease(claimed.id)

    claims = await asyncio.gather(*(queue.claim(f"late-{n}", lease_seconds=60, max_attempts=3) for n in range(4)))
    assert claims == [None] * 4
    video = await Video.get(PydanticObjectId(video_id))
    assert video.status == "failed"
    assert video.job.stage == "failed"
    assert video.job.error == "the worker processing it died 3 times (JOB_MAX_ATTEMPTS=3); last worker: doomed-3"
    assert video.job.attempts == 3
    assert video.job.lease_until is None
    assert video.job.finished_at is not None
    assert [r.getMessage() for r in caplog.records if "failed:" in r.getMessage()] == [
        f"video {video_id} failed: {video.job.error}"
    ]


async def test_a_job_that_failed_once_then_lost_its_last_attempt_keeps_both_reasons(
    queue_store: tuple[Settings, LocalStorage],
) -> None:
    _, storage = queue_store
    [video_id] = await queued_silent_videos(storage, 1)
    first = await queue.claim("unlucky", lease_seconds=60, max_attempts=2)
    assert await queue.fail(first, "unlucky", "OSError: disk full", 2, retry_base_seconds=0, permanent=False)
    second = await queue.claim("doomed", lease_seconds=60, max_attempts=2)
    assert second is not None and second.job.attempts == 2
    await expire_lease(second.id)

    assert await queue.claim("late", lease_seconds=60, max_attempts=2) is None
    video = await Video.get(PydanticObjectId(video_id))
    assert video.status == "failed"
    assert video.job.error == (
        "the worker processing it died on attempt 2 (JOB_MAX_ATTEMPTS=2); last worker: doomed; "
        "an earlier attempt failed: OSError: disk full"
    )


@pytest.mark.embedded_only
async def test_start_up_on_the_embedded_store_takes_back_what_the_previous_process_held(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Lease or no lease, the previous process (the store's only user) died holding these videos."""
    lease_until = utc_now() + timedelta(minutes=10)
    held = {"stage": "transcribing", "worker": "host:1:0", "lease_until": lease_until, "queued_at": utc_now()}
    database = await connect(settings)
    exhausted = Video(filename="a.mp4", status="processing", job=Job(**held, attempts=settings.job_max_attempts))
    retried = Video(filename="b.mp4", status="processing", job=Job(**held, attempts=1))
    await exhausted.insert()
    await retried.insert()
    database.close()

    with caplog.at_level(logging.INFO, logger="service.processing.queue"):
        async with serving(settings):
            exhausted = await Video.get(exhausted.id)
            retried = await Video.get(retried.id)
    assert exhausted.status == "failed" and exhausted.job.stage == "failed"
    assert exhausted.job.error == "the worker processing it died 3 times (JOB_MAX_ATTEMPTS=3); last worker: host:1:0"
    assert exhausted.job.lease_until is None and exhausted.job.finished_at is not None
    assert retried.status == "queued" and retried.job.stage == "queued"
    assert (retried.job.worker, retried.job.lease_until, retried.job.next_attempt_at) == (None, None, None)
    assert retried.job.attempts == 1
    assert "took back 2 video(s) left processing by the previous process: 1 queued again, 1 failed" in caplog.text


def wait_for(predicate: Callable[[], T], timeout: float, interval: float = 0.02) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met in time")


def upload_speech_until_processing(server: ServerProcess) -> str:
    """Upload the speech fixture and return its id once a worker is processing it."""
    with SPEECH_VIDEO.open("rb") as file:
        video_id = httpx.post(f"{server.base_url}/videos", files={"file": ("s.mp4", file)}, timeout=30).json()["id"]
    url = f"{server.base_url}/videos/{video_id}"
    wait_for(lambda: httpx.get(url, timeout=5).json()["status"] == "processing", timeout=30, interval=0.01)
    return video_id


def finished_over_http(server: ServerProcess, video_id: str, timeout: float) -> dict:
    url = f"{server.base_url}/videos/{video_id}"
    return wait_for(
        lambda: (v := httpx.get(url, timeout=5).json())["status"] in ("completed", "failed") and v, timeout=timeout
    )


def test_a_worker_killed_mid_job_loses_nothing(tmp_path: Path, store: StoreDatabase) -> None:
    """A real server process is SIGKILLed while transcribing; after a restart the video is
    finished, once, with the whole transcript."""
    data_dir = tmp_path / "data"
    env = {**store.environment, "WORKERS": "1", "JOB_LEASE_SECONDS": "2", "WORKER_POLL_SECONDS": "0.1"}
    with running_server(data_dir, env) as server:
        video_id = upload_speech_until_processing(server)
        started = time.perf_counter()
        assert httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200
        health_seconds = time.perf_counter() - started
        assert httpx.get(f"{server.base_url}/videos/{video_id}", timeout=5).json()["status"] == "processing"
        server.kill()
    assert health_seconds < 0.5

    with running_server(data_dir, env) as restarted:
        video = finished_over_http(restarted, video_id, timeout=60)
        assert video["status"] == "completed"
        assert video["job"]["attempts"] == 2
        assert "Berlin" in video["transcript"]["text"]
        starts = [segment["start"] for segment in video["transcript"]["segments"]]
        assert starts == sorted(set(starts))
        assert video["transcript"]["text"].count("My name is") == 1


@pytest.mark.embedded_only
def test_a_restart_on_the_embedded_store_takes_back_the_killed_job_at_once(tmp_path: Path) -> None:
    """The killed process's lease (600 s) is not waited out: the restart takes the video back at once."""
    data_dir = tmp_path / "data"
    env = {"WORKERS": "1", "JOB_LEASE_SECONDS": "600", "WORKER_POLL_SECONDS": "0.1"}
    with running_server(data_dir, env) as server:
        video_id = upload_speech_until_processing(server)
        server.kill()

    with running_server(data_dir, env) as restarted:
        video = finished_over_http(restarted, video_id, timeout=60)  # raises TimeoutError after 60 s
    assert video["status"] == "completed"
    assert video["job"]["attempts"] == 2
    assert "Berlin" in video["transcript"]["text"]
    assert "took back 1 video(s) left processing by the previous process: 1 queued again, 0 failed" in restarted.log()


def test_events_stream_over_http_until_completed(tmp_path: Path, store: StoreDatabase) -> None:
    env = {**store.environment, "WORKERS": "1", "WORKER_POLL_SECONDS": "0.1"}
    with running_server(tmp_path / "data", env) as server:
        with SPEECH_VIDEO.open("rb") as file:
            video_id = httpx.post(f"{server.base_url}/videos", files={"file": ("s.mp4", file)}, timeout=30).json()["id"]
        events = []
        with httpx.stream("GET", f"{server.base_url}/videos/{video_id}/events", timeout=60) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(httpx.Response(200, content=line[6:]).json())
    assert events[-1]["status"] == "completed"
    assert events[-1]["progress"] == 1.0
    progress = [event["progress"] for event in events]
    assert progress == sorted(progress)
    assert {event["status"] for event in events} >= {"processing", "completed"}
