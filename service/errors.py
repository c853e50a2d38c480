"""Errors a client caused or can act on; each becomes `{"detail": ...}` with its status code."""


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


class TooManyAttempts(ServiceError):
    status_code = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after)}
