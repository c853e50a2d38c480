"""What the API takes and shows of webhook subscriptions and their deliveries."""

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from service.webhooks.addresses import MAX_URL_LENGTH, check_url
from service.webhooks.models import (
    EVENT_TYPES,
    DeliveryAttempt,
    DeliveryStatus,
    DisabledBy,
    EventType,
    WebhookDelivery,
    WebhookSubscription,
)
from service.webhooks.signing import secret_bytes

MAX_DESCRIPTION_LENGTH = 200
MAX_SECRET_LENGTH = 100
"""`whsec_` and the base64 of at most 64 bytes is 94 characters."""


class SubscriptionRequest(BaseModel):
    url: str = Field(
        max_length=MAX_URL_LENGTH,
        description="http:// or https://, on a host that resolves to public addresses only "
        "(unless the service runs with WEBHOOK_ALLOW_PRIVATE=true)",
    )
    event_types: list[EventType] = Field(
        default_factory=lambda: list(EVENT_TYPES), min_length=1, description="the events to send; all by default"
    )
    secret: str | None = Field(
        default=None,
        max_length=MAX_SECRET_LENGTH,
        description="`whsec_` and the base64 of 24 to 64 random bytes; one is made when left out",
    )
    description: str = Field(default="", max_length=MAX_DESCRIPTION_LENGTH)

    @field_validator("url")
    @classmethod
    def _receivable(cls, url: str) -> str:
        return check_url(url)

    @field_validator("secret")
    @classmethod
    def _secret_form(cls, secret: str | None) -> str | None:
        if secret is not None:
            secret_bytes(secret)
        return secret

    @field_validator("event_types")
    @classmethod
    def _each_once(cls, event_types: list[EventType]) -> list[EventType]:
        return list(dict.fromkeys(event_types))


class SubscriptionUpdate(BaseModel):
    enabled: bool = Field(
        description="true to send events to it again (after its receiver answered 410 Gone, say); false to pause it"
    )


class SubscriptionOut(BaseModel):
    id: str
    url: str
    event_types: list[EventType]
    description: str
    created_at: datetime
    enabled: bool = Field(description="false: no event is sent to it until its owner enables it again")
    disabled_at: datetime | None = Field(description="when it was disabled; null while enabled")
    disabled_by: DisabledBy | None = Field(description="`receiver` (it answered 410 Gone) or `owner`")
    disabled_reason: str | None

    @classmethod
    def of(cls, subscription: WebhookSubscription) -> "SubscriptionOut":
        return cls(
            id=str(subscription.id),
            url=subscription.url,
            event_types=subscription.event_types,
            description=subscription.description,
            created_at=subscription.created_at,
            enabled=subscription.disabled_at is None,
            disabled_at=subscription.disabled_at,
            disabled_by=subscription.disabled_by,
            disabled_reason=subscription.disabled_reason,
        )


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(description="the signing secret; shown this once")


class SubscriptionPage(BaseModel):
    items: list[SubscriptionOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class DeliveryOut(BaseModel):
    id: str
    webhook_id: str = Field(description="the `webhook-id` header: the same on every attempt, for de-duplication")
    type: EventType
    status: DeliveryStatus
    attempts: int
    created_at: datetime = Field(description="when the event happened")
    next_attempt_at: datetime | None = Field(description="when it is tried next, while pending")
    delivered_at: datetime | None
    reason: str | None = Field(description="why it ended `gone` or `skipped`; null otherwise")
    last_attempts: list[DeliveryAttempt] = Field(description="the last ten attempts, oldest first")
    payload: dict[str, Any] = Field(description="the body sent: `{type, timestamp, data}`")

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> "DeliveryOut":
        return cls(
            id=str(delivery.id),
            webhook_id=delivery.message_id,
            type=delivery.type,
            status=delivery.status,
            attempts=delivery.attempts,
            created_at=delivery.created_at,
            next_attempt_at=delivery.next_attempt_at,
            delivered_at=delivery.delivered_at,
            reason=delivery.reason,
            last_attempts=delivery.last_attempts,
            payload=json.loads(delivery.body),
        )


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")
