"""The HTTP client under the openai SDK, bounded against a model server that misbehaves.

The SDK reads a stream line by line with no limit on a line, decompresses whatever the server
compresses (on the event loop), and follows redirects to any host. A server that sends one
endless line, a gzip bomb, or a redirect elsewhere would grow the process's memory until the idle
timeout, block every other request while it inflates, or receive the transcript somewhere it was
never configured to go. So replies come uncompressed, are cut off past a byte limit, and a
redirect is answered as the error it is. The limits sit in a response hook, so that they hold
for every transport the client picks (a proxy's too).
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import httpx2
import openai

IDENTITY = "identity"


class UnusableReply(openai.OpenAIError):
    """The server's reply was refused before it could be read in full; the message says why."""


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, max_bytes: int) -> None:
        self._inner = inner
        self._max_bytes = max_bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in self._inner:
            received += len(chunk)
            if received > self._max_bytes:
                raise UnusableReply(
                    f"the language model sent more than {self._max_bytes // 1024} KiB for one reply; it was cut off"
                )
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def _bounded(max_reply_bytes: int) -> Callable[[httpx2.Response], Awaitable[None]]:
    async def bound(response: httpx2.Response) -> None:
        """Refuse a compressed reply unread; cap the bytes of any other."""
        encoding = response.headers.get("Content-Encoding", IDENTITY).strip().lower()
        if encoding not in ("", IDENTITY):
            await response.aclose()
            raise UnusableReply(
                f"the language model sent a compressed reply (Content-Encoding: {encoding[:40]}) when asked for none"
            )
        response.stream = _CappedStream(cast(httpx2.AsyncByteStream, response.stream), max_reply_bytes)

    return bound


def bounded_http_client(max_reply_bytes: int) -> httpx2.AsyncClient:
    """The process's one HTTP client for the model server: uncompressed replies of at most
    `max_reply_bytes`, no redirects followed (a 3xx is an error the client is told)."""
    return openai.DefaultAsyncHttpxClient(
        headers={"Accept-Encoding": IDENTITY},
        event_hooks={"response": [_bounded(max_reply_bytes)]},
        follow_redirects=False,
    )
