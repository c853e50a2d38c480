"""The events the pipeline raises, written into the video's outbox by the very update that
changes its state (one document, so one atomic write on MongoDB and on the embedded store alike),
and the in-process signal that wakes this process's dispatcher at once."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from beanie import PydanticObjectId

from service.videos.models import Summary, Video
from service.webhooks.models import EventType, WebhookEvent

OUTBOX_FIELD = "webhook_outbox"
HAS_PENDING_EVENTS = {f"{OUTBOX_FIELD}.at": {"$type": "date"}}
"""Served by the `webhook_outbox` index on MongoDB: an empty outbox has no entry in it."""
NO_PENDING_EVENTS = {f"{OUTBOX_FIELD}.at": {"$exists": False}}
MESSAGE_ID_PREFIX = "msg_"

_listeners: set[Callable[[PydanticObjectId], None]] = set()


def iso(moment: datetime) -> str:
    """A time as payloads write it: UTC, milliseconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _event(type: EventType, at: datetime, data: dict[str, Any]) -> WebhookEvent:
    return WebhookEvent(id=MESSAGE_ID_PREFIX + uuid.uuid4().hex, type=type, at=at, data=data)


def video_completed(video: Video, at: datetime) -> WebhookEvent:
    transcript = video.transcript
    return _event(
        "video.completed",
        at,
        {
            "id": str(video.id),
            "filename": video.filename,
            "status": "completed",
            "duration": video.metadata.duration,
            "language": None if transcript is None else transcript.language,
            "processed_at": iso(at),
        },
    )


def video_failed(video_id: PydanticObjectId, filename: str, error: str, attempts: int, at: datetime) -> WebhookEvent:
    return _event(
        "video.failed",
        at,
        {"id": str(video_id), "filename": filename, "status": "failed", "error": error, "attempts": attempts},
    )


def summary_completed(video: Video, summary: Summary, at: datetime) -> WebhookEvent:
    return _event(
        "summary.completed",
        at,
        {"id": str(video.id), "filename": video.filename, "model": summary.model, "language": summary.language},
    )


def outbox_push(*events: WebhookEvent) -> dict[str, Any]:
    """The `$push` that puts `events` in the video's outbox, for the update making them happen."""
    return {"$push": {OUTBOX_FIELD: {"$each": [event.model_dump() for event in events]}}}


def announce(video_id: PydanticObjectId) -> None:
    """Tell this process's dispatcher that the video's outbox has new events (after the write that
    put them there); other processes find them when they next look."""
    for listener in tuple(_listeners):
        listener(video_id)


def listen(listener: Callable[[PydanticObjectId], None]) -> Callable[[], None]:
    """Call `listener` on each announcement; returns what stops that."""
    _listeners.add(listener)
    return lambda: _listeners.discard(listener)
