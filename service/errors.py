"""Errors a client caused or can act on; each becomes `{"detail": ...}` with its status code."""

from collections.abc import Iterable, Mapping
from typing import Any

MAX_DETAIL_CHARS = 1000
MAX_VALIDATION_ERRORS = 5


class ServiceError(Exception):
    status_code = 400
    headers: dict[str, str] = {}

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(ServiceError):
    """A body the service could not even parse (a malformed multipart body, say)."""

    status_code = 400


class Unauthorized(ServiceError):
    """No credentials, or ones that are wrong, expired, tampered with, revoked or deactivated."""

    status_code = 401
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(ServiceError):
    """Visible to this user, but not theirs to change."""

    status_code = 403


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class PayloadTooLarge(ServiceError):
    status_code = 413


class UnsupportedMedia(ServiceError):
    status_code = 415


class RangeNotSatisfiable(ServiceError):
    """A Range that starts past the end of the file; `Content-Range` tells the file's size."""

    status_code = 416

    def __init__(self, detail: str, size: int) -> None:
        super().__init__(detail)
        self.headers = {"Content-Range": f"bytes */{size}"}


class InvalidInput(ServiceError):
    status_code = 422


class DocumentFull(ServiceError):
    """A write would take a video's document past MongoDB's 16 MB limit; nothing was written."""

    status_code = 507


class ProviderFailed(ServiceError):
    """The language model answered, but with an error or with something unusable."""

    status_code = 502


class ProviderUnavailable(ServiceError):
    """The language model could not be reached in time, or keeps refusing for load."""

    status_code = 503


class StoreUnavailable(ServiceError):
    """The store does not answer: the service cannot serve requests now (GET /ready)."""

    status_code = 503


class StillProcessing(ServiceError):
    """A request that waits for its video's processing waited as long as it may."""

    status_code = 504


class TooManyAttempts(ServiceError):
    status_code = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after)}


def writable(detail: str) -> str:
    """The detail as text any JSON encoder writes: it may quote client input, and a lone surrogate
    in a JSON string (`"\\ud800"`) cannot be encoded as UTF-8. Bounded, so an answer stays small."""
    text = detail.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


def describe_validation_errors(errors: Iterable[Mapping[str, Any]]) -> str:
    """One readable line for a request that failed validation: where and what, never the input
    itself (it may hold NaN, infinities, surrogates or megabytes, and belongs to the client)."""
    described = [_describe(error) for error in errors]
    more = len(described) - MAX_VALIDATION_ERRORS
    text = "; ".join(described[:MAX_VALIDATION_ERRORS]) + (f"; and {more} more" if more > 0 else "")
    return writable(text or "the request is not valid")


def _describe(error: Mapping[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        return f"the body is not valid JSON: {error.get('ctx', {}).get('error', 'unreadable')}"
    where = ".".join(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
