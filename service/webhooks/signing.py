"""Standard Webhooks signatures: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`, keyed
with the secret's bytes; secrets are written `whsec_` and their base64."""

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
NEW_SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(NEW_SECRET_BYTES)).decode()


def secret_bytes(secret: str) -> bytes:
    """The key a `whsec_` secret holds; ValueError for anything else, saying what a secret must be."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    if encoded == secret:
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"a webhook secret is {SECRET_PREFIX!r} and standard base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"a webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {len(key)}")
    return key


def signature(key: bytes, message_id: str, timestamp: int, body: str) -> str:
    signed = f"{message_id}.{timestamp}.{body}".encode()
    return f"{SIGNATURE_VERSION},{base64.b64encode(hmac.digest(key, signed, hashlib.sha256)).decode()}"


def signed_headers(key: bytes, message_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The three headers every delivery carries; the timestamp is the attempt's, in Unix seconds."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, message_id, timestamp, body),
    }
