"""Workers: claim a video, transcribe it off the event loop, keep the lease alive, store the result."""

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Awaitable
from typing import TypeVar

from service.ai.providers.base import LanguageModel
from service.ai.service import create_language_model, summarize
from service.config import Settings
from service.db.service import connect
from service.observability import correlation
from service.observability.metrics import observe_transcription
from service.observability.worker_server import WorkerMetricsServer, serve_worker_metrics
from service.processing import queue
from service.processing.transcription import (
    JobCancelled,
    Transcriber,
    TranscriptionResult,
    UndecodableMedia,
    empty_transcript,
)
from service.storage.service import Storage, open_storage
from service.videos.models import Summary, Video
from service.webhooks.delivery import Dispatcher

T = TypeVar("T")

CANCEL_CHECK_SECONDS = 0.5
"""How often a worker reads whether its video is still its own (cancelled, or taken over)."""

logger = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        transcriber: Transcriber,
        language_model: LanguageModel,
        name: str,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.transcriber = transcriber
        self.language_model = language_model
        self.name = name

    async def run(self, stop: asyncio.Event) -> None:
        """Process videos until `stop` is set; sleep WORKER_POLL_SECONDS when there are none."""
        logger.info("worker %s started", self.name)
        while not stop.is_set():
            try:
                worked = await self.run_once()
            except Exception:
                logger.exception("worker %s: unexpected error; carrying on", self.name)
                worked = False
            if not worked:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.settings.worker_poll_seconds)
                except TimeoutError:
                    pass

    async def run_once(self) -> bool:
        """Claim and process one video; False when none was runnable."""
        video = await queue.claim(self.name, self.settings.job_lease_seconds, self.settings.job_max_attempts)
        if video is None:
            return False
        with correlation.processing(video.id):
            await self._run(video)
        return True

    async def _run(self, video: Video) -> None:
        logger.info("worker %s: processing video %s (attempt %d)", self.name, video.id, video.job.attempts)
        cancelled = threading.Event()
        try:
            await self._process(video, cancelled)
        except (asyncio.CancelledError, JobCancelled) as stopped:
            cancelled.set()
            await queue.release(video.id, self.name)
            if isinstance(stopped, asyncio.CancelledError):
                raise
            logger.warning(
                "worker %s: video %s was cancelled, or its lease lost; stopped and left it", self.name, video.id
            )
        except UndecodableMedia as error:
            await self._fail(video, str(error), permanent=True)
            logger.warning("worker %s: video %s failed: %s", self.name, video.id, error)
        except Exception as error:
            await self._fail(video, f"{error.__class__.__name__}: {error}", permanent=False)
            logger.exception("worker %s: video %s attempt %d failed", self.name, video.id, video.job.attempts)

    async def _process(self, video: Video, cancelled: threading.Event) -> None:
        progress = [0.0]
        result = await self._with_lease(video, cancelled, progress, self._transcribe(video, progress, cancelled))
        if not await queue.store_transcript(video.id, self.name, result.transcript, result.note):
            logger.warning("worker %s: video %s was taken over or deleted; transcript dropped", self.name, video.id)
            return
        video.transcript = result.transcript
        summary = await self._with_lease(video, cancelled, progress, self._summarize(video))
        if await queue.complete(video, self.name, summary):
            logger.info("worker %s: video %s completed", self.name, video.id)
        else:
            logger.warning("worker %s: video %s was taken over or deleted; summary dropped", self.name, video.id)

    async def _fail(self, video: Video, error: str, permanent: bool) -> None:
        settings = self.settings
        await queue.fail(video, self.name, error, settings.job_max_attempts, settings.job_retry_base_seconds, permanent)

    async def _transcribe(self, video: Video, progress: list[float], cancelled: threading.Event) -> TranscriptionResult:
        if video.file is None:
            raise UndecodableMedia("the video has no stored file")
        if not video.metadata.has_audio:
            return TranscriptionResult(empty_transcript(self.transcriber.model_name), None)

        def on_progress(value: float) -> None:
            progress[0] = value

        async with self.storage.of(video.file.storage).media_source(video.file.key) as source:
            started = time.perf_counter()
            result = await asyncio.to_thread(
                self.transcriber.transcribe,
                source,
                video.requested_language,
                video.options,
                video.metadata.duration,
                on_progress,
                cancelled,
            )
            observe_transcription(time.perf_counter() - started, video.metadata.duration)
        return result

    async def _summarize(self, video: Video) -> Summary:
        """The summary, or the reason there is none: a summary failure never loses the transcript."""
        try:
            return await summarize(video, self.language_model)
        except Exception as error:
            logger.warning("worker %s: summary of video %s failed: %s", self.name, video.id, error)
            return Summary(model=self.language_model.model, error=str(error) or error.__class__.__name__)

    async def _with_lease(
        self, video: Video, cancelled: threading.Event, progress: list[float], work: Awaitable[T]
    ) -> T:
        """Await `work` while extending the lease and recording progress every third of a lease (2 s
        at most), and looking every CANCEL_CHECK_SECONDS whether the video was cancelled."""
        task = asyncio.ensure_future(work)
        heartbeat_every = min(self.settings.job_lease_seconds / 3, 2.0)
        last_heartbeat = time.monotonic()
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=min(heartbeat_every, CANCEL_CHECK_SECONDS))
                if done:
                    return task.result()
                if time.monotonic() - last_heartbeat >= heartbeat_every:
                    held = await queue.heartbeat(video.id, self.name, self.settings.job_lease_seconds, progress[0])
                    last_heartbeat = time.monotonic()
                else:
                    held = await queue.holds(video.id, self.name)
                if not held:
                    cancelled.set()
                    raise JobCancelled()
        finally:
            if not task.done():
                cancelled.set()
                task.cancel()


class WorkerPool:
    """WORKERS workers sharing one transcriber (one model) in this process."""

    def __init__(self, settings: Settings, storage: Storage, language_model: LanguageModel) -> None:
        transcriber = Transcriber(settings)
        self.workers = [
            Worker(settings, storage, transcriber, language_model, queue.worker_name(i))
            for i in range(settings.workers)
        ]
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(worker.run(self._stop)) for worker in self.workers]

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _serve_metrics(settings: Settings, port: int) -> WorkerMetricsServer:
    try:
        return await serve_worker_metrics(settings, settings.host, port)
    except OSError as error:
        raise SystemExit(f"video-analyzer worker: cannot serve metrics on {settings.host}:{port}: {error}") from None


async def run_workers(settings: Settings, metrics_port: int | None = None) -> None:
    """`video-analyzer worker`: workers without the HTTP API, until SIGINT or SIGTERM; with
    `metrics_port`, their metrics at http://HOST:metrics_port/metrics (served first, so that a
    port in use stops the start before anything else)."""
    if settings.uses_embedded_store:
        raise SystemExit(
            "video-analyzer worker needs MONGODB_URL: the embedded store lives inside one process, "
            "so run `video-analyzer serve` with WORKERS instead"
        )
    metrics = None if metrics_port is None else await _serve_metrics(settings, metrics_port)
    try:
        await _work_until_stopped(settings)
    finally:
        if metrics is not None:
            await metrics.stop()


async def _work_until_stopped(settings: Settings) -> None:
    settings.workers = max(settings.workers, 1)
    database = await connect(settings)
    storage = open_storage(settings, database)
    language_model = create_language_model(settings)
    pool = WorkerPool(settings, storage, language_model)
    webhooks = Dispatcher(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stopping.set)
    pool.start()
    webhooks.start()
    try:
        await stopping.wait()
    finally:
        await pool.stop()
        await webhooks.stop()
        await language_model.close()
        database.close()
