"""A webhook receiver on loopback, as a user would run one: a real HTTP server (uvicorn on its own
thread) that verifies each request's Standard Webhooks signature with the `standardwebhooks`
package, an implementation independent of the service's, and answers the statuses it is scripted
to (200 once the script runs out), as slowly as it is told to."""

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.server import app_on_loopback, free_port


@dataclass
class Received:
    """One request as it arrived, and whether its signature held."""

    path: str
    headers: dict[str, str]
    body: bytes
    arrived: float
    """time.time() when it arrived."""
    verified: bool
    answered: int

    @property
    def message(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    port: int
    secrets: dict[str, str] = field(default_factory=dict)
    """The secret of each path (`/` when one receiver serves one subscription)."""
    statuses: list[int] = field(default_factory=list)
    answer_headers: list[dict[str, str]] = field(default_factory=list)
    """The headers of each answer, one per request, in turn (none once they run out)."""
    delays: list[float] = field(default_factory=list)
    """Seconds to wait before answering, one per request, in turn (none once they run out)."""
    received: list[Received] = field(default_factory=list)

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def script(self, *statuses: int) -> None:
        self.statuses.extend(statuses)

    def at(self, path: str) -> list[Received]:
        return [request for request in self.received if request.path == path]

    async def wait_for(self, count: int, path: str | None = None, timeout: float = 60.0) -> list[Received]:
        """The first `count` requests (to `path`, if given), once they have arrived; polled, so that
        a service in the test's own event loop goes on running meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            arrived = self.received if path is None else self.at(path)
            if len(arrived) >= count:
                return arrived[:count]
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(arrived)} webhook request(s) arrived within {timeout} s, not {count}")
            await asyncio.sleep(0.02)

    def verify(self, path: str, body: bytes, headers: dict[str, str]) -> bool:
        secret = self.secrets.get(path)
        if secret is None:
            return False
        try:
            Webhook(secret).verify(body, headers)
        except WebhookVerificationError:
            return False
        return True


def _app(receiver: Receiver) -> Starlette:
    async def receive(request: Request) -> Response:
        body = await request.body()
        arrived = time.time()
        if receiver.delays:
            await asyncio.sleep(receiver.delays.pop(0))
        headers = dict(request.headers)
        status = receiver.statuses.pop(0) if receiver.statuses else 200
        received = Received(
            path=request.url.path,
            headers=headers,
            body=body,
            arrived=arrived,
            verified=receiver.verify(request.url.path, body, headers),
            answered=status,
        )
        receiver.received.append(received)
        return Response(status_code=status, headers=receiver.answer_headers.pop(0) if receiver.answer_headers else None)

    return Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    """A receiver on a free port of 127.0.0.1."""
    receiver = Receiver(port=free_port())
    with app_on_loopback(_app(receiver), receiver.port, "the webhook receiver"):
        yield receiver
