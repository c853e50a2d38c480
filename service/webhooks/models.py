"""Webhook events, subscriptions and deliveries as the store keeps them."""

from datetime import datetime
from typing import Any, Literal, get_args

import pymongo
from beanie import Document, PydanticObjectId
from pydantic import BaseModel, Field
from pymongo import IndexModel

from service.clock import utc_now

EventType = Literal["video.completed", "video.failed", "summary.completed"]
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)
DeliveryStatus = Literal["pending", "delivered", "failed", "gone", "skipped"]
DisabledBy = Literal["receiver", "owner"]
GONE_REASON = "the receiver answered 410 Gone"
KEPT_ATTEMPTS = 10
"""A delivery keeps its last ten attempts for its log; `attempts` counts them all."""


class WebhookEvent(BaseModel):
    """Something that happened to a video, waiting in the video's own `webhook_outbox`: it is
    written by the same update that makes it happen, so neither is ever stored without the other."""

    id: str = Field(description="the `webhook-id` of every delivery of this event, stable across retries")
    type: EventType
    at: datetime = Field(description="when it happened; the payload's `timestamp`")
    data: dict[str, Any]


class WebhookSubscription(Document):
    """A user's receiver: the events of that user's own videos, of the types it names."""

    owner_id: PydanticObjectId | None = None
    """None with users off: the one user's."""
    url: str
    secret: str
    """Kept as given (`whsec_...`): signing needs the key itself, so it cannot be hashed."""
    event_types: list[EventType]
    description: str = ""
    created_at: datetime = Field(default_factory=utc_now)
    disabled_at: datetime | None = None
    """Set while it is disabled: no event makes a delivery to it, and none is attempted."""
    disabled_by: DisabledBy | None = None
    disabled_reason: str | None = None

    class Settings:
        name = "webhooks"
        indexes = [IndexModel([("owner_id", pymongo.ASCENDING), ("_id", pymongo.DESCENDING)], name="by_owner")]


class DeliveryAttempt(BaseModel):
    at: datetime
    status_code: int | None = Field(description="the receiver's answer; null when none came")
    error: str | None = Field(description="why the attempt failed; null when it was delivered")
    seconds: float
    retry_after: float | None = Field(
        default=None, description="the seconds the receiver asked to wait (Retry-After with 429 or 503); null if none"
    )


class WebhookDelivery(Document):
    """One event on its way to one receiver (a subscription, or WEBHOOK_URL when `subscription_id`
    is None): written once per event and receiver, then claimed, tried and retried in place."""

    message_id: str
    subscription_id: PydanticObjectId | None = None
    owner_id: PydanticObjectId | None = None
    type: EventType
    body: str
    """The payload exactly as signed and sent, the same on every attempt."""
    created_at: datetime
    status: DeliveryStatus = "pending"
    attempts: int = 0
    next_attempt_at: datetime | None = None
    """When it is due; while an attempt runs, when that attempt's lease ends."""
    leased_by: str | None = None
    last_attempts: list[DeliveryAttempt] = Field(default_factory=list)
    delivered_at: datetime | None = None
    reason: str | None = None
    """Why it ended `gone` or `skipped` (not every such delivery had an attempt to say so)."""
    expires_at: datetime | None = None
    """Set once it is delivered or given up: the log keeps it WEBHOOK_LOG_DAYS (a TTL index)."""

    class Settings:
        name = "webhook_deliveries"
        indexes = [
            IndexModel(
                [("message_id", pymongo.ASCENDING), ("subscription_id", pymongo.ASCENDING)],
                name="one_per_receiver",
                unique=True,
            ),
            IndexModel([("status", pymongo.ASCENDING), ("next_attempt_at", pymongo.ASCENDING)], name="due"),
            IndexModel([("subscription_id", pymongo.ASCENDING), ("_id", pymongo.DESCENDING)], name="log"),
            IndexModel([("expires_at", pymongo.ASCENDING)], name="expires", expireAfterSeconds=0),
        ]
