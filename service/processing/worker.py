"""Workers: claim a video, transcribe it off the event loop, keep the lease alive, store the result."""

import asyncio
import logging
import os
import signal
import socket
import threading
from collections.abc import Awaitable, Callable

from service.config import Settings
from service.db.service import connect
from service.processing import queue
from service.processing.transcription import (
    JobCancelled,
    Transcriber,
    TranscriptionResult,
    UndecodableMedia,
    empty_transcript,
)
from service.storage.service import LocalStorage
from service.videos.models import Video

logger = logging.getLogger(__name__)


def worker_name(index: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


class Worker:
    def __init__(self, settings: Settings, storage: LocalStorage, transcriber: Transcriber, name: str) -> None:
        self.settings = settings
        self.storage = storage
        self.transcriber = transcriber
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
        video = await queue.claim(self.name, self.settings.job_lease_seconds)
        if video is None:
            return False
        logger.info("worker %s: processing video %s (attempt %d)", self.name, video.id, video.job.attempts)
        cancelled = threading.Event()
        try:
            result = await self._with_lease(video, cancelled, lambda progress: self._transcribe(video, progress, cancelled))
        except (asyncio.CancelledError, JobCancelled) as stopped:
            cancelled.set()
            await queue.release(video.id, self.name)
            if isinstance(stopped, asyncio.CancelledError):
                raise
            logger.warning("worker %s: lost the lease on video %s; left it to its new owner", self.name, video.id)
            return True
        except UndecodableMedia as error:
            await queue.fail(video, self.name, str(error), self.settings.job_max_attempts, self.settings.job_retry_base_seconds, permanent=True)
            logger.warning("worker %s: video %s failed: %s", self.name, video.id, error)
            return True
        except Exception as error:
            await queue.fail(video, self.name, f"{error.__class__.__name__}: {error}", self.settings.job_max_attempts, self.settings.job_retry_base_seconds, permanent=False)
            logger.exception("worker %s: video %s attempt %d failed", self.name, video.id, video.job.attempts)
            return True
        if await queue.complete(video.id, self.name, result.transcript, result.note):
            logger.info("worker %s: video %s completed", self.name, video.id)
        else:
            logger.warning("worker %s: video %s was taken over or deleted; result dropped", self.name, video.id)
        return True

    async def _transcribe(self, video: Video, progress: list[float], cancelled: threading.Event) -> TranscriptionResult:
        if video.file is None:
            raise UndecodableMedia("the video has no stored file")
        if not video.metadata.has_audio:
            return TranscriptionResult(empty_transcript(self.transcriber.model_name), None)

        def on_progress(value: float) -> None:
            progress[0] = value

        return await asyncio.to_thread(
            self.transcriber.transcribe,
            self.storage.path(video.file.key),
            video.requested_language,
            video.metadata.duration,
            on_progress,
            cancelled,
        )

    async def _with_lease(
        self,
        video: Video,
        cancelled: threading.Event,
        work: Callable[[list[float]], Awaitable[TranscriptionResult]],
    ) -> TranscriptionResult:
        """Run `work` while extending the lease and recording its progress every third of a lease."""
        progress = [0.0]
        task = asyncio.ensure_future(work(progress))
        interval = min(self.settings.job_lease_seconds / 3, 2.0)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=interval)
                if done:
                    return task.result()
                if not await queue.heartbeat(video.id, self.name, self.settings.job_lease_seconds, progress[0]):
                    cancelled.set()
                    raise JobCancelled()
        finally:
            if not task.done():
                cancelled.set()
                task.cancel()


class WorkerPool:
    """WORKERS workers sharing one transcriber (one model) in this process."""

    def __init__(self, settings: Settings, storage: LocalStorage) -> None:
        transcriber = Transcriber(settings)
        self.workers = [Worker(settings, storage, transcriber, worker_name(i)) for i in range(settings.workers)]
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(worker.run(self._stop)) for worker in self.workers]

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def run_workers(settings: Settings) -> None:
    """`video-analyzer worker`: workers without the HTTP API, until SIGINT or SIGTERM."""
    if settings.uses_embedded_store:
        raise SystemExit(
            "video-analyzer worker needs MONGODB_URL: the embedded store lives inside one process, "
            "so run `video-analyzer serve` with WORKERS instead"
        )
    settings.workers = max(settings.workers, 1)
    database = await connect(settings)
    storage = LocalStorage(settings.files_dir)
    pool = WorkerPool(settings, storage)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stopping.set)
    pool.start()
    try:
        await stopping.wait()
    finally:
        await pool.stop()
        database.close()
