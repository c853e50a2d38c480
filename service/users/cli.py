"""Accounts from a shell: `create-user` (the first admin, say), `deactivate-user`, `reactivate-user`
and `reset-password`, for when no admin can sign in."""

from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import ValidationError

from service.config import Settings
from service.db.service import connect
from service.errors import ServiceError
from service.users import service
from service.users.models import User
from service.users.schemas import Registration

T = TypeVar("T")


async def _in_store(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    """Run one account operation against the configured store; a refusal ends the command with it."""
    database = await connect(settings)
    try:
        return await work()
    except ServiceError as error:
        raise SystemExit(f"video-analyzer: {error.detail}") from None
    finally:
        database.close()


async def create_user(settings: Settings, username: str, email: str, password: str, admin: bool) -> None:
    try:
        registration = Registration(username=username, email=email, password=password, is_admin=admin)
    except ValidationError as error:
        raise SystemExit(f"video-analyzer: {error.errors()[0]['loc'][0]}: {error.errors()[0]['msg']}") from None
    user = await _in_store(settings, lambda: service.register(settings, registration))
    print(f"created {'admin ' if user.is_admin else ''}user {user.username} ({user.id})")


async def set_active(settings: Settings, username: str, active: bool) -> None:
    async def toggle() -> User:
        return await service.set_active(None, str((await service.find_user(username)).id), active)

    user = await _in_store(settings, toggle)
    print(f"user {user.username} {'reactivated' if active else 'deactivated'}")


async def reset_password(settings: Settings, username: str, password: str) -> None:
    async def reset() -> User:
        return await service.reset_password(settings, None, str((await service.find_user(username)).id), password)

    user = await _in_store(settings, reset)
    print(f"password of user {user.username} reset; their earlier tokens no longer work")
