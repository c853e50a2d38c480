"""A /v1 request that waits for its result, against a real server process whose workers are off,
so that every upload stays queued: the client that gives up, the SDK that would retry, a cancel."""

import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import SPEECH_VIDEO
from tests.server import ServerProcess, running_server

WAIT_SECONDS = 5
ANSWERED_AFTER_THE_CLIENT_LEFT = (
    'video_analyzer_http_requests_total{method="POST",route="/v1/audio/transcriptions",status="499"}'
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"WORKERS": "0", "OPENAI_API_WAIT_SECONDS": str(WAIT_SECONDS)}
    with running_server(tmp_path_factory.mktemp("openai-waiting") / "data", env) as process:
        yield process


@pytest.fixture(scope="module")
def forgetful_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"WORKERS": "0", "OPENAI_API_WAIT_SECONDS": "600", "OPENAI_API_KEEP_UPLOADS": "false"}
    with running_server(tmp_path_factory.mktemp("openai-forgetful") / "data", env) as process:
        yield process


def video_ids(server: ServerProcess) -> list[str]:
    return [video["id"] for video in httpx.get(f"{server.base_url}/videos").json()["items"]]


def leave_while_waiting(server: ServerProcess) -> None:
    """Upload, then hang up a second into the wait, as a client with a short timeout does."""
    with SPEECH_VIDEO.open("rb") as file, pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{server.base_url}/v1/audio/transcriptions",
            files={"file": file},
            data={"model": "whisper-1"},
            timeout=httpx.Timeout(30, read=1),
        )


def answers_after_the_client_left(server: ServerProcess) -> float:
    for line in httpx.get(f"{server.base_url}/metrics").text.splitlines():
        if line.startswith(ANSWERED_AFTER_THE_CLIENT_LEFT):
            return float(line.split()[-1])
    return 0.0


def until(condition: object, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the server did not get there in time"
        time.sleep(0.05)


def test_a_client_that_leaves_ends_the_wait_and_its_kept_upload_goes_on(server: ServerProcess) -> None:
    before = video_ids(server)
    answered = answers_after_the_client_left(server)
    leave_while_waiting(server)
    until(lambda: answers_after_the_client_left(server) == answered + 1, timeout=WAIT_SECONDS - 1)
    after = httpx.get(f"{server.base_url}/videos").json()["items"]
    assert len(after) == len(before) + 1 and after[0]["status"] == "queued"


def test_a_client_that_leaves_takes_its_video_along_when_uploads_are_not_kept(
    forgetful_server: ServerProcess,
) -> None:
    leave_while_waiting(forgetful_server)
    until(lambda: video_ids(forgetful_server) == [])


def test_the_sdk_does_not_upload_again_after_the_wait_ran_out(server: ServerProcess) -> None:
    """OpenAI's SDKs retry a 5xx (twice by default); a retry would upload the same file again while
    the first upload is still queued, so the 504 tells them not to."""
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", timeout=30)
    before = video_ids(server)
    with SPEECH_VIDEO.open("rb") as file, pytest.raises(openai.InternalServerError) as raised:
        client.audio.transcriptions.create(file=file, model="whisper-1")
    assert raised.value.status_code == 504
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert len(video_ids(server)) == len(before) + 1


def test_a_cancelled_transcription_is_a_conflict_the_sdk_does_not_retry(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", timeout=30)
    before = set(video_ids(server))
    outcome: list[BaseException] = []

    def transcribe() -> None:
        with SPEECH_VIDEO.open("rb") as file:
            try:
                client.audio.transcriptions.create(file=file, model="whisper-1")
            except openai.APIError as error:
                outcome.append(error)

    waiting = threading.Thread(target=transcribe)
    waiting.start()
    until(lambda: set(video_ids(server)) - before)
    (video_id,) = set(video_ids(server)) - before
    assert httpx.post(f"{server.base_url}/videos/{video_id}/cancel").status_code == 202
    waiting.join(timeout=30)
    assert isinstance(outcome[0], openai.ConflictError)
    assert outcome[0].body["message"] == "the transcription was cancelled"
    assert set(video_ids(server)) - before == {video_id}
