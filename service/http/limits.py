"""Request body limits, enforced before anything else reads the body: authentication, parsing,
the handler. A body that stops arriving for BODY_IDLE_TIMEOUT_SECONDS is refused too (408): a
client trickling a body, or stalled half-way, must not hold a connection and its memory forever.

A body is refused (413) as soon as it is known to be too large: at once when its Content-Length
says so, otherwise when the bytes received pass the limit, chunk by chunk, so that no more than
one chunk past the limit is ever held. The answer closes the connection: the client may still be
sending, and reading the rest only to throw it away would let it keep the server busy. The
handler that was reading is told that the client is gone, which it is.

Uploads (the routes in `upload_paths`) may be as large as MAX_UPLOAD_MB and its framing; every
other body, JSON or a form, is held to MAX_JSON_BODY_KB, whatever content type it claims.
"""

import asyncio
import re
from collections.abc import Collection
from dataclasses import dataclass

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import Settings
from service.openai_api.service import error_answer_for

CLOSE = "close"


class BodyLimits:
    """Pure ASGI middleware: the body limit of each request, per route kind, from the settings."""

    def __init__(self, app: ASGIApp, settings: Settings, upload_paths: Collection[str]) -> None:
        self.app = app
        self.settings = settings
        self.upload_paths = frozenset(upload_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _LimitedExchange(
            scope, receive, send, self._limit_for(scope), self.settings.body_idle_timeout_seconds
        )
        await exchange.run(self.app)

    def _limit_for(self, scope: Scope) -> "_Limit":
        if scope["method"] == "POST" and scope["path"] in self.upload_paths:
            return _Limit(
                self.settings.max_upload_body_bytes,
                f"the upload is larger than the limit of {self.settings.max_upload_mb} MB",
            )
        return _Limit(
            self.settings.max_json_body_bytes,
            f"the request body is larger than the limit of {self.settings.max_json_body_kb} KB",
        )


_LENGTH = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True)
class _Limit:
    bytes: int
    refusal: str


def _declared_length(raw: str) -> int | None:
    """A Content-Length worth believing: ASCII digits (`isdigit()` passes `²`, which `int()`
    refuses), few enough for `int()` to read; otherwise the body is counted as it comes."""
    return int(raw) if _LENGTH.fullmatch(raw) else None


class _LimitedExchange:
    """One request and its answer, with the body counted on its way to the app."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, limit: _Limit, idle_seconds: float) -> None:
        self.scope = scope
        self.limit = limit
        self.idle_seconds = idle_seconds
        self._receive = receive
        self._send = send
        headers = Headers(scope=scope)
        self.declared = _declared_length(headers.get("content-length", ""))
        self.body_complete = not (self.declared or "transfer-encoding" in headers)
        self.received = 0
        self.response_started = False
        self.cut_off = False
        """Set once the body passed the limit: from then on the app's client is gone."""

    async def run(self, app: ASGIApp) -> None:
        if self.declared is not None and self.declared > self.limit.bytes:
            await self._refuse(413, self.limit.refusal)
            return
        await app(self.scope, self.receive, self.send)

    async def receive(self) -> Message:
        if self.cut_off:
            return {"type": "http.disconnect"}
        if self.body_complete:
            return await self._receive()  # only a disconnect is left to come, however late
        try:
            message = await asyncio.wait_for(self._receive(), self.idle_seconds)
        except TimeoutError:
            return await self._cut_off(408, f"the request body stopped arriving for {self.idle_seconds:g} s")
        if message["type"] != "http.request":
            return message
        self.received += len(message.get("body", b""))
        if self.received > self.limit.bytes:
            return await self._cut_off(413, self.limit.refusal)
        self.body_complete = not message.get("more_body", False)
        return message

    async def send(self, message: Message) -> None:
        """The app's answer; dropped once the body was cut off. An answer that starts
        before the body is all in (a 401 before an upload is read, say) closes the connection."""
        if self.cut_off:
            return
        if message["type"] == "http.response.start":
            self.response_started = True
            if not self.body_complete:
                MutableHeaders(scope=message)["connection"] = CLOSE
        await self._send(message)

    async def _cut_off(self, status: int, detail: str) -> Message:
        """Answer `status` unless the app already answered; the app's client is gone from now on."""
        if not self.response_started:
            await self._refuse(status, detail)
        self.cut_off = True
        return {"type": "http.disconnect"}

    async def _refuse(self, status: int, detail: str) -> None:
        self.cut_off = True
        response = error_answer_for(self.scope["path"], status, detail, {"connection": CLOSE})
        await response(self.scope, self._receive, self._send)
