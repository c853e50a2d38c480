"""A small OpenAI-compatible chat-completions server on loopback, scripted by the test.

Each request to POST /v1/chat/completions takes the next scripted reply; the requests are kept
so a test can read what the service sent. The server also behaves as real ones do under load:

- replies that stream tokens forever (ignoring `max_tokens`), stall mid-answer, or break off;
- `single_slot`: one request is served at a time, as a llama.cpp server with one slot; a second
  request waits until the first one's connection closes;
- `response_formats`: the structured-output kinds it accepts (a `response_format` of another kind
  is refused with 400, as llama-cpp-python's server refuses `json_schema`);
- replies no well-behaved server sends: raw bytes as the stream (chunks of another shape, a
  compressed body), one line that never ends, a redirect;
- it counts the requests it holds at once (`max_active`), waiting ones included, and when each
  one ended (`ended`), so that a test sees whether the service closed a connection.
"""

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from service.config import Settings
from tests.server import app_on_loopback, free_port
from tests.store import StoreDatabase

_LINE_TIMES = re.compile(r"^\[(\d+\.\d)-(\d+\.\d)\]", re.MULTILINE)
SETTLE_SECONDS = 0.02
"""A request is counted this long after it arrives, so that a connection the client closed just
before sending it has been seen closed (the server learns of a close a few loop turns later)."""


@dataclass
class Reply:
    kind: str  # "content", "status", "hang", "not-json", "no-choices", "forever", "stall", "drop", "part-summary",
    # "raw" (`body` as the stream, with `headers`), "endless-line", "redirect" (to `content`)
    content: str = ""
    status: int = 200
    seconds: float = 0.0
    """hang: before answering; stall: how long it stalls after its content; forever: between tokens."""
    pause: float = 0.0
    """Between the words of the content, as a model generates them."""
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeOpenAI:
    base_url: str
    replies: list[Reply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    request_headers: list[dict[str, str]] = field(default_factory=list)
    single_slot: bool = False
    response_formats: set[str] = field(default_factory=lambda: {"json_schema", "json_object"})
    format_refusal_status: int = 400
    """llama-cpp-python's server refuses an unknown response_format with 500 (its validation error)."""
    active: int = 0
    max_active: int = 0
    ended: list[float] = field(default_factory=list)
    """time.monotonic() at which each request's connection closed or its answer ended."""
    slot: asyncio.Lock = field(default_factory=asyncio.Lock)

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def user_messages(self) -> list[str]:
        return [m["content"] for r in self.requests for m in r["messages"] if m["role"] == "user"]

    def system_messages(self) -> list[str]:
        return [m["content"] for r in self.requests for m in r["messages"] if m["role"] == "system"]

    async def wait_idle(self, timeout: float = 5.0) -> float:
        """Seconds until the server holds no request (it saw every connection closed)."""
        began = time.monotonic()
        while self.active:
            if time.monotonic() - began > timeout:
                raise AssertionError(f"the server still holds {self.active} requests after {timeout} s")
            await asyncio.sleep(0.01)
        return time.monotonic() - began


def _completion(content: str, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    }


def _chunk(piece: str, model: str) -> str:
    chunk = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
    }
    return f"data: {json.dumps(chunk)}\n\n"


async def _stream(reply: Reply, model: str) -> AsyncIterator[str]:
    words = reply.content.split(" ")
    for index, word in enumerate(words):
        yield _chunk(word if index == len(words) - 1 else word + " ", model)
        if reply.pause:
            await asyncio.sleep(reply.pause)
    if reply.kind == "stall":
        await asyncio.sleep(reply.seconds or 3600)
    if reply.kind == "drop":
        raise ConnectionAbortedError("scripted: the server breaks the connection off mid-answer")
    if reply.kind == "forever":
        while True:
            yield _chunk("more ", model)
            await asyncio.sleep(reply.seconds)
    yield "data: [DONE]\n\n"


async def _raw(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _endless_line() -> AsyncIterator[bytes]:
    """A `data:` line that never ends: a client that reads it whole never returns."""
    yield b"data: "
    while True:
        yield b"x" * 65536
        await asyncio.sleep(0)


async def _released(fake: FakeOpenAI, chunks: AsyncIterator[str | bytes]) -> AsyncIterator[str | bytes]:
    """The stream, then the slot freed: when it ends, or when the client closes the connection."""
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        if fake.single_slot:
            fake.slot.release()


def _refused_format(fake: FakeOpenAI, body: dict[str, Any]) -> Response | None:
    response_format = body.get("response_format")
    if response_format and response_format.get("type") not in fake.response_formats:
        message = f"1 validation error: ('body', 'response_format', 'type') not {response_format.get('type')!r}"
        error = {"message": message, "type": "invalid_request_error"}
        return JSONResponse({"error": error}, status_code=fake.format_refusal_status)
    return None


def _app(fake: FakeOpenAI) -> Starlette:
    async def completions(request: Request) -> Response:
        body = await request.json()
        fake.requests.append(body)
        fake.request_headers.append(dict(request.headers))
        refused = _refused_format(fake, body)
        if refused is not None:
            return refused
        if fake.single_slot:
            await fake.slot.acquire()
        try:
            response = await _reply(fake, body)
        except BaseException:
            if fake.single_slot:
                fake.slot.release()
            raise
        if fake.single_slot and not isinstance(response, StreamingResponse):
            fake.slot.release()
        return response

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


def _part_summary(body: dict[str, Any]) -> str:
    """A summary of the transcript part sent, with one chapter from its first line's start to its last line's end."""
    times = _LINE_TIMES.findall(body["messages"][-1]["content"])
    chapter = {"start": float(times[0][0]), "end": float(times[-1][1]), "title": "Part", "summary": "A part."}
    return json.dumps({"summary": "part", "key_points": ["p"], "chapters": [chapter]})


async def _reply(fake: FakeOpenAI, body: dict[str, Any]) -> Response:
    reply = fake.replies.pop(0) if fake.replies else Reply("status", status=500)
    model = body.get("model", "test-model")
    if reply.kind == "part-summary":
        reply = Reply("content", _part_summary(body))
    if reply.kind == "hang":
        await asyncio.sleep(reply.seconds)
    if reply.kind == "raw":
        return StreamingResponse(
            _released(fake, _raw(reply.body)), media_type="text/event-stream", headers=reply.headers
        )
    if reply.kind == "endless-line":
        return StreamingResponse(_released(fake, _endless_line()), media_type="text/event-stream")
    if reply.kind == "redirect":
        return Response(status_code=307, headers={"location": reply.content})
    if reply.kind == "status":
        headers = reply.headers or ({"retry-after": "0"} if reply.status == 429 else {})
        return JSONResponse(
            {"error": {"message": "scripted failure", "type": "test"}}, status_code=reply.status, headers=headers
        )
    if reply.kind == "not-json":
        return PlainTextResponse("<html>this is not json</html>", media_type="application/json")
    if reply.kind == "no-choices":
        return JSONResponse({"id": "x", "object": "chat.completion", "created": 0, "model": model, "choices": []})
    if body.get("stream"):
        return StreamingResponse(_released(fake, _stream(reply, model)), media_type="text/event-stream")
    return JSONResponse(_completion(reply.content, model))


def _counting(fake: FakeOpenAI, app: ASGIApp) -> ASGIApp:
    """Counts the requests held at once, from arrival until the answer ends or the client leaves."""

    async def counted(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        await asyncio.sleep(SETTLE_SECONDS)
        fake.active += 1
        fake.max_active = max(fake.max_active, fake.active)
        try:
            await app(scope, receive, send)
        finally:
            fake.active -= 1
            fake.ended.append(time.monotonic())

    return counted


def openai_settings(tmp_path: Path, store: StoreDatabase, base_url: str, **overrides: object) -> Settings:
    """The service's settings, on the store under test, with the `openai` provider at `base_url`,
    no workers unless asked."""
    values = {"llm_timeout_seconds": 5, "llm_max_retries": 2, "llm_model": "test-model", "workers": 0, **overrides}
    return Settings(_env_file=None, data_dir=tmp_path / "data", openai_base_url=base_url, **store.settings, **values)


@contextmanager
def fake_openai_server(single_slot: bool = False, port: int | None = None) -> Iterator[FakeOpenAI]:
    port = port or free_port()
    fake = FakeOpenAI(base_url=f"http://127.0.0.1:{port}/v1", single_slot=single_slot)
    with app_on_loopback(_counting(fake, _app(fake)), port, "the fake OpenAI server", log_level="critical"):
        yield fake
