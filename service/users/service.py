"""Accounts, logins slowed down after failures, access tokens and API keys."""

import asyncio
import logging
from datetime import timedelta

from beanie import PydanticObjectId
from bson.errors import InvalidId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from service.clock import utc_now
from service.config import Settings
from service.errors import Conflict, InvalidInput, NotFound, TooManyAttempts, Unauthorized
from service.users import security
from service.users.models import ApiKey, LoginThrottle, User
from service.users.schemas import AccessToken, ApiKeyCreated, ApiKeyOut, Registration

logger = logging.getLogger(__name__)

MAX_LOCK_SECONDS = 15 * 60
FAILURE_WINDOW = timedelta(hours=1)
ADDRESS_FAILURE_ALLOWANCE = 4
"""An address may fail this many times more than one username: several people share addresses."""


async def register(settings: Settings, registration: Registration) -> User:
    if len(registration.password) < settings.password_min_length:
        raise InvalidInput(f"the password needs at least {settings.password_min_length} characters")
    user = User(
        username=registration.username.lower(),
        email=registration.email.lower(),
        password_hash=await asyncio.to_thread(security.hash_password, registration.password),
        is_admin=registration.is_admin,
    )
    try:
        await user.insert()
    except DuplicateKeyError:
        raise Conflict("that username or email is taken") from None
    logger.info("user %s registered (admin: %s)", user.username, user.is_admin)
    return user


def _throttle_keys(username: str, address: str) -> list[tuple[str, int]]:
    return [(f"user:{username.lower()}", 0), (f"address:{address}", ADDRESS_FAILURE_ALLOWANCE)]


async def _check_not_locked(keys: list[tuple[str, int]]) -> None:
    now = utc_now()
    for key, _ in keys:
        throttle = await LoginThrottle.get(key)
        if throttle and throttle.locked_until and throttle.locked_until > now:
            wait = int((throttle.locked_until - now).total_seconds()) + 1
            raise TooManyAttempts(f"too many failed logins; try again in {wait} s", retry_after=wait)


async def _record_failure(keys: list[tuple[str, int]], max_failures: int) -> None:
    """Each failure past the allowance doubles the wait, up to 15 minutes. Failures older than
    FAILURE_WINDOW are forgotten: a counter starts again after a quiet spell."""
    collection = LoginThrottle.get_motor_collection()
    now = utc_now()
    for key, allowance in keys:
        throttle = await collection.find_one_and_update(
            {"_id": key, "updated_at": {"$gte": now - FAILURE_WINDOW}},
            {"$inc": {"failures": 1}, "$set": {"updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if throttle is None:
            fresh = {"failures": 1, "updated_at": now, "locked_until": None}
            await collection.update_one({"_id": key}, {"$set": fresh}, upsert=True)
            throttle = fresh
        excess = throttle["failures"] - (max_failures + allowance)
        if excess >= 0:
            lock = min(2**excess, MAX_LOCK_SECONDS)
            await collection.update_one({"_id": key}, {"$set": {"locked_until": now + timedelta(seconds=lock)}})


async def login(settings: Settings, username: str, password: str, address: str) -> AccessToken:
    keys = _throttle_keys(username, address)
    await _check_not_locked(keys)
    user = await User.find_one(User.username == username.lower())
    valid = await asyncio.to_thread(security.verify_password, password, user.password_hash if user else None)
    if not valid or user is None or not user.is_active:
        await _record_failure(keys, settings.login_max_failures)
        logger.warning("failed login for %r from %s", username[:40], address)
        raise Unauthorized("wrong username or password")
    await LoginThrottle.get_motor_collection().delete_one({"_id": keys[0][0]})
    token = security.create_access_token(
        str(user.id), settings.secret_key.get_secret_value(), settings.access_token_minutes
    )
    return AccessToken(access_token=token, expires_in=settings.access_token_minutes * 60)


async def _active_user(user_id: PydanticObjectId | str) -> User | None:
    try:
        user = await User.get(PydanticObjectId(user_id))
    except (InvalidId, TypeError):
        return None
    return user if user is not None and user.is_active else None


async def user_from_token(settings: Settings, token: str) -> User | None:
    user_id = security.user_id_from_token(token, settings.secret_key.get_secret_value())
    return None if user_id is None else await _active_user(user_id)


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
    keys = await ApiKey.find(ApiKey.user_id == user.id).sort("+created_at").to_list()
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
