"""The pipeline end to end on the store under test: upload, queue, transcribe, read back."""

import re
import threading
from pathlib import Path

import httpx
import jiwer
import pytest
import srt
import webvtt

from service.config import Settings
from service.processing.transcription import Transcriber
from service.videos.models import TranscriptionOptions
from tests.conftest import NO_AUDIO_VIDEO, SPEECH_SCRIPT, SPEECH_VIDEO, finished, normalized_words, serving, upload
from tests.media import declaring_duration, remux
from tests.store import StoreDatabase


@pytest.fixture
def settings(worker_settings: Settings) -> Settings:
    return worker_settings


async def test_speech_fixture_is_transcribed_end_to_end(client: httpx.AsyncClient) -> None:
    video_id = (await upload(client, SPEECH_VIDEO, language="en")).json()["id"]
    video = await finished(client, video_id)
    assert video["status"] == "completed", video["job"]
    assert video["job"]["progress"] == 1.0
    assert video["processed_at"] is not None
    transcript = video["transcript"]
    assert transcript["language"] == "en"
    assert transcript["model"] == "tiny.en"
    error_rate = jiwer.wer(normalized_words(SPEECH_SCRIPT.read_text()), normalized_words(transcript["text"]))
    assert error_rate <= 0.15, transcript["text"]

    duration = video["metadata"]["duration"]
    segments = transcript["segments"]
    assert len(segments) >= 3
    for before, after in zip(segments, segments[1:], strict=False):
        assert before["start"] <= after["start"]
    for segment in segments:
        assert 0 <= segment["start"] <= segment["end"] <= duration
        assert segment["text"]

    srt_response = await client.get(f"/videos/{video_id}/transcript", params={"format": "srt"})
    assert srt_response.status_code == 200
    cues = list(srt.parse(srt_response.text))
    assert [cue.index for cue in cues] == list(range(1, len(cues) + 1))
    assert round(cues[0].start.total_seconds(), 3) == segments[0]["start"]
    assert " ".join(cue.content for cue in cues).split() == transcript["text"].split()

    vtt_response = await client.get(f"/videos/{video_id}/transcript", params={"format": "vtt"})
    assert vtt_response.headers["content-type"].startswith("text/vtt")
    captions = webvtt.from_string(vtt_response.text)
    assert [c.text for c in captions] == [cue.content for cue in cues]
    assert re.fullmatch(r"\d{2}:\d{2}:\d{2}\.\d{3}", captions[-1].end)

    txt = (await client.get(f"/videos/{video_id}/transcript", params={"format": "txt"})).text
    assert txt.splitlines() == [s["text"] for s in segments]
    as_json = (await client.get(f"/videos/{video_id}/transcript")).json()
    assert as_json["segments"] == segments

    summary = video["summary"]
    assert summary["model"] == "local-extractive"
    assert summary["error"] is None
    assert summary["text"] and summary["text"] in transcript["text"]
    assert 1 <= len(summary["key_points"]) <= 5
    assert all(point in transcript["text"] for point in summary["key_points"])
    assert summary["chapters"][0]["start"] == 0.0
    assert summary["chapters"][-1]["end"] <= duration


async def test_a_video_without_audio_completes_with_an_empty_transcript(client: httpx.AsyncClient) -> None:
    video = await finished(client, (await upload(client, NO_AUDIO_VIDEO)).json()["id"])
    assert video["status"] == "completed"
    assert video["metadata"]["has_audio"] is False
    assert video["transcript"]["text"] == ""
    assert video["transcript"]["segments"] == []


async def test_a_partly_decodable_file_completes_with_what_it_had(client: httpx.AsyncClient, tmp_path: Path) -> None:
    whole = remux(SPEECH_VIDEO, tmp_path / "speech.mkv", "matroska").read_bytes()
    truncated = tmp_path / "truncated.mkv"
    truncated.write_bytes(whole[: len(whole) // 2])
    video = await finished(client, (await upload(client, truncated)).json()["id"])
    assert video["status"] == "completed"
    assert re.fullmatch(r"decoded 1\d\.\d s of 35\.0 s declared; .*", video["job"]["note"]), video["job"]["note"]
    assert "Lisbon" in video["transcript"]["text"]
    assert "garden" not in video["transcript"]["text"]
    assert video["transcript"]["segments"][-1]["end"] < 20


async def test_a_file_declaring_less_than_its_audio_keeps_the_audios_timings(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A container header that says 5 s over 35 s of speech: the timings follow the audio that was
    decoded, instead of every segment past 5 s being pressed onto 5 s, and a note says so."""
    lying = declaring_duration(SPEECH_VIDEO, tmp_path / "lying.mkv", 5.0)
    video = await finished(client, (await upload(client, lying, language="en")).json()["id"])
    assert video["status"] == "completed", video["job"]
    assert video["metadata"]["duration"] == 5.0
    segments = video["transcript"]["segments"]
    assert all(
        following["start"] > previous["start"] for previous, following in zip(segments, segments[1:], strict=False)
    )
    assert segments[-1]["end"] > 30
    assert video["job"]["note"] == "the file declares 5.0 s but its audio lasts 35.0 s; the timings follow the audio"


async def test_an_undecodable_file_fails_with_a_clear_error(client: httpx.AsyncClient, settings: Settings) -> None:
    await client.get("/health")
    video_id = (await upload(client, SPEECH_VIDEO)).json()["id"]
    stored = next(p for p in settings.files_dir.iterdir() if p.is_file())
    stored.write_bytes(b"\x00garbage" * 1000)
    video = await finished(client, video_id)
    assert video["status"] == "failed"
    assert "could not be decoded" in video["job"]["error"]
    assert video["job"]["attempts"] == 1
    assert (await client.get(f"/videos/{video_id}/transcript")).status_code == 409


async def test_a_missing_file_is_retried_with_backoff_then_fails(client: httpx.AsyncClient, settings: Settings) -> None:
    video_id = (await upload(client, SPEECH_VIDEO)).json()["id"]
    next(p for p in settings.files_dir.iterdir() if p.is_file()).unlink()
    video = await finished(client, video_id)
    assert video["status"] == "failed"
    assert video["job"]["attempts"] == settings.job_max_attempts
    assert "missing" in video["job"]["error"]


async def test_transcript_is_409_until_completed(tmp_path: Path, store: StoreDatabase) -> None:
    async with serving(Settings(_env_file=None, data_dir=tmp_path / "idle", workers=0, **store.settings)) as http:
        video_id = (await upload(http, SPEECH_VIDEO)).json()["id"]
        response = await http.get(f"/videos/{video_id}/transcript", params={"format": "srt"})
        assert response.status_code == 409
        assert "queued" in response.json()["detail"]
        assert (await http.get(f"/videos/{video_id}/transcript", params={"format": "doc"})).status_code == 422
        assert (await http.get("/videos/0123456789abcdef01234567/transcript")).status_code == 404
        assert (await http.post(f"/videos/{video_id}/reprocess")).status_code == 409


async def test_reprocess_queues_a_completed_video_again(client: httpx.AsyncClient) -> None:
    video_id = (await upload(client, NO_AUDIO_VIDEO)).json()["id"]
    first = await finished(client, video_id)
    response = await client.post(f"/videos/{video_id}/reprocess")
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    again = await finished(client, video_id)
    assert again["status"] == "completed"
    assert again["job"]["attempts"] == 1
    assert again["processed_at"] > first["processed_at"]
    assert (await client.post("/videos/not-an-id/reprocess")).status_code == 404


async def test_events_for_an_unknown_video_are_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/videos/0123456789abcdef01234567/events")).status_code == 404


def test_word_timings_when_enabled_fall_inside_their_segments(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, whisper_word_timestamps=True)
    result = Transcriber(settings).transcribe(
        SPEECH_VIDEO, "en", TranscriptionOptions(), 34.894, lambda _: None, threading.Event()
    )
    segments = result.transcript.segments
    assert all(segment.words for segment in segments)
    for segment in segments:
        assert segment.start <= segment.words[0].start <= segment.words[-1].end <= segment.end + 0.01
        assert "".join(word.word for word in segment.words).strip() == segment.text
    assert any(word.word.strip(" ,.") == "Lisbon" for segment in segments for word in segment.words)
