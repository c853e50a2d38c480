"""The language of summaries and answers: asked per question, per video at upload (the old page's
`ui_language`, or `summary_language`), and on POST /videos/{id}/summarize. A model is asked to
write in it; the offline `local` provider, which cannot translate, writes in the transcript's
language and says so in the entry's `note`."""

import json
from pathlib import Path

import httpx

from service.config import Settings
from service.videos.models import Transcript
from tests.conftest import SPEECH_VIDEO, finished, insert_completed_video, serving, upload
from tests.openai_server import FakeOpenAI, Reply, openai_settings
from tests.store import StoreDatabase

JAPANESE_SUMMARY = json.dumps(
    {
        "summary": "クララはリスボンに住んでいて、新しい電話について話します。",
        "key_points": ["ファルコン電話は三月に発売されます"],
        "chapters": [{"start": 0, "end": 12, "title": "発売", "summary": "ファルコン電話。"}],
    },
    ensure_ascii=False,
)


async def legacy_upload(http: httpx.AsyncClient, **params: str) -> httpx.Response:
    with SPEECH_VIDEO.open("rb") as file:
        return await http.post("/upload-video/", params=params, files={"file": ("speech.mp4", file)})


def with_workers(settings: Settings) -> Settings:
    return settings.model_copy(update={"workers": 1, "worker_poll_seconds": 0.05})


async def test_ui_language_ja_on_the_old_upload_asks_the_model_for_japanese_and_is_stored(
    tmp_path: Path, store: StoreDatabase, fake: FakeOpenAI
) -> None:
    fake.script(Reply("content", JAPANESE_SUMMARY), Reply("content", "リスボンです [1]。"))
    async with serving(with_workers(openai_settings(tmp_path, store, fake.base_url))) as http:
        uploaded = (await legacy_upload(http, language="en", ui_language="ja")).json()
        assert uploaded["ui_language"] == "ja"
        video_id = uploaded["video_id"]
        await finished(http, video_id)
        status = (await http.get(f"/video-status/{video_id}")).json()
        assert status["processing_status"] == "completed"
        assert status["ui_language"] == "ja"
        assert status["summary"].startswith("クララはリスボン")
        assert "Write in Japanese." in fake.system_messages()[0]
        video = (await http.get(f"/videos/{video_id}")).json()
        assert video["summary_language"] == "ja"
        assert video["summary"]["language"] == "ja" and video["summary"]["note"] is None

        row = (
            await http.post("/ask-question/", json={"video_id": video_id, "question": "Where does Clara live?"})
        ).json()
        assert row["answer"] == "リスボンです [1]。" and row["language"] == "ja"
        assert "Answer in Japanese." in fake.system_messages()[-1]


async def test_a_question_in_another_language_asks_for_that_language(
    tmp_path: Path, store: StoreDatabase, fake: FakeOpenAI, speech_transcript: Transcript
) -> None:
    fake.script(Reply("content", "Elle habite à Lisbonne [1]."))
    async with serving(openai_settings(tmp_path, store, fake.base_url)) as http:
        video = await insert_completed_video(speech_transcript)
        response = await http.post(f"/videos/{video.id}/chat", json={"question": "Où vit Clara ?", "language": "fr"})
        assert response.json()["language"] == "fr" and response.json()["note"] is None
        assert "Answer in French." in fake.system_messages()[-1]


async def test_a_questions_language_is_kept_as_summary_language_is_normalized(
    tmp_path: Path, store: StoreDatabase, fake: FakeOpenAI, speech_transcript: Transcript
) -> None:
    """`PT_br` on a question is the `pt-br` a summary_language of `PT_br` is; `EN` is `en`."""
    fake.script(Reply("content", "Ela mora em Lisboa [1]."), Reply("content", "Lisbon [1]."))
    async with serving(openai_settings(tmp_path, store, fake.base_url)) as http:
        video = await insert_completed_video(speech_transcript)
        chat = f"/videos/{video.id}/chat"
        portuguese = await http.post(chat, json={"question": "Onde mora a Clara?", "language": "PT_br"})
        english = await http.post(chat, json={"question": "Where does Clara live?", "language": "EN"})
        assert (portuguese.json()["language"], english.json()["language"]) == ("pt-br", "en")
        assert "Answer in Portuguese." in fake.system_messages()[0]
        stored = (await http.get(chat)).json()["items"]
        assert [entry["language"] for entry in stored] == ["pt-br", "en"]


async def test_summary_language_on_summarize_is_asked_for_and_kept_for_later_summaries_and_answers(
    tmp_path: Path, store: StoreDatabase, fake: FakeOpenAI, speech_transcript: Transcript
) -> None:
    fake.script(
        Reply("content", JAPANESE_SUMMARY), Reply("content", JAPANESE_SUMMARY), Reply("content", "Lissabon [1].")
    )
    async with serving(openai_settings(tmp_path, store, fake.base_url)) as http:
        video = await insert_completed_video(speech_transcript)
        summary = (await http.post(f"/videos/{video.id}/summarize", json={"summary_language": "de"})).json()
        assert summary["language"] == "de"
        assert "Write in German." in fake.system_messages()[0]
        assert (await http.post(f"/videos/{video.id}/summarize")).json()["language"] == "de"
        assert "Write in German." in fake.system_messages()[1]
        entry = (await http.post(f"/videos/{video.id}/chat", json={"question": "Where does Clara live?"})).json()
        assert entry["language"] == "de"
        assert "Answer in German." in fake.system_messages()[2]
        assert (await http.get(f"/videos/{video.id}")).json()["summary_language"] == "de"


async def test_summary_language_at_upload_is_stored_and_a_bad_one_is_422_leaving_nothing(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    uploaded = (await upload(client, SPEECH_VIDEO, summary_language="pt_BR")).json()
    assert uploaded["summary_language"] == "pt-br"
    stored_files = sorted(settings.files_dir.rglob("*"))

    for response in (
        await upload(client, SPEECH_VIDEO, summary_language="Portuguese please"),
        await legacy_upload(client, ui_language="<script>"),
    ):
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert "language code" in detail and "script" not in detail and "please" not in detail
    assert sorted(settings.files_dir.rglob("*")) == stored_files
    assert [v["id"] for v in (await client.get("/videos")).json()["items"]] == [uploaded["id"]]


async def test_a_bad_summary_language_on_summarize_is_422(
    client: httpx.AsyncClient, speech_transcript: Transcript
) -> None:
    video = await insert_completed_video(speech_transcript)
    response = await client.post(f"/videos/{video.id}/summarize", json={"summary_language": "x" * 40})
    assert response.status_code == 422
    assert (await client.get(f"/videos/{video.id}")).json()["summary"] is None


async def test_the_local_provider_writes_in_the_transcripts_language_and_says_so(
    tmp_path: Path, store: StoreDatabase
) -> None:
    settings = Settings(
        _env_file=None, data_dir=tmp_path / "data", workers=1, worker_poll_seconds=0.05, **store.settings
    )
    async with serving(settings) as http:
        video_id = (await legacy_upload(http, ui_language="ja")).json()["video_id"]
        await finished(http, video_id)
        status = (await http.get(f"/video-status/{video_id}")).json()
        assert status["ui_language"] == "ja"
        summary = (await http.get(f"/videos/{video_id}")).json()["summary"]
        assert summary["language"] == "en"
        assert summary["note"] == (
            "The local provider cannot translate: this is written in English, not in Japanese as asked."
        )
        assert "Falcon" in summary["text"]

        row = (
            await http.post("/ask-question/", json={"video_id": video_id, "question": "Where does Clara live?"})
        ).json()
        assert row["language"] == "en" and "Lisbon" in row["answer"]
        [entry] = (await http.get(f"/videos/{video_id}/chat")).json()["items"]
        assert entry["note"] == summary["note"]


async def test_the_local_provider_says_it_found_nothing_in_the_language_asked_when_it_has_it(
    client: httpx.AsyncClient, speech_transcript: Transcript
) -> None:
    video = await insert_completed_video(speech_transcript)
    unrelated = {"question": "What is the capital of Australia?"}
    spanish = (await client.post(f"/videos/{video.id}/chat", json={**unrelated, "language": "es"})).json()
    assert spanish["answer"].startswith("El vídeo no parece")
    assert spanish["language"] == "es" and spanish["note"] is None
    japanese = (await client.post(f"/videos/{video.id}/chat", json={**unrelated, "language": "ja"})).json()
    assert japanese["answer"].startswith("The video does not seem to talk about that")
    assert japanese["language"] == "en" and "not in Japanese" in japanese["note"]
    quoted = (
        await client.post(f"/videos/{video.id}/chat", json={"question": "Wo wohnt Clara? Lisbon", "language": "de"})
    ).json()
    assert quoted["answer"].startswith("From the video:") and "Lisbon" in quoted["answer"]
    assert quoted["language"] == "en" and "not in German" in quoted["note"]
