"""Every Beanie document model the store is initialised with."""

from beanie import Document

from service.users.models import ApiKey, LoginThrottle, User
from service.videos.models import Video
from service.webhooks.models import WebhookDelivery, WebhookSubscription

DOCUMENT_MODELS: list[type[Document]] = [Video, User, ApiKey, LoginThrottle, WebhookSubscription, WebhookDelivery]
