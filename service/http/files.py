"""Small files of the service's own, sent whole: the web app's page, scripts and styles, and the
API docs' assets."""

from starlette.responses import FileResponse
from starlette.types import Receive, Scope, Send

RANGE_HEADERS = (b"range", b"if-range")


class WholeFileResponse(FileResponse):
    """A file sent whole whatever `Range` asks, as RFC 9110 lets a server answer, and saying so
    (`Accept-Ranges: none`). No browser asks for part of a page or a script, and Starlette's own
    range handling refuses a range it cannot act on (backwards, another unit) with a plain-text 400
    instead of the `{"detail": ...}` every other error is."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.headers["accept-ranges"] = "none"
        headers = [(name, value) for name, value in scope["headers"] if name not in RANGE_HEADERS]
        await super().__call__({**scope, "headers": headers}, receive, send)
