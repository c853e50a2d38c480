"""Password hashes (Argon2id), signed access tokens (JWT, HS256) and API keys."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from service.clock import utc_now

TOKEN_ALGORITHM = "HS256"
API_KEY_PREFIX = "va_"

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


def create_access_token(user_id: str, token_version: int, secret: str, minutes: int) -> str:
    now = utc_now()
    claims = {"sub": user_id, "ver": token_version, "iat": now, "exp": now + timedelta(minutes=minutes)}
    return jwt.encode(claims, secret, algorithm=TOKEN_ALGORITHM)


def subject_of_token(token: str, secret: str) -> TokenSubject | None:
    """Whom a token names, and the user's token version when it was made; None when it is
    expired, tampered with or malformed."""
    try:
        claims = jwt.decode(token, secret, algorithms=[TOKEN_ALGORITHM], options={"require": ["sub", "exp"]})
    except jwt.PyJWTError:
        return None
    subject, version = claims.get("sub"), claims.get("ver", 0)
    if not isinstance(subject, str) or type(version) is not int:
        return None
    return TokenSubject(subject, version)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
