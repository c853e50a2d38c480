"""Every request to a language model ends, and the service never piles requests onto its server.

Against the scripted OpenAI-compatible server on loopback: one that streams tokens forever, one
that stalls mid-answer, one that breaks off, one with a single slot. A summary and an answer each
end, done or with a clear error, within the configured times; a connection given up on is closed
(the server sees it go); nothing is sent again once the server may have started on it; and the
server never holds more than LLM_CONCURRENCY requests from the service.
"""

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable
from email.utils import formatdate
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from service.config import Settings
from service.videos.models import Transcript
from tests.conftest import SPEECH_VIDEO, finished, insert_completed_video, serving, upload
from tests.openai_server import FakeOpenAI, Reply, fake_openai_server, openai_settings
from tests.server import free_port, running_server
from tests.store import StoreDatabase

T = TypeVar("T")

DEADLINE = 1.5
IDLE = 0.5
SLACK = 2.0
"""How much later than its limit a request may end on a loaded machine (two shared cores)."""


def bounded(tmp_path: Path, store: StoreDatabase, fake: FakeOpenAI, **overrides: object) -> Settings:
    values = {"llm_timeout_seconds": DEADLINE, "llm_idle_timeout_seconds": IDLE, "llm_max_retries": 2, **overrides}
    return openai_settings(tmp_path, store, fake.base_url, **values)


@pytest.fixture
async def http(tmp_path: Path, store: StoreDatabase, fake: FakeOpenAI) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(bounded(tmp_path, store, fake)) as client:
        yield client


async def timed(work: Awaitable[T]) -> tuple[T, float]:
    began = time.monotonic()
    result = await work
    return result, time.monotonic() - began


async def ask(http: httpx.AsyncClient, video_id: str, question: str = "Where does Clara live?", **params: str):
    return await http.post(f"/videos/{video_id}/chat", params=params, json={"question": question})


def events(response: httpx.Response) -> list[tuple[str, dict]]:
    blocks = [block.split("\n") for block in response.text.strip().split("\n\n")]
    return [(lines[0].removeprefix("event: "), json.loads(lines[1].removeprefix("data: "))) for lines in blocks]


async def assert_closed_and_not_resent(fake: FakeOpenAI) -> None:
    """The server saw the connection close at once, and got the request once."""
    assert await fake.wait_idle(timeout=2.0) < 1.0
    assert len(fake.requests) == 1


async def test_an_answer_streaming_forever_ends_at_the_deadline(
    http: httpx.AsyncClient, fake: FakeOpenAI, speech_transcript: Transcript
) -> None:
    video = await insert_completed_video(speech_transcript)
    fake.script(Reply("forever", "She lives", seconds=0.02))
    response, seconds = await timed(ask(http, str(video.id)))
    assert response.status_code == 503
    assert f"did not finish within {DEADLINE:g} s" in response.json()["detail"]
    assert DEADLINE <= seconds < DEADLINE + SLACK
    await assert_closed_and_not_resent(fake)
    assert (await http.get(f"/videos/{video.id}/chat")).json()["items"] == []


async def test_a_streamed_answer_that_stalls_sends_what_came_then_an_error(
    http: httpx.AsyncClient, fake: FakeOpenAI, speech_transcript: Transcript
) -> None:
    video = await insert_completed_video(speech_transcript)
    fake.script(Reply("stall", "She lives in", seconds=60))
    response, seconds = await timed(ask(http, str(video.id), stream="true"))
    received = events(response)
    assert [name for name, _ in received] == ["delta", "delta", "delta", "error"]
    assert "".join(data["text"] for name, data in received if name == "delta") == "She lives in"
    assert received[-1][1]["status"] == 503
    assert f"sent nothing for {IDLE:g} s" in received[-1][1]["detail"]
    assert IDLE <= seconds < IDLE + SLACK
    await assert_closed_and_not_resent(fake)
    assert (await http.get(f"/videos/{video.id}/chat")).json()["items"] == []


@pytest.mark.parametrize(
    ("reply", "words", "limit"),
    [
        (Reply("forever", '{"summary": "Clara', seconds=0.02), "did not finish within", DEADLINE),
        (Reply("stall", '{"summary": "Clara', seconds=60), "sent nothing for", IDLE),
        (Reply("hang", seconds=60), "sent nothing for", IDLE),
    ],
    ids=["forever", "stall", "no-headers"],
)
async def test_a_summary_ends_within_its_limits_and_keeps_the_old_one(
    http: httpx.AsyncClient, fake: FakeOpenAI, speech_transcript: Transcript, reply: Reply, words: str, limit: float
) -> None:
    video = await insert_completed_video(speech_transcript)
    fake.script(reply)
    response, seconds = await timed(http.post(f"/videos/{video.id}/summarize"))
    assert response.status_code == 503
    assert words in response.json()["detail"]
    assert limit <= seconds < limit + SLACK
    assert len(fake.requests) == 1
    assert (await http.get(f"/videos/{video.id}")).json()["summary"] is None


async def test_a_server_ignoring_max_tokens_is_cut_off_and_what_came_is_kept(
    tmp_path: Path, store: StoreDatabase, fake: FakeOpenAI, speech_transcript: Transcript
) -> None:
    """The cut comes from the characters received, not from the clock: the deadline is far away."""
    fake.script(Reply("forever", "She lives in Lisbon [1]."))
    async with serving(bounded(tmp_path, store, fake, llm_timeout_seconds=60, llm_max_output_tokens=64)) as client:
        video = await insert_completed_video(speech_transcript)
        response = await ask(client, str(video.id))
    assert response.status_code == 201
    entry = response.json()
    assert entry["answer"].startswith("She lives in Lisbon [1].more more")
    answer_tokens = fake.requests[0]["max_tokens"]
    assert answer_tokens == 64, "three quarters of LLM_MAX_OUTPUT_TOKENS, never under 64"
    assert answer_tokens * 16 - 1 <= len(entry["answer"]) <= answer_tokens * 16, (
        "cut at the limit, a last space stripped"
    )
    await assert_closed_and_not_resent(fake)


async def test_a_connection_broken_off_mid_answer_is_503_and_not_sent_again(
    http: httpx.AsyncClient, fake: FakeOpenAI, speech_transcript: Transcript
) -> None:
    video = await insert_completed_video(speech_transcript)
    fake.script(Reply("drop", "She lives"), Reply("content", "Lisbon [1]."))
    response = await ask(http, str(video.id))
    assert response.status_code == 503
    assert "broke off" in response.json()["detail"]
    assert len(fake.requests) == 1


async def test_a_5xx_before_any_token_is_retried(
    http: httpx.AsyncClient, fake: FakeOpenAI, speech_transcript: Transcript
) -> None:
    video = await insert_completed_video(speech_transcript)
    fake.script(Reply("status", status=503), Reply("content", "She lives in Lisbon [1]."))
    response = await ask(http, str(video.id))
    assert response.status_code == 201
    assert response.json()["answer"] == "She lives in Lisbon [1]."
    assert len(fake.requests) == 2


@pytest.mark.parametrize("retry_after", ["Wed, 21 Oct 2099 07:28:00 GMT", "99999"], ids=["http-date", "seconds"])
async def test_a_429_whose_retry_after_passes_the_deadline_is_not_retried(
    http: httpx.AsyncClient, fake: FakeOpenAI, speech_transcript: Transcript, retry_after: str
) -> None:
    """Retry-After is seconds or an HTTP date; either, past the request's deadline, ends it at once."""
    video = await insert_completed_video(speech_transcript)
    fake.script(*[Reply("status", status=429, headers={"retry-after": retry_after})] * 3)
    response, seconds = await timed(ask(http, str(video.id)))
    assert response.status_code == 503 and "HTTP 429" in response.json()["detail"]
    assert seconds < DEADLINE
    assert len(fake.requests) == 1


async def test_a_429_is_retried_at_the_date_its_retry_after_gives(
    tmp_path: Path, store: StoreDatabase, fake: FakeOpenAI, speech_transcript: Transcript
) -> None:
    retry_at = int(time.time()) + 3
    fake.script(
        Reply("status", status=429, headers={"retry-after": formatdate(retry_at, usegmt=True)}),
        Reply("content", "She lives in Lisbon [1]."),
    )
    async with serving(bounded(tmp_path, store, fake, llm_timeout_seconds=10, llm_idle_timeout_seconds=5)) as client:
        video = await insert_completed_video(speech_transcript)
        response = await ask(client, str(video.id))
        answered_at = time.time()
    assert response.status_code == 201
    assert answered_at >= retry_at - 0.05, "retried at the HTTP date, not after a 0.5 s backoff"
    assert len(fake.requests) == 2


async def test_a_refused_connection_is_retried_until_the_server_is_up(
    tmp_path: Path, store: StoreDatabase, speech_transcript: Transcript
) -> None:
    """The first attempt finds nothing listening; the server starts during the backoff."""
    port = free_port()
    started = threading.Event()
    stop = threading.Event()

    def serve_later() -> None:
        time.sleep(0.2)
        with fake_openai_server(port=port) as late:
            late.script(Reply("content", "She lives in Lisbon [1]."))
            started.set()
            stop.wait(30)

    thread = threading.Thread(target=serve_later, daemon=True)
    thread.start()
    settings = openai_settings(tmp_path, store, f"http://127.0.0.1:{port}/v1", llm_max_retries=3)
    try:
        async with serving(settings) as client:
            video = await insert_completed_video(speech_transcript)
            response = await ask(client, str(video.id))
            assert started.is_set()
            assert response.status_code == 201
            assert response.json()["answer"] == "She lives in Lisbon [1]."
    finally:
        stop.set()
        thread.join(timeout=15)


async def test_the_server_never_holds_more_than_llm_concurrency_requests(
    tmp_path: Path, store: StoreDatabase, fake: FakeOpenAI, speech_transcript: Transcript
) -> None:
    fake.script(*[Reply("content", "She lives in Lisbon [1].", pause=0.05)] * 6)
    async with serving(bounded(tmp_path, store, fake, llm_concurrency=2, llm_timeout_seconds=10)) as client:
        video = await insert_completed_video(speech_transcript)
        responses = await asyncio.gather(
            *(ask(client, str(video.id), f"Where does Clara live? ({n})") for n in range(6))
        )
    assert [r.status_code for r in responses] == [201] * 6
    assert fake.max_active == 2
    assert len(fake.requests) == 6


async def test_a_request_that_waits_too_long_for_its_turn_is_503_and_never_sent(
    tmp_path: Path, store: StoreDatabase, fake: FakeOpenAI, speech_transcript: Transcript
) -> None:
    fake.script(Reply("content", "She lives in Lisbon [1].", pause=0.4))
    settings = bounded(
        tmp_path,
        store,
        fake,
        llm_concurrency=1,
        llm_queue_timeout_seconds=0.5,
        llm_timeout_seconds=10,
        llm_idle_timeout_seconds=5,
    )
    async with serving(settings) as client:
        video = await insert_completed_video(speech_transcript)
        first = asyncio.ensure_future(ask(client, str(video.id)))
        while not fake.requests:
            await asyncio.sleep(0.01)
        second, seconds = await timed(ask(client, str(video.id), "Who owns a cat?"))
        assert second.status_code == 503
        assert "busy: no turn came within 0.5 s" in second.json()["detail"]
        assert 0.5 <= seconds < 0.5 + SLACK
        assert (await first).status_code == 201
    assert len(fake.requests) == 1


async def test_with_one_slot_a_runaway_summary_ends_and_the_question_waiting_behind_it_is_answered(
    tmp_path: Path, store: StoreDatabase, speech_transcript: Transcript
) -> None:
    """The issue's scenario: a llama.cpp-like server with one slot, a summary that would generate
    forever, and a question asked meanwhile. The summary ends at its deadline with a clear error,
    its connection closed, and the question is answered next; the server holds one request at most."""
    with fake_openai_server(single_slot=True) as fake:
        settings = bounded(tmp_path, store, fake, llm_concurrency=1, workers=1, worker_poll_seconds=0.05)
        fake.script(Reply("forever", '{"summary": "Clara', seconds=0.02), Reply("content", "Lisbon [1]."))
        async with serving(settings) as client:
            answered = await insert_completed_video(speech_transcript)
            video_id = (await upload(client, SPEECH_VIDEO)).json()["id"]
            while not fake.requests:
                await asyncio.sleep(0.02)
            response, seconds = await timed(ask(client, str(answered.id)))
            assert response.status_code == 201
            assert response.json()["answer"] == "Lisbon [1]."
            assert seconds < DEADLINE + SLACK
            video = await finished(client, video_id)
        assert video["status"] == "completed" and "Lisbon" in video["transcript"]["text"]
        assert f"did not finish within {DEADLINE:g} s" in video["summary"]["error"]
        assert fake.max_active == 1
        assert len(fake.requests) == 2


async def test_a_client_leaving_a_streamed_answer_frees_its_turn_and_closes_the_models_connection(
    tmp_path: Path, store: StoreDatabase, fake: FakeOpenAI
) -> None:
    """Against the service as a real process: the client of a streamed answer goes away while the
    model is still generating; the service closes its connection to the model and the next
    question gets the only turn."""
    summary = json.dumps({"summary": "Clara talks.", "key_points": [], "chapters": []})
    fake.script(Reply("content", summary), Reply("forever", "She lives", seconds=0.05), Reply("content", "Lisbon [1]."))
    environment = {
        "OPENAI_BASE_URL": fake.base_url,
        "LLM_MODEL": "test-model",
        "LLM_CONCURRENCY": "1",
        "LLM_QUEUE_TIMEOUT_SECONDS": "5",
        "LLM_TIMEOUT_SECONDS": "60",
        "WORKERS": "1",
        **store.environment,
    }
    with running_server(tmp_path / "data", environment) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            video_id = (await upload(client, SPEECH_VIDEO)).json()["id"]
            assert (await finished(client, video_id))["summary"]["text"] == "Clara talks."
            chat = f"/videos/{video_id}/chat"
            async with client.stream("POST", chat, params={"stream": "true"}, json={"question": "Where?"}) as answer:
                lines = aiter(answer.aiter_lines())
                while "delta" not in await anext(lines):
                    pass
            assert await fake.wait_idle(timeout=5.0) < 5.0
            response, seconds = await timed(client.post(chat, json={"question": "Where does Clara live?"}))
            assert response.status_code == 201 and response.json()["answer"] == "Lisbon [1]."
            assert seconds < SLACK
    assert fake.max_active == 1
