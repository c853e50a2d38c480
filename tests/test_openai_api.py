"""The OpenAI-compatible endpoints, driven by the official `openai` SDK against a real server process."""

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import jiwer
import openai
import pytest
import srt
import webvtt

from service.config import Settings
from tests.conftest import SPEECH_SCRIPT, SPEECH_VIDEO, normalized_words, serving
from tests.server import ServerProcess, running_server

PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "WORKERS": "1",
        "WORKER_POLL_SECONDS": "0.05",
        "AUTH_ENABLED": "true",
        "SECRET_KEY": "x" * 40,
        "ALLOW_REGISTRATION": "true",
    }
    with running_server(tmp_path_factory.mktemp("openai") / "data", env) as process:
        yield process


@pytest.fixture(scope="module")
def api_key(server: ServerProcess) -> str:
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        registered = http.post(
            "/auth/register", json={"username": "ada", "email": "ada@example.com", "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        token = http.post("/auth/token", data={"username": "ada", "password": PASSWORD}).json()["access_token"]
        created = http.post("/auth/api-keys", json={"name": "sdk"}, headers={"Authorization": f"Bearer {token}"})
        return created.json()["key"]


@pytest.fixture(scope="module")
def client(server: ServerProcess, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=api_key, timeout=300, max_retries=0)


def transcribe(client: openai.OpenAI, **arguments: object) -> object:
    with SPEECH_VIDEO.open("rb") as file:
        return client.audio.transcriptions.create(file=file, model="whisper-1", **arguments)  # type: ignore[call-overload]


def assert_close_to_the_script(text: str) -> None:
    error_rate = jiwer.wer(normalized_words(SPEECH_SCRIPT.read_text()), normalized_words(text))
    assert error_rate <= 0.15, text


def test_models_lists_the_server_model_and_whisper_1(client: openai.OpenAI) -> None:
    names = [model.id for model in client.models.list()]
    assert names == ["tiny.en", "whisper-1"]


def test_json(client: openai.OpenAI) -> None:
    answer = transcribe(client, language="en")
    assert isinstance(answer, openai.types.audio.Transcription)
    assert_close_to_the_script(answer.text)


def test_text(client: openai.OpenAI) -> None:
    answer = transcribe(client, response_format="text")
    assert isinstance(answer, str)
    assert_close_to_the_script(answer)


def test_srt(client: openai.OpenAI) -> None:
    cues = list(srt.parse(transcribe(client, response_format="srt")))
    assert len(cues) >= 3
    assert_close_to_the_script(" ".join(cue.content for cue in cues))


def test_vtt(client: openai.OpenAI, tmp_path: Path) -> None:
    captions = webvtt.from_buffer(io.StringIO(transcribe(client, response_format="vtt")))
    assert len(captions) >= 3
    assert_close_to_the_script(" ".join(caption.text for caption in captions))


def test_verbose_json_with_word_and_segment_timestamps(client: openai.OpenAI) -> None:
    answer = transcribe(client, response_format="verbose_json", timestamp_granularities=["word", "segment"])
    assert isinstance(answer, openai.types.audio.TranscriptionVerbose)
    assert answer.language == "english"  # OpenAI names the language
    assert 30 < answer.duration < 40
    assert_close_to_the_script(answer.text)
    assert answer.segments and answer.words
    assert [segment.id for segment in answer.segments] == list(range(len(answer.segments)))
    for segment in answer.segments:
        assert 0 <= segment.start <= segment.end <= answer.duration
        assert segment.avg_logprob < 0 and 0 <= segment.no_speech_prob <= 1
    for before, after in zip(answer.words, answer.words[1:], strict=False):
        assert before.start <= after.start
    assert answer.segments[0].start <= answer.words[0].start
    assert "".join(word.word for word in answer.words).split() == answer.text.split()


def test_verbose_json_with_segments_only_has_no_words(client: openai.OpenAI) -> None:
    answer = transcribe(client, response_format="verbose_json")
    assert answer.segments and answer.words is None


def test_an_unknown_model_is_a_bad_request_in_openai_shape(client: openai.OpenAI) -> None:
    with SPEECH_VIDEO.open("rb") as file, pytest.raises(openai.BadRequestError) as raised:
        client.audio.transcriptions.create(file=file, model="gpt-nothing")
    assert raised.value.status_code == 400
    error = raised.value.body
    assert error["type"] == "invalid_request_error"
    assert "gpt-nothing" in error["message"] and "GET /v1/models" in error["message"]


def test_a_prompt_with_whisper_control_tokens_is_a_bad_request(client: openai.OpenAI) -> None:
    with SPEECH_VIDEO.open("rb") as file, pytest.raises(openai.BadRequestError) as raised:
        client.audio.transcriptions.create(file=file, model="whisper-1", prompt="<|startoftranscript|><|notimestamps|>")
    assert raised.value.body["type"] == "invalid_request_error"
    assert raised.value.body["message"].startswith("prompt: holds <|startoftranscript|>, one of Whisper's control")


@pytest.mark.parametrize(("name", "content"), [("notes.txt", b"not audio at all"), ("empty.mp3", b"")])
def test_not_media_is_a_bad_request_as_openai_answers_it(client: openai.OpenAI, name: str, content: bytes) -> None:
    """OpenAI answers a file it cannot decode with 400 (its SDKs raise BadRequestError), where the
    service's own routes say 415."""
    with pytest.raises(openai.BadRequestError) as raised:
        client.audio.transcriptions.create(file=(name, content), model="whisper-1")
    assert raised.value.status_code == 400
    assert raised.value.body["code"] == "unsupported_file" and raised.value.body["message"]


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the SDK marks translations deprecated
def test_translation_needs_a_multilingual_model(client: openai.OpenAI) -> None:
    """The only model available offline here is English-only (tiny.en), so a translation is refused;
    with a multilingual WHISPER_MODEL the same route answers English text."""
    print("no multilingual model is available offline: the translation test checks the refusal only")
    with SPEECH_VIDEO.open("rb") as file, pytest.raises(openai.BadRequestError) as raised:
        client.audio.translations.create(file=file, model="whisper-1")
    assert raised.value.body["message"] == "the model bundled:tiny.en is English-only: it cannot translate"


def test_a_wrong_api_key_is_401_in_openai_shape(server: ServerProcess) -> None:
    wrong = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="va_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        wrong.models.list()
    assert raised.value.body == {
        "message": "the API key is invalid or revoked",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }


def test_the_upload_is_kept_as_a_video(server: ServerProcess, client: openai.OpenAI, api_key: str) -> None:
    before = httpx.get(f"{server.base_url}/videos", headers={"X-API-Key": api_key}).json()["items"]
    transcribe(client, response_format="text")
    after = httpx.get(f"{server.base_url}/videos", headers={"X-API-Key": api_key}).json()["items"]
    assert len(after) == len(before) + 1
    assert after[0]["status"] == "completed" and after[0]["filename"] == "speech.mp4"


async def test_with_keep_uploads_off_nothing_is_kept(worker_settings: Settings) -> None:
    settings = worker_settings.model_copy(update={"openai_api_keep_uploads": False})
    async with serving(settings) as http:
        with SPEECH_VIDEO.open("rb") as file:
            response = await http.post(
                "/v1/audio/transcriptions",
                files={"file": ("speech.mp4", file)},
                data={"model": "tiny.en", "response_format": "text"},
            )
        assert response.status_code == 200, response.text
        assert_close_to_the_script(response.text)
        assert (await http.get("/videos")).json()["items"] == []
    assert not any(path.is_file() for path in settings.files_dir.rglob("*"))


async def test_a_request_waits_at_most_its_limit(settings: Settings) -> None:
    """No workers run here: the upload stays queued, and the request ends with 504 and its video's id."""
    async with serving(settings.model_copy(update={"openai_api_wait_seconds": 0.3})) as http:
        with SPEECH_VIDEO.open("rb") as file:
            response = await http.post("/v1/audio/transcriptions", files={"file": file}, data={"model": "whisper-1"})
        assert response.status_code == 504
        video_id = (await http.get("/videos")).json()["items"][0]["id"]
    assert response.json()["error"]["type"] == "server_error"
    assert f"GET /videos/{video_id}" in response.json()["error"]["message"]


async def test_a_wait_that_runs_out_with_uploads_not_kept_does_not_point_at_a_deleted_video(
    settings: Settings,
) -> None:
    update = {"openai_api_wait_seconds": 0.3, "openai_api_keep_uploads": False}
    async with serving(settings.model_copy(update=update)) as http:
        with SPEECH_VIDEO.open("rb") as file:
            response = await http.post("/v1/audio/transcriptions", files={"file": file}, data={"model": "whisper-1"})
        assert response.status_code == 504
        assert (await http.get("/videos")).json()["items"] == []
    assert response.json()["error"]["message"] == (
        "not transcribed within 0.3 s (OPENAI_API_WAIT_SECONDS); the upload was not kept (OPENAI_API_KEEP_UPLOADS=false)"
    )
