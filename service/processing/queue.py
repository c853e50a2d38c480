"""The job queue, kept in the video documents themselves.

A worker claims the oldest runnable video with one atomic find_one_and_update (queued and due,
or processing with an expired lease), holds it with a lease it keeps extending, and writes
results only while it still holds that lease; so two workers never process one video at once,
and a worker that dies loses nothing: its lease runs out and another worker claims the video.
An attempt lost that way counts like any other: once JOB_MAX_ATTEMPTS are used up, the video fails.
"""

import logging
import os
import socket
from datetime import timedelta
from typing import Any

from beanie import PydanticObjectId
from pymongo import ReturnDocument

from service.clock import utc_now
from service.processing.schemas import QueueDepth
from service.text import text_search_language
from service.videos.models import Summary, Transcript, Video
from service.webhooks import events

logger = logging.getLogger(__name__)


def worker_name(index: int | str) -> str:
    """This process's name for a lease it holds (a video's, a webhook delivery's): host, process
    id, and which of its workers."""
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


def _collection() -> Any:
    return Video.get_motor_collection()


def _held_by(video_id: PydanticObjectId, worker: str) -> dict[str, Any]:
    return {"_id": video_id, "status": "processing", "job.worker": worker}


async def claim(worker: str, lease_seconds: float, max_attempts: int) -> Video | None:
    """The oldest runnable video, now held by `worker`; None when there is none.

    An expired lease with attempts left is claimed again; one whose attempts are used up is failed
    first, here, so that no scheduler of its own is needed."""
    now = utc_now()
    await _fail_lost_jobs(max_attempts, {"job.lease_until": {"$lt": now}})
    runnable = {
        "$or": [
            {"status": "queued", "$or": [{"job.next_attempt_at": None}, {"job.next_attempt_at": {"$lte": now}}]},
            {"status": "processing", "job.lease_until": {"$lt": now}, "job.attempts": {"$lt": max_attempts}},
        ]
    }
    update = {
        "$set": {
            "status": "processing",
            "job.stage": "transcribing",
            "job.progress": 0.0,
            "job.worker": worker,
            "job.lease_until": now + timedelta(seconds=lease_seconds),
            "job.started_at": now,
            "job.finished_at": None,
            "updated_at": now,
        },
        "$inc": {"job.attempts": 1},
    }
    document = await _collection().find_one_and_update(
        runnable, update, sort=[("job.queued_at", 1), ("_id", 1)], return_document=ReturnDocument.AFTER
    )
    return None if document is None else Video.model_validate(document)


async def take_back(max_attempts: int) -> None:
    """Take back every video left processing: only for a store that no other process can use.

    The embedded store belongs to one process, so at its start-up no live worker can hold a lease:
    the previous process died holding these videos. Each lost attempt counts; a video with
    attempts left is runnable at once instead of after its lease runs out, the others fail."""
    failed = await _fail_lost_jobs(max_attempts, {})
    result = await _collection().update_many(
        {"status": "processing", "job.attempts": {"$lt": max_attempts}},
        {
            "$set": {
                "status": "queued",
                "job.stage": "queued",
                "job.worker": None,
                "job.lease_until": None,
                "job.next_attempt_at": None,
                "updated_at": utc_now(),
            }
        },
    )
    logger.info(
        "queue: took back %d video(s) left processing by the previous process: %d queued again, %d failed",
        result.modified_count + failed,
        result.modified_count,
        failed,
    )


async def _fail_lost_jobs(max_attempts: int, lease: dict[str, Any]) -> int:
    """Fail the videos in processing, matching `lease`, whose worker died on their last attempt.

    Each write applies only if the job is still the one just read (same worker, lease and attempts):
    a worker in another process that meanwhile extended or failed it is left alone. Returns the count."""
    lost = {"status": "processing", "job.attempts": {"$gte": max_attempts}, **lease}
    failed = 0
    for document in await _collection().find(lost, {"job": 1, "filename": 1}).to_list(None):
        error = _death_error(document["job"], max_attempts)
        if await _fail_if_unchanged(document, error):
            logger.warning("video %s failed: %s", document["_id"], error)
            failed += 1
    return failed


def _death_error(job: dict[str, Any], max_attempts: int) -> str:
    """Why the video failed; the job keeps the error of an earlier attempt that failed on its own."""
    limit = f"(JOB_MAX_ATTEMPTS={max_attempts}); last worker: {job.get('worker')}"
    if job.get("error") is None:
        return f"the worker processing it died {job['attempts']} times {limit}"
    return (
        f"the worker processing it died on attempt {job['attempts']} {limit}; an earlier attempt failed: {job['error']}"
    )


async def _fail_if_unchanged(document: dict[str, Any], error: str) -> bool:
    now = utc_now()
    job = document["job"]
    unchanged = {
        "_id": document["_id"],
        "status": "processing",
        "job.worker": job.get("worker"),
        "job.lease_until": job.get("lease_until"),
        "job.attempts": job["attempts"],
    }
    failed = {
        "status": "failed",
        "job.stage": "failed",
        "job.error": error,
        "job.lease_until": None,
        "job.finished_at": now,
        "updated_at": now,
    }
    event = events.video_failed(document["_id"], document["filename"], error, job["attempts"], now)
    result = await _collection().update_one(unchanged, {"$set": failed, **events.outbox_push(event)})
    return _announced(result.modified_count == 1, document["_id"])


def _announced(written: bool, video_id: PydanticObjectId) -> bool:
    """`written`, after telling this process's webhook dispatcher when the write raised events."""
    if written:
        events.announce(video_id)
    return written


async def heartbeat(video_id: PydanticObjectId, worker: str, lease_seconds: float, progress: float) -> bool:
    """Extend the lease and record progress; False when the lease is no longer this worker's."""
    now = utc_now()
    result = await _collection().update_one(
        _held_by(video_id, worker),
        {
            "$set": {
                "job.lease_until": now + timedelta(seconds=lease_seconds),
                "job.progress": round(progress, 4),
                "updated_at": now,
            }
        },
    )
    return result.matched_count == 1


async def holds(video_id: PydanticObjectId, worker: str) -> bool:
    """Whether `worker` still holds the video: False once it was cancelled, deleted or taken over."""
    return await _collection().find_one(_held_by(video_id, worker), {"_id": 1}) is not None


async def cancel(video_id: PydanticObjectId) -> Video | None:
    """Stop a queued or processing video: it becomes `cancelled`; the worker holding it sees that
    it no longer does and stops. None when the video was not queued or processing."""
    now = utc_now()
    document = await _collection().find_one_and_update(
        {"_id": video_id, "status": {"$in": ["queued", "processing"]}},
        {
            "$set": {
                "status": "cancelled",
                "job.stage": "cancelled",
                "job.worker": None,
                "job.lease_until": None,
                "job.next_attempt_at": None,
                "job.finished_at": now,
                "updated_at": now,
            }
        },
        return_document=ReturnDocument.AFTER,
    )
    return None if document is None else Video.model_validate(document)


async def store_transcript(video_id: PydanticObjectId, worker: str, transcript: Transcript, note: str | None) -> bool:
    """Keep the transcript as soon as it exists; the summary comes next (stage `summarizing`)."""
    result = await _collection().update_one(
        _held_by(video_id, worker),
        {
            "$set": {
                "transcript": transcript.model_dump(),
                "search_language": text_search_language(transcript.language),
                "job.stage": "summarizing",
                "job.progress": 1.0,
                "job.note": note,
                "updated_at": utc_now(),
            }
        },
    )
    return result.matched_count == 1


async def complete(video: Video, worker: str, summary: Summary) -> bool:
    """Store the summary and complete the video; `video.transcript` is the one stored."""
    now = utc_now()
    raised = [events.video_completed(video, now)]
    if summary.error is None:
        raised.append(events.summary_completed(video, summary, now))
    result = await _collection().update_one(
        _held_by(video.id, worker),
        {
            "$set": {
                "status": "completed",
                "summary": summary.model_dump(),
                "job.stage": "done",
                "job.error": None,
                "job.lease_until": None,
                "job.next_attempt_at": None,
                "job.finished_at": now,
                "processed_at": now,
                "updated_at": now,
            },
            **events.outbox_push(*raised),
        },
    )
    return _announced(result.matched_count == 1, video.id)


async def fail(
    video: Video, worker: str, error: str, max_attempts: int, retry_base_seconds: float, permanent: bool
) -> bool:
    """Queue the video again after a backoff, or mark it failed once its attempts are used up."""
    now = utc_now()
    attempts = video.job.attempts
    fields: dict[str, Any] = {"job.error": error, "job.lease_until": None, "job.finished_at": now, "updated_at": now}
    if permanent or attempts >= max_attempts:
        fields.update({"status": "failed", "job.stage": "failed"})
        event = events.video_failed(video.id, video.filename, error, attempts, now)
        result = await _collection().update_one(
            _held_by(video.id, worker), {"$set": fields, **events.outbox_push(event)}
        )
        return _announced(result.matched_count == 1, video.id)
    backoff = retry_base_seconds * 2 ** (attempts - 1)
    fields.update({"status": "queued", "job.stage": "queued", "job.next_attempt_at": now + timedelta(seconds=backoff)})
    result = await _collection().update_one(_held_by(video.id, worker), {"$set": fields})
    return result.matched_count == 1


async def release(video_id: PydanticObjectId, worker: str) -> None:
    """Hand an unfinished video back at shutdown; the interrupted attempt does not count."""
    await _collection().update_one(
        _held_by(video_id, worker),
        {
            "$set": {
                "status": "queued",
                "job.stage": "queued",
                "job.worker": None,
                "job.lease_until": None,
                "updated_at": utc_now(),
            },
            "$inc": {"job.attempts": -1},
        },
    )


async def requeue(video_id: PydanticObjectId) -> Video | None:
    """Queue a finished (completed, failed or cancelled) video again, with a fresh count of attempts."""
    now = utc_now()
    document = await _collection().find_one_and_update(
        {"_id": video_id, "status": {"$in": ["completed", "failed", "cancelled"]}},
        {
            "$set": {
                "status": "queued",
                "job": {"stage": "queued", "progress": 0.0, "attempts": 0, "queued_at": now},
                "updated_at": now,
            }
        },
        return_document=ReturnDocument.AFTER,
    )
    return None if document is None else Video.model_validate(document)


async def depth() -> QueueDepth:
    """Videos queued and processing, and the age of the oldest queued one.

    Two counts and one sorted find, each served by the status index on MongoDB. Not one
    aggregation: the embedded store's (mongomock's) copies every document of the collection
    first, which took over ten seconds at 10,000 transcripts."""
    collection = _collection()
    queued = await collection.count_documents({"status": "queued"})
    processing = await collection.count_documents({"status": "processing"})
    oldest = await collection.find_one(
        {"status": "queued", "job.queued_at": {"$type": "date"}},
        {"job.queued_at": 1},
        sort=[("job.queued_at", 1)],
    )
    age = 0.0 if oldest is None else max(0.0, (utc_now() - oldest["job"]["queued_at"]).total_seconds())
    return QueueDepth(queued=queued, processing=processing, oldest_queued_age_seconds=age)
