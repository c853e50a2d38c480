"""Security headers on every answer, whoever wrote it: a route, an error handler, the body limit.

Each is set only where the answer has none of its own, so a route can choose differently (a page
its own content policy, say). Answers are per user and change, so caches keep none of them.
"""

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'"
"""For JSON, text and media: nothing in them may run, load or be framed, even opened as a page."""
PAGE_POLICY = "frame-ancestors 'none'"
"""For HTML pages, whose scripts and styles must run (the API docs)."""


class SecurityHeaders:
    """Pure ASGI middleware: adds the security headers to each answer as it starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_security_headers(MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_security_headers(headers: MutableHeaders) -> None:
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    is_page = headers.get("content-type", "").startswith("text/html")
    headers.setdefault("content-security-policy", PAGE_POLICY if is_page else DATA_POLICY)
