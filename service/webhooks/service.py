"""Webhook subscriptions: each user's own receivers, their events, and their delivery logs."""

from datetime import datetime, timedelta
from typing import Any

from beanie import PydanticObjectId
from bson.errors import InvalidId

from service.clock import utc_now
from service.config import Settings
from service.errors import Conflict, InvalidInput, NotFound
from service.pagination import decode_id_cursor, encode_id_cursor
from service.users.models import User
from service.webhooks.addresses import AddressRefused, check_receiver
from service.webhooks.models import DeliveryStatus, DisabledBy, WebhookDelivery, WebhookSubscription
from service.webhooks.schemas import (
    DeliveryOut,
    DeliveryPage,
    SubscriptionCreated,
    SubscriptionOut,
    SubscriptionPage,
    SubscriptionRequest,
    SubscriptionUpdate,
)
from service.webhooks.signing import new_secret

OWNER_DISABLED_REASON = "disabled by its owner"
OWNER_INACTIVE_REASON = "its owner's account is deactivated"
MAX_SUBSCRIPTIONS = 25
"""Per user: each event is written once per subscription, so their number bounds that work."""


def _owner(viewer: User | None) -> PydanticObjectId | None:
    """Whose subscriptions these are: the user's own (admins' too); with users off, the one user's."""
    return None if viewer is None else viewer.id


async def create_subscription(
    settings: Settings, viewer: User | None, request: SubscriptionRequest
) -> SubscriptionCreated:
    """A new receiver for the viewer's own videos' events, its secret shown this once; 422 for a
    receiver on an address that is not public (it is checked again at each delivery)."""
    if not settings.webhook_allow_private:
        try:
            await check_receiver(request.url, settings.webhook_timeout_seconds)
        except AddressRefused as refused:
            raise InvalidInput(f"url: {refused} (WEBHOOK_ALLOW_PRIVATE=false)") from None
    owner = _owner(viewer)
    if await WebhookSubscription.find({"owner_id": owner}).count() >= MAX_SUBSCRIPTIONS:
        raise _too_many()
    subscription = WebhookSubscription(
        owner_id=owner,
        url=request.url,
        secret=request.secret or new_secret(),
        event_types=request.event_types,
        description=request.description,
    )
    await subscription.insert()
    if not await _within_limit(subscription):
        await _delete(subscription)
        raise _too_many()
    return SubscriptionCreated(**SubscriptionOut.of(subscription).model_dump(), secret=subscription.secret)


async def _within_limit(subscription: WebhookSubscription) -> bool:
    """Whether a subscription just inserted is among its owner's first MAX_SUBSCRIPTIONS by id:
    the count before the insert does not stop creates racing past the limit, so the ones found past
    it take themselves back. Ids follow insertion within a process; two API nodes racing within the
    same second can make ids and insertion disagree, and one subscription more slip through."""
    first = WebhookSubscription.get_motor_collection().find({"owner_id": subscription.owner_id}, {"_id": 1})
    kept = await first.sort("_id", 1).limit(MAX_SUBSCRIPTIONS).to_list(None)
    return any(found["_id"] == subscription.id for found in kept)


def _too_many() -> Conflict:
    return Conflict(f"a user has at most {MAX_SUBSCRIPTIONS} webhook subscriptions; delete one first")


async def get_subscription(raw_id: str, viewer: User | None) -> WebhookSubscription:
    """The viewer's own subscription; anyone else's is as unknown as a missing one (404)."""
    try:
        subscription_id = PydanticObjectId(raw_id)
    except (InvalidId, TypeError):
        raise NotFound(f"no webhook subscription with id {raw_id!r}") from None
    subscription = await WebhookSubscription.find_one({"_id": subscription_id, "owner_id": _owner(viewer)})
    if subscription is None:
        raise NotFound(f"no webhook subscription with id {raw_id!r}")
    return subscription


async def delete_subscription(raw_id: str, viewer: User | None) -> None:
    """The subscription, then its deliveries: nothing more is sent to it. A delivery left by a crash
    between the two is dropped when it next comes due."""
    await _delete(await get_subscription(raw_id, viewer))


async def update_subscription(
    settings: Settings, raw_id: str, viewer: User | None, update: SubscriptionUpdate
) -> SubscriptionOut:
    """Enable the viewer's subscription (after a 410 Gone, say) or disable it; either is a no-op
    when it already is so. Enabling sends the events raised from then on, not those missed."""
    subscription = await get_subscription(raw_id, viewer)
    if update.enabled and subscription.disabled_at is not None:
        cleared = {"disabled_at": None, "disabled_by": None, "disabled_reason": None}
        await WebhookSubscription.get_motor_collection().update_one({"_id": subscription.id}, {"$set": cleared})
    elif not update.enabled and subscription.disabled_at is None:
        await disable(settings, subscription.id, "owner", OWNER_DISABLED_REASON)
    return SubscriptionOut.of(await get_subscription(raw_id, viewer))


async def is_deactivated_user(user_id: PydanticObjectId) -> bool:
    """Whether the subscription owner's account is deactivated, as it is now."""
    return await User.find_one({"_id": user_id, "is_active": False}) is not None


def ended_status(disabled_by: DisabledBy | None) -> DeliveryStatus:
    """How a delivery to a disabled subscription ends: `gone` when its receiver said so."""
    return "gone" if disabled_by == "receiver" else "skipped"


async def disable(settings: Settings, subscription_id: PydanticObjectId, by: DisabledBy, reason: str) -> None:
    """No event makes a delivery to the subscription any more, and its pending deliveries end now,
    without another attempt. An attempt running meanwhile records its outcome over that end; if
    it fails, the delivery ends when it is next claimed (see the dispatcher)."""
    now = utc_now()
    disabled = {"disabled_at": now, "disabled_by": by, "disabled_reason": reason}
    await WebhookSubscription.get_motor_collection().update_one(
        {"_id": subscription_id, "disabled_at": None}, {"$set": disabled}
    )
    await WebhookDelivery.get_motor_collection().update_many(
        {"subscription_id": subscription_id, "status": "pending"},
        {"$set": ended(settings, ended_status(by), reason, now)},
    )


def ended(settings: Settings, status: DeliveryStatus, reason: str, now: datetime) -> dict[str, Any]:
    """The fields of a delivery that ends undelivered, kept in the log WEBHOOK_LOG_DAYS."""
    return {"status": status, "reason": reason, "next_attempt_at": None, "expires_at": log_expiry(settings, now)}


def log_expiry(settings: Settings, now: datetime) -> datetime:
    """When a delivery that ended `now` leaves the delivery log (WEBHOOK_LOG_DAYS)."""
    return now + timedelta(days=settings.webhook_log_days)


async def _delete(subscription: WebhookSubscription) -> None:
    await WebhookSubscription.get_motor_collection().delete_one({"_id": subscription.id})
    await WebhookDelivery.get_motor_collection().delete_many({"subscription_id": subscription.id})


async def _newest_first(
    collection: Any, query: dict[str, Any], limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `query` by `_id`, newest first, and the cursor of the next."""
    if cursor is not None:
        query = {**query, "_id": {"$lt": decode_id_cursor(cursor)}}
    found = await collection.find(query).sort("_id", -1).limit(limit + 1).to_list(None)
    next_cursor = encode_id_cursor(found[limit - 1]["_id"]) if len(found) > limit else None
    return found[:limit], next_cursor


async def list_subscriptions(viewer: User | None, limit: int, cursor: str | None) -> SubscriptionPage:
    collection = WebhookSubscription.get_motor_collection()
    found, next_cursor = await _newest_first(collection, {"owner_id": _owner(viewer)}, limit, cursor)
    items = [SubscriptionOut.of(WebhookSubscription.model_validate(document)) for document in found]
    return SubscriptionPage(items=items, next_cursor=next_cursor)


async def list_deliveries(
    raw_id: str, viewer: User | None, limit: int, cursor: str | None, status: DeliveryStatus | None
) -> DeliveryPage:
    """The subscription's deliveries, newest event first, each with its last attempts."""
    subscription = await get_subscription(raw_id, viewer)
    query: dict[str, Any] = {"subscription_id": subscription.id}
    if status is not None:
        query["status"] = status
    found, next_cursor = await _newest_first(WebhookDelivery.get_motor_collection(), query, limit, cursor)
    items = [DeliveryOut.of(WebhookDelivery.model_validate(document)) for document in found]
    return DeliveryPage(items=items, next_cursor=next_cursor)
