"""Password hashes (Argon2id), signed access tokens (JWT, HS256) and API keys."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from service.clock import utc_now

TOKEN_ALGORITHM = "HS256"
API_KEY_PREFIX = "va_"
MEDIA_AUDIENCE = "video-analyzer:media"
"""The `aud` of a media token. PyJWT refuses a token with an audience where none is expected, so
a media token is never taken for an access token, nor an access token (which has none) for a
media token."""

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("a password nobody has")


def hash_password(password: str) -> str:
    """Blocking (Argon2 is slow by design): call it from a thread."""
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Blocking. With no hash (unknown user) it still spends the same time, so timing reveals nothing."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class TokenSubject:
    user_id: str
    token_version: int


@dataclass(frozen=True)
class MediaToken:
    token: str
    expires_at: datetime


def create_access_token(user_id: str, token_version: int, secret: str, minutes: int) -> str:
    now = utc_now()
    claims = {"sub": user_id, "ver": token_version, "iat": now, "exp": now + timedelta(minutes=minutes)}
    return jwt.encode(claims, secret, algorithm=TOKEN_ALGORITHM)


def subject_of_token(token: str, secret: str) -> TokenSubject | None:
    """Whom an access token names, and the user's token version when it was made; None when it is
    expired, tampered with, malformed, or a token for something else (a media token)."""
    claims = _claims(token, secret, audience=None, required=["sub", "exp"])
    return None if claims is None else _subject(claims)


def create_media_token(user_id: str, token_version: int, video_id: str, secret: str, minutes: int) -> MediaToken:
    """A token that lets its holder read one video's media (the file, its thumbnail) as this user,
    for `minutes`: what a `<video src>` can carry, where no Authorization header can go."""
    now = utc_now()
    expires_at = now + timedelta(minutes=minutes)
    claims = {
        "sub": user_id,
        "ver": token_version,
        "vid": video_id,
        "aud": MEDIA_AUDIENCE,
        "iat": now,
        "exp": expires_at,
    }
    return MediaToken(jwt.encode(claims, secret, algorithm=TOKEN_ALGORITHM), expires_at)


def subject_of_media_token(token: str, secret: str, video_id: str) -> TokenSubject | None:
    """Whom a media token names, if it was made for this video's media and is still in date."""
    claims = _claims(token, secret, audience=MEDIA_AUDIENCE, required=["sub", "exp", "aud", "vid"])
    return None if claims is None or claims["vid"] != video_id else _subject(claims)


def _claims(token: str, secret: str, audience: str | None, required: list[str]) -> dict[str, Any] | None:
    try:
        return jwt.decode(token, secret, algorithms=[TOKEN_ALGORITHM], audience=audience, options={"require": required})
    except jwt.PyJWTError:
        return None


def _subject(claims: dict[str, Any]) -> TokenSubject | None:
    subject, version = claims.get("sub"), claims.get("ver", 0)
    if not isinstance(subject, str) or type(version) is not int:
        return None
    return TokenSubject(subject, version)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
