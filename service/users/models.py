"""Users, their API keys, and the counters that slow down guessing passwords."""

from datetime import datetime

import pymongo
from beanie import Document, Indexed, PydanticObjectId
from pydantic import Field
from pymongo import IndexModel

from service.clock import utc_now


class User(Document):
    username: Indexed(str, unique=True)  # type: ignore[valid-type]
    email: Indexed(str, unique=True)  # type: ignore[valid-type]
    password_hash: str
    is_active: bool = True
    is_admin: bool = False
    token_version: int = 0
    """Part of every access token; raising it (a password change or reset) revokes every older token."""
    created_at: datetime = Field(default_factory=utc_now)

    class Settings:
        name = "users"


class ApiKey(Document):
    """An API key for scripts; only its SHA-256 is kept (keys are random, so no slow hash is needed)."""

    user_id: PydanticObjectId
    name: str
    prefix: str
    key_hash: Indexed(str, unique=True)  # type: ignore[valid-type]
    created_at: datetime = Field(default_factory=utc_now)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    class Settings:
        name = "api_keys"
        indexes = [IndexModel([("user_id", pymongo.ASCENDING), ("created_at", pymongo.ASCENDING)], name="by_user")]


class LoginThrottle(Document):
    """Password checks granted to one username or one client address, and until when it must wait.

    The record expires (a TTL index on `expires_at`) an hour after its last attempt, which is how
    old failures are forgotten."""

    id: str  # type: ignore[assignment]  # "user:<name>" or "address:<ip>"
    attempts: int = 0
    locks: int = 0
    locked_until: datetime | None = None
    expires_at: datetime | None = None

    class Settings:
        name = "login_throttle"
        indexes = [IndexModel([("expires_at", pymongo.ASCENDING)], name="expires", expireAfterSeconds=0)]
