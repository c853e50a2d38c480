from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from service.context import AppContext, get_context
from service.openapi import STORE_WRITE_FAILED, error_responses
from service.pagination import MAX_PAGE_SIZE
from service.users.dependencies import Viewer
from service.webhooks import service
from service.webhooks.models import DeliveryStatus
from service.webhooks.schemas import (
    DeliveryPage,
    SubscriptionCreated,
    SubscriptionOut,
    SubscriptionPage,
    SubscriptionRequest,
    SubscriptionUpdate,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]


@router.post("", status_code=status.HTTP_201_CREATED, responses=error_responses(409, *STORE_WRITE_FAILED))
async def create_subscription(
    request: SubscriptionRequest, context: Annotated[AppContext, Depends(get_context)], viewer: Viewer
) -> SubscriptionCreated:
    """Send your own videos' events (Standard Webhooks: signed with the secret answered here, once)
    to `url`. 422 for a URL whose host resolves to a private, loopback or link-local address."""
    return await service.create_subscription(context.settings, viewer, request)


@router.get("")
async def list_subscriptions(viewer: Viewer, limit: Limit = 20, cursor: str | None = None) -> SubscriptionPage:
    """Your subscriptions, newest first (without their secrets)."""
    return await service.list_subscriptions(viewer, limit, cursor)


@router.get("/{webhook_id}", responses=error_responses(404))
async def get_subscription(webhook_id: str, viewer: Viewer) -> SubscriptionOut:
    return SubscriptionOut.of(await service.get_subscription(webhook_id, viewer))


@router.patch("/{webhook_id}", responses=error_responses(404, *STORE_WRITE_FAILED))
async def update_subscription(
    webhook_id: str,
    update: SubscriptionUpdate,
    context: Annotated[AppContext, Depends(get_context)],
    viewer: Viewer,
) -> SubscriptionOut:
    """`{"enabled": true}` sends events to it again: after its receiver answered 410 Gone, which
    disables it, or after you disabled it with `{"enabled": false}`. Events raised while it was
    disabled are not sent."""
    return await service.update_subscription(context.settings, webhook_id, viewer, update)


@router.delete(
    "/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404, *STORE_WRITE_FAILED)
)
async def delete_subscription(webhook_id: str, viewer: Viewer) -> Response:
    """Stop sending to it; its pending deliveries and its log go with it."""
    await service.delete_subscription(webhook_id, viewer)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", responses=error_responses(404))
async def list_deliveries(
    webhook_id: str,
    viewer: Viewer,
    limit: Limit = 20,
    cursor: str | None = None,
    status: DeliveryStatus | None = None,
) -> DeliveryPage:
    """The subscription's delivery log, newest event first: each delivery's status, attempts and
    payload, with its last ten attempts (status code or error, time taken)."""
    return await service.list_deliveries(webhook_id, viewer, limit, cursor, status)
