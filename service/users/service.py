"""Accounts, logins slowed down after failures, access tokens and API keys."""

import asyncio
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from beanie import PydanticObjectId
from bson.errors import InvalidId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from service.clock import utc_now
from service.config import Settings
from service.errors import Conflict, InvalidInput, NotFound, Unauthorized
from service.users import security, throttle
from service.users.models import ApiKey, User
from service.users.schemas import USERNAME_PATTERN, AccessToken, ApiKeyCreated, ApiKeyOut, Registration

logger = logging.getLogger(__name__)

T = TypeVar("T")

ARGON2_THREADS = 2
_argon2_pool = ThreadPoolExecutor(max_workers=ARGON2_THREADS, thread_name_prefix="argon2")
"""Each Argon2 hash or check takes 64 MiB for its moment: a few threads bound the memory a burst
of logins can take, whatever its size (the others wait their turn)."""


async def _argon2(function: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_argon2_pool, function, *args)


ADDRESS_FAILURE_ALLOWANCE = 4
"""An address may fail this many times more than one username: several people share addresses."""


def _check_password_length(settings: Settings, password: str) -> None:
    if len(password) < settings.password_min_length:
        raise InvalidInput(f"the password needs at least {settings.password_min_length} characters")


async def register(settings: Settings, registration: Registration) -> User:
    _check_password_length(settings, registration.password)
    user = User(
        username=registration.username.lower(),
        email=registration.email.lower(),
        password_hash=await _argon2(security.hash_password, registration.password),
        is_admin=registration.is_admin,
    )
    try:
        await user.insert()
    except DuplicateKeyError:
        raise Conflict("that username or email is taken") from None
    logger.info("user %s registered (admin: %s)", user.username, user.is_admin)
    return user


def _throttle_keys(username: str, address: str, max_failures: int) -> tuple[tuple[str, int], tuple[str, int]]:
    return (f"user:{username.lower()}", max_failures), (f"address:{address}", max_failures + ADDRESS_FAILURE_ALLOWANCE)


async def login(settings: Settings, username: str, password: str, address: str) -> AccessToken:
    """A bearer token for a right password. Each check is granted by the throttle first, per
    username and per address; a username no account can have is refused before anything is stored."""
    if not re.fullmatch(USERNAME_PATTERN, username):
        raise Unauthorized("wrong username or password")
    (user_key, user_limit), (address_key, address_limit) = _throttle_keys(
        username, address, settings.login_max_failures
    )
    await throttle.grant_check(address_key, address_limit)  # first: a refused address spends no username's checks
    await throttle.grant_check(user_key, user_limit)
    user = await User.find_one(User.username == username.lower())
    valid = await _argon2(security.verify_password, password, user.password_hash if user else None)
    if not valid or user is None or not user.is_active:
        logger.warning("failed login for %r from %s", username, address)
        raise Unauthorized("wrong username or password")
    await throttle.forget(user_key)
    await throttle.give_back(address_key)
    return _access_token(settings, user)


def _access_token(settings: Settings, user: User) -> AccessToken:
    token = security.create_access_token(
        str(user.id), user.token_version, settings.secret_key.get_secret_value(), settings.access_token_minutes
    )
    return AccessToken(access_token=token, expires_in=settings.access_token_minutes * 60)


async def _active_user(user_id: PydanticObjectId | str) -> User | None:
    try:
        user = await User.get(PydanticObjectId(user_id))
    except (InvalidId, TypeError):
        return None
    return user if user is not None and user.is_active else None


async def user_from_token(settings: Settings, token: str) -> User | None:
    """The active user an access token names, unless a password change or reset has revoked it since."""
    return await _user_of_subject(security.subject_of_token(token, settings.secret_key.get_secret_value()))


async def user_from_media_token(settings: Settings, token: str, video_id: str) -> User | None:
    """The active user a media token for this video names, revoked as their access tokens are."""
    secret = settings.secret_key.get_secret_value()
    return await _user_of_subject(security.subject_of_media_token(token, secret, video_id))


def media_token(settings: Settings, user: User, video_id: str) -> security.MediaToken:
    secret = settings.secret_key.get_secret_value()
    return security.create_media_token(str(user.id), user.token_version, video_id, secret, settings.media_token_minutes)


async def _user_of_subject(subject: security.TokenSubject | None) -> User | None:
    if subject is None:
        return None
    user = await _active_user(subject.user_id)
    return user if user is not None and user.token_version == subject.token_version else None


async def user_from_api_key(key: str) -> User | None:
    found = await ApiKey.find_one(ApiKey.key_hash == security.api_key_hash(key))
    if found is None or found.revoked_at is not None:
        return None
    await ApiKey.get_motor_collection().update_one({"_id": found.id}, {"$set": {"last_used_at": utc_now()}})
    return await _active_user(found.user_id)


async def create_api_key(user: User, name: str) -> ApiKeyCreated:
    key = security.new_api_key()
    stored = ApiKey(
        user_id=user.id, name=name, prefix=key[: len(security.API_KEY_PREFIX) + 6], key_hash=security.api_key_hash(key)
    )
    await stored.insert()
    return ApiKeyCreated(**ApiKeyOut.of(stored).model_dump(), key=key)


async def list_api_keys(user: User) -> list[ApiKeyOut]:
    keys = await ApiKey.find(ApiKey.user_id == user.id).sort("+created_at", "+_id").to_list()
    return [ApiKeyOut.of(key) for key in keys]


async def revoke_api_key(user: User, raw_id: str) -> None:
    try:
        key_id = PydanticObjectId(raw_id)
    except (InvalidId, TypeError):
        raise NotFound(f"no API key with id {raw_id!r}") from None
    result = await ApiKey.get_motor_collection().update_one(
        {"_id": key_id, "user_id": user.id, "revoked_at": None}, {"$set": {"revoked_at": utc_now()}}
    )
    if result.matched_count == 0:
        raise NotFound(f"no API key with id {raw_id!r}")


async def list_users() -> list[User]:
    return await User.find_all().sort("+created_at", "+_id").to_list()


async def _user_by_id(raw_id: str) -> User:
    try:
        user = await User.get(PydanticObjectId(raw_id))
    except (InvalidId, TypeError):
        user = None
    if user is None:
        raise NotFound(f"no user with id {raw_id!r}")
    return user


def _actor(admin: User | None) -> str:
    return admin.username if admin else "the command line"


async def set_active(admin: User | None, raw_id: str, active: bool) -> User:
    """Reactivate an account, or deactivate it: its tokens and API keys are revoked for good (a
    compromised account comes back only with fresh credentials). `admin` None is the command line.

    The last active admin cannot be deactivated: two admins deactivating each other at once both
    find no other admin left afterwards and are both undone, so one always remains."""
    user = await _user_by_id(raw_id)
    if admin is not None and user.id == admin.id and not active:
        raise Conflict("an admin cannot deactivate their own account")
    users = User.get_motor_collection()
    if active:
        await users.update_one({"_id": user.id}, {"$set": {"is_active": True}})
    else:
        await users.update_one({"_id": user.id}, {"$set": {"is_active": False}, "$inc": {"token_version": 1}})
        if user.is_admin and await users.count_documents({"is_admin": True, "is_active": True}) == 0:
            await users.update_one({"_id": user.id}, {"$set": {"is_active": True}})
            raise Conflict("that would leave no active admin")
        await ApiKey.get_motor_collection().update_many(
            {"user_id": user.id, "revoked_at": None}, {"$set": {"revoked_at": utc_now()}}
        )
    user.is_active = active
    logger.info("user %s %s by %s", user.username, "reactivated" if active else "deactivated", _actor(admin))
    return user


async def _set_password(settings: Settings, user: User, password: str) -> User:
    """Store a new password hash and revoke every access token issued before it."""
    _check_password_length(settings, password)
    password_hash = await _argon2(security.hash_password, password)
    document = await User.get_motor_collection().find_one_and_update(
        {"_id": user.id},
        {"$set": {"password_hash": password_hash}, "$inc": {"token_version": 1}},
        return_document=ReturnDocument.AFTER,
    )
    return User.model_validate(document)


async def reset_password(settings: Settings, admin: User | None, raw_id: str, password: str) -> User:
    user = await _set_password(settings, await _user_by_id(raw_id), password)
    logger.info("password of user %s reset by %s", user.username, _actor(admin))
    return user


async def change_password(settings: Settings, user: User, current: str, new: str) -> AccessToken:
    """The user's own change: the current password is checked; their older tokens stop working,
    and the token answered replaces them."""
    if not await _argon2(security.verify_password, current, user.password_hash):
        raise Unauthorized("the current password is wrong")
    changed = await _set_password(settings, user, new)
    logger.info("user %s changed their password", user.username)
    return _access_token(settings, changed)


async def find_user(username: str) -> User:
    user = await User.find_one(User.username == username.lower())
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user
