"""A model server that sends what no well-behaved one does gets a clear 502, never a 500, and
can neither grow the service's memory without bound nor send its requests elsewhere.

Against the scripted OpenAI-compatible server on loopback: chunks of another shape, text the
store cannot write, one line that never ends, a gzip bomb, a redirect to another server.
"""

import gzip
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from service.videos.models import Transcript
from tests.conftest import insert_completed_video, serving
from tests.openai_server import FakeOpenAI, Reply, fake_openai_server, openai_settings
from tests.store import StoreDatabase

IDLE = 10.0
DEADLINE = 20.0
QUICK = 3.0
"""Well inside the idle timeout: a reply refused for its size or shape is refused as it arrives."""


@pytest.fixture
async def http(tmp_path: Path, store: StoreDatabase, fake: FakeOpenAI) -> AsyncIterator[httpx.AsyncClient]:
    settings = openai_settings(
        tmp_path,
        store,
        fake.base_url,
        llm_timeout_seconds=DEADLINE,
        llm_idle_timeout_seconds=IDLE,
        llm_max_output_tokens=64,
    )
    async with serving(settings) as client:
        yield client


def sse(*data: object) -> bytes:
    return b"".join(f"data: {json.dumps(item)}\n\n".encode() for item in data) + b"data: [DONE]\n\n"


def chunk(content: object) -> dict:
    return {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}}],
    }


async def ask(http: httpx.AsyncClient, video_id: str, **params: str) -> httpx.Response:
    return await http.post(f"/videos/{video_id}/chat", params=params, json={"question": "Where does Clara live?"})


async def chat_of(http: httpx.AsyncClient, video_id: str) -> list:
    return (await http.get(f"/videos/{video_id}/chat")).json()["items"]


@pytest.mark.parametrize(
    "stream",
    [
        sse({"choices": "nope"}),
        sse({"foo": [1, 2, 3]}),
        sse(chunk(42)),
        sse([1, 2]),
        sse("text"),
        sse({"choices": [{"index": 0, "delta": "text"}]}),
    ],
    ids=["choices-not-a-list", "no-choices-field", "content-not-text", "a-list", "a-string", "delta-not-an-object"],
)
async def test_chunks_of_another_shape_are_502_and_store_nothing(
    http: httpx.AsyncClient, fake: FakeOpenAI, speech_transcript: Transcript, stream: bytes
) -> None:
    video = await insert_completed_video(speech_transcript)
    fake.script(Reply("raw", body=stream))
    response = await ask(http, str(video.id))
    assert response.status_code == 502
    assert "language model" in response.json()["detail"]
    assert await chat_of(http, str(video.id)) == []


async def test_a_chunk_of_another_shape_ends_a_streamed_answer_with_a_502_event(
    http: httpx.AsyncClient, fake: FakeOpenAI, speech_transcript: Transcript
) -> None:
    video = await insert_completed_video(speech_transcript)
    fake.script(Reply("raw", body=sse(chunk("She lives "), {"choices": "nope"})))
    response = await ask(http, str(video.id), stream="true")
    assert response.text.count("event: delta") == 1
    lines = response.text.splitlines()
    error = json.loads(lines[lines.index("event: error") + 1].removeprefix("data: "))
    assert error["status"] == 502 and "not a chat completion chunk" in error["detail"]
    assert await chat_of(http, str(video.id)) == []


async def test_a_summary_of_another_shape_is_502_and_keeps_the_old_one(
    http: httpx.AsyncClient, fake: FakeOpenAI, speech_transcript: Transcript
) -> None:
    video = await insert_completed_video(speech_transcript)
    fake.script(Reply("raw", body=sse(chunk(["not", "text"]))))
    response = await http.post(f"/videos/{video.id}/summarize")
    assert response.status_code == 502
    assert (await http.get(f"/videos/{video.id}")).json()["summary"] is None


async def test_lone_surrogates_from_the_model_are_stored_as_replacement_characters(
    http: httpx.AsyncClient, fake: FakeOpenAI, speech_transcript: Transcript
) -> None:
    """JSON can escape half of a surrogate pair; no store can write one, in an answer or a summary."""
    video = await insert_completed_video(speech_transcript)
    summary = '{"summary": "Clara \\ud800 talks.", "key_points": ["\\udc00 Lisbon"], "chapters": []}'
    fake.script(Reply("raw", body=sse(chunk("Lisbon \ud800 [1]."))), Reply("raw", body=sse(chunk(summary))))
    answered = await ask(http, str(video.id))
    assert answered.status_code == 201
    assert answered.json()["answer"] == "Lisbon \ufffd [1]."
    summarized = await http.post(f"/videos/{video.id}/summarize")
    assert summarized.status_code == 200
    stored = (await http.get(f"/videos/{video.id}")).json()["summary"]
    assert (stored["text"], stored["key_points"]) == ("Clara \ufffd talks.", ["\ufffd Lisbon"])


async def test_one_chunk_past_max_tokens_is_cut_at_the_limit(
    http: httpx.AsyncClient, fake: FakeOpenAI, speech_transcript: Transcript
) -> None:
    """A single delta is no way around the cut: 64 tokens keep 64 x 16 characters, not 200,000."""
    video = await insert_completed_video(speech_transcript)
    fake.script(Reply("raw", body=sse(chunk("Lisbon [1]. " + "x" * 200_000))))
    response = await ask(http, str(video.id))
    assert response.status_code == 201
    assert len(response.json()["answer"]) == 64 * 16


async def test_a_line_that_never_ends_is_cut_off_at_the_reply_limit(
    http: httpx.AsyncClient, fake: FakeOpenAI, speech_transcript: Transcript
) -> None:
    """No token ever arrives, so only the idle timeout would end it, with all of it in memory."""
    video = await insert_completed_video(speech_transcript)
    fake.script(Reply("endless-line"))
    began = time.monotonic()
    response = await ask(http, str(video.id))
    assert response.status_code == 502
    assert "sent more than 256 KiB for one reply" in response.json()["detail"]
    assert time.monotonic() - began < QUICK
    assert await fake.wait_idle(timeout=2.0) < 1.0
    assert len(fake.requests) == 1


async def test_a_compressed_reply_is_refused_unread(
    http: httpx.AsyncClient, fake: FakeOpenAI, speech_transcript: Transcript
) -> None:
    """A gzip bomb (256 MiB of one comment line in 256 KiB) is never inflated: the service asks
    for replies uncompressed and refuses one that comes compressed anyway."""
    video = await insert_completed_video(speech_transcript)
    bomb = gzip.compress(b": " + b"0" * (256 << 20), compresslevel=9)
    fake.script(Reply("raw", body=bomb, headers={"content-encoding": "gzip"}))
    began = time.monotonic()
    response = await ask(http, str(video.id))
    assert response.status_code == 502
    assert "compressed reply (Content-Encoding: gzip)" in response.json()["detail"]
    assert time.monotonic() - began < QUICK
    assert fake.request_headers[0]["accept-encoding"] == "identity"
    assert len(fake.requests) == 1


async def test_a_redirect_is_not_followed(
    http: httpx.AsyncClient, fake: FakeOpenAI, speech_transcript: Transcript
) -> None:
    """The transcript goes to the configured server only; a redirect elsewhere is an error."""
    video = await insert_completed_video(speech_transcript)
    with fake_openai_server() as elsewhere:
        elsewhere.script(Reply("content", "Lisbon [1]."))
        fake.script(Reply("redirect", f"{elsewhere.base_url}/chat/completions"))
        response = await ask(http, str(video.id))
        assert response.status_code == 502
        assert "redirect (HTTP 307)" in response.json()["detail"]
        assert elsewhere.requests == []
    assert len(fake.requests) == 1
    assert await chat_of(http, str(video.id)) == []
