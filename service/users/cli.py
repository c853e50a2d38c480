"""`video-analyzer create-user`: accounts made from a shell, such as the first admin."""

import logging

from pydantic import ValidationError

from service.config import Settings
from service.db.service import connect
from service.errors import ServiceError
from service.users import service
from service.users.schemas import Registration

logger = logging.getLogger(__name__)


async def create_user(settings: Settings, username: str, email: str, password: str, admin: bool) -> None:
    try:
        registration = Registration(username=username, email=email, password=password, is_admin=admin)
    except ValidationError as error:
        raise SystemExit(f"video-analyzer: {error.errors()[0]['loc'][0]}: {error.errors()[0]['msg']}") from None
    database = await connect(settings)
    try:
        user = await service.register(settings, registration)
    except ServiceError as error:
        raise SystemExit(f"video-analyzer: {error.detail}") from None
    finally:
        database.close()
    print(f"created {'admin ' if user.is_admin else ''}user {user.username} ({user.id})")
