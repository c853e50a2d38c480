"""Per-request transcription options, and cancelling a queued or running job."""

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import jiwer
import numpy as np
import pytest
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.audio import decode_audio

from service.config import Settings
from service.processing.transcription import SAMPLE_RATE, JobCancelled, Transcriber
from service.videos.models import TranscriptionOptions
from tests.conftest import SPEECH_SCRIPT, SPEECH_VIDEO, finished, normalized_words, serving, upload
from tests.media import loop_media


@pytest.fixture(scope="module")
def long_speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About three minutes of the speech fixture: long enough to cancel while it is transcribed."""
    return loop_media(SPEECH_VIDEO, tmp_path_factory.mktemp("media") / "long.mkv", minutes=3)


def recorded_calls(monkeypatch: pytest.MonkeyPatch, owner: type) -> list[dict[str, Any]]:
    """The arguments of every `owner.transcribe` call, which still runs as it would."""
    calls: list[dict[str, Any]] = []
    original = owner.transcribe

    def recording(self: Any, audio: Any, **arguments: Any) -> Any:
        calls.append(arguments)
        return original(self, audio, **arguments)

    monkeypatch.setattr(owner, "transcribe", recording)
    return calls


@pytest.fixture
def whisper_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    return recorded_calls(monkeypatch, WhisperModel)


@pytest.fixture
def batched_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    return recorded_calls(monkeypatch, BatchedInferencePipeline)


async def test_upload_options_are_kept_and_reach_faster_whisper(
    worker_settings: Settings, whisper_calls: list[dict[str, Any]]
) -> None:
    form = {"language": "en", "prompt": "Glossary: Kubernetes, PostgreSQL.", "word_timestamps": "true"}
    async with serving(worker_settings) as client:
        response = await upload(client, SPEECH_VIDEO, **form, vad="false", temperature="0")
        assert response.status_code == 202, response.text
        assert response.json()["options"] == {
            "task": "transcribe",
            "prompt": "Glossary: Kubernetes, PostgreSQL.",
            "word_timestamps": True,
            "vad": False,
            "temperature": 0.0,
        }
        video = await finished(client, response.json()["id"])
    assert video["status"] == "completed", video["job"]
    first = whisper_calls[0]
    assert first["language"] == "en"
    assert first["task"] == "transcribe"
    assert first["initial_prompt"] == "Glossary: Kubernetes, PostgreSQL."
    assert first["word_timestamps"] is True
    assert first["vad_filter"] is False
    assert first["temperature"] == 0.0
    assert first["language_detection_segments"] == worker_settings.whisper_language_detection_segments
    assert all(segment["words"] for segment in video["transcript"]["segments"])
    for segment in video["transcript"]["segments"]:
        assert segment["avg_logprob"] is not None
        assert 0 <= segment["no_speech_prob"] <= 1
        assert segment["low_confidence"] == (
            segment["avg_logprob"] < worker_settings.whisper_low_confidence_logprob
            or segment["no_speech_prob"] > worker_settings.whisper_low_confidence_no_speech
        )


@pytest.mark.parametrize(
    ("field", "value", "complaint"),
    [
        ("temperature", "2", "temperature"),
        ("temperature", "warm", "temperature"),
        ("task", "summarize", "task"),
        ("vad", "perhaps", "vad"),
        ("prompt", "x" * 801, "prompt"),
        ("prompt", "<|startoftranscript|><|notimestamps|>", "prompt: holds <|startoftranscript|>"),
        ("prompt", "Glossary: Falcon. <|0.00|>", "prompt: holds <|0.00|>"),
    ],
)
async def test_a_bad_option_is_422_and_keeps_nothing(
    client: httpx.AsyncClient, settings: Settings, field: str, value: str, complaint: str
) -> None:
    response = await upload(client, SPEECH_VIDEO, **{field: value})
    assert response.status_code == 422, response.text
    assert complaint in response.json()["detail"]
    assert (await client.get("/videos")).json()["items"] == []
    assert not any(path.is_file() for path in settings.files_dir.rglob("*"))


@pytest.mark.parametrize("character", ["é", "東", "🎬"])
async def test_a_prompt_of_800_characters_is_taken_in_any_script(client: httpx.AsyncClient, character: str) -> None:
    """The limit is 800 characters, whatever their size in UTF-8 (up to 4 bytes each)."""
    response = await upload(client, SPEECH_VIDEO, prompt=character * 800)
    assert response.status_code == 202, response.text
    assert response.json()["options"]["prompt"] == character * 800


async def test_a_prompt_that_looks_like_a_token_but_is_none_is_taken(client: httpx.AsyncClient) -> None:
    """Only Whisper's own control tokens are refused: other text between <| and |> is plain text."""
    response = await upload(client, SPEECH_VIDEO, prompt="Operators: <|>, <|Hello World|> and a|b.")
    assert response.status_code == 202, response.text


async def test_translate_with_an_english_only_model_is_refused(client: httpx.AsyncClient) -> None:
    response = await upload(client, SPEECH_VIDEO, task="translate")
    assert response.status_code == 422
    assert response.json()["detail"] == "the model bundled:tiny.en is English-only: it cannot translate"


async def test_a_language_an_english_only_model_cannot_transcribe_is_refused(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """tiny.en would transcribe French speech as English words; the client asked for French."""
    response = await upload(client, SPEECH_VIDEO, language="fr")
    assert response.status_code == 422
    assert response.json()["detail"] == "the model bundled:tiny.en is English-only: it cannot transcribe 'fr'"
    assert (await client.get("/videos")).json()["items"] == []
    assert not any(path.is_file() for path in settings.files_dir.rglob("*"))


async def test_cancel_a_queued_video_then_reprocess_it(client: httpx.AsyncClient) -> None:
    video_id = (await upload(client, SPEECH_VIDEO)).json()["id"]
    response = await client.post(f"/videos/{video_id}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    assert response.json()["job"]["stage"] == "cancelled"

    again = await client.post(f"/videos/{video_id}/cancel")
    assert again.status_code == 409
    assert again.json() == {"detail": "the video is cancelled; only a queued or processing video can be cancelled"}

    requeued = await client.post(f"/videos/{video_id}/reprocess")
    assert requeued.status_code == 202
    assert requeued.json()["status"] == "queued"
    assert (await client.get("/stats")).json()["by_status"]["queued"] == 1


async def test_cancel_of_an_unknown_video_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/videos/0123456789abcdef01234567/cancel")
    assert response.status_code == 404


async def test_cancel_a_running_job_frees_its_worker_within_a_second(
    worker_settings: Settings,
    long_speech: Path,
    whisper_calls: list[dict[str, Any]],
    batched_calls: list[dict[str, Any]],
) -> None:
    """The long file goes through the batched pipeline (a call for each part decoded at once), the
    short one sequentially; a cancel stops every part."""
    async with serving(worker_settings) as client:
        running_id = (await upload(client, long_speech, language="en")).json()["id"]
        async with asyncio.timeout(60):
            while (await client.get(f"/videos/{running_id}")).json()["job"]["stage"] != "transcribing":
                await asyncio.sleep(0.05)
        waiting_id = (await upload(client, SPEECH_VIDEO, language="en")).json()["id"]

        cancelled_at = time.monotonic()
        assert (await client.post(f"/videos/{running_id}/cancel")).status_code == 202
        async with asyncio.timeout(30):
            while (await client.get(f"/videos/{waiting_id}")).json()["status"] == "queued":
                await asyncio.sleep(0.02)
        freed_after = time.monotonic() - cancelled_at

        done = await finished(client, waiting_id)
        stopped = (await client.get(f"/videos/{running_id}")).json()
    print(f"the worker took the next video {freed_after:.2f} s after the cancel")
    assert freed_after < 1.5
    assert done["status"] == "completed"
    assert stopped["status"] == "cancelled"
    assert stopped["transcript"] is None
    assert len(batched_calls) == len(Transcriber(worker_settings).parts(decode_audio(str(long_speech))))
    assert len(whisper_calls) == 1
    assert all(call["batch_size"] == worker_settings.whisper_batch_size for call in batched_calls)
    assert all(call["vad_filter"] is True for call in batched_calls)


def part_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("transcribe-part")]


def test_a_cancel_stops_every_part_thread(long_speech: Path) -> None:
    """A cancel as soon as the parts are being decoded: the transcription raises JobCancelled once
    every part's thread has ended. A part stops at its next segment, so after the batch of windows
    it is decoding; the time that takes is printed."""
    transcriber = Transcriber(Settings(_env_file=None, whisper_parallel_parts=2))
    transcriber.model()
    cancelled = threading.Event()
    failure: list[BaseException] = []

    def transcribe() -> None:
        try:
            transcriber.transcribe(long_speech, "en", TranscriptionOptions(), None, lambda _: None, cancelled)
        except BaseException as error:
            failure.append(error)

    runner = threading.Thread(target=transcribe)
    runner.start()
    while not part_threads() and runner.is_alive():
        time.sleep(0.01)
    cancelled.set()
    cancelled_at = time.monotonic()
    runner.join(timeout=60)
    print(f"every part stopped {time.monotonic() - cancelled_at:.2f} s after the cancel")
    assert not runner.is_alive()
    assert [type(error) for error in failure] == [JobCancelled]
    assert not part_threads()


async def test_language_detection_is_asked_over_several_windows(
    worker_settings: Settings, whisper_calls: list[dict[str, Any]]
) -> None:
    """With `auto`, faster-whisper is asked to detect over WHISPER_LANGUAGE_DETECTION_SEGMENTS
    windows with the threshold. The one model available offline is English-only, and faster-whisper
    skips detection for such a model (English, probability 1); a multilingual model would detect."""
    print("no multilingual model is available offline: detection over windows is checked by its arguments")
    async with serving(worker_settings) as client:
        video = await finished(client, (await upload(client, SPEECH_VIDEO)).json()["id"])
    assert video["status"] == "completed", video["job"]
    first = whisper_calls[0]
    assert first["language"] is None
    assert first["language_detection_segments"] == 3
    assert first["language_detection_threshold"] == 0.5
    assert video["transcript"]["language"] == "en"
    assert video["transcript"]["language_probability"] == 1.0


def loudness(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples))))


def test_long_audio_is_cut_into_parts_at_pauses(long_speech: Path) -> None:
    audio = decode_audio(str(long_speech), sampling_rate=SAMPLE_RATE)
    parts = Transcriber(Settings(_env_file=None, whisper_parallel_parts=3)).parts(audio)
    assert len(parts) == 3
    assert parts[0][0] == 0 and parts[-1][1] == len(audio)
    assert all(previous[1] == following[0] for previous, following in zip(parts, parts[1:], strict=False))
    tenth = SAMPLE_RATE // 10
    for _, cut in parts[:-1]:
        assert loudness(audio[cut - tenth : cut + tenth]) < 0.1 * loudness(audio)


def test_parts_decoded_at_once_make_one_transcript_in_order(long_speech: Path) -> None:
    """Two parts on two CTranslate2 workers: one transcript, in time order, as accurate as the
    model, with progress that only rises; the language (auto) decided once for both parts."""
    progress: list[float] = []
    transcriber = Transcriber(Settings(_env_file=None, whisper_parallel_parts=2))
    result = transcriber.transcribe(
        long_speech, "auto", TranscriptionOptions(), None, progress.append, threading.Event()
    )

    segments = result.transcript.segments
    assert all(
        following.start >= previous.end - 0.05 for previous, following in zip(segments, segments[1:], strict=False)
    )
    repeats = round(segments[-1].end / 34.9)
    script = " ".join([SPEECH_SCRIPT.read_text()] * repeats)
    assert jiwer.wer(normalized_words(script), normalized_words(result.transcript.text)) < 0.05
    assert progress == sorted(progress) and progress[-1] > 0.9
    assert (result.transcript.language, result.transcript.language_probability) == ("en", 1.0)
