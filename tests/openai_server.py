"""A small OpenAI-compatible chat-completions server on loopback, scripted by the test.

Each request to POST /v1/chat/completions takes the next scripted reply; the requests are kept
so a test can read what the service sent.
"""

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.server import app_on_loopback, free_port


@dataclass
class Reply:
    kind: str  # "content", "status", "hang", "not-json", "no-choices"
    content: str = ""
    status: int = 200
    seconds: float = 0.0


@dataclass
class FakeOpenAI:
    base_url: str
    replies: list[Reply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def user_messages(self) -> list[str]:
        return [m["content"] for r in self.requests for m in r["messages"] if m["role"] == "user"]


def _completion(content: str, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    }


def _stream(content: str, model: str) -> Iterator[str]:
    words = content.split(" ")
    for index, word in enumerate(words):
        piece = word if index == len(words) - 1 else word + " "
        chunk = {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
        }
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"


def _app(fake: FakeOpenAI) -> Starlette:
    async def completions(request: Request) -> Response:
        body = await request.json()
        fake.requests.append(body)
        reply = fake.replies.pop(0) if fake.replies else Reply("status", status=500)
        model = body.get("model", "test-model")
        if reply.kind == "hang":
            await asyncio.sleep(reply.seconds)
        if reply.kind == "status":
            headers = {"retry-after": "0"} if reply.status == 429 else {}
            return JSONResponse(
                {"error": {"message": "scripted failure", "type": "test"}}, status_code=reply.status, headers=headers
            )
        if reply.kind == "not-json":
            return PlainTextResponse("<html>this is not json</html>", media_type="application/json")
        if reply.kind == "no-choices":
            return JSONResponse({"id": "x", "object": "chat.completion", "created": 0, "model": model, "choices": []})
        if body.get("stream"):
            return StreamingResponse(_stream(reply.content, model), media_type="text/event-stream")
        return JSONResponse(_completion(reply.content, model))

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


@contextmanager
def fake_openai_server() -> Iterator[FakeOpenAI]:
    port = free_port()
    fake = FakeOpenAI(base_url=f"http://127.0.0.1:{port}/v1")
    with app_on_loopback(_app(fake), port, "the fake OpenAI server"):
        yield fake
