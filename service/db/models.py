"""Every Beanie document model the store is initialised with."""

from beanie import Document

from service.users.models import ApiKey, LoginThrottle, User
from service.videos.models import Video

DOCUMENT_MODELS: list[type[Document]] = [Video, User, ApiKey, LoginThrottle]
