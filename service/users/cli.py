"""Accounts from a shell: `create-user` (the first admin, say), `deactivate-user`, `reactivate-user`
and `reset-password`, for when no admin can sign in."""

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


async def set_active(settings: Settings, username: str, active: bool) -> None:
    database = await connect(settings)
    try:
        user = await service.set_active(None, str((await service.find_user(username)).id), active)
    except ServiceError as error:
        raise SystemExit(f"video-analyzer: {error.detail}") from None
    finally:
        database.close()
    print(f"user {user.username} {'reactivated' if active else 'deactivated'}")


async def reset_password(settings: Settings, username: str, password: str) -> None:
    database = await connect(settings)
    try:
        user = await service.find_user(username)
        await service.reset_password(settings, None, str(user.id), password)
    except ServiceError as error:
        raise SystemExit(f"video-analyzer: {error.detail}") from None
    finally:
        database.close()
    print(f"password of user {user.username} reset; their earlier tokens no longer work")
